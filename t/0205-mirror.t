#!/bin/sh
# An approved egress route is mirrored onto pipelock's allowlist in the
# same commit, so pipelock never refuses a host egress now allows: what
# each decision's commit changes, seen with git.
. "$(dirname "$0")/lib.sh"
plan 9

A=$SUPERVISE_ROOT/audit.git
g() { git --git-dir="$A" "$@"; }
drain() { SUPERVISE_BOTTLE_SLUG=web1 timeout 60 supervised --drain >/dev/null; }
# The files the tip commit changed, one a line, the record as RECORD.
changed() {
	g diff-tree --no-commit-id --name-only -r main |
	    sed 's|^web1/decisions/.*\.json$|RECORD|'
}
propose() { supervise-propose -s web1 -t "$1" -j why "$2"; }

printf 'pypi.org\n' >allow
supervise-init --allowlist allow web1 >/dev/null

id=$(propose egress-block '{"host": "api.github.com", "path_allowlist": ["/repos/"]}')
check_same "show: both diffs" \
    "$(supervise-show "$id" | grep '^Diff of')" \
    "Diff of web1/egress/routes.json:
Diff of web1/pipelock/allowlist:"
supervise-approve "$id" >/dev/null && drain
check_same "an approved route: one commit, routes, allowlist and record" \
    "$(changed)" "RECORD
web1/egress/routes.json
web1/pipelock/allowlist"
check_same "the host is on the allowlist, sorted in" \
    "$(g show main:web1/pipelock/allowlist)" "api.github.com
pypi.org"

id=$(propose egress-allow '{"host": "wide.example.org"}')
printf '{"host": "narrow.example.org", "path_allowlist": ["/v1/"]}\n' >final
supervise-approve -f final "$id" >/dev/null && drain
check_same "a modified route: the final host is mirrored" \
    "$(g show main:web1/pipelock/allowlist)" "api.github.com
narrow.example.org
pypi.org"

id=$(propose egress-block '{"host": "evil.example"}')
supervise-reject -n no "$id" >/dev/null && drain
check_same "a rejection: the record only" "$(changed)" "RECORD"

id=$(propose egress-block '{"host": "pypi.org", "path_allowlist": ["/simple/"]}')
supervise-approve "$id" >/dev/null && drain
check_same "a host already allowed: routes and record, allowlist unchanged" \
    "$(changed)" "RECORD
web1/egress/routes.json"

id=$(propose pipelock-block 'https://files.example.net/x.tar.gz')
supervise-approve "$id" >/dev/null && drain
check_same "pipelock-block: the allowlist only, no route" "$(changed)" \
    "RECORD
web1/pipelock/allowlist"
check_same "the log of the allowlist names every host's decision" \
    "$(g log --format=%s main -- web1/pipelock/allowlist)" \
    "web1: approve pipelock-block files.example.net
web1: modify egress-allow narrow.example.org
web1: approve egress-block api.github.com
web1: init config"
check "fsck is clean" g fsck --no-progress --strict
done_testing
