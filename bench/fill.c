/*
 * fill.c: a spool with many pending proposals, and the floor of listing
 * it.
 *
 *   fill -d QUEUEDIR -n N      add N pending proposals to proposals/new
 *   fill -d QUEUEDIR -r        read every file in proposals/new (the floor
 *                              of supervise-list: readdir, open, read)
 *
 * The proposals are real records (sv_proposal_dump, names from
 * sv_unique_name) across the tools, but they are written without the
 * fsyncs of sv_deliver: this only sets the scene for supervise-list, and
 * 2 x N fsyncs would cost minutes without changing what list reads.
 * libgit2 is initialised once for the whole run: sv_blob_hash() alone
 * initialises and shuts it down on every call, which (with the mbedtls
 * back end loading the CA bundle each time) costs milliseconds a call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#include "bench.h"
#include "supervise.h"

static const char *prog = "fill";

static int
fill(struct sv_spool *sp, long n)
{
	static const char *urls[] = { "https://pypi.org/simple/requests/",
	    "https://registry.npmjs.org/left-pad", "http://deb.debian.org/" };
	long i;

	for (i = 0; i < n; i++) {
		struct sv_proposal p = { 0 };
		struct sv_err e;
		struct timespec ts;
		char id[SV_ID_MAX + 1], when[64], hash[41], route[128], *text;
		int fd;

		if (sv_unique_name(id, sizeof id, &e) != 0) {
			fprintf(stderr, "%s: %s\n", prog, e.msg);
			return -1;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		sv_blob_hash("", 0, hash);
		p.id = id;
		p.bottle_slug = sp->slug;
		p.arrival_timestamp = sv_iso8601(&ts, when, sizeof when);
		p.current_file_hash = hash;
		p.justification = (char *)"benchmark: the build needs it";
		switch (i % 3) {
		case 0:
			snprintf(route, sizeof route,
			    "{\n  \"host\": \"f%ld.example.com\"\n}\n", i);
			p.tool = (char *)SV_TOOL_EGRESS_BLOCK;
			p.proposed_file = route;
			break;
		case 1:
			p.tool = (char *)SV_TOOL_PIPELOCK_BLOCK;
			p.proposed_file = (char *)urls[i % 3];
			break;
		default:
			snprintf(route, sizeof route,
			    "abc%ld:config/app.env:generic-api-key:%ld", i, i % 90);
			p.tool = (char *)SV_TOOL_GITLEAKS_ALLOW;
			p.proposed_file = route;
			break;
		}
		text = sv_proposal_dump(&p);
		fd = openat(sp->pnew, id, O_CREAT | O_EXCL | O_WRONLY |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || sv_write_all(fd, text, strlen(text)) != 0 ||
		    close(fd) != 0) {
			fprintf(stderr, "%s: can't write 'proposals/new/%s': %s\n",
			    prog, id, strerror(errno));
			return -1;
		}
		free(text);
	}
	return 0;
}

/* The floor: what any lister must do at least, readdir + read each. */
static int
read_all(struct sv_spool *sp)
{
	DIR *d;
	struct dirent *de;
	char buf[65536];
	long files = 0, bytes = 0;
	int fd = openat(sp->pnew, ".", O_DIRECTORY | O_RDONLY);

	if (fd < 0 || (d = fdopendir(fd)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		ssize_t r;
		int f;

		if (de->d_name[0] == '.')
			continue;
		if ((f = openat(sp->pnew, de->d_name, O_RDONLY | O_NOFOLLOW)) < 0)
			continue;
		while ((r = read(f, buf, sizeof buf)) > 0)
			bytes += r;
		close(f);
		files++;
	}
	closedir(d);
	printf("read %ld files, %ld bytes\n", files, bytes);
	return 0;
}

int
main(int argc, char **argv)
{
	long n = -1;
	int readall = 0, c, rc;
	const char *dir = NULL, *slug;
	struct sv_spool sp;
	struct sv_err e;

	while ((c = getopt(argc, argv, "d:n:r")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': n = bench_arg_long(prog, "-n", optarg); break;
		case 'r': readall = 1; break;
		default: goto usage;
		}
	}
	if (dir == NULL || optind != argc || (n < 0) == !readall)
		goto usage;
	slug = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	if (sv_spool_open(&sp, dir, slug, 1, &e) != 0) {
		fprintf(stderr, "%s: %s\n", prog, e.msg);
		return 1;
	}
	git_libgit2_init();
	rc = readall ? read_all(&sp) : fill(&sp, n);
	git_libgit2_shutdown();
	sv_spool_close(&sp);
	return rc ? 1 : 0;
usage:
	fprintf(stderr, "usage: %s -d QUEUEDIR -n N | -d QUEUEDIR -r\n", prog);
	return 2;
}
