/*
 * util.c: the small things every part of supervise needs.
 *
 * Error values (struct sv_err) and the one place that prints them,
 * allocation that dies instead of returning NULL, the terminal-safe
 * escaping of agent-supplied text, UTC timestamps and a monotonic clock,
 * where the spool lives, mkdir -p, white space trimming, and read/write
 * loops that survive EINTR and refuse unbounded input.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

const char *sv_prog = "supervise";

void
sv_setprog(const char *argv0)
{
	const char *slash;

	if (argv0 == NULL || *argv0 == '\0')
		return;
	slash = strrchr(argv0, '/');
	sv_prog = slash ? slash + 1 : argv0;
}

int
sv_errf(struct sv_err *e, int errnum, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (errnum && (size_t)n < sizeof e->msg)
		snprintf(e->msg + n, sizeof e->msg - n, ": %s", strerror(errnum));
	e->errnum = errnum;
	return -1;
}

static void
vwarn_line(const char *fmt, va_list ap)
{
	/* One fprintf per line so concurrent writers do not interleave. */
	char line[2048];

	vsnprintf(line, sizeof line, fmt, ap);
	fprintf(stderr, "%s: %s\n", sv_prog, line);
}

void
sv_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn_line(fmt, ap);
	va_end(ap);
}

void
sv_warn_err(const struct sv_err *e)
{
	fprintf(stderr, "%s: %s\n", sv_prog, e->msg);
}

_Noreturn void
sv_die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn_line(fmt, ap);
	va_end(ap);
	exit(status);
}

void *
sv_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		sv_die(111, "out of memory");
	return p;
}

void *
sv_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		sv_die(111, "out of memory");
	return q;
}

char *
sv_xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		sv_die(111, "out of memory");
	return d;
}

char *
sv_xstrndup(const char *s, size_t n)
{
	char *d = strndup(s, n);

	if (d == NULL)
		sv_die(111, "out of memory");
	return d;
}

char *
sv_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		sv_die(111, "out of memory");
	return s;
}

/*
 * Decode one UTF-8 sequence strictly (no overlong forms, no surrogates,
 * nothing above U+10FFFF).  Returns its length, or 0 when s does not
 * start a valid sequence.
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, unsigned *cp)
{
	unsigned c = s[0], min;
	size_t n, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2, c &= 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, c &= 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/*
 * Code points a reader cannot see for what they are, so a human shown
 * agent text would read something other than what is there: format
 * characters (Unicode Cf: bidirectional overrides and isolates, the
 * "Trojan Source" characters, zero-width characters, invisible
 * operators, the soft hyphen, the BOM, tag characters), line and
 * paragraph separators (U+2028, U+2029; U+0085 is a C1 control), spaces
 * other than U+0020 (no-break, en, em, thin, ideographic...), and the
 * invisible fillers and selectors that are not Cf: the combining
 * grapheme joiner, Hangul fillers, Khmer inherent vowels, variation
 * selectors (which can carry hidden bytes), the whole tag block.
 * Unicode 14's Cf, Zl, Zp and Zs, sorted, for a binary search.
 */
static const unsigned invisible_ranges[][2] = {
	{ 0x00a0, 0x00a0 }, { 0x00ad, 0x00ad }, { 0x034f, 0x034f },
	{ 0x0600, 0x0605 }, { 0x061c, 0x061c }, { 0x06dd, 0x06dd },
	{ 0x070f, 0x070f }, { 0x0890, 0x0891 }, { 0x08e2, 0x08e2 },
	{ 0x115f, 0x1160 }, { 0x1680, 0x1680 }, { 0x17b4, 0x17b5 },
	{ 0x180b, 0x180f }, { 0x2000, 0x200f }, { 0x2028, 0x202f },
	{ 0x205f, 0x2064 }, { 0x2066, 0x206f }, { 0x3000, 0x3000 },
	{ 0x3164, 0x3164 }, { 0xfe00, 0xfe0f }, { 0xfeff, 0xfeff },
	{ 0xffa0, 0xffa0 }, { 0xfff9, 0xfffb }, { 0x110bd, 0x110bd },
	{ 0x110cd, 0x110cd }, { 0x13430, 0x1343f }, { 0x1bca0, 0x1bca3 },
	{ 0x1d173, 0x1d17a }, { 0xe0000, 0xe007f }, { 0xe0100, 0xe01ef },
};

int
sv_invisible(unsigned cp)
{
	size_t lo = 0, hi = sizeof invisible_ranges /
	    sizeof invisible_ranges[0], mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (cp < invisible_ranges[mid][0])
			hi = mid;
		else if (cp > invisible_ranges[mid][1])
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

/*
 * Is there a line break of any kind in s: a C0 control or DEL (\n, \r,
 * \v, \f and the information separators among them), a C1 control
 * (U+0085 NEL among them), U+2028 or U+2029, or a byte that is not
 * UTF-8?  Readers split lines at each of these, some the Unicode way.
 */
int
sv_breaks_line(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str), i = 0, n;
	unsigned cp;

	while (i < len) {
		n = utf8_decode(s + i, len - i, &cp);
		if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
		    cp == 0x2028 || cp == 0x2029)
			return 1;
		i += n;
	}
	return 0;
}

char *
sv_escape(const char *str, size_t len, int flags)
{
	const unsigned char *s = (const unsigned char *)str;
	/* Worst case: every byte becomes \xHH (4 bytes). */
	char *out = sv_xmalloc(len * 4 + 1), *o = out;
	size_t i = 0, n;
	unsigned cp;

	while (i < len) {
		n = utf8_decode(s + i, len - i, &cp);
		if (n == 0) {
			o += sprintf(o, "\\x%02x", s[i]);
			i++;
			continue;
		}
		if (cp == '\\') {
			*o++ = '\\', *o++ = '\\';
		} else if (cp == '\t') {
			*o++ = '\\', *o++ = 't';
		} else if (cp == '\n') {
			if (flags & SV_ESC_NL)
				*o++ = '\n';
			else
				*o++ = '\\', *o++ = 'n';
		} else if (cp < 0x20 || cp == 0x7f) {
			o += sprintf(o, "\\x%02x", cp);
		} else if ((cp >= 0x80 && cp <= 0x9f) || sv_invisible(cp)) {
			/* At most 9 bytes (\\u{e01ef}) from 2 to 4 input
			 * bytes: within 4n. */
			o += sprintf(o, "\\u{%x}", cp);
		} else {
			memcpy(o, s + i, n);
			o += n;
		}
		i += n;
	}
	*o = '\0';
	return out;
}

char *
sv_iso8601(const struct timespec *ts, char *buf, size_t n)
{
	struct tm tm;
	char date[64];
	int r;

	if (gmtime_r(&ts->tv_sec, &tm) == NULL)
		return NULL;
	if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return NULL;
	r = snprintf(buf, n, "%s.%06ldZ", date, (long)(ts->tv_nsec / 1000));
	if (r < 0 || (size_t)r >= n)
		return NULL;
	return buf;
}

static int
digits(const char **s, int n, int *out)
{
	int v = 0;

	while (n-- > 0) {
		if (**s < '0' || **s > '9')
			return -1;
		v = v * 10 + (*(*s)++ - '0');
	}
	*out = v;
	return 0;
}

/*
 * An RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.fraction] then Z or a
 * numeric offset +HH:MM / -HH:MM ('T' and 'Z' in either case, up to nine
 * fraction digits).  The egress proxy's writer uses an offset
 * (2026-12-04T15:40:37.188892+00:00); ours write Z.  A date that does not
 * exist (2026-02-30) is refused by converting back and comparing; second
 * 60 only where a leap second can be, 23:59:60 in UTC.  `utc`, when not
 * NULL, gets the same instant written in UTC with Z and the fraction as
 * given, so every record says a time one way.
 */
int
sv_time_utc(const char *s, time_t *out, char utc[SV_TIME_MAX])
{
	struct tm tm, back;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, nfrac = 0;
	const char *frac = NULL;
	time_t t;

	if (s == NULL || digits(&s, 4, &y) || *s++ != '-' ||
	    digits(&s, 2, &mo) || *s++ != '-' || digits(&s, 2, &d) ||
	    (*s != 'T' && *s != 't') || (s++, digits(&s, 2, &h)) ||
	    *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
	    digits(&s, 2, &sec))
		return -1;
	if (*s == '.') {
		frac = ++s;
		while (*s >= '0' && *s <= '9' && nfrac < 9)
			s++, nfrac++;
		if (nfrac == 0)
			return -1;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) ||
		    oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec == 60 ? 59 : sec;
	t = timegm(&tm);
	if (gmtime_r(&t, &back) == NULL || back.tm_mday != d ||
	    back.tm_mon != mo - 1 || back.tm_year != y - 1900)
		return -1;
	t -= sign * (oh * 3600 + om * 60);
	if (gmtime_r(&t, &back) == NULL || back.tm_year + 1900 < 0 ||
	    back.tm_year + 1900 > 9999)
		return -1;
	if (sec == 60 && (back.tm_hour != 23 || back.tm_min != 59))
		return -1;
	if (utc)
		snprintf(utc, SV_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02d%s%.*sZ",
		    back.tm_year + 1900, back.tm_mon + 1, back.tm_mday,
		    back.tm_hour, back.tm_min, sec == 60 ? 60 : back.tm_sec,
		    frac ? "." : "", nfrac, frac ? frac : "");
	if (out)
		*out = t;
	return 0;
}

const char *
sv_root(void)
{
	/* Recomputed on each call so a test may change the environment. */
	static char buf[4096];
	const char *root = getenv("SUPERVISE_ROOT"), *home;
	struct passwd *pw;

	if (root != NULL && *root != '\0')
		return root;
	home = getenv("HOME");
	if (home == NULL || *home == '\0') {
		pw = getpwuid(getuid());
		home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/";
	}
	snprintf(buf, sizeof buf, "%s%s.bot-bottle", home,
	    home[strlen(home) - 1] == '/' ? "" : "/");
	return buf;
}

char *
sv_audit_dir(void)
{
	const char *dir = getenv("SUPERVISE_AUDIT_DIR");

	if (dir != NULL && *dir != '\0')
		return sv_xstrdup(dir);
	return sv_xasprintf("%s/audit.git", sv_root());
}

char *
sv_queue_dir(const char *slug)
{
	return sv_xasprintf("%s/queue/%s", sv_root(), slug);
}

int
sv_read_all(int fd, const char *path, size_t max, char **buf, size_t *len,
    struct sv_err *e)
{
	return sv_read_sized(fd, path, max, 0, buf, len, e);
}

int
sv_read_sized(int fd, const char *path, size_t max, size_t size, char **buf,
    size_t *len, struct sv_err *e)
{
	size_t cap = size > 0 && size < max ? size + 2 : 8192, n = 0;
	char *b;
	ssize_t r;

	b = sv_xmalloc(cap);
	for (;;) {
		if (n == cap - 1) {
			/* Room for one byte past max: "exactly max" is not "more". */
			cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			b = sv_xrealloc(b, cap);
		}
		r = read(fd, b + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(b);
			return sv_errf(e, errno, "can't read '%s'", path);
		}
		if (r == 0)
			break;
		n += (size_t)r;
		/* A short read of a regular file of known size is its end:
		 * no read(2) just to see 0. */
		if (size > 0 && n <= size && n < cap - 1)
			break;
		if (n > max) {
			free(b);
			sv_errf(e, 0, "can't read '%s': larger than %zu bytes",
			    path, max);
			if (e)
				e->errnum = EFBIG;
			return -1;
		}
	}
	b[n] = '\0';
	*buf = b;
	if (len)
		*len = n;
	return 0;
}

int
sv_write_all(int fd, const char *buf, size_t len)
{
	ssize_t r;

	while (len > 0) {
		r = write(fd, buf, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += r;
		len -= (size_t)r;
	}
	return 0;
}

int64_t
sv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sv_sleep_us(long us)
{
	struct timespec ts = { us / 1000000L, (us % 1000000L) * 1000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
sv_mkdirs(const char *path, struct sv_err *e)
{
	char *p = sv_xstrdup(path);
	int rc = 0;

	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0700) == -1 && errno != EEXIST) {
			rc = sv_errf(e, errno, "can't create '%s'", p);
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return rc;
}

int
sv_all_space(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isspace((unsigned char)*s))
			return 0;
	return 1;
}

char *
sv_strip_dup(const char *s)
{
	size_t n;

	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return sv_xstrndup(s, n);
}
