/*
 * benchlib.c: clock, percentiles, /proc readers and the minimal loopback
 * HTTP client shared by the programs in bench/ (see bench.h).
 *
 * The requests are built with jansson like any other JSON in the project;
 * the response side only finds where the response ends, because the
 * figure being measured is "when did the agent have its whole answer".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"

uint64_t
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
bench_pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void *
bench_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	return q;
}

void
bench_add(struct bench_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = bench_xrealloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n++] = ns;
}

void
bench_samples_free(struct bench_samples *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

uint64_t
bench_pct(struct bench_samples *s, double p)
{
	size_t rank;

	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof *s->v, cmp_u64);
	/* nearest rank: the smallest value with at least p% at or below */
	rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return s->v[rank - 1];
}

void
bench_summary(FILE *f, const char *label, struct bench_samples *s)
{
	double sum = 0;
	size_t i;

	if (s->n == 0) {
		fprintf(f, "%s n=0\n", label);
		return;
	}
	bench_pct(s, 50);	/* sorts: v[0] is then the min */
	for (i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	fprintf(f, "%s n=%zu p50=%.3f p95=%.3f p99=%.3f min=%.3f max=%.3f "
	    "mean=%.3f (ms)\n", label, s->n,
	    bench_pct(s, 50) / 1e6, bench_pct(s, 95) / 1e6,
	    bench_pct(s, 99) / 1e6, s->v[0] / 1e6, s->v[s->n - 1] / 1e6,
	    sum / (double)s->n / 1e6);
}

int
bench_write_raw(const char *path, const struct bench_samples *s)
{
	FILE *f = fopen(path, "a");
	size_t i;

	if (f == NULL)
		return -1;
	for (i = 0; i < s->n; i++)
		fprintf(f, "%" PRIu64 "\n", s->v[i]);
	return fclose(f) == 0 ? 0 : -1;
}

int
bench_read_raw(const char *path, struct bench_samples *s)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char line[64];

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		char *end;
		unsigned long long v = strtoull(line, &end, 10);

		if (end != line)
			bench_add(s, v);
	}
	if (f != stdin)
		fclose(f);
	return 0;
}

long
bench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return (long)rl.rlim_cur;
}

int
bench_proc_read(pid_t pid, struct bench_proc *p)
{
	char path[64], line[256];
	FILE *f;
	DIR *d;
	struct dirent *de;

	p->rss_kib = p->hwm_kib = p->threads = p->fds = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			p->rss_kib = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			p->hwm_kib = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "Threads:", 8) == 0)
			p->threads = strtol(line + 8, NULL, 10);
	}
	fclose(f);
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) != NULL) {
		p->fds = 0;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				p->fds++;
		closedir(d);
	}
	return 0;
}

static char *
bench_http_post(const char *body, int sse, const char *token, size_t *len)
{
	char auth[512] = "";
	char *req;
	int n;

	if (token != NULL && *token != '\0')
		snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
	n = asprintf(&req,
	    "POST /mcp HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\n"
	    "Content-Type: application/json\r\n"
	    "Accept: %s\r\n"
	    "MCP-Protocol-Version: 2025-11-25\r\n"
	    "%s"
	    "Content-Length: %zu\r\n"
	    "\r\n%s",
	    sse ? "application/json, text/event-stream" : "application/json",
	    auth, strlen(body), body);
	if (n < 0) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	*len = (size_t)n;
	return req;
}

/* tools/call of TOOL with ARGS (stolen) as an HTTP request. */
static char *
bench_call(long rpcid, const char *tool, json_t *args, int sse,
    const char *token, size_t *len)
{
	json_t *req;
	char *body, *out;

	json_object_set_new(args, "justification",
	    json_string("benchmark: reach the package mirror"));
	req = json_pack("{s:s, s:I, s:s, s:{s:s, s:o}}", "jsonrpc", "2.0",
	    "id", (json_int_t)rpcid, "method", "tools/call", "params",
	    "name", tool, "arguments", args);
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		fprintf(stderr, "bench: can't build the request\n");
		exit(1);
	}
	json_decref(req);
	out = bench_http_post(body, sse, token, len);
	free(body);
	return out;
}

char *
bench_call_request(long rpcid, const char *host, const char *path, int sse,
    const char *token, size_t *len)
{
	json_t *args = json_pack("{s:s}", "host", host);

	if (path != NULL)
		json_object_set_new(args, "path_allowlist",
		    json_pack("[s]", path));
	return bench_call(rpcid, "egress-block", args, sse, token, len);
}

char *
bench_call_pipelock(long rpcid, const char *url, int sse, const char *token,
    size_t *len)
{
	return bench_call(rpcid, "pipelock-block",
	    json_pack("{s:s}", "failed_url", url), sse, token, len);
}

char *
bench_call_capability(long rpcid, const char *dockerfile, int sse,
    const char *token, size_t *len)
{
	return bench_call(rpcid, "capability-block",
	    json_pack("{s:s}", "dockerfile", dockerfile), sse, token, len);
}

char *
bench_health_request(size_t *len)
{
	static const char req[] = "GET /health HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
	char *r = strdup(req);

	if (r == NULL)
		exit(1);
	*len = sizeof req - 1;
	return r;
}

int
bench_connect(int port, int nonblock)
{
	struct sockaddr_in sa;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
	    (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
	    !(nonblock && errno == EINPROGRESS)) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

void
bench_http_init(struct bench_http *h)
{
	memset(h, 0, sizeof *h);
	h->content_length = -1;
}

void
bench_http_free(struct bench_http *h)
{
	free(h->buf);
	bench_http_init(h);
}

/* Header value of NAME (case-insensitive) in the header block, or NULL. */
static const char *
header_value(const char *hdr, size_t hlen, const char *name)
{
	size_t nl = strlen(name);
	const char *p = hdr, *end = hdr + hlen;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 &&
		    p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
		p = eol + 1;
	}
	return NULL;
}

/* Walk the chunks received so far; 1 when the last chunk has arrived. */
static int
chunked_done(struct bench_http *h)
{
	for (;;) {
		const char *p = h->buf + h->chunk_pos;
		const char *end = h->buf + h->len;
		const char *crlf = memmem(p, (size_t)(end - p), "\r\n", 2);
		char *num_end;
		unsigned long size;

		if (crlf == NULL)
			return 0;
		size = strtoul(p, &num_end, 16);
		if (num_end == p)
			return -1;
		if (size == 0)	/* last chunk: trailers end at an empty line */
			return memmem(crlf, (size_t)(end - crlf), "\r\n\r\n",
			    4) != NULL;
		if ((size_t)(end - (crlf + 2)) < size + 2)
			return 0;
		h->chunk_pos = (size_t)(crlf + 2 - h->buf) + size + 2;
	}
}

int
bench_http_feed(struct bench_http *h, const char *p, size_t n)
{
	if (h->done)
		return 1;
	if (n == 0) {		/* EOF ends a response that had no length */
		h->done = 1;
		return 1;
	}
	if (h->len + n + 1 > h->cap) {
		h->cap = (h->len + n + 1) * 2;
		h->buf = bench_xrealloc(h->buf, h->cap);
	}
	memcpy(h->buf + h->len, p, n);
	h->len += n;
	h->buf[h->len] = '\0';
	if (h->hdr_end == 0) {
		const char *e = strstr(h->buf, "\r\n\r\n");
		const char *v;

		if (e == NULL)
			return 0;
		h->hdr_end = (size_t)(e + 4 - h->buf);
		if (strncmp(h->buf, "HTTP/1.", 7) == 0 && h->len > 12)
			h->status = atoi(h->buf + 9);
		if ((v = header_value(h->buf, h->hdr_end, "Content-Length")))
			h->content_length = strtol(v, NULL, 10);
		if ((v = header_value(h->buf, h->hdr_end, "Transfer-Encoding")))
			h->chunked = strncasecmp(v, "chunked", 7) == 0;
		h->chunk_pos = h->hdr_end;
	}
	if (h->chunked)
		h->done = chunked_done(h) != 0;
	else if (h->content_length >= 0)
		h->done = h->len - h->hdr_end >= (size_t)h->content_length;
	else if (h->status == 204 || h->status == 304 ||
	    (h->status >= 100 && h->status < 200))
		h->done = 1;
	return h->done;
}

int
bench_http_approved(const struct bench_http *h)
{
	return h->status == 200 && h->buf != NULL &&
	    strstr(h->buf + h->hdr_end, "status: approved") != NULL;
}

int
bench_http_send(int fd, const char *req, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, req, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		req += w;
		len -= (size_t)w;
	}
	return 0;
}

int
bench_http_read(int fd, struct bench_http *h, uint64_t deadline)
{
	char buf[16384];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = bench_now();
		ssize_t r;
		int ms;

		if (now >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
		ms = (int)((deadline - now) / 1000000u) + 1;
		if (poll(&pfd, 1, ms) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pfd.revents == 0)
			continue;
		r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (bench_http_feed(h, buf, (size_t)r))
			return h->status > 0 ? 0 : -1;
	}
}

long
bench_arg_long(const char *prog, const char *opt, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0) {
		fprintf(stderr, "%s: bad %s '%s'\n", prog, opt, s);
		exit(2);
	}
	return v;
}

double
bench_arg_double(const char *prog, const char *opt, const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || v < 0) {
		fprintf(stderr, "%s: bad %s '%s'\n", prog, opt, s);
		exit(2);
	}
	return v;
}
