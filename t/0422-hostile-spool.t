#!/bin/sh
# Hostile spools: paths in slugs and ids, planted symlinks and fifos, a
# symlinked cur/, responses for unknown or decided proposals, responses
# with unsafe permissions or another owner.  Each is refused with a clear
# error; nothing outside the spool is read or written; the proposals stay
# pending; the refused responses are kept in responses/bad with a reason.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 48

supervise-init "$SLUG" >/dev/null 2>&1
mkdir outside
echo secret >outside/secret
sum() { cksum outside/secret /etc/passwd; }
before=$(sum)

# --- paths in slugs and ids ---------------------------------------------
supervise-init ../../outside/evil >out 2>err
check_fail "init ../../outside/evil fails" test $? -eq 0
check_match "  saying the slug is invalid" "$(cat err)" "invalid bottle slug"
check "  and creates nothing" test ! -e outside/evil -a ! -e "$SUPERVISE_ROOT/outside"
supervise-propose -s ../x -t pipelock-block -j x https://a.example/ >out 2>err
check_fail "propose -s ../x fails" test $? -eq 0
check_match "  saying the slug is invalid" "$(cat err)" "invalid bottle slug"
supervise-list ../outside >out 2>err
check_fail "list ../outside fails" test $? -eq 0
check_match "  saying the slug is invalid" "$(cat err)" "invalid bottle slug"
for arg in ../../../etc/passwd "$SLUG/../../../outside/secret" /etc/passwd; do
	supervise-show "$arg" >out 2>err
	check_fail "show '$arg' fails" test $? -eq 0
	check "  and prints nothing of the file" test ! -s out
done
supervise-approve ../../../outside/secret >out 2>err
check_fail "approve ../../../outside/secret fails" test $? -eq 0
timeout 10 supervised -s ../x --drain >out 2>err
check_same "supervised -s ../x: a configuration error, exit 2" "$?" 2

# --- a pending proposal, and the daemon --------------------------------
P=$(supervise-propose -s "$SLUG" -t pipelock-block -j x https://a.example/)
start_daemon d -s "$SLUG" || { not_ok "supervised starts"; done_testing; exit 1; }
is_pending() { supervise-list | cut -f1 | grep -qx "$1"; }

# Wait until responses/new is empty again; the refused file's .err.
settled() { [ -z "$(ls "$QUEUE/responses/new")" ]; }
bad_reason() { cat "$QUEUE/responses/bad/$1"~*.err 2>/dev/null; }

# --- planted symlinks and fifos -----------------------------------------
L=1700000000.M000001P1Q1R00000000000000aa.evil
ln -s /etc/passwd "$QUEUE/proposals/new/$L"
supervise-list >out 2>err
check_match "list skips or refuses a symlink in proposals/new" \
    "$(cat out err)" "^$|not a regular file|$P"
check_fail "  and never prints the target" grep -q root: out
supervise-show "$L" >out 2>err
check_fail "show of a symlinked proposal fails" test $? -eq 0
check_match "  saying why" "$(cat err)" "not a regular file|symbolic link|refused"
check_fail "  and prints nothing of /etc/passwd" grep -q root: out
supervise-approve "$L" >out 2>err
check_fail "approve of a symlinked proposal fails" test $? -eq 0
rm -f "$QUEUE/proposals/new/$L"

F=1700000000.M000001P1Q1R00000000000000bb.fifo
mkfifo "$QUEUE/proposals/new/$F"
timeout 10 supervise-list >out 2>err
check_fail "list does not block on a fifo in proposals/new" test $? -eq 124
timeout 10 supervise-show "$F" >out 2>err
rc=$?
check "show of a fifo fails at once" test "$rc" -ne 0 -a "$rc" -ne 124
rm -f "$QUEUE/proposals/new/$F"

# A symlink planted as a response: refused, moved aside, never followed.
ln -s "$T_DIR/outside/secret" "$QUEUE/responses/new/$P"
check "a symlinked response is taken out of responses/new" wait_for 10 settled
check_match "  and refused with a reason" "$(bad_reason "$P")" "."
check "  the proposal still pending" is_pending "$P"
rm -f "$QUEUE/responses/bad/$P"~*

# A symlinked proposals/cur: the spool refuses to open.
mv "$QUEUE/proposals/cur" outside/cur
ln -s "$T_DIR/outside/cur" "$QUEUE/proposals/cur"
supervise-list >out 2>err
check_fail "list with a symlinked proposals/cur fails" test $? -eq 0
check_match "  saying it is a symbolic link" "$(cat err)" "symbolic link"
timeout 10 supervised -s "$SLUG" --drain >out 2>err
check_fail "supervised refuses it too" test $? -eq 0
check_match "  saying it is a symbolic link" "$(cat err)" "symbolic link"
rm "$QUEUE/proposals/cur"
mv outside/cur "$QUEUE/proposals/cur"

# --- responses supervised must refuse -----------------------------------
# respond NAME JSON [MODE [OWNER]]: as an operator by hand, through tmp/.
respond() {
	printf '%s\n' "$2" >"$QUEUE/responses/tmp/$1"
	chmod "${3:-600}" "$QUEUE/responses/tmp/$1"
	[ -z "$4" ] || chown "$4" "$QUEUE/responses/tmp/$1"
	mv "$QUEUE/responses/tmp/$1" "$QUEUE/responses/new/$1"
}
U=1700000000.M000001P1Q1R00000000000000cc.unknown
respond "$U" '{"status": "approved"}'
check "a response for an unknown proposal is taken out" wait_for 10 settled
check_match "  and refused: no such proposal" "$(bad_reason "$U")" "no proposal|unknown|no such"

respond "$P" '{"status": "approved", "notes": "world-writable"}' 666
check "a 0666 response is taken out" wait_for 10 settled
check_match "  and refused for its permissions" "$(bad_reason "$P")" "writable|permission|mode"
check "  the proposal still pending" is_pending "$P"
rm -f "$QUEUE/responses/bad/$P"~*

respond "$P" '{"status": "approved", "notes": "not mine"}' 600 65534
check "a response owned by nobody is taken out" wait_for 10 settled
check_match "  and refused for its owner" "$(bad_reason "$P")" "owne"
check "  the proposal still pending" is_pending "$P"
check_same "  and nothing was committed for it" \
    "$(audit_decisions | grep -c "^$P ")" 0

# --- a second decision ---------------------------------------------------
supervise-approve -n first "$P" >/dev/null
decided() { ! is_pending "$P" && settled; }
check "the first decision lands" wait_for 10 decided
supervise-reject -n second "$P" >out 2>err
check_fail "a second decision by the CLI fails" test $? -eq 0
check_match "  saying it was already decided" "$(cat err)" "already decided"
respond "$P" '{"status": "rejected", "notes": "second, by hand"}'
check "a second decision by hand is taken out" wait_for 10 settled
check_match "  and refused" "$(bad_reason "$P")" "already|decided"
check_same "one commit for the proposal, the first decision" \
    "$(audit_decisions | grep "^$P ")" "$P approved"

check "supervised stops cleanly" stop_daemon d
check_same "nothing outside the spool changed" "$(sum)" "$before"
check_same "the spool is consistent" "$(spoolcheck -c -a "$AUDIT" 2>&1 >/dev/null)" ""
done_testing
