/*
 * replay.h: run a fuzz target over files, without libFuzzer.
 *
 * t/replay-NAME.c includes fuzz/NAME.c and this file, so every input in
 * the seed corpus (and every crash input added to it once fixed) runs on
 * each `make check`, with whatever compiler and sanitizers that build
 * uses.  Arguments are files or directories (read one level deep, in name
 * order); each input is one TAP line.  A broken property aborts its
 * child process: "not ok", with the property on stderr.
 */
#ifndef REPLAY_H
#define REPLAY_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../t/tap.h"

/*
 * Each input runs in a child process, so one broken property or crash is
 * one "not ok" and the rest of the corpus still runs.
 */
static int
replay_file(const char *path, const char *label)
{
	struct sv_err e;
	char *buf = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), status;
	pid_t pid;

	if (fd < 0 || sv_read_all(fd, path, 64 << 20, &buf, &len, &e) != 0) {
		ok(0, "%s: can't read '%s': %s", label, path,
		    fd < 0 ? strerror(errno) : e.msg);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	fflush(stdout);
	if ((pid = fork()) < 0) {
		ok(0, "%s: can't fork: %s", label, strerror(errno));
		free(buf);
		return -1;
	}
	if (pid == 0) {
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
		_exit(0);
	}
	free(buf);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		return ok(0, "%s: %s (%zu bytes): killed by signal %d", label,
		    path, len, WTERMSIG(status)) ? 0 : -1;
	return ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "%s: %s (%zu bytes)", label, path, len) ? 0 : -1;
}

static int
replay_keep(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
	struct stat st;
	struct dirent **ents[argc];
	int nents[argc], total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		ents[i] = NULL;
		nents[i] = 1;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			nents[i] = scandir(argv[i], &ents[i], replay_keep,
			    alphasort);
		if (nents[i] < 0) {
			fprintf(stderr, "%s: can't read '%s': %s\n", argv[0],
			    argv[i], strerror(errno));
			return 1;
		}
		total += nents[i];
	}
	(void)tap_is_str;
	plan(total);
	for (int i = 1; i < argc; i++) {
		if (ents[i] == NULL) {
			replay_file(argv[i], argv[0]);
			continue;
		}
		for (int k = 0; k < nents[i]; k++) {
			char *p = sv_xasprintf("%s/%s", argv[i],
			    ents[i][k]->d_name);
			replay_file(p, ents[i][k]->d_name);
			free(p);
			free(ents[i][k]);
		}
		free(ents[i]);
	}
	return done_testing();
}

#endif
