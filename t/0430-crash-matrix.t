#!/bin/sh
# Crash matrix: kill -9 raced against deliver, respond, consume and commit.
#
# Each round starts supervised, sends agents' calls, files proposals with
# supervise-propose and decides with supervise-approve/-reject while a
# random delay runs out; then supervised is killed with SIGKILL, and so,
# at random moments, are some of the CLIs.  Decisions left waiting while
# the daemon is down are consumed by the next start, which the next kill
# may interrupt too.  After every kill nothing half-written may be visible.
# At the end everything is decided and drained, and then every proposal
# and decision must be there exactly once, in the spool and in the audit
# repository, which must pass git fsck --strict.
#
# A kill while libgit2 holds refs/heads/main.lock leaves that lock behind.
# supervise.lock then names the killed committer, so the next consumer
# knows the lock is ours, not a live git's, and removes it (t/0240 has the
# cases where it must not).  The test checks that once: the next drain
# succeeds and leaves no lock; nothing may be lost.
#
# CRASH_ROUNDS (default 12) sets the number of rounds.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
ROUNDS=${CRASH_ROUNDS:-12}
AGENTS=6
plan 16

supervise-init "$SLUG" >/dev/null 2>&1
: >sure-proposed
: >sure-decided
: >maybe-decided
visible_bad=0 start_bad=0 stale=0 stale_report=

# decide ID: approve or reject; sometimes the CLI is killed mid-way.
decide() {
	case $(rand 2) in
	0) verb=approve status=approved ;;
	*) verb=reject status=rejected ;;
	esac
	supervise-$verb -n "crash test" "$1" >/dev/null 2>&1 &
	_pid=$!
	if [ "$(rand 3)" -eq 0 ]; then
		rand_sleep 8
		kill -9 "$_pid" 2>/dev/null
	fi
	if wait "$_pid" 2>/dev/null; then
		echo "$1 $status" >>sure-decided
	else
		echo "$1 $status" >>maybe-decided
	fi
}

# The operator: decide whatever is pending, a few times over.
operator() {
	for _pass in 1 2 3 4 5 6; do
		for id in $(supervise-list 2>/dev/null | cut -f1); do
			decide "$id"
		done
		rand_sleep 60
	done
}

# Another component files a proposal; sometimes it is killed mid-way.
propose() {
	supervise-propose -s "$SLUG" -t pipelock-block -j "round $1" \
	    "https://p$1.example/x" >"prop.$1" 2>/dev/null &
	_pid=$!
	if [ "$(rand 2)" -eq 0 ]; then
		rand_sleep 10
		kill -9 "$_pid" 2>/dev/null
	fi
	if wait "$_pid" 2>/dev/null; then
		cat "prop.$1" >>sure-proposed
	fi
}

r=0
while [ "$r" -lt "$ROUNDS" ]; do
	r=$((r + 1))
	if ! start_daemon d -s "$SLUG"; then
		start_bad=$((start_bad + 1))
		continue
	fi
	a=0
	while [ "$a" -lt "$AGENTS" ]; do
		curl -s -H "Content-Type: application/json" --max-time 20 -o "answer.$r.$a" \
		    -H 'Content-Type: application/json' \
		    -H 'Accept: application/json' --data-binary "$(tool_call "$a" \
		    egress-block "{\"host\": \"r$r-a$a.example\", \"justification\": \"round $r\"}")" \
		    "$URL" &
		a=$((a + 1))
	done
	propose "$r" &
	operator &
	rand_sleep 500
	kill -9 "$(cat d.pid)"
	rm -f d.pid
	wait 2>/dev/null
	# While the daemon is down, decide some more: the next start consumes
	# them (and may be killed doing so).
	for id in $(supervise-list 2>/dev/null | cut -f1 | head -n 2); do
		decide "$id"
	done
	locks=$(find "$AUDIT" -name '*.lock' ! -name supervise.lock 2>/dev/null)
	if [ -n "$locks" ]; then
		stale=$((stale + 1))
		if [ -z "$stale_report" ]; then
			timeout 60 supervised -s "$SLUG" --drain >/dev/null 2>drain.err
			stale_report="exit $? $(cat drain.err)"
			stale_report="$stale_report; left: $(find "$AUDIT" \
			    -name '*.lock' ! -name supervise.lock 2>/dev/null)"
		fi
		rm -f $locks
	fi
	if ! spoolcheck >"check.$r" 2>&1; then
		visible_bad=$((visible_bad + 1))
		diag "after the kill in round $r:" "$(cat "check.$r")"
	fi
done
check_same "supervised starts after each of $ROUNDS kills" "$start_bad" 0
check_same "after each of $ROUNDS kills every visible spool file loads" \
    "$visible_bad" 0
diag "$stale of $ROUNDS kills left a git lock behind"
if [ "$stale" -gt 0 ]; then
	check_match "a git lock left by a killed supervised is removed by the next" \
	    "$stale_report" "^exit 0 .*; left: \$"
else
	ok "a git lock left by a kill is removed (no kill hit one this time)"
fi

# Recovery: decide everything left, let a new supervised drain it.
start_daemon d -s "$SLUG" || not_ok "supervised restarts"
n=0
while [ "$n" -lt 50 ] && [ -n "$(supervise-list 2>/dev/null)" ]; do
	for id in $(supervise-list 2>/dev/null | cut -f1); do
		supervise-approve -n final "$id" >/dev/null 2>&1 &&
		    echo "$id approved" >>sure-decided
	done
	n=$((n + 1))
done
check "everything decided in the end" test -z "$(supervise-list)"
consistent() { spoolcheck -c -a "$AUDIT" >/dev/null 2>&1; }
check "supervised consumes every decision" wait_for "$T_WAIT" consistent
check "supervised stops cleanly" stop_daemon d

spoolcheck -c -v -a "$AUDIT" >final 2>final.err
check_same "spool and audit repository agree" "$(cat final.err)" ""
summary=$(tail -n 1 final)
diag "$summary" "$(wc -l <sure-decided) decisions reported, $(wc -l <maybe-decided) interrupted"
decided=$(sed -n 's/.* decided=\([0-9]*\) .*/\1/p' final)
proposals=$(sed -n 's/^proposals=\([0-9]*\) .*/\1/p' final)
check_same "every proposal is decided" "$decided" "$proposals"

# Every proposal that supervise-propose reported is there.
missing=
for id in $(cat sure-proposed); do
	grep -q "^$id " final || missing="$missing $id"
done
check_same "every reported proposal is in the spool" "$missing" ""

# Every decision an operator was told about is committed, as decided; the
# first decision wins, so a proposal decided "for sure" twice can't be.
audit_decisions >decisions
wrong=
while read -r id status; do
	grep -qx "$id $status" decisions || wrong="$wrong $id:$status"
done <sure-decided
check_same "every reported decision is committed as made" "$wrong" ""

# Exactly once: one record and one commit per decided proposal.
check_same "one audit record per decision" "$(audit_records)" "$decided"
check_same "one commit per decision" "$(audit_commits)" "$decided"
check_same "no decision committed twice" "$(audit_dup_commits)" ""

# Agents: at most one proposal per call; an answered call's is decided.
dups=
for f in answer.*; do
	host=$(echo "$f" | sed 's/answer\.\([0-9]*\)\.\([0-9]*\)/r\1-a\2.example/')
	c=$(cat "$QUEUE"/proposals/cur/* "$QUEUE"/proposals/new/* 2>/dev/null |
	    grep -c "\"host\\\\\": \\\\\"$host\\\\\"")
	[ "$c" -le 1 ] || dups="$dups $host:$c"
	if grep -q 'status: ' "$f" && [ "$c" -ne 1 ]; then
		dups="$dups $host:answered-but-$c"
	fi
done
check_same "no agent call made two proposals" "$dups" ""

locks=$(find "$AUDIT" -name '*.lock' ! -name supervise.lock)
check_same "no git lock left behind" "$locks" ""
fsck=$(git --git-dir="$AUDIT" fsck --strict --no-dangling 2>&1)
check "audit repository passes git fsck --strict" test $? -eq 0
[ -z "$fsck" ] || diag "$fsck"
done_testing
