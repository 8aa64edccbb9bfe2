#!/bin/sh
# supervised --max-wait: a call stops waiting with a result that names its
# proposal, and proposal-status resumes the wait.
. "$(dirname "$0")/lib.sh"
plan 22

Q=root/queue/web1
supervise-init web1 >/dev/null 2>&1
check "supervised starts" start_daemon d -s web1 --max-wait 2 --progress 1

call() {
	_id=$1 _tool=$2 _args=$3; shift 3
	curl -s -H "Content-Type: application/json" --max-time 60 -H 'Accept: application/json' "$@" -d \
	    "{\"jsonrpc\":\"2.0\",\"id\":$_id,\"method\":\"tools/call\",\"params\":{\"name\":\"$_tool\",\"arguments\":$_args}}" \
	    "$URL"
}
pending_text() {
	printf '%s' "{\"jsonrpc\":\"2.0\",\"id\":$1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"status: pending\\nproposal_id: $2\\nThe operator has not decided yet; the proposal stays queued. Call proposal-status with this proposal_id to keep waiting for the decision.\"}],\"isError\":false}}"
}

t0=$(date +%s)
call 1 egress-block '{"host":"slow.example","justification":"j"}' >out1
t1=$(date +%s)
ID=$(supervise-list web1 | cut -f1)
check_same "after --max-wait the call says pending and names the proposal" \
    "$(cat out1)" "$(pending_text 1 "$ID")"
check_match "it waited about --max-wait seconds" "$((t1 - t0))" '^[23]$'
check_same "the proposal stays pending" "$(supervise-list web1 | cut -f1)" "$ID"

check_same "proposal-status with wait_seconds 0 answers at once" \
    "$(call 2 proposal-status "{\"proposal_id\":\"$ID\",\"wait_seconds\":0}")" \
    "$(pending_text 2 "$ID")"
check_match "proposal-status on an unknown id" \
    "$(call 3 proposal-status '{"proposal_id":"1.M1P1Q1Rff.nowhere"}')" \
    '"error":\{"code":-32602,"message":"proposal-status: no proposal .1\.M1P1Q1Rff\.nowhere. in bottle web1"\}'

supervise-reject -n "not now" "$ID" >/dev/null
check "a rejection with no caller waiting is consumed" \
    wait_for "$T_WAIT" test -f "$Q/proposals/cur/$ID:2,RS"

# SSE: the pending result is the stream's last event.
curl -sN -H "Content-Type: application/json" --max-time 60 -H 'Accept: text/event-stream' \
    -d '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"_meta":{"progressToken":6},"name":"capability-block","arguments":{"dockerfile":"FROM alpine\n","justification":"j"}}}' \
    "$URL" >sse6
ID=$(supervise-list web1 | cut -f1)
check_same "on SSE, the pending result ends the stream" \
    "$(grep '^data:' sse6 | tail -n 1)" "data: $(pending_text 6 "$ID")"
check_match "after progress" "$(grep -c notifications/progress sse6)" '^[1-3]$'

t0=$(date +%s)
curl -sN -H "Content-Type: application/json" --max-time 60 -H 'Accept: text/event-stream' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"proposal-status\",\"arguments\":{\"proposal_id\":\"$ID\",\"wait_seconds\":600}}}" \
    "$URL" >sse7
t1=$(date +%s)
check_match "wait_seconds is capped by --max-wait" "$((t1 - t0))" '^[23]$'
check_same "proposal-status on SSE says pending" "$(grep '^data:' sse7 | tail -n 1)" \
    "data: $(pending_text 7 "$ID")"

printf 'FROM alpine\nRUN apk add git\n' >final
supervise-approve -f final -n "with git" "$ID" >/dev/null
check "the decision is committed with no caller waiting" \
    wait_for 10 test -f "$Q/proposals/cur/$ID:2,RS"
check_same "proposal-status reports a modified decision" \
    "$(call 8 proposal-status "{\"proposal_id\":\"$ID\"}")" \
    '{"jsonrpc":"2.0","id":8,"result":{"content":[{"type":"text","text":"status: modified\napplied: no: no hook configured\nnotes: with git\nthe operator modified your proposal before approving; the final config is the operator'"'"'s version"}],"isError":false}}'
check_match "bad wait_seconds is -32602" \
    "$(call 9 proposal-status "{\"proposal_id\":\"$ID\",\"wait_seconds\":\"x\"}")" \
    '"code":-32602,"message":"proposal-status: .wait_seconds. must be a non-negative integer"'
check "stops with status 0" stop_daemon d

# proposal-status waits for the decision: approve once the daemon says the
# call waits, and see the decision answer it.  Under a --max-wait long
# enough that the approval surely comes first.
check "supervised starts with --max-wait 600" start_daemon d2 -s web1 \
    --max-wait 600
ID=$(supervise-propose -s web1 -t egress-block -j j '{"host": "later.example"}')
call 4 proposal-status "{\"proposal_id\":\"$ID\"}" >out4 &
c4=$!
check "proposal-status waits on the pending proposal" wait_for "$T_WAIT" \
    grep -q "proposal-status call waiting on $ID\$" d2.log
supervise-approve -n "now" "$ID" >/dev/null
wait $c4
check_same "proposal-status is answered by the decision" "$(cat out4)" \
    '{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"status: approved\napplied: no: no hook configured\nnotes: now"}],"isError":false}}'
check "the decision answered the waiting call" \
    grep -q "$ID approved, applied: no: no hook configured; answered 1 waiting call\$" d2.log
check_same "proposal-status on a decided proposal answers from the audit record" \
    "$(call 5 proposal-status "{\"proposal_id\":\"$ID\",\"wait_seconds\":30}")" \
    '{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"status: approved\napplied: no: no hook configured\nnotes: now"}],"isError":false}}'
check_same "and does not wait (no second waiting call)" \
    "$(grep -c "proposal-status call waiting on $ID\$" d2.log)" 1
check "stops with status 0" stop_daemon d2
done_testing
