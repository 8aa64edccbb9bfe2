#!/bin/sh
# kill -9 of the consumer at random instants, then a restart: every
# decision is committed exactly once, nothing is left in responses/new,
# every proposal ends decided, and the repository stays sound.
. "$(dirname "$0")/lib.sh"
plan 11

K=1500
ROUNDS=30
A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue/web1
g() { git -C "$A" "$@"; }
consumer() { SUPERVISE_BOTTLE_SLUG=web1 exec supervised --drain; }

# Enough decisions that a drain takes several batches.  The proposals
# are written straight into proposals/new, as any component may (the
# spool is a public interface; 0110-cli-propose.t tests the CLI's own).
supervise-init web1 >/dev/null
spool_proposals "$Q" "$K" crash | awk '{ print > (NR % 3 == 0 ? "reject.ids" : "approve.ids") }'
supervise-approve <approve.ids >/dev/null
supervise-reject <reject.ids >/dev/null
check_same "$K responses waiting" "$(ls "$Q/responses/new" | wc -l | tr -d ' ')" $K

waiting() { ls "$Q/responses/new" | wc -l | tr -d ' '; }
rand() { awk -v s="$$$round" -v d="$1" 'BEGIN { srand(s); printf "%.4f", rand() * d }'; }
round=0
killed=0
locks=0
midway=0
# Odd rounds kill at a random instant of the first 60 ms (start-up,
# recovery, the first batch); even rounds wait for the first batch to
# land, then kill within 20 ms, in the middle of the drain.
while [ "$round" -lt "$ROUNDS" ] && [ "$(waiting)" -gt 0 ]; do
	round=$((round + 1))
	before=$(waiting)
	(consumer) >/dev/null 2>&1 &
	pid=$!
	if [ $((round % 2)) -eq 1 ]; then
		sleep "$(rand 0.06)"
	else
		i=0
		while [ "$i" -lt 2000 ] && [ "$(waiting)" -eq "$before" ] &&
		    kill -0 "$pid" 2>/dev/null; do
			sleep 0.005
			i=$((i + 1))
		done
		sleep "$(rand 0.02)"
	fi
	if kill -9 "$pid" 2>/dev/null; then
		killed=$((killed + 1))
		[ "$(waiting)" -gt 0 ] && [ "$(waiting)" -lt "$before" ] &&
			midway=$((midway + 1))
	fi
	wait "$pid" 2>/dev/null
	# A kill inside the ref update leaves git's own lock behind, exactly
	# as a killed git would; supervise.lock names the killed consumer, so
	# the next one removes it (see 0240-stale-lock.t) and goes on.
	[ -e "$A/refs/heads/main.lock" ] && locks=$((locks + 1))
done
diag "$round rounds, $killed kills ($midway in the middle of a drain), $(waiting) responses left, $locks ref locks left by kills"
check "at least 6 consumers were killed, 3 of them mid-drain" \
    [ "$killed" -ge 6 -a "$midway" -ge 3 ]

# The restart.
SUPERVISE_BOTTLE_SLUG=web1 timeout 120 supervised --drain >out 2>err
check_same "the restart drains cleanly" "$?:$(cat err)" "0:"
check_same "nothing left in responses/new" "$(waiting)" 0
check_same "every response archived" \
    "$(ls "$Q/responses/cur" | grep -c ':2,S$')" $K
check_same "every proposal decided (R)" \
    "$(ls "$Q/proposals/cur" | grep -c ':2,RS$')" $K
check_same "$K commits, one per decision" "$(g rev-list --count main)" $K
check_same "each Proposal-Id exactly once" \
    "$(g log --format='%(trailers:key=Proposal-Id,valueonly)' main |
    sed '/^$/d' | sort | uniq -c | awk '$1 != 1' | wc -l | tr -d ' '):$(g log \
    --format='%(trailers:key=Proposal-Id,valueonly)' main | sed '/^$/d' |
    sort -u | wc -l | tr -d ' ')" "0:$K"
check_same "$K records in the tree" \
    "$(g ls-tree -r --name-only main | grep -c '^web1/decisions/')" $K
check "git fsck --strict is clean" g fsck --strict --no-progress
check_fail "no ref lock left behind" test -e "$A/refs/heads/main.lock"
done_testing
