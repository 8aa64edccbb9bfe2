/*
 * fuzz/names.c: the name validators and the terminal escaper.
 *
 * sv_valid_slug and sv_valid_id are compared with a second, deliberately
 * plain reading of the contract ([A-Za-z0-9][A-Za-z0-9._-]*, 64 or 128
 * bytes); sv_parse_name must split a name into its id and its flags
 * (unique, in ASCII order) and parse what it returns back to the same;
 * sv_escape must never let a control byte, invalid UTF-8 or a hidden
 * character (bidi, tags, separators, odd spaces) through, whatever the
 * flags, and escaping its own output may change nothing but its
 * backslashes; sv_breaks_line finds every line break; sv_host_check,
 * sv_json_content_type and sv_origin_allowed let in only what supervised(8)
 * says they do.
 *
 * Input: one selector byte, then the text.
 */
#include "../src/daemon.h"
#include "fuzz.h"

static int
name_ok(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || strlen(s) != len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return 0;
	}
	return 1;
}

/* Decode one UTF-8 scalar strictly; returns its length or 0 if invalid. */
static size_t
utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	size_t n;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		n = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/*
 * What supervise(7) names as hidden, read plainly: format characters
 * seen in the wild (bidi, zero-width, invisible operators, BOM, soft
 * hyphen), tag characters, variation selectors, line and paragraph
 * separators, and spaces other than U+0020.
 */
static int
is_hidden_char(uint32_t c)
{
	return c == 0x00a0 || c == 0x00ad || c == 0x061c || c == 0x1680 ||
	    (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
	    (c >= 0x205f && c <= 0x2064) || (c >= 0x2066 && c <= 0x206f) ||
	    c == 0x3000 || (c >= 0xfe00 && c <= 0xfe0f) || c == 0xfeff ||
	    (c >= 0xe0000 && c <= 0xe007f) || (c >= 0xe0100 && c <= 0xe01ef);
}

/*
 * sv_host_check: a Host header it lets in is an address or one of the
 * names, with at most a numeric port; the names' case does not matter.
 */
static void
check_host(const char *s)
{
	static const char *const names[] = { "localhost", "supervise" };
	enum sv_host_verdict v = sv_host_check(s, names, 2);
	const char *colon = s[0] == '[' ? strstr(s, "]:") : strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) + (s[0] == '[') : strlen(s);

	FUZZ_ASSERT(v == SV_HOST_OK || v == SV_HOST_UNKNOWN || v == SV_HOST_BAD,
	    "verdict %d", (int)v);
	if (v != SV_HOST_OK)
		return;
	for (const char *p = colon ? colon + 1 + (s[0] == '[') : ""; *p; p++)
		FUZZ_ASSERT(*p >= '0' && *p <= '9', "port of '%s'", s);
	FUZZ_ASSERT(n > 0, "empty host '%s' let in", s);
	if (s[0] != '[' && strspn(s, "0123456789.") != n) {
		size_t m = n > 0 && s[n - 1] == '.' ? n - 1 : n;
		FUZZ_ASSERT((m == 9 && strncasecmp(s, "localhost", 9) == 0) ||
		    (m == 9 && strncasecmp(s, "supervise", 9) == 0),
		    "name '%s' let in", s);
	}
	FUZZ_ASSERT(sv_host_check(s, names, 0) == SV_HOST_OK ||
	    sv_host_check(s, names, 0) == SV_HOST_UNKNOWN,
	    "'%s' malformed without names", s);
}

/*
 * sv_json_content_type: application/json in any case, after blanks, then
 * nothing but blanks before the end or a parameter.
 */
static void
check_content_type(const char *s)
{
	const char *p = s + strspn(s, " \t");
	int want = strncasecmp(p, "application/json", 16) == 0;

	if (want) {
		p += 16 + strspn(p + 16, " \t");
		want = *p == '\0' || *p == ';';
	}
	FUZZ_ASSERT(sv_json_content_type(s) == want,
	    "Content-Type '%s': %d", s, sv_json_content_type(s));
}

/*
 * sv_origin_allowed: only http or https on a loopback name, with at most
 * a port; nothing after it.
 */
static void
check_origin(const char *s)
{
	static const char *const hosts[] = { "localhost", "127.0.0.1",
	    "[::1]" };
	const char *p;
	size_t i, n;

	if (!sv_origin_allowed(s))
		return;
	p = strncasecmp(s, "https://", 8) == 0 ? s + 8 :
	    strncasecmp(s, "http://", 7) == 0 ? s + 7 : NULL;
	FUZZ_ASSERT(p != NULL, "Origin '%s' let in: scheme", s);
	for (i = 0; i < 3; i++) {
		n = strlen(hosts[i]);
		if (strncasecmp(p, hosts[i], n) == 0)
			break;
	}
	FUZZ_ASSERT(i < 3, "Origin '%s' let in: host", s);
	p += n;
	if (*p == ':')
		p += 1 + strspn(p + 1, "0123456789");
	FUZZ_ASSERT(*p == '\0', "Origin '%s' let in: '%s' after the host",
	    s, p);
}

/* sv_breaks_line says no only to one line of valid UTF-8. */
static void
check_one_line(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);
	int breaks = 0;

	for (size_t i = 0; i < len && !breaks;) {
		uint32_t c;
		size_t n = utf8_next(p + i, len - i, &c);

		breaks = n == 0 || c < 0x20 || c == 0x7f || c == 0x85 ||
		    (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029;
		i += n ? n : 1;
	}
	FUZZ_ASSERT(sv_breaks_line(s) == breaks, "sv_breaks_line says %d",
	    sv_breaks_line(s));
}

/* What sv_escape promises about its output. */
static void
check_escaped(const char *in, size_t inlen, const char *out, int flags)
{
	const unsigned char *p = (const unsigned char *)out;
	size_t len = strlen(out);

	for (size_t i = 0; i < len;) {
		uint32_t c;
		size_t n = utf8_next(p + i, len - i, &c);

		FUZZ_ASSERT(n > 0, "invalid UTF-8 at byte %zu of output", i);
		FUZZ_ASSERT(c >= 0x20 || (c == '\n' && (flags & SV_ESC_NL)),
		    "control U+%04X at byte %zu of output", (unsigned)c, i);
		FUZZ_ASSERT(c != 0x7f && !(c >= 0x80 && c <= 0x9f),
		    "DEL or C1 control U+%04X in output", (unsigned)c);
		FUZZ_ASSERT(!is_hidden_char(c),
		    "hidden U+%04X in output", (unsigned)c);
		i += n;
	}

	/* Plain printable ASCII without a backslash passes unchanged. */
	int plain = 1;
	for (size_t i = 0; i < inlen && plain; i++) {
		unsigned char c = (unsigned char)in[i];
		plain = c >= 0x20 && c < 0x7f && c != '\\';
	}
	if (plain)
		FUZZ_ASSERT(len == inlen && memcmp(in, out, len) == 0,
		    "printable ASCII was changed");
}

/* Escaping escaped text changes nothing but the backslashes. */
static void
check_stable(const char *out, int flags)
{
	size_t len = strlen(out);
	char *again = sv_escape(out, len, flags);
	char *want = malloc(2 * len + 1), *w = want;

	if (want == NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '\\')
			*w++ = '\\';
		*w++ = out[i];
	}
	*w = '\0';
	FUZZ_ASSERT(again != NULL && strcmp(again, want) == 0,
	    "escape is not stable on its own output");
	free(again);
	free(want);
}

static void
fuzz_parse_name(const char *name)
{
	char id[SV_ID_MAX + 1], flags[16];

	memset(id, 'x', sizeof id);
	memset(flags, 'x', sizeof flags);
	if (sv_parse_name(name, id, sizeof id, flags, sizeof flags) != 0)
		return;
	FUZZ_ASSERT(memchr(id, '\0', sizeof id) != NULL, "id not terminated");
	FUZZ_ASSERT(memchr(flags, '\0', sizeof flags) != NULL,
	    "flags not terminated");
	FUZZ_ASSERT(name_ok(id, strlen(id), SV_ID_MAX),
	    "accepted name '%s' gave invalid id '%s'", name, id);

	/*
	 * The id is the name up to ":2,"; the flags are the name's flags made
	 * unique and put in ASCII order (a hand-renamed "ID:2,SR" is still
	 * that proposal), and they parse back to themselves.
	 */
	const char *colon = strchr(name, ':');
	FUZZ_ASSERT(colon ? (size_t)(colon - name) == strlen(id) &&
	    strncmp(name, id, strlen(id)) == 0 && strncmp(colon, ":2,", 3) == 0 :
	    strcmp(name, id) == 0 && *flags == '\0',
	    "'%s' split into id '%s' flags '%s'", name, id, flags);
	for (const char *f = flags; *f; f++) {
		FUZZ_ASSERT(strchr(colon + 3, *f) != NULL,
		    "flag '%c' not in '%s'", *f, name);
		FUZZ_ASSERT(f[1] == '\0' || f[0] < f[1],
		    "flags '%s' not unique and in ASCII order", flags);
	}
	for (const char *f = colon ? colon + 3 : ""; *f; f++)
		FUZZ_ASSERT(strchr(flags, *f) != NULL,
		    "flag '%c' of '%s' was dropped", *f, name);

	char *back = sv_xasprintf("%s:2,%s", id, flags);
	char id2[SV_ID_MAX + 1], flags2[16];
	FUZZ_ASSERT(sv_parse_name(back, id2, sizeof id2, flags2,
	    sizeof flags2) == 0 && strcmp(id, id2) == 0 &&
	    strcmp(flags, flags2) == 0, "'%s' does not parse back", back);
	free(back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_err e;
	char *s, *out;
	int flags;

	if (size < 1)
		return 0;
	s = malloc(size);
	if (s == NULL)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	size--;

	switch (data[0] % 4) {
	case 0:
		memset(&e, 0, sizeof e);
		FUZZ_ASSERT((sv_valid_slug(s, &e) == 0) ==
		    name_ok(s, strlen(s), SV_SLUG_MAX), "slug '%s'", s);
		memset(&e, 0, sizeof e);
		FUZZ_ASSERT((sv_valid_id(s, &e) == 0) ==
		    name_ok(s, strlen(s), SV_ID_MAX), "id '%s'", s);
		break;
	case 1:
		if (strlen(s) == size) {
			fuzz_parse_name(s);
			check_one_line(s);
			check_host(s);
			check_content_type(s);
			check_origin(s);
		}
		break;
	default:
		flags = data[0] % 4 == 3 ? SV_ESC_NL : 0;
		out = sv_escape(s, size, flags);
		FUZZ_ASSERT(out != NULL, "sv_escape returned NULL");
		check_escaped(s, size, out, flags);
		check_stable(out, flags);
		free(out);
		break;
	}
	free(s);
	return 0;
}
