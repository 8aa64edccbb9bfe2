#!/bin/sh
# A ref lock left by a git that died: the consumer stops with an error
# that names the lock and its age, leaves the lock alone, keeps the
# decision waiting, and goes on once the operator has removed the lock.
# A lock left by one of our own committers killed inside the branch move
# (supervise.lock then names it, and it no longer runs) is removed by the
# next committer; one whose named committer still runs is left alone.
. "$(dirname "$0")/lib.sh"
plan 16

A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue/web1
g() { git -C "$A" "$@"; }
drain() { SUPERVISE_BOTTLE_SLUG=web1 timeout 60 supervised --drain; }

printf '{"routes": []}\n' >routes.json
supervise-init --routes routes.json web1 >/dev/null
id=$(supervise-propose -s web1 -t egress-block -j why '{"host": "a.example"}')
supervise-approve "$id" >/dev/null

lock=$A/refs/heads/main.lock
: >"$lock"
touch -d '-2 minutes' "$lock"
drain >out 2>err
check_same "the consumer fails" "$?" 1
check_match "the error names the lock and its age" "$(cat err)" \
    "can't commit to '$A': '$lock' is 1[2-3][0-9] s old"
check "the lock is left in place" test -e "$lock"
check_same "nothing committed" "$(g rev-list --count main)" 1
check "the response still waits in new/" test -f "$Q/responses/new/$id"
check "the proposal is not flagged decided" test -f "$Q/proposals/new/$id"

rm "$lock"
drain >out 2>err
check_same "after the operator removed it: drained" "$?:$(cat out)" \
    "0:$id	approved"
check_same "committed" "$(g log -1 --format=%s)" \
    "web1: approve egress-block a.example"
check "git fsck --strict is clean" g fsck --strict --no-progress

# "PID START BOOT" of a process, as supervise.lock names the committer.
boot=$(cat /proc/sys/kernel/random/boot_id)
start_of() { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f20; }

# Left by a committer that died: removed, and the decision lands.
id2=$(supervise-propose -s web1 -t egress-block -j why '{"host": "b.example"}')
supervise-approve "$id2" >/dev/null
sh -c 'echo $$ >dead.pid'
printf '%s 12345 %s' "$(cat dead.pid)" "$boot" >"$A/supervise.lock"
: >"$lock"
touch -d '-5 seconds' "$lock"
drain >out 2>err
check_same "a lock of a dead committer: drained" "$?:$(cat out)" \
    "0:$id2	approved"
check_fail "its lock is gone" test -e "$lock"
check_same "supervise.lock is empty again" "$(wc -c <"$A/supervise.lock" | tr -d ' ')" 0
check_same "committed once" "$(g log --format=%s | grep -c 'b.example')" 1

# Named committer still running (this test's shell): left alone.
id3=$(supervise-propose -s web1 -t egress-block -j why '{"host": "c.example"}')
supervise-approve "$id3" >/dev/null
printf '%s %s %s' "$$" "$(start_of $$)" "$boot" >"$A/supervise.lock"
: >"$lock"
touch -d '-2 minutes' "$lock"
drain >out 2>err
check_same "a lock of a live committer: the consumer fails" "$?" 1
check "that lock is left in place" test -e "$lock"
rm "$lock"
: >"$A/supervise.lock"
drain >out 2>err
check_same "then it drains" "$?:$(cat out)" "0:$id3	approved"
done_testing
