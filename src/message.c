/*
 * message.c: commit messages and identities of the audit repository: a
 * decision's subject, paragraphs and trailers, a config edit's message,
 * and "Name <email>" as git signatures, agent and operator text escaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

#define SUBJECT_COLS	72

/* Text for one side of "Name <email>" in a commit header: control
 * characters made visible, no angle brackets, no surrounding blanks. */
static char *
ident_part(const char *s, size_t n)
{
	char *esc, *out;
	size_t len;

	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	esc = sv_escape(s, n, 0);
	for (char *p = esc; *p != '\0'; p++)
		if (*p == '<' || *p == '>')
			*p = '?';
	len = strlen(esc);
	out = sv_xmalloc(len + 1);
	memcpy(out, esc, len + 1);
	free(esc);
	return out;
}

/*
 * "Name <email>", or a bare name: a login (a hand-moved response's owner)
 * or an address.  git tooling wants an email: a bare address is its own,
 * any other bare name gets NAME@HOST (mail_word), as git itself makes
 * one for a user who has not set one.
 */
void
ident_parse(const char *who, const char *host, struct ident *id)
{
	const char *lt = who ? strrchr(who, '<') : NULL;
	size_t n = who ? strlen(who) : 0;

	if (lt != NULL && n > 0 && who[n - 1] == '>') {
		id->name = ident_part(who, (size_t)(lt - who));
		id->email = ident_part(lt + 1, (size_t)(who + n - 1 - lt - 1));
	} else {
		id->name = ident_part(who ? who : "", n);
		id->email = sv_xstrdup("");
	}
	if (id->name[0] == '\0') {
		free(id->name);
		id->name = sv_xstrdup(id->email[0] ? id->email : "unknown");
	}
	if (id->email[0] == '\0') {
		char *local = sv_xstrdup(id->name);

		free(id->email);
		if (is_address(local)) {
			id->email = local;
			return;
		}
		mail_word(local);
		id->email = sv_xasprintf("%s@%s", local, host);
		free(local);
	}
}

void
ident_free(struct ident *id)
{
	free(id->name);
	free(id->email);
}

/*
 * A git_signature over our own strings: nothing to copy or free, and
 * nothing of libgit2's checks to fail on what ident_parse made.
 */
void
signature_at(git_signature *sig, struct ident *id, time_t when)
{
	sig->name = id->name;
	sig->email = id->email;
	sig->when.time = (git_time_t)when;
	sig->when.offset = 0;
	sig->when.sign = '+';
}

static const char *
status_verb(enum sv_status s)
{
	switch (s) {
	case SV_APPROVED:
		return "approve";
	case SV_MODIFIED:
		return "modify";
	case SV_REJECTED:
		return "reject";
	default:
		return "decide";
	}
}

/* One line, control characters escaped, at most SUBJECT_COLS characters. */
char *
subject_line(const char *raw)
{
	char *s = sv_escape(raw, strlen(raw), 0);
	size_t cols = 0, i, cut = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (((unsigned char)s[i] & 0xc0) == 0x80)
			continue;
		if (cols == SUBJECT_COLS - 3)
			cut = i;
		cols++;
	}
	if (cols > SUBJECT_COLS)
		memcpy(s + cut, "...", 4);
	return s;
}

/*
 * A paragraph of agent or operator text: escaped, lines kept, trimmed,
 * and every line quoted with "> ".  Quoted, no line of it can start
 * with a trailer key (Status:, Proposal-Id:) or end the paragraph, so
 * neither git's trailer parser nor a search for "^Status: " can be made
 * to read the agent's words as ours; the trailers stay the last
 * paragraph.
 */
static void
put_paragraph(FILE *f, const char *label, const char *text)
{
	char *esc, *line, *nl;
	size_t n;
	const char *s = text ? text : "";

	while (*s == '\n' || *s == ' ' || *s == '\t' || *s == '\r')
		s++;
	esc = sv_escape(s, strlen(s), SV_ESC_NL);
	n = strlen(esc);
	while (n > 0 && (esc[n - 1] == '\n' || esc[n - 1] == ' ' ||
	    esc[n - 1] == '\t'))
		n--;
	esc[n] = '\0';
	fprintf(f, "%s:\n", label);
	if (n == 0)
		fputs("> (none)\n", f);
	for (line = esc; n > 0; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		fprintf(f, line[0] ? "> %s\n" : ">%s\n", line);
		if (nl == NULL)
			break;
	}
	fputc('\n', f);
	free(esc);
}

static void
put_trailer(FILE *f, const char *key, const char *value)
{
	char *esc = sv_escape(value ? value : "", value ? strlen(value) : 0, 0);

	fprintf(f, "%s: %s\n", key, esc);
	free(esc);
}

char *
decision_message(const struct sv_proposal *p, const struct sv_response *r)
{
	const char *payload = r->status != SV_REJECTED && r->final_file ?
	    r->final_file : p->proposed_file;
	char *summary, *raw, *subject, *msg = NULL;
	size_t len = 0;
	FILE *f;

	summary = sv_payload_summary(p->tool, payload);
	raw = sv_xasprintf("%s: %s %s %s", p->bottle_slug,
	    status_verb(r->status), p->tool, summary);
	subject = subject_line(raw);
	if ((f = open_memstream(&msg, &len)) == NULL)
		sv_die(111, "out of memory");
	fprintf(f, "%s\n\n", subject);
	put_paragraph(f, "Justification", p->justification);
	put_paragraph(f, "Notes", r->notes);
	put_trailer(f, "Proposal-Id", p->id);
	put_trailer(f, "Bottle", p->bottle_slug);
	put_trailer(f, "Tool", p->tool);
	put_trailer(f, "Status", sv_status_name(r->status));
	put_trailer(f, "Arrived", p->arrival_timestamp);
	put_trailer(f, "Decided", r->decided_at);
	if (r->rule != NULL) {
		put_trailer(f, "Rule", r->rule);
		put_trailer(f, "Policy-Commit", r->policy_commit);
	}
	if (fclose(f) != 0)
		sv_die(111, "out of memory");
	free(summary);
	free(raw);
	free(subject);
	return msg;
}

/* A config edit's: the subject, a blank line and the body, escaped. */
char *
config_message(const char *subject, const char *body)
{
	char *esc, *bodyesc, *message;
	size_t len;

	esc = subject_line(subject ? subject : "");
	bodyesc = sv_escape(body ? body : "", body ? strlen(body) : 0,
	    SV_ESC_NL);
	len = strlen(bodyesc);
	while (len > 0 && (bodyesc[len - 1] == '\n' || bodyesc[len - 1] == ' '))
		bodyesc[--len] = '\0';
	message = len ? sv_xasprintf("%s\n\n%s\n", esc, bodyesc) :
	    sv_xasprintf("%s\n", esc);
	free(esc);
	free(bodyesc);
	return message;
}
