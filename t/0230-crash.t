#!/bin/sh
# kill -9 of the consumer at random instants, then a restart: every
# decision is committed exactly once, nothing is left in responses/new,
# every proposal ends decided, and the repository stays sound.
. "$(dirname "$0")/lib.sh"
plan 11

K=60
ROUNDS=30
A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue/web1
g() { git -C "$A" "$@"; }
consumer() { SUPERVISE_BOTTLE_SLUG=web1 exec supervised --drain; }

supervise-init web1 >/dev/null
: >approve.ids
: >reject.ids
k=1
while [ "$k" -le "$K" ]; do
	id=$(supervise-propose -s web1 -t egress-block -j "job $k" \
	    "{\"host\": \"h$k.example\"}") || break
	echo "$id" >>"$([ $((k % 3)) -eq 0 ] && echo reject || echo approve).ids"
	k=$((k + 1))
done
supervise-approve <approve.ids >/dev/null
supervise-reject <reject.ids >/dev/null
check_same "$K responses waiting" "$(ls "$Q/responses/new" | wc -l | tr -d ' ')" $K

waiting() { ls "$Q/responses/new" | wc -l | tr -d ' '; }
round=0
killed=0
locks=0
while [ "$round" -lt "$ROUNDS" ] && [ "$(waiting)" -gt 0 ]; do
	round=$((round + 1))
	delay=$(awk -v s="$$$round" 'BEGIN { srand(s); printf "%.3f", rand() * 0.15 }')
	(consumer) >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
	wait "$pid" 2>/dev/null
	# A kill inside the ref update leaves git's own lock behind, exactly
	# as a killed git would; supervise.lock names the killed consumer, so
	# the next one removes it (see 0240-stale-lock.t) and goes on.
	[ -e "$A/refs/heads/main.lock" ] && locks=$((locks + 1))
done
diag "$round rounds, $killed kills, $(waiting) responses left, $locks ref locks left by kills"
check "at least 10 consumers were killed" [ "$killed" -ge 10 ]

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
