#!/bin/sh
# Several consumers (one per bottle) committing into one audit repository
# at the same time, with git itself writing too: every decision is one
# commit, none lost or doubled, history linear, git fsck --strict clean.
. "$(dirname "$0")/lib.sh"
plan 11

N=4
M=50
A=$SUPERVISE_ROOT/audit.git
g() { git -C "$A" "$@"; }
drain() { SUPERVISE_BOTTLE_SLUG=$1 timeout 120 supervised --drain; }

# M decided proposals per bottle, alternating approve and reject, each an
# egress route for a host of its own so every approval changes routes.json.
i=1
while [ "$i" -le "$N" ]; do
	supervise-init "b$i" >/dev/null
	k=1
	: >approve.ids
	: >reject.ids
	while [ "$k" -le "$M" ]; do
		id=$(supervise-propose -s "b$i" -t egress-block -j "job $k" \
		    "{\"host\": \"h$k.b$i.example\"}") || break
		if [ $((k % 2)) -eq 0 ]; then
			echo "$id" >>reject.ids
		else
			echo "$id" >>approve.ids
		fi
		k=$((k + 1))
	done
	supervise-approve -n ok <approve.ids >/dev/null
	supervise-reject -n no <reject.ids >/dev/null
	i=$((i + 1))
done
check_same "$((N * M)) responses waiting" \
    "$(nfiles "$SUPERVISE_ROOT"/queue/b*/responses/new)" $((N * M))

# A writer that ignores our flock: git itself, moving main with its own
# compare-and-swap (update-ref NEW OLD) while the consumers commit.
G=20
printf '{"routes": []}\n' >routes.json
supervise-init --routes routes.json b0 >/dev/null
# A lost race (main moved under it) is retried; anything else, or too
# many tries, or too long, stops it with its reason in gitwriter.err.
gitwriter() {
	n=0 tries=0 end=$(($(date +%s) + 120))
	while [ "$n" -lt "$G" ]; do
		tries=$((tries + 1))
		if [ "$tries" -gt $((G + N * M * 2)) ] ||
		    [ "$(date +%s)" -ge "$end" ]; then
			echo "gitwriter: $n of $G commits in $tries tries" >&2
			return 1
		fi
		old=$(g rev-parse main) &&
		new=$(g commit-tree -p "$old" -m "note $n" "$old^{tree}") ||
		    return 1
		g update-ref refs/heads/main "$new" "$old" 2>/dev/null &&
		    n=$((n + 1))
	done
}

# One consumer per bottle, all at once, and the git writer.
gitwriter 2>gitwriter.err &
echo $! >gitwriter.pid
start=$(date +%s%N)
i=1
while [ "$i" -le "$N" ]; do
	drain "b$i" >"out$i" 2>"err$i" &
	echo $! >"drain$i.pid"
	i=$((i + 1))
done
fails=0
i=1
while [ "$i" -le "$N" ]; do
	wait "$(cat "drain$i.pid")" || fails=$((fails + 1))
	rm -f "drain$i.pid"
	i=$((i + 1))
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait "$(cat gitwriter.pid)"
gitwriter_rc=$?
rm -f gitwriter.pid
diag "$N consumers, $((N * M)) decisions: $ms ms ($((ms * 1000 / (N * M))) us per commit)"
diag "git's commits fell into $(g log --format=%s main | awk '/^note / &&
    prev !~ /^note / { runs++ } { prev = $0 } END { print runs + 0 }') runs among ours"
check_same "every consumer succeeded" "$fails" 0
[ "$fails" -eq 0 ] || diag "$(cat err*)"
check_same "git made its $G commits beside them" "$gitwriter_rc" 0
[ "$gitwriter_rc" -eq 0 ] || diag "$(cat gitwriter.err)"

check_same "exactly N*M commits, the init and git's own" \
    "$(g rev-list --count main)" $((N * M + 1 + G))
check_same "one commit per Proposal-Id" \
    "$(g log --format='%(trailers:key=Proposal-Id,valueonly)' main |
    sed '/^$/d' | sort | uniq | wc -l | tr -d ' ')" $((N * M))
check_same "no merges" "$(g rev-list --merges main | wc -l | tr -d ' ')" 0
check_same "every commit has one parent but the root" \
    "$(g rev-list --parents main | awk '{ print NF }' | sort | uniq -c |
    tr -s ' ' | sed 's/^ //')" "$(printf '1 1\n%d 2' $((N * M + G)))"
check "git fsck --strict is clean" g fsck --strict --no-progress
approved=0
i=1
while [ "$i" -le "$N" ]; do
	n=$(g show "main:b$i/egress/routes.json" | grep -c '"host"')
	approved=$((approved + n))
	i=$((i + 1))
done
check_same "every approved route is in its bottle's routes.json" \
    "$approved" $((N * M / 2))
check_same "nothing left in responses/new" \
    "$(nfiles "$SUPERVISE_ROOT"/queue/b*/responses/new)" 0
check_same "every proposal is flagged replied (R)" \
    "$(nflagged R "$SUPERVISE_ROOT"/queue/b*/proposals/cur)" $((N * M))
done_testing
