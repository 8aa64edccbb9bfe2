#!/bin/sh
# Records in the form the egress proxy's writer makes them (its
# egress-token-allow): a uuid id, arrival_timestamp with a numeric offset,
# a sha256 current_file_hash.  Written into proposals/ by hand, as any
# component may, they are listed, shown, decided and committed with the
# time in UTC; a malformed offset is refused with FILE:LINE:COLUMN.
. "$(dirname "$0")/lib.sh"
plan 10

A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue/web1
SHA=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
supervise-init web1 >/dev/null

# deliver ID TIME: the proxy's record, published into proposals/new.
deliver() {
	cat >"$Q/proposals/tmp/$1" <<EOR
{"id": "$1", "bottle_slug": "web1", "tool": "egress-token-allow",
 "proposed_file": "token for api.example.org", "justification": "token seen",
 "arrival_timestamp": "$2", "current_file_hash": "$SHA"}
EOR
	mv "$Q/proposals/tmp/$1" "$Q/proposals/new/$1"
}

id=3f2a9c1e-8d4b-4f6a-9e2d-1b5c7a8e0f13
deliver "$id" 2026-12-04T21:10:37.188892+05:30
out=$(supervise-list web1 2>err)
check_same "listed" "$(printf '%s\n' "$out" | cut -f1,3)" "$id	egress-token-allow"
check_same "no complaint" "$(cat err)" ""
out=$(supervise-show "$id")
check_match "shown with the time in UTC" "$out" \
    '^Arrived: 2026-12-04T15:40:37\.188892Z$'
check "no note about a changed config" \
    sh -c '! printf "%s\n" "$1" | grep -q changed' - "$out"

supervise-approve -n ok "$id" >/dev/null
check "drained" sh -c "supervised --drain -s web1 >/dev/null"
rec=$(git --git-dir="$A" ls-tree -r --name-only main -- web1/decisions | grep "$id")
rec=$(git --git-dir="$A" show "main:$rec")
check_match "the record holds the time in UTC" "$rec" \
    '"arrival_timestamp": "2026-12-04T15:40:37\.188892Z"'
check_match "the record holds the sha256" "$rec" "\"current_file_hash\": \"$SHA\""
check_match "the Arrived trailer is in UTC" \
    "$(git --git-dir="$A" log -1 --format=%B main)" \
    '^Arrived: 2026-12-04T15:40:37\.188892Z$'

bad=1795400000.M1P1Q1.bad
deliver "$bad" 2026-12-04T15:40:37.188892+0000
supervise-list web1 >out 2>err
check_same "a malformed offset is refused where it stands" "$(cat err)" \
    "supervise-list: $Q/proposals/new/$bad:3:2: 'arrival_timestamp' must be an RFC 3339 time like 2026-11-22T18:00:00.123456Z or 2026-11-22T19:00:00+01:00, not '2026-12-04T15:40:37.188892+0000'"
check "and left where it is" test -f "$Q/proposals/new/$bad"
done_testing
