#!/bin/sh
# git gc on the audit repository while consumers commit, the way
# supervised(8) says to run it: under flock(1) of AUDIT/supervise.lock,
# the lock every supervise committer takes, so gc and commits take turns.
# Every decision is one commit on main, none lost, git fsck --strict clean.
#
# Without the lock, a git gc racing libgit2's commits has lost decisions
# here: reported committed and archived, yet missing from main.
. "$(dirname "$0")/lib.sh"
if ! command -v flock >/dev/null 2>&1; then
	echo "1..0 # SKIP no flock(1)"
	exit 0
fi
plan 8

N=3
M=60
A=$SUPERVISE_ROOT/audit.git
g() { git -C "$A" "$@"; }

printf '{"routes": []}\n' >routes.json
i=1
while [ "$i" -le "$N" ]; do
	supervise-init --routes routes.json "b$i" >/dev/null
	k=1
	: >ids
	while [ "$k" -le "$M" ]; do
		supervise-propose -s "b$i" -t egress-block -j "job $k" \
		    "{\"host\": \"h$k.b$i.example\"}" >>ids || break
		k=$((k + 1))
	done
	supervise-approve -n ok <ids >/dev/null
	i=$((i + 1))
done

# gc over and over, each run under the committers' lock, until they are
# done (at most 1000 runs or 150 s).  The first run takes the lock before
# the consumers start and holds it until they all have (gc.go): however
# fast they commit, at least that gc lands while they do.
gcloop() {
	flock "$A/supervise.lock" sh -c '
		: >gc.locked
		n=0
		while [ ! -e gc.go ] && [ "$n" -lt 600 ]; do
			sleep 0.05
			n=$((n + 1))
		done
		git -C "$1" gc --quiet' sh "$A" 2>>gc.err && echo >>gc.runs
	n=1 end=$(($(date +%s) + 150))
	while [ ! -e gc.stop ] && [ "$n" -lt 1000 ] &&
	    [ "$(date +%s)" -lt "$end" ]; do
		flock "$A/supervise.lock" git -C "$A" gc --quiet 2>>gc.err &&
		    echo >>gc.runs
		n=$((n + 1))
		sleep 0.01
	done
	[ -e gc.stop ] || echo "gcloop: stopped after $n runs" >>gc.err
}
: >gc.runs
gcloop &
echo $! >gcloop.pid
wait_for "$T_WAIT" test -e gc.locked || diag "git gc did not take the lock"
i=1
while [ "$i" -le "$N" ]; do
	SUPERVISE_BOTTLE_SLUG=b$i timeout 120 supervised --drain \
	    >"out$i" 2>"err$i" &
	echo $! >"drain$i.pid"
	i=$((i + 1))
done
touch gc.go
fails=0
i=1
while [ "$i" -le "$N" ]; do
	wait "$(cat "drain$i.pid")" || fails=$((fails + 1))
	rm -f "drain$i.pid"
	i=$((i + 1))
done
runs_during=$(wc -l <gc.runs | tr -d ' ')
touch gc.stop
wait "$(cat gcloop.pid)"
rm -f gcloop.pid

check_same "every consumer succeeded" "$fails" 0
[ "$fails" -eq 0 ] || diag "$(cat err*)"
check "git gc ran while they committed" test "$runs_during" -ge 1
diag "git gc ran $runs_during times during $((N * M)) decisions"
check_same "git gc reported nothing" "$(cat gc.err)" ""
check_same "one commit per decision, and the inits" \
    "$(g rev-list --count main)" $((N * M + N))
check_same "every Proposal-Id once" \
    "$(g log --format='%(trailers:key=Proposal-Id,valueonly)' main |
    sed '/^$/d' | sort -u | wc -l | tr -d ' ')" $((N * M))
check_same "every proposal is flagged replied (R)" \
    "$(nflagged R "$SUPERVISE_ROOT"/queue/b*/proposals/cur)" $((N * M))
check_same "nothing left in responses/new" \
    "$(nfiles "$SUPERVISE_ROOT"/queue/b*/responses/new)" 0
check "git fsck --strict is clean" g fsck --strict --no-progress
done_testing
