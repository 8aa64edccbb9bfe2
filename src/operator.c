/*
 * operator.c: who the operator is ($SUPERVISE_OPERATOR, git's user.name
 * and user.email, or the login, at login@host when there is no email),
 * and this host's name as a mail domain.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

/* A word fit for an email address: bytes outside [A-Za-z0-9._-] become '-'. */
void
mail_word(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
		    *p == '-'))
			*p = '-';
}

/* A bare address: an '@' and no white space. */
int
is_address(const char *s)
{
	return strchr(s, '@') != NULL && strpbrk(s, " \t") == NULL;
}

/* Our hostname, as a mail domain. */
void
host_name(char *buf, size_t n)
{
	if (gethostname(buf, n) == -1 || buf[0] == '\0')
		snprintf(buf, n, "localhost");
	buf[n - 1] = '\0';
	mail_word(buf);
}

/* "Name <email>", or a bare address: what ident_parse takes as an email. */
static int
has_email(const char *who)
{
	size_t n = strlen(who);

	if (n > 0 && who[n - 1] == '>' && strchr(who, '<') != NULL)
		return 1;
	return is_address(who);
}

char *
sv_operator(char **note)
{
	const char *env = getenv("SUPERVISE_OPERATOR");
	git_config *cfg = NULL;
	git_buf name = { NULL, 0, 0 }, email = { NULL, 0, 0 };
	struct passwd *pw;
	char host[256], uid[32], *who = NULL, *out = NULL;
	const char *login;

	if (note != NULL)
		*note = NULL;
	if (env != NULL && *env != '\0') {
		if (has_email(env))
			return sv_xstrdup(env);
		who = sv_xstrdup(env);
	} else if (sv_git_ready() >= 0) {
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
				out = sv_xasprintf("%s <%s>", name.ptr,
				    email.ptr);
			else
				who = sv_xstrdup(name.ptr);
		}
		git_buf_dispose(&name);
		git_buf_dispose(&email);
		git_config_free(cfg);
		if (out != NULL)
			return out;
	}
	/* No email of the operator's own: LOGIN@HOST, as git would make. */
	pw = getpwuid(geteuid());
	login = pw ? pw->pw_name : getenv("LOGNAME");
	if (login == NULL || *login == '\0')
		login = getenv("USER");
	if (login == NULL || *login == '\0') {
		snprintf(uid, sizeof uid, "uid%ld", (long)geteuid());
		login = uid;
	}
	host_name(host, sizeof host);
	out = sv_xasprintf("%s <%s@%s>", who ? who : login, login, host);
	if (note != NULL)
		*note = sv_xasprintf("no email for the operator (set "
		    "SUPERVISE_OPERATOR or git config user.email): recording "
		    "'%s'", out);
	free(who);
	return out;
}
