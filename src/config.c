/*
 * config.c: supervised's configuration, from its command line and the
 * SUPERVISE_* environment: each value checked, and a clear message
 * (exit 2) for one that is wrong, before anything starts.
 *
 * Threads: runs before any other thread starts.  The full account is in
 * sidecar.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sidecar.h"

#define MAX_PENDING	100000		/* --max-pending by default */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: supervised [-s SLUG] [-q QUEUE_DIR] [-a AUDIT_DIR] "
	    "[-r ROOT]\n"
	    "                  [-p PORT] [-b ADDR] [--token-file FILE] "
	    "[--max-wait SEC]\n"
	    "                  [--progress SEC] [--rescan SEC] "
	    "[--idle-timeout SEC]\n"
	    "                  [--port-file FILE] [--state-dir DIR]\n"
	    "                  [--max-pending N] [--expire DURATION] "
	    "[--egress-proxy URL]\n"
	    "                  [--allow-host NAME]... [--body-budget MIB] "
	    "[--body-timeout SEC]\n"
	    "                  [--max-waiters N]\n"
	    "                  [--apply-hook PATH] [--apply-timeout SEC]\n"
	    "       supervised --drain [-s SLUG] [-q QUEUE_DIR] [-a AUDIT_DIR] "
	    "[-r ROOT]\n"
	    "                  [--state-dir DIR] [--apply-hook PATH] "
	    "[--apply-timeout SEC]\n"
	    "       supervised -h\n"
	    "Serve the MCP tools of one bottle on http://ADDR:PORT/mcp; each "
	    "call files a\nproposal and waits for the operator's decision.\n");
}

_Noreturn void
sd_config_error(const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", sv_prog, msg);
	exit(2);
}

static long
parse_seconds(const char *what, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		sd_config_error("invalid %s '%s': want a whole number from %ld to "
		    "%ld", what, s, min, max);
	return v;
}

static char *
read_token_file(const char *path)
{
	struct sv_err e;
	char *buf;
	size_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		sd_config_error("can't open token file '%s': %s", path,
		    strerror(errno));
	if (sv_read_all(fd, path, 4096, &buf, &len, &e) == -1)
		sd_config_error("%s", e.msg);
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0 || strlen(buf) != len)
		sd_config_error("token file '%s' holds no token", path);
	return buf;
}

/* One more name a Host header may carry (--allow-host). */
static void
add_host(struct config *cfg, const char *name)
{
	struct sv_err e;

	if (sv_valid_host(name, &e) == -1)
		sd_config_error("invalid --allow-host: %s", e.msg);
	cfg->hosts = sv_xrealloc(cfg->hosts, (cfg->nhosts + 1) *
	    sizeof *cfg->hosts);
	cfg->hosts[cfg->nhosts++] = name;
}

/* SUPERVISE_ALLOW_HOSTS: names separated by commas or blanks. */
static void
add_hosts_env(struct config *cfg, const char *list)
{
	static char *copy;
	char *tok, *save;

	free(copy);
	copy = sv_xstrdup(list);
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save))
		add_host(cfg, tok);
}

/* Long options with no letter. */
enum { OPT_APPLY_HOOK = 1000, OPT_APPLY_TIMEOUT };

void
sd_parse_config(int argc, char **argv, struct config *cfg)
{
	static const struct option opts[] = {
		{ "slug", required_argument, NULL, 's' },
		{ "queue-dir", required_argument, NULL, 'q' },
		{ "audit-dir", required_argument, NULL, 'a' },
		{ "root", required_argument, NULL, 'r' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "max-wait", required_argument, NULL, 'W' },
		{ "rescan", required_argument, NULL, 'R' },
		{ "progress", required_argument, NULL, 'P' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "body-budget", required_argument, NULL, 'B' },
		{ "body-timeout", required_argument, NULL, 'Y' },
		{ "max-waiters", required_argument, NULL, 'K' },
		{ "port-file", required_argument, NULL, 'F' },
		{ "allow-host", required_argument, NULL, 'H' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "max-pending", required_argument, NULL, 'M' },
		{ "expire", required_argument, NULL, 'E' },
		{ "egress-proxy", required_argument, NULL, 'G' },
		{ "apply-hook", required_argument, NULL, OPT_APPLY_HOOK },
		{ "apply-timeout", required_argument, NULL, OPT_APPLY_TIMEOUT },
		{ "drain", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *port = getenv("SUPERVISE_PORT"), *token_file = NULL;
	const char *max_pending = getenv("SUPERVISE_MAX_PENDING");
	const char *expire = getenv("SUPERVISE_EXPIRE");
	const char *hook = getenv("SUPERVISE_APPLY_HOOK");
	const char *hook_timeout = getenv("SUPERVISE_APPLY_TIMEOUT");
	const char *v;
	struct sv_err e;
	int ch;

	memset(cfg, 0, sizeof *cfg);
	cfg->slug = getenv("SUPERVISE_BOTTLE_SLUG");
	cfg->queue_dir = getenv("SUPERVISE_QUEUE_DIR");
	cfg->audit_dir = getenv("SUPERVISE_AUDIT_DIR");
	cfg->bind = getenv("SUPERVISE_BIND");
	cfg->egress_proxy = getenv("SUPERVISE_EGRESS_PROXY");
	cfg->rescan = 5;
	cfg->progress = 25;
	cfg->idle_timeout = 60;
	cfg->body_budget = 64;
	cfg->body_timeout = 30;
	cfg->max_waiters = 64;
	while ((ch = getopt_long(argc, argv, "s:q:a:r:p:b:h", opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 's': cfg->slug = optarg; break;
		case 'q': cfg->queue_dir = optarg; break;
		case 'a': cfg->audit_dir = optarg; break;
		case 'r':
			if (optarg[0] == '\0')
				sd_config_error("invalid root ''");
			setenv("SUPERVISE_ROOT", optarg, 1);
			break;
		case 'p': port = optarg; break;
		case 'b': cfg->bind = optarg; break;
		case 'T': token_file = optarg; break;
		case 'W':
			cfg->max_wait = parse_seconds("--max-wait", optarg, 0,
			    86400 * 365);
			break;
		case 'R':
			cfg->rescan = parse_seconds("--rescan", optarg, 1, 86400);
			break;
		case 'P':
			cfg->progress = parse_seconds("--progress", optarg, 1,
			    3600);
			break;
		case 'I':
			cfg->idle_timeout = parse_seconds("--idle-timeout",
			    optarg, 1, 86400);
			break;
		case 'B':
			cfg->body_budget = parse_seconds("--body-budget",
			    optarg, 1, 65536);
			break;
		case 'K':
			cfg->max_waiters = parse_seconds("--max-waiters",
			    optarg, 1, 1000000);
			break;
		case 'Y':
			cfg->body_timeout = parse_seconds("--body-timeout",
			    optarg, 1, 3600);
			break;
		case 'F': cfg->port_file = optarg; break;
		case 'H': add_host(cfg, optarg); break;
		case 'S':
			if (optarg[0] == '\0')
				sd_config_error("invalid state directory ''");
			free(cfg->state_dir);
			cfg->state_dir = sv_xstrdup(optarg);
			break;
		case 'M': max_pending = optarg; break;
		case 'E': expire = optarg; break;
		case 'G': cfg->egress_proxy = optarg; break;
		case OPT_APPLY_HOOK: hook = optarg; break;
		case OPT_APPLY_TIMEOUT: hook_timeout = optarg; break;
		case 'D': cfg->drain = 1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		sd_config_error("unexpected argument '%s' (see supervised -h)",
		    argv[optind]);
	if (cfg->slug == NULL || cfg->slug[0] == '\0')
		sd_config_error("no bottle: set SUPERVISE_BOTTLE_SLUG or use -s "
		    "SLUG");
	if (sv_valid_slug(cfg->slug, &e) == -1)
		sd_config_error("%s", e.msg);
	if (cfg->queue_dir != NULL && cfg->queue_dir[0] == '\0')
		cfg->queue_dir = NULL;
	if (cfg->audit_dir != NULL && cfg->audit_dir[0] == '\0')
		cfg->audit_dir = NULL;
	if (cfg->bind == NULL || cfg->bind[0] == '\0')
		cfg->bind = "127.0.0.1";
	if (cfg->state_dir == NULL)
		cfg->state_dir = sv_state_dir(cfg->slug);
	if (cfg->egress_proxy != NULL && cfg->egress_proxy[0] == '\0')
		cfg->egress_proxy = NULL;
	if (cfg->egress_proxy != NULL &&
	    sv_egress_check_url(cfg->egress_proxy, &e) == -1)
		sd_config_error("%s", e.msg);
	/* A hook that can't run is a configuration error, not a surprise at
	 * the first approval. */
	if (sv_hook_find(hook, &cfg->apply_hook, &e) == -1)
		sd_config_error("%s", e.msg);
	cfg->apply_timeout = SV_HOOK_TIMEOUT;
	if (hook_timeout != NULL && hook_timeout[0] != '\0')
		cfg->apply_timeout = parse_seconds("--apply-timeout",
		    hook_timeout, 1, 86400);
	cfg->port = parse_seconds("port", port && *port ? port : "9100", 0,
	    65535);
	cfg->max_pending = MAX_PENDING;
	if (max_pending != NULL && *max_pending != '\0')
		cfg->max_pending = parse_seconds("--max-pending", max_pending,
		    1, 100000000);
	if (expire != NULL && *expire != '\0' && strcmp(expire, "off") != 0 &&
	    sv_parse_duration(expire, &cfg->expire) == -1)
		sd_config_error("invalid --expire '%s': want a duration such as "
		    "90s, 30m, 24h or 7d, or off", expire);
	if (token_file != NULL)
		cfg->token = read_token_file(token_file);
	else if ((v = getenv("SUPERVISE_TOKEN")) != NULL && v[0] != '\0')
		cfg->token = sv_xstrdup(v);
	if (cfg->token != NULL)
		sv_token_digest(cfg->token, cfg->token_digest);
	for (size_t i = 0; sv_host_defaults[i] != NULL; i++)
		add_host(cfg, sv_host_defaults[i]);
	if ((v = getenv("SUPERVISE_ALLOW_HOSTS")) != NULL)
		add_hosts_env(cfg, v);
}
