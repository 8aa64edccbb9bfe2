/*
 * util.c tests: error values, terminal escaping of agent text, UTC
 * timestamps, where the spool lives, bounded reads; durable.c's sets
 * synced from several threads at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervise.h"
#include "tap.h"

static void
esc_is(const char *in, size_t len, int flags, const char *want,
    const char *what)
{
	char *got = sv_escape(in, len, flags);

	is_str(got, want, "escape: %s", what);
	free(got);
}

static void
test_errors(void)
{
	struct sv_err e;

	ok(sv_errf(&e, 0, "can't open '%s'", "x") == -1, "sv_errf returns -1");
	is_str(e.msg, "can't open 'x'", "sv_errf without errno");
	ok(e.errnum == 0, "errnum 0 kept");
	sv_errf(&e, ENOENT, "can't open '%s'", "y");
	is_str(e.msg, "can't open 'y': No such file or directory",
	    "sv_errf appends strerror");
	ok(e.errnum == ENOENT, "errnum kept");
	ok(sv_errf(NULL, 0, "nothing") == -1, "sv_errf with no err is safe");

	sv_setprog("/usr/local/bin/supervise-list");
	is_str(sv_prog, "supervise-list", "sv_setprog keeps the base name");
	sv_setprog("supervise-show");
	is_str(sv_prog, "supervise-show", "sv_setprog with a bare name");

	char *s = sv_xasprintf("%s-%d", "a", 7);
	is_str(s, "a-7", "sv_xasprintf");
	free(s);
}

static void
test_escape(void)
{
	char buf[1000];
	char *got;
	size_t i;

	esc_is("plain text", 10, 0, "plain text", "plain ASCII unchanged");
	esc_is("a\\b", 3, 0, "a\\\\b", "backslash doubled");
	esc_is("\x1b[31mred\x1b[0m", 12, 0, "\\x1b[31mred\\x1b[0m",
	    "ESC[31m made visible");
	esc_is("\x1b]0;title\x07", 10, 0, "\\x1b]0;title\\x07",
	    "OSC title sequence made visible");
	esc_is("a\tb\nc", 5, 0, "a\\tb\\nc", "tab and newline escaped");
	esc_is("a\tb\nc", 5, SV_ESC_NL, "a\\tb\nc", "SV_ESC_NL keeps newline");
	esc_is("a\r\nb", 4, SV_ESC_NL, "a\\x0d\nb",
	    "carriage return escaped even in multi-line mode");
	esc_is("x\x7fy", 3, 0, "x\\x7fy", "DEL escaped");
	esc_is("x\0y", 3, 0, "x\\x00y", "NUL escaped when inside len");
	esc_is("\xc2\x9b" "31m", 5, 0, "\\u{9b}31m", "C1 CSI (U+009B) escaped");
	esc_is("\xc2\x85", 2, 0, "\\u{85}", "C1 NEL escaped");
	esc_is("abc\xe2\x80\xae" "fed", 9, 0, "abc\\u{202e}fed",
	    "bidi override U+202E escaped");
	esc_is("\xe2\x81\xa6x\xe2\x81\xa9", 7, 0, "\\u{2066}x\\u{2069}",
	    "bidi isolates escaped");
	esc_is("a\xe2\x80\x8b" "b", 5, 0, "a\\u{200b}b", "zero-width space escaped");
	esc_is("\xd8\x9c", 2, 0, "\\u{61c}", "Arabic letter mark escaped");
	esc_is("\xef\xbb\xbfx", 4, 0, "\\u{feff}x", "BOM escaped");
	esc_is("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", 17, 0,
	    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
	    "valid UTF-8 kept");
	esc_is("a\xff" "b", 3, 0, "a\\xffb", "invalid byte escaped");
	esc_is("\xe2\x80", 2, 0, "\\xe2\\x80", "truncated sequence escaped");
	esc_is("\xc0\xaf", 2, 0, "\\xc0\\xaf", "overlong '/' escaped");
	esc_is("\xed\xa0\x80", 3, 0, "\\xed\\xa0\\x80", "surrogate escaped");
	esc_is("\xf4\x90\x80\x80", 4, 0, "\\xf4\\x90\\x80\\x80",
	    "code point above U+10FFFF escaped");
	esc_is("\xe2\x80\xae", 2, 0, "\\xe2\\x80",
	    "len cuts a sequence: bytes escaped, nothing read past len");
	esc_is("", 0, 0, "", "empty string");
	/* Hidden text: tag characters spell "hi" invisibly. */
	esc_is("a\xf3\xa0\x81\xa8\xf3\xa0\x81\xa9" "b", 10, 0,
	    "a\\u{e0068}\\u{e0069}b", "tag characters escaped");
	esc_is("\xf3\xa0\x80\x81", 4, 0, "\\u{e0001}", "language tag escaped");
	esc_is("a\xe2\x80\xa8" "b\xe2\x80\xa9", 8, SV_ESC_NL,
	    "a\\u{2028}b\\u{2029}", "line and paragraph separators escaped");
	esc_is("a\xc2\x85" "b", 4, SV_ESC_NL, "a\\u{85}b",
	    "NEL escaped in multi-line mode too");
	esc_is("a\xc2\xa0" "b", 4, 0, "a\\u{a0}b", "no-break space escaped");
	esc_is("\xe2\x80\x83\xe2\x80\xaf\xe3\x80\x80", 9, 0,
	    "\\u{2003}\\u{202f}\\u{3000}", "em, narrow and ideographic spaces");
	esc_is("x\xc2\xad" "y", 4, 0, "x\\u{ad}y", "soft hyphen (Cf) escaped");
	esc_is("\xe2\x81\xa0\xe2\x81\xaf", 6, 0, "\\u{2060}\\u{206f}",
	    "word joiner and U+206F (Cf) escaped");
	esc_is("e\xef\xb8\x8f" "\xf3\xa0\x84\x80", 8, 0,
	    "e\\u{fe0f}\\u{e0100}", "variation selectors escaped");
	esc_is("\xf0\x9d\x85\xb3", 4, 0, "\\u{1d173}",
	    "musical format character (Cf, 4 bytes) escaped");
	esc_is("\xe2\x80\x90\xe2\x81\x9e", 6, 0, "\xe2\x80\x90\xe2\x81\x9e",
	    "visible punctuation near the ranges kept");
	ok(sv_breaks_line("a\xe2\x80\xa8" "b") && sv_breaks_line("a\xc2\x85") &&
	    sv_breaks_line("a\xe2\x80\xa9") && sv_breaks_line("a\nb") &&
	    sv_breaks_line("a\rb") && sv_breaks_line("a\x0b") &&
	    sv_breaks_line("a\x1e") && sv_breaks_line("a\xff"),
	    "every line break is one");
	ok(!sv_breaks_line("abc123:config/app.env:generic-api-key:12") &&
	    !sv_breaks_line("caf\xc3\xa9 \xf0\x9f\x98\x80") &&
	    !sv_breaks_line(""),
	    "one line is not");

	/* Worst case growth: every byte becomes four. */
	memset(buf, 0xff, sizeof buf);
	got = sv_escape(buf, sizeof buf, 0);
	ok(strlen(got) == 4 * sizeof buf, "all-invalid input: %zu bytes out",
	    strlen(got));
	free(got);
	for (i = 0; i < sizeof buf; i += 3)
		memcpy(buf + i, "\xc2\x9b\x1b", i + 3 <= sizeof buf ? 3 : 1);
	got = sv_escape(buf, sizeof buf, 0);
	ok(got != NULL && strchr(got, 0x1b) == NULL &&
	    strstr(got, "\xc2\x9b") == NULL, "C1 and ESC mix: nothing raw left");
	free(got);
}

static void
test_time(void)
{
	struct timespec ts = {0, 123456789};
	char buf[64];
	time_t t;

	is_str(sv_iso8601(&ts, buf, sizeof buf), "1970-01-01T00:00:00.123456Z",
	    "iso8601 of the epoch with microseconds");
	ts.tv_sec = 1795370400;	/* 2026-11-22T18:00:00Z */
	ts.tv_nsec = 5000;
	is_str(sv_iso8601(&ts, buf, sizeof buf), "2026-11-22T18:00:00.000005Z",
	    "iso8601 pads microseconds");
	ok(sv_iso8601(&ts, buf, 20) == NULL, "iso8601 refuses a short buffer");
	ok(sv_time_utc("2026-11-22T18:00:00.000005Z", &t, NULL) == 0 &&
	    t == 1795370400, "parse round trip");
	ok(sv_time_utc("2026-11-22T18:00:00Z", &t, NULL) == 0 && t == 1795370400,
	    "parse without fraction");
	ok(sv_time_utc("2024-02-29T00:00:00Z", &t, NULL) == 0, "leap day");
	ok(sv_time_utc("2026-11-22T19:00:00+01:00", &t, NULL) == 0 &&
	    t == 1795370400, "parse with an offset");
	const char *bad[] = {
		"", "2026-11-22", "2026-11-22 18:00:00Z", "2026-11-22T18:00:00",
		"2026-11-22T18:00:00+1:00", "2026-11-22T18:00:00.Z",
		"2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
		"2026-13-01T00:00:00Z", "2026-11-22T24:00:00Z",
		"2026-11-22T18:60:00Z", "2026-11-22T18:00:00Zjunk",
		"2026-1-22T18:00:00Z", "x026-11-22T18:00:00Z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(sv_time_utc(bad[i], &t, NULL) == -1, "parse refuses '%s'",
		    bad[i]);
}

static void
test_paths(void)
{
	char *s;

	setenv("SUPERVISE_ROOT", "/srv/sup", 1);
	is_str(sv_root(), "/srv/sup", "SUPERVISE_ROOT");
	s = sv_queue_dir("web1");
	is_str(s, "/srv/sup/queue/web1", "queue dir under the root");
	free(s);
	unsetenv("SUPERVISE_AUDIT_DIR");
	s = sv_audit_dir();
	is_str(s, "/srv/sup/audit.git", "audit dir defaults under the root");
	free(s);
	setenv("SUPERVISE_AUDIT_DIR", "/var/audit.git", 1);
	s = sv_audit_dir();
	is_str(s, "/var/audit.git", "SUPERVISE_AUDIT_DIR");
	free(s);
	setenv("SUPERVISE_ROOT", "", 1);
	setenv("HOME", "/home/op", 1);
	is_str(sv_root(), "/home/op/.bot-bottle", "empty root: HOME fallback");
	unsetenv("SUPERVISE_ROOT");
	setenv("HOME", "/home/op/", 1);
	is_str(sv_root(), "/home/op/.bot-bottle", "HOME with trailing slash");
	unsetenv("HOME");
	s = (char *)sv_root();
	ok(strlen(s) > strlen("/.bot-bottle") &&
	    strcmp(s + strlen(s) - 12, "/.bot-bottle") == 0,
	    "no HOME: the password entry's home (%s)", s);
}

static void
test_io(void)
{
	char path[] = "/tmp/supervise-util.XXXXXX", *buf, *big;
	struct sv_err e;
	size_t len, n = 100000, i;
	int fd, p[2];

	fd = mkstemp(path);
	ok(fd >= 0, "temp file");
	big = malloc(n);
	for (i = 0; i < n; i++)
		big[i] = 'a' + i % 26;
	ok(sv_write_all(fd, big, n) == 0, "write_all 100000 bytes");
	lseek(fd, 0, SEEK_SET);
	ok(sv_read_all(fd, "f", n, &buf, &len, &e) == 0 && len == n &&
	    memcmp(buf, big, n) == 0 && buf[n] == '\0',
	    "read_all exactly max bytes, NUL-terminated");
	free(buf);
	lseek(fd, 0, SEEK_SET);
	buf = NULL;
	ok(sv_read_all(fd, "f", n - 1, &buf, &len, &e) == -1 && buf == NULL,
	    "read_all refuses max+1 bytes");
	is_str(e.msg, "can't read 'f': larger than 99999 bytes",
	    "read_all size message");
	ok(e.errnum == EFBIG, "read_all: EFBIG");
	lseek(fd, 0, SEEK_SET);
	ok(sv_read_all(fd, "f", 10, &buf, &len, &e) == -1,
	    "read_all refuses with a small max");
	/* With the size fstat gave, or a stale one: always the whole file. */
	lseek(fd, 0, SEEK_SET);
	ok(sv_read_sized(fd, "f", n, n, &buf, &len, &e) == 0 && len == n &&
	    memcmp(buf, big, n) == 0 && buf[n] == '\0',
	    "read_sized with the right size");
	free(buf);
	lseek(fd, 0, SEEK_SET);
	ok(sv_read_sized(fd, "f", n, 1000, &buf, &len, &e) == 0 && len == n &&
	    memcmp(buf, big, n) == 0, "read_sized of a file that grew since");
	free(buf);
	lseek(fd, 0, SEEK_SET);
	ok(sv_read_sized(fd, "f", n, n + 500, &buf, &len, &e) == 0 &&
	    len == n, "read_sized of a file that shrank since");
	free(buf);
	lseek(fd, 0, SEEK_SET);
	ok(sv_read_sized(fd, "f", n - 1, n, &buf, &len, &e) == -1 &&
	    e.errnum == EFBIG, "read_sized still refuses max+1 bytes");
	close(fd);
	unlink(path);
	free(big);

	ok(pipe(p) == 0, "pipe");
	close(p[1]);
	ok(sv_read_all(p[0], "empty", 10, &buf, &len, &e) == 0 && len == 0 &&
	    buf[0] == '\0', "read_all of nothing");
	free(buf);
	close(p[0]);
	ok(sv_read_all(-1, "bad", 10, &buf, &len, &e) == -1, "read_all bad fd");
	is_str(e.msg, "can't read 'bad': Bad file descriptor", "read error message");
}

/* ROUNDS sets of FILES files (and their directory) in dir; with
 * `missing`, each set also names a file that is not there. */
struct syncer {
	int dirfd, missing, failed, wrong;
};

#define ROUNDS	40
#define FILES	8

static void *
syncer(void *arg)
{
	struct syncer *s = arg;
	struct sv_durable d;
	struct sv_err e;
	char name[32];

	sv_durable_init(&d);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < FILES; i++) {
			snprintf(name, sizeof name, "f%d", i);
			sv_durable_at(&d, s->dirfd, name, name);
		}
		sv_durable_fd(&d, s->dirfd, "the directory");
		if (s->missing)
			sv_durable_at(&d, s->dirfd, "absent", "absent");
		if (sv_durable_sync(&d, &e) == -1) {
			s->failed++;
			if (strcmp(e.msg, "can't flush 'absent' to disk: "
			    "No such file or directory") != 0)
				s->wrong++;
		}
	}
	sv_durable_free(&d);
	return NULL;
}

static void
test_durable(void)
{
	char tmpl[] = "/tmp/sv-durable.XXXXXX", path[64];
	struct syncer s[3];
	pthread_t t[3];
	int fd, dirfd;

	ok(mkdtemp(tmpl) != NULL, "a directory for durable sets");
	dirfd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < FILES; i++) {
		snprintf(path, sizeof path, "%s/f%d", tmpl, i);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd != -1 && write(fd, "x", 1) == 1)
			close(fd);
	}
	/* Three threads at once, one of them with a file missing from each
	 * of its sets: its sets fail, naming that file; the others' never. */
	for (int i = 0; i < 3; i++) {
		s[i] = (struct syncer){ dirfd, i == 1, 0, 0 };
		pthread_create(&t[i], NULL, syncer, &s[i]);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	ok(s[0].failed == 0 && s[2].failed == 0,
	    "durable: sets synced at once from two threads all succeed");
	ok(s[1].failed == ROUNDS && s[1].wrong == 0,
	    "durable: a third thread's sets, each with a missing file, each "
	    "fail naming it (%d of %d)", s[1].failed, ROUNDS);
	for (int i = 0; i < FILES; i++) {
		snprintf(path, sizeof path, "%s/f%d", tmpl, i);
		unlink(path);
	}
	close(dirfd);
	rmdir(tmpl);
}

int
main(void)
{
	plan(94);
	test_errors();
	test_escape();
	test_time();
	test_paths();
	test_io();
	test_durable();
	return done_testing();
}
