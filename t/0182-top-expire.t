#!/bin/sh
# supervise-top says when each proposal expires: a column once a sidecar
# that expires proposals runs (read from the spool as supervise-list reads
# it, followed as the sidecar starts and restarts), "-" for a bottle
# without expiry, "expiring" for one overdue while its sidecar is
# stopped, and the time in a proposal's view.
. "$(dirname "$0")/lib.sh"
plan 12
. "$T_TOP/t/tmux.sh"
Q=$SUPERVISE_ROOT/queue
propose() { supervise-propose -s "$1" -t "$2" -j why "$3"; }
arrival() {
	sed -n 's/^  "arrival_timestamp": "\(.*\)",$/\1/p' \
	    "$Q/$1/proposals/"*/"$2"*
}
# at ARRIVAL SECS: ARRIVAL plus SECS, in UTC to the second.
at() {
	_t=$(date -u -d "$(printf %s "$1" | sed 's/\..*//; s/T/ /')" +%s)
	date -u -d "@$((_t + $2))" +%Y-%m-%dT%H:%M:%SZ
}

supervise-init web1 >/dev/null
supervise-init web2 >/dev/null
a=$(propose web1 egress-block '{"host": "api.example.com"}')
long=$(awk 'BEGIN { while (n++ < 60) printf "x" }').example.org
b=$(propose web2 egress-block "{\"host\": \"$long\"}")
start s
see s '2 pending in 2 bottles' >/dev/null
check "no sidecar expires proposals: no column for it" hides s EXPIRES

# A sidecar started with --expire says so in the spool: the column comes.
# 150m: 2h to go from the first second to the 31st minute.
start_daemon d -s web1 --expire 150m || exit 1
check "a sidecar that expires proposals: the column appears" see s \
    'AGE EXPIRES  *CALLER'
want=$(supervise-list web1 | grep "^$a" | cut -f7)
check_same "supervise-list says when" "$want" "expires in 2h"
check "the row says the same" row_has s api.example.com \
    ' [0-9]*s in 2h  *waiting  *api\.example\.com'
check "a bottle without expiry: -" row_has s xxxx \
    ' [0-9]*s -  *waiting  *xxxxxxxxxx'
check "the layout holds: a long summary is cut at the width" \
    width_is s xxxx 80

due=$(at "$(arrival web1 "$a")" 9000)
keys s g Enter
check "the proposal's view says when it expires" see s \
    "^Expires: in 2h ($due)\$"
keys s q
see s BOTTLE >/dev/null

# Overdue while the sidecar is stopped (it rejects it when it starts).
stop_daemon d
h=1795400000.M1P1Q1.overdue
cat >"$Q/web1/proposals/tmp/$h" <<EOT
{
  "arrival_timestamp": "2026-11-23T00:00:00.000000Z",
  "bottle_slug": "web1",
  "current_file_hash": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
  "id": "$h",
  "justification": "old",
  "proposed_file": "old:x.env:rule:1",
  "tool": "gitleaks-allow"
}
EOT
mv "$Q/web1/proposals/tmp/$h" "$Q/web1/proposals/new/$h"
check "an overdue proposal: expiring" wait_for "$T_WAIT" \
    row_has s 'old:x\.env' ' [0-9]*d expiring  *waiting'
keys s g Enter
check "its view says since when" see s \
    "^Expires: due since 2026-11-23T02:30:00Z; rejected at the sidecar's next look\$"
keys s q
see s BOTTLE >/dev/null

# Started again without --expire: it takes the setting away, and the
# column goes; nothing expired.
start_daemon d -s web1 || exit 1
check "a sidecar without --expire: the column goes" unsee s EXPIRES
check "and the row stays" shows s 'old:x\.env'
keys s q
check "q exits" wait_for "$T_WAIT" exited s
stop_daemon d
done_testing
