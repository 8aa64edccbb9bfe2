#!/bin/sh
# supervised --max-pending and --expire.  A burst of calls past the
# limit: exactly N proposals filed, each other call refused at once with
# a JSON-RPC error and nothing written, every call answered.  A proposal
# older than --expire is rejected ("expired after N"), committed and its
# caller answered, while running and, for time spent stopped, at start-up.
. "$(dirname "$0")/lib.sh"
plan 26

use_bottle web1
nfiled() { ls $Q/proposals/new $Q/proposals/cur | grep -c '\.'; }
answered() { [ "$(cat out.* 2>/dev/null | grep -c jsonrpc)" -ge "$1" ]; }

check "supervised starts with --max-pending 5" start_daemon d -s web1 --max-pending 5
i=0
while [ $i -lt 40 ]; do
	i=$((i + 1))
	tool_call $i egress-block "{\"host\":\"h$i.example.org\",\"justification\":\"burst\"}" >out.$i &
done
check "35 calls are refused at once" wait_for 30 answered 35
check_same "exactly 5 proposals are filed" "$(nfiled)" 5
check_same "the refusals are JSON-RPC errors that say why" \
    "$(cat out.* | grep -c '"error":{"code":-32001,"message":"egress-block: bottle '"'web1'"' has too many pending proposals (5, the limit); nothing was filed')" 35
check_same "nothing else was written" "$(nfiles $Q/proposals/tmp $Q/responses/new)" 0
supervise-list web1 | cut -f1 | supervise-reject -n 'later' >/dev/null
check "the 5 waiting calls are answered" wait_for 30 answered 40
check_same "every call got one answer: 35 refusals, 5 decisions" \
    "$(cat out.* | grep -c 'status: rejected\\nnotes: later')" 5
tool_call 41 egress-block '{"host":"again.example.org","justification":"x"}' >out.41 &
six_filed() { [ "$(nfiled)" -eq 6 ]; }
check "below the limit again, a call is filed" wait_for 10 six_filed
supervise-list web1 | cut -f1 | supervise-reject >/dev/null
check "supervised stops" stop_daemon d
wait
rm -f out.*

# --- expiry while running -------------------------------------------------
check "supervised starts with --expire 2s" start_daemon d2 -s web1 --expire 2s
check_same "the setting is left for the operator's tools" "$(cat $Q/expire)" 2
t0=$(date +%s)
tool_call 1 gitleaks-allow '{"fingerprint":"abc:f:r:1","justification":"slow"}' >out.1
t1=$(date +%s)
check_same "the waiting call is answered: expired" "$(cat out.1)" \
    '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"status: rejected\nnotes: expired after 2s"}],"isError":true}}'
check "not before 2 s" test $((t1 - t0)) -ge 2
check_same "committed like any rejection, by expiry" \
    "$(g log -1 --format='%an|%s|%(trailers:key=Status,valueonly)' main)" \
    "expiry|web1: reject gitleaks-allow abc:f:r:1|rejected"
check "supervised stops" stop_daemon d2

# --- expiry across a restart ----------------------------------------------
id=$(supervise-propose -s web1 -t gitleaks-allow -j 'while stopped' 'abc:f:r:2')
sleep 2
check "supervised starts with --expire 1s" start_daemon d3 -s web1 --expire 1s
n=$(g rev-list --count main)
check_same "expired at start-up: committed" \
    "$(g log -1 --format='%an|%(trailers:key=Proposal-Id,valueonly)' main | sed '/^$/d')" "expiry|$id"
tool_call 2 proposal-status "{\"proposal_id\":\"$id\"}" >out.2
check_same "the agent learns it with proposal-status" "$(cat out.2)" \
    '{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"status: rejected\nnotes: expired after 1s"}],"isError":true}}'
check "supervised stops" stop_daemon d3

# A withdrawn proposal (flag T) is still pending, so it expires too.
id=$(supervise-propose -s web1 -t gitleaks-allow -j 'withdrawn' 'abc:f:r:3')
mv "$Q/proposals/new/$id" "$Q/proposals/cur/$id:2,ST"
sleep 2
check "supervised starts with --expire 1s again" start_daemon d4 -s web1 --expire 1s
check_same "a withdrawn proposal expires at start-up too" \
    "$(g log -1 --format='%an|%(trailers:key=Proposal-Id,valueonly)' main | sed '/^$/d')" "expiry|$id"
check "supervised stops" stop_daemon d4
check "the expire file stays while stopped" test -s "$Q/expire"
check "supervised starts without --expire" start_daemon d5 -s web1
check "and removes the expire file it left" test ! -e "$Q/expire"
check "supervised stops" stop_daemon d5
done_testing
