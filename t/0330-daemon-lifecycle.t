#!/bin/sh
# supervised: callers that leave, retry or cancel; proposals from other
# components; shutdown, restart recovery and --drain.
. "$(dirname "$0")/lib.sh"
plan 41

Q=root/queue/web1
supervise-init web1 >/dev/null 2>&1
check "supervised starts" start_daemon d -s web1 --progress 1

npending() { supervise-list web1 2>/dev/null | wc -l; }
has_pending() { [ "$(npending)" -ge "$1" ]; }
call() {
	_id=$1 _tool=$2 _args=$3; shift 3
	curl -s -H "Content-Type: application/json" --max-time 60 -H 'Accept: application/json' "$@" -d \
	    "{\"jsonrpc\":\"2.0\",\"id\":$_id,\"method\":\"tools/call\",\"params\":{\"name\":\"$_tool\",\"arguments\":$_args}}" \
	    "$URL"
}
running() { kill -0 "$1" 2>/dev/null; }
ncommits() {
	git --git-dir=root/audit.git log --format=%s --grep="Proposal-Id: $1" main | wc -l
}
respond() {
	printf '{"status": "%s", "notes": "%s"}\n' "$2" "$3" >"$Q/responses/tmp/$1" &&
	    mv "$Q/responses/tmp/$1" "$Q/responses/new/"
}

# --- a caller that leaves ---------------------------------------------------------
call 1 egress-block '{"host":"left.example","justification":"j"}' --max-time 1 >/dev/null
check_same "the caller gave up" "$?" 28
ID=$(supervise-list web1 | cut -f1)
check_match "its proposal stays pending" "$ID" '^[0-9]+\.M'
supervise-approve -n later "$ID" >/dev/null
check "its decision is still committed" wait_for 10 test -f "$Q/proposals/cur/$ID:2,RS"
check_same "one commit" "$(ncommits "$ID")" 1

# An SSE caller that leaves is noticed at the next keep-alive.
curl -sN -H "Content-Type: application/json" --max-time 2 -H 'Accept: text/event-stream' -d \
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":1},"name":"egress-block","arguments":{"host":"sse-left.example","justification":"j"}}}' \
    "$URL" >/dev/null
ID=$(supervise-list web1 | cut -f1)
check "the daemon notices that the SSE caller left" \
    wait_for 10 grep -q "the caller waiting on $ID left" d.log
supervise-approve -n later "$ID" >/dev/null
check "its decision is committed too" wait_for 10 test -f "$Q/proposals/cur/$ID:2,RS"

# --- an identical retry attaches ------------------------------------------------
call 2 egress-block '{"host":"same.example","justification":"first try"}' >out2 &
c2=$!
check "first call proposes" wait_for 10 has_pending 1
call 3 egress-block '{"host":"SAME.example","justification":"second try"}' >out3 &
c3=$!
check "the retry attaches" wait_for 10 grep -q "identical call attached" d.log
check_same "one proposal for both" "$(npending)" 1
ID=$(supervise-list web1 | cut -f1)
supervise-approve -n both "$ID" >/dev/null
wait $c2 $c3
check_match "the first call is answered" "$(cat out2)" '"id":2,"result":.*status: approved\\napplied: no: no hook configured\\nnotes: both'
check_match "the retry is answered" "$(cat out3)" '"id":3,"result":.*status: approved\\napplied: no: no hook configured\\nnotes: both'
check_same "one commit for both" "$(ncommits "$ID")" 1

# --- notifications/cancelled ----------------------------------------------------------
call 77 pipelock-block '{"failed_url":"https://cancel.example/","justification":"j"}' \
    -H 'Mcp-Session-Id: s1' >out77 &
c77=$!
check "a call to cancel" wait_for 10 has_pending 1
ID=$(supervise-list web1 | cut -f1)
check_same "cancelling from another session: 202" "$(curl -s -H "Content-Type: application/json" -o /dev/null -w '%{http_code}' \
    -H 'Mcp-Session-Id: s2' -d '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77}}' "$URL")" 202
# The daemon takes calls and cancellations in the order they came: once a
# proposal-status sent after the 202 is answered, the cancellation is done.
check_match "a call after it is answered" \
    "$(call 79 proposal-status "{\"proposal_id\":\"$ID\",\"wait_seconds\":0}")" \
    'status: pending'
check_same "another session's cancellation withdraws nothing" \
    "$(nflagged T "$Q/proposals/new" "$Q/proposals/cur")" 0
check "another session's cancellation leaves the call alone" running $c77
check_same "cancelling in its session: 202" "$(curl -s -H "Content-Type: application/json" -o /dev/null -w '%{http_code}' \
    -H 'Mcp-Session-Id: s1' -d '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":77,"reason":"timeout"}}' "$URL")" 202
wait $c77
check_same "the cancelled call ends" "$(cat out77)" \
    "{\"jsonrpc\":\"2.0\",\"id\":77,\"error\":{\"code\":-32800,\"message\":\"request cancelled; proposal $ID withdrawn\"}}"
check "the proposal is flagged T (withdrawn)" wait_for 5 test -f "$Q/proposals/cur/$ID:2,T"
check_match "supervise-list shows it withdrawn" "$(supervise-list web1)" "$ID.*withdrawn"
call 78 pipelock-block '{"failed_url":"https://cancel.example/","justification":"j"}' \
    --max-time 1 >/dev/null
check "a retry after a cancellation proposes anew" wait_for "$T_WAIT" has_pending 2
for id in $(supervise-list web1 | cut -f1); do supervise-reject "$id" >/dev/null; done
decided() { [ "$(nflagged R "$Q/proposals/cur")" -eq 5 ]; }
check "both decided" wait_for 10 decided

# --- a proposal from another component --------------------------------------------------
supervise-propose -s web1 -t egress-token-allow -j "the proxy asks" "GH_TOKEN for api.github.com" >/dev/null
ID=$(supervise-list web1 | cut -f1)
supervise-approve "$ID" >/dev/null
check "the daemon consumes its decision" wait_for 10 test -f "$Q/responses/cur/$ID:2,S"
check_same "and commits it" "$(ncommits "$ID")" 1

# --- SIGTERM answers every waiting call ------------------------------------------------
call 10 gitleaks-allow '{"fingerprint":"f:10","justification":"j"}' >out10 &
c10=$!
curl -sN -H "Content-Type: application/json" --max-time 60 -H 'Accept: text/event-stream' \
    -d '{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"gitleaks-allow","arguments":{"fingerprint":"f:11","justification":"j"}}}' \
    "$URL" >out11 &
c11=$!
check "two calls wait" wait_for 10 has_pending 2
ID10=$(grep -o 'proposal [^ ]* (gitleaks-allow f:10)' d.log | cut -d' ' -f2)
ID11=$(grep -o 'proposal [^ ]* (gitleaks-allow f:11)' d.log | cut -d' ' -f2)
check "SIGTERM: stops with status 0" stop_daemon d
wait $c10 $c11
check_same "the JSON call gets a clear error" "$(cat out10)" \
    "{\"jsonrpc\":\"2.0\",\"id\":10,\"error\":{\"code\":-32603,\"message\":\"supervised is shutting down; proposal $ID10 stays pending\"}}"
check_same "the SSE call gets it as its last event" "$(grep '^data:' out11 | tail -n 1)" \
    "data: {\"jsonrpc\":\"2.0\",\"id\":11,\"error\":{\"code\":-32603,\"message\":\"supervised is shutting down; proposal $ID11 stays pending\"}}"
check_same "both proposals stay pending" "$(npending)" 2

# --- restart: the retry still attaches; a decision made meanwhile is recovered -----
respond "$ID11" approved "while you were away"
check "supervised starts again" start_daemon d2 -s web1
check "the decision made while it was down is committed at start-up" \
    wait_for 10 test -f "$Q/proposals/cur/$ID11:2,RS"
check_same "once" "$(ncommits "$ID11")" 1
call 12 gitleaks-allow '{"fingerprint":"f:10","justification":"again"}' >out12 &
c12=$!
check "a retry of a proposal from before the restart attaches" \
    wait_for 10 grep -q "identical call attached to pending proposal $ID10" d2.log
check_same "no duplicate" "$(npending)" 1
supervise-approve -n "second time" "$ID10" >/dev/null
wait $c12
check_match "and is answered" "$(cat out12)" '"id":12,"result":.*status: approved\\napplied: no: no hook configured\\nnotes: second time'
check "stops with status 0" stop_daemon d2

# --- --drain --------------------------------------------------------------------------
check_same "--drain with nothing to do" "$(supervised --drain -s web1)" ""
ID=$(supervise-propose -s web1 -t gitleaks-allow -j j "f:drain")
supervise-reject -n no "$ID" >/dev/null
check_same "--drain prints each decision" "$(supervised --drain -s web1)" "$(printf '%s\trejected' "$ID")"
check_same "--drain commits it" "$(ncommits "$ID")" 1
done_testing
