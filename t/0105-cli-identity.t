#!/bin/sh
# An operator git knows nothing of, as on a fresh machine: no
# SUPERVISE_OPERATOR, an empty HOME, no git identity in the environment.
# Each tool that records who decided says so once on stderr, and so does
# supervised when it starts; the audit trail carries LOGIN@HOST as the
# email, never an empty one.
. "$(dirname "$0")/lib.sh"
plan 17

unset SUPERVISE_OPERATOR XDG_CONFIG_HOME EMAIL GIT_AUTHOR_NAME \
    GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
mkdir home
export HOME="$T_DIR/home"
login=$(id -un)
who="$login <$login@$(mail_host)>"
note="no email for the operator (set SUPERVISE_OPERATOR or git config user.email): recording '$who'"
A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue/web1
g() { git --git-dir="$A" "$@"; }
jget() {
	perl -MJSON::PP -e 'local $/; open my $f, "<", $ARGV[0] or die;
	    my $j = decode_json(<$f>); my $v = $j->{$ARGV[1]};
	    print defined $v ? $v : "(null)"' "$1" "$2"
}
propose() {
	supervise-propose -s web1 -t egress-block -j "$1" "{\"host\": \"$1\"}"
}

printf '{"routes": []}\n' >routes.json
supervise-init --routes routes.json web1 >/dev/null 2>init.err
check_same "supervise-init says it records login@host, once" \
    "$(cat init.err)" "supervise-init: $note"
check_same "the init commit's author" "$(g log -1 --format='%an <%ae>' main)" \
    "$who"

a=$(propose a.example) b=$(propose b.example) c=$(propose c.example)
printf '%s\n%s\n' "$a" "$b" | supervise-approve -n ok >/dev/null 2>approve.err
check_same "supervise-approve of two proposals says so once" \
    "$(cat approve.err)" "supervise-approve: $note"
check_same "decided_by: login <login@host>" \
    "$(jget "$Q/responses/new/$a" decided_by)" "$who"
supervise-reject -n no "$c" >/dev/null 2>reject.err
check_same "supervise-reject says so too" "$(cat reject.err)" \
    "supervise-reject: $note"

start_daemon d -s web1 || { not_ok "supervised starts"; done_testing; exit 1; }
check_same "supervised says so in its start-up notice, once" \
    "$(grep -c -F "supervised: $note" d.log)" 1
committed() {
	[ -z "$(ls -A "$Q/responses/new")" ] &&
	    g log --format=%b main | grep -q "^Proposal-Id: $1\$"
}
check "it commits the three decisions" wait_for "$T_WAIT" committed "$c"
check_same "their author is login <login@host>" \
    "$(g log --format='%an <%ae>' main -3 | sort -u)" "$who"

# A response moved in by hand, with no decided_by: its owner's login.
d=$(propose d.example)
printf '{"status": "rejected"}\n' >"$Q/responses/tmp/$d"
mv "$Q/responses/tmp/$d" "$Q/responses/new/$d"
check "the hand-moved response is committed" wait_for "$T_WAIT" committed "$d"
check_same "its author is the owner's login at this host" \
    "$(g log -1 --format='%an <%ae>' main)" "$who"
check_same "no commit has an empty email" \
    "$(g log --format='%ae' main | grep -c '^$')" 0
check "supervised stops" stop_daemon d

# git's user.name alone: that name, and still login@host.
printf '[user]\n\tname = Ann Operator\n' >home/.gitconfig
e=$(propose e.example)
supervise-approve "$e" >/dev/null 2>approve.err
check_same "with git's user.name alone it says so" "$(cat approve.err)" \
    "supervise-approve: no email for the operator (set SUPERVISE_OPERATOR or git config user.email): recording 'Ann Operator <$login@$(mail_host)>'"
check_same "and records that name at login@host" \
    "$(jget "$Q/responses/new/$e" decided_by)" "Ann Operator <$login@$(mail_host)>"

# With user.email too: git's identity, and nothing to say.
printf '[user]\n\tname = Ann Operator\n\temail = ann@example.org\n' \
    >home/.gitconfig
f=$(propose f.example)
supervise-approve "$f" >/dev/null 2>approve.err
check_same "with user.name and user.email it says nothing" \
    "$(cat approve.err)" ""
check_same "and records git's identity" \
    "$(jget "$Q/responses/new/$f" decided_by)" "Ann Operator <ann@example.org>"
check_same "a tool that decides nothing says nothing" \
    "$(rm home/.gitconfig; supervise-list web1 2>&1 >/dev/null)" ""
done_testing
