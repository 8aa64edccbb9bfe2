#!/bin/sh
# kill -9 between a decision's commit and the end of its apply hook:
# after a restart the live files equal main, the hook has run for that
# decision, its outcome is noted, and the agent gets the decision.
. "$(dirname "$0")/lib.sh"
plan 15
A=root/audit.git
L=root/state/web1

# The first run kills the sidecar (its parent) and exits; later runs apply.
cat >hook <<'HOOK'
#!/bin/sh
echo "$SUPERVISE_PROPOSAL_ID" >>"$HOOK_DIR/hook.runs"
if [ ! -e "$HOOK_DIR/killed" ]; then
	touch "$HOOK_DIR/killed"
	kill -9 "$PPID"
	exit 0
fi
echo applied
HOOK
chmod +x hook
export HOOK_DIR="$T_DIR"
printf 'pypi.org\n' >allow
supervise-init --allowlist allow web1 >/dev/null
check "supervised starts" start_daemon d -s web1 --apply-hook "$T_DIR/hook"
call() {
	curl -s --max-time 60 -H 'Content-Type: application/json' -H 'Accept: application/json' -d \
	    "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":$3}}" \
	    "$URL"
}
has_pending() { [ "$(supervise-list web1 2>/dev/null | wc -l)" -ge 1 ]; }
gone() { ! kill -0 "$1" 2>/dev/null; }
call 1 pipelock-block '{"failed_url":"https://files.pythonhosted.org/x","justification":"pip"}' >out1 &
c1=$!
check "a proposal" wait_for 20 has_pending
ID=$(supervise-list web1 | cut -f1)
pid=$(cat d.pid)
supervise-approve "$ID" >/dev/null
check "the hook kills the sidecar" wait_for 20 gone "$pid"
wait "$pid" 2>/dev/null
rm -f d.pid
wait $c1
commit=$(git --git-dir=$A log --format=%H --grep="Proposal-Id: $ID" main)
check "the decision was committed before the kill" test -n "$commit"
check_fail "no outcome was noted" git --git-dir=$A notes --ref=apply show "$commit" 2>/dev/null
check_same "the hook ran once" "$(cat hook.runs)" "$ID"
printf 'stale\n' >"$L/pipelock/allowlist"

check "supervised restarts" start_daemon d -s web1 --apply-hook "$T_DIR/hook"
noted() { git --git-dir=$A notes --ref=apply show "$commit" >note 2>/dev/null; }
check "the restart applies the decision and notes it" wait_for 20 noted
check_same "the note says it is in effect" "$(head -n 1 note)" "applied: yes"
check_same "the hook ran again for that decision" "$(cat hook.runs)" "$ID
$ID"
check_same "the live allowlist equals main's" "$(cat $L/pipelock/allowlist)" \
    "$(git --git-dir=$A show main:web1/pipelock/allowlist)"
check_match "the agent, asking again, gets the decision and its effect" \
    "$(call 2 proposal-status "{\"proposal_id\":\"$ID\"}")" \
    'status: approved\\napplied: yes'
check "stops with status 0" stop_daemon d

# A kill while the notes ref was being moved leaves its lock: the next
# start removes it, with nothing to note (the note of the next decision
# would, but there may be none for a long time).
: >"$A/refs/notes/apply.lock"
supervised -s web1 --drain >drain.out 2>drain.err
check_same "a drain with nothing to do: exit 0" "$?" 0
check_fail "... and the notes ref's lock is gone" test -e "$A/refs/notes/apply.lock"
done_testing
