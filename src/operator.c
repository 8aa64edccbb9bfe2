/*
 * operator.c: who the operator is ($SUPERVISE_OPERATOR, git's user.name
 * and user.email, or login@host), and this host's name as a mail domain.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

/* Our hostname, as a mail domain: bytes outside [A-Za-z0-9.-] become '-'. */
void
host_name(char *buf, size_t n)
{
	if (gethostname(buf, n) == -1 || buf[0] == '\0')
		snprintf(buf, n, "localhost");
	buf[n - 1] = '\0';
	for (char *p = buf; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			*p = '-';
}

char *
sv_operator(void)
{
	const char *env = getenv("SUPERVISE_OPERATOR");
	git_config *cfg = NULL;
	git_buf name = { NULL, 0, 0 }, email = { NULL, 0, 0 };
	struct passwd *pw;
	char host[256], *out = NULL;
	const char *login;

	if (env != NULL && *env != '\0')
		return sv_xstrdup(env);
	if (sv_git_ready() >= 0) {
		/* libgit2 stays up: have it find ~/.gitconfig from $HOME
		 * and $XDG_CONFIG_HOME as they are now, not at its set-up. */
		git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH,
		    GIT_CONFIG_LEVEL_GLOBAL, NULL);
		git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH,
		    GIT_CONFIG_LEVEL_XDG, NULL);
		if (git_config_open_default(&cfg) == 0 &&
		    git_config_get_string_buf(&name, cfg, "user.name") == 0 &&
		    name.size > 0) {
			if (git_config_get_string_buf(&email, cfg,
			    "user.email") == 0 && email.size > 0)
				out = sv_xasprintf("%s <%s>", name.ptr, email.ptr);
			else
				out = sv_xstrdup(name.ptr);
		}
		git_buf_dispose(&name);
		git_buf_dispose(&email);
		git_config_free(cfg);
	}
	if (out != NULL)
		return out;
	pw = getpwuid(geteuid());
	login = pw ? pw->pw_name : getenv("LOGNAME");
	if (login == NULL || *login == '\0')
		login = getenv("USER");
	host_name(host, sizeof host);
	if (login == NULL || *login == '\0')
		return sv_xasprintf("uid%ld@%s", (long)geteuid(), host);
	return sv_xasprintf("%s@%s", login, host);
}
