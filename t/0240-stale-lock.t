#!/bin/sh
# A ref lock left by a git that died: the consumer stops with an error
# that names the lock and its age, leaves the lock alone, keeps the
# decision waiting, and goes on once the operator has removed the lock.
. "$(dirname "$0")/lib.sh"
plan 9

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
done_testing
