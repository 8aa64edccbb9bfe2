#!/bin/sh
# Disk full: the spool and the audit repository each on a small tmpfs,
# filled up.  The agent and the operator get a clear error, nothing is
# half-visible, nothing is lost, and work resumes when space returns.
# Needs root and mount(8): without them this test fails, saying so.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 26

mkdir spoolfs auditfs
unmount() {
	for f in "$T_DIR"/*.pid; do
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	sleep 0.2
	umount -l "$T_DIR/spoolfs" 2>/dev/null
	umount -l "$T_DIR/auditfs" 2>/dev/null
	cleanup
}
trap unmount EXIT
if ! mount -t tmpfs -o size=4m,mode=0700 tmpfs spoolfs 2>mount.err ||
    ! mount -t tmpfs -o size=4m,mode=0700 tmpfs auditfs 2>>mount.err; then
	not_ok "mount a 4 MB tmpfs (needs root and mount): $(cat mount.err)"
	done_testing
	exit 1
fi
ok "mounted a 4 MB tmpfs for the spool and one for the audit repository"

export SUPERVISE_ROOT="$T_DIR/spoolfs/root"
export SUPERVISE_AUDIT_DIR="$T_DIR/auditfs/audit.git"
QUEUE=$SUPERVISE_ROOT/queue/$SLUG
AUDIT=$SUPERVISE_AUDIT_DIR
supervise-init "$SLUG" >/dev/null 2>&1
start_daemon d -s "$SLUG" --rescan 1 || { not_ok "supervised starts"; done_testing; exit 1; }

# fill DIR: take every free byte of DIR's file system.
fill() { dd if=/dev/zero of="$1/filler" bs=64k 2>/dev/null; sync; }
call() {
	curl -s --max-time "${3:-20}" -o "$1" -H 'Content-Type: application/json' \
	    -H 'Accept: application/json' --data-binary "$(tool_call 1 egress-block \
	    "{\"host\": \"$2\", \"justification\": \"disk full\"}")" "$URL"
}
pending_is() { [ "$(supervise-list | grep -c .)" -eq "$1" ]; }
nothing_half() { spoolcheck >check.out 2>&1; }

# A proposal made while there is room, for the operator to decide later.
call before.answer before.example 60 &
before=$!
check "a proposal filed while there is room" wait_for 10 pending_is 1
P=$(supervise-list | cut -f1)

# --- the spool's file system is full ------------------------------------
fill spoolfs
call full.answer full.example
check_match "the agent gets a clear error" "$(cat full.answer)" \
    '"error":.*No space left on device'
diag "the agent's answer: $(cat full.answer)"
check "  supervised still answers" alive
supervise-propose -s "$SLUG" -t pipelock-block -j x https://p.example/ >out 2>err
check_fail "supervise-propose fails" test $? -eq 0
check_match "  saying the disk is full" "$(cat err)" "No space left on device"
supervise-approve -n "no room" "$P" >out 2>err
check_fail "supervise-approve fails" test $? -eq 0
check_match "  saying the disk is full" "$(cat err)" "No space left on device"
check "nothing half-written is visible in the spool" nothing_half
check_same "  no file left in tmp/" \
    "$(find "$QUEUE/proposals/tmp" "$QUEUE/responses/tmp" -type f | grep -c .)" 0
check_same "  only the one proposal" "$(supervise-list | grep -c .)" 1
check "  still pending, its agent still waiting" kill -0 "$before"

rm spoolfs/filler
call after.answer after.example 60 &
after=$!
check "with room again, a new call is filed" wait_for 10 pending_is 2
approve_quietly() { supervise-approve "$@" >/dev/null; }
check "  and the operator can decide" approve_quietly -n "room again" "$P"
wait "$before"
check_match "  the first agent gets the decision" "$(cat before.answer)" \
    'status: approved'

# --- the audit repository's file system is full -------------------------
Q=$(supervise-list | cut -f1)
fill auditfs
# The daemon's word that it tried this decision and failed.
tried() {
	[ "$(grep -c "can't consume from 'responses/new' (will retry):.*No space left on device" d.log)" -gt "$1" ]
}
tries=$(grep -c "can't consume from 'responses/new'" d.log)
supervise-approve -n "audit full" "$Q" >/dev/null
check "the decision is written to the spool" test -e "$QUEUE/responses/new/$Q"
check "  supervised tries to commit it and says why it can't" \
    wait_for "$T_WAIT" tried "$tries"
check "  so it stays in responses/new" test -e "$QUEUE/responses/new/$Q"
check "  the agent is not answered yet" kill -0 "$after"
check "  nothing half-written in the spool" nothing_half
rm auditfs/filler
wait "$after"
check_match "with room again the decision lands and the agent gets it" \
    "$(cat after.answer)" 'status: approved'
check "supervised stops cleanly" stop_daemon d

spoolcheck -c -a "$AUDIT" >final 2>final.err
check_same "spool and audit repository agree" "$(cat final.err)" ""
check_same "two decisions, one commit each" "$(audit_decisions | sort)" \
    "$(printf '%s approved\n%s approved\n' "$P" "$Q" | sort)"
fsck=$(git --git-dir="$AUDIT" fsck --strict --no-dangling 2>&1)
check "audit repository passes git fsck --strict" test $? -eq 0
[ -z "$fsck" ] || diag "$fsck"
check_same "no git lock left behind" \
    "$(find "$AUDIT" -name '*.lock' ! -name supervise.lock)" ""
done_testing
