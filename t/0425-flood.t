#!/bin/sh
# A thousand proposals at once: identical calls (an agent retrying) attach
# to one proposal and all get its decision; a thousand distinct calls all
# become proposals, all get their decisions, all are committed.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
N=${FLOOD_N:-1000}
plan 15

supervise-init "$SLUG" >/dev/null 2>&1
start_daemon d -s "$SLUG" --max-waiters "$N" || { not_ok "supervised starts"; done_testing; exit 1; }
pending_is() { [ "$(supervise-list | grep -c .)" -eq "$1" ]; }
connected() { grep -q '^connected' "$1"; }

timeout 120 node "$T_TOP/t/loadclient.mjs" "$URL" "$N" same same >same.out 2>same.err &
client=$!
check "$N identical calls are sent" wait_for 60 connected same.out
diag "identical: $(head -n 1 same.out)"
# Decide once the daemon has taken every one of them: the first files
# the proposal, each other one says it attached.
attached() {
	[ "$(grep -c 'identical call attached to pending proposal' d.log)" -ge $((N - 1)) ]
}
check "the other $((N - 1)) attach to the first one's proposal" wait_for 60 attached
check_same "$N identical calls made one proposal" "$(supervise-list | grep -c .)" 1
supervise-list | cut -f1 | supervise-approve -n "once for all" >/dev/null
wait "$client"
check_match "all $N callers got the one decision" "$(tail -n 1 same.out)" \
    "^answered $N approved $N rejected 0 failed 0 "
[ -s same.err ] && diag "$(head -n 5 same.err)"

timeout 120 node "$T_TOP/t/loadclient.mjs" "$URL" "$N" distinct d >distinct.out 2>distinct.err &
client=$!
check "$N distinct calls are sent" wait_for 60 connected distinct.out
check "all $N are filed" wait_for 60 pending_is "$N"
supervise-list | cut -f1 | supervise-approve -n "each" >/dev/null
wait "$client"
check_match "all $N callers got their decision" "$(tail -n 1 distinct.out)" \
    "^answered $N approved $N rejected 0 failed 0 "
diag "distinct: $(tail -n 1 distinct.out)"
[ -s distinct.err ] && diag "$(head -n 5 distinct.err)"
check_same "none is left pending" "$(supervise-list | grep -c .)" 0

check "supervised stops cleanly" stop_daemon d
spoolcheck -c -a "$AUDIT" >final 2>final.err
check_same "spool and audit repository agree" "$(cat final.err)" ""
check_match "$((N + 1)) proposals, all decided" "$(cat final)" \
    "^proposals=$((N + 1)) new=0 decided=$((N + 1)) "
check_same "one commit per decision" "$(audit_commits)" "$((N + 1))"
check_same "no decision committed twice" "$(audit_dup_commits)" ""
check_same "the routes hold the $((N + 1)) hosts" \
    "$(git --git-dir="$AUDIT" show "main:$SLUG/egress/routes.json" | grep -c '"host"')" \
    "$((N + 1))"
fsck=$(git --git-dir="$AUDIT" fsck --strict --no-dangling 2>&1)
check "audit repository passes git fsck --strict" test $? -eq 0
[ -z "$fsck" ] || diag "git fsck:" "$fsck"
done_testing
