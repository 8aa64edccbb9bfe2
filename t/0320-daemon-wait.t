#!/bin/sh
# supervised: a call waits for the operator, as one JSON body or on an SSE
# stream, and is answered only after the decision is committed.
. "$(dirname "$0")/lib.sh"
plan 39

Q=root/queue/web1
supervise-init web1 >/dev/null 2>&1
# --idle-timeout 1: a call waiting on the operator is never idle.
check "supervised starts" start_daemon d -s web1 --progress 1 --idle-timeout 1

npending() { supervise-list web1 2>/dev/null | wc -l; }
has_pending() { [ "$(npending)" -ge "$1" ]; }
# call ID TOOL ARGS [CURL_ARG...]: a blocking tools/call as one JSON body
call() {
	_id=$1 _tool=$2 _args=$3; shift 3
	curl -s -H "Content-Type: application/json" --max-time 60 -H 'Accept: application/json' "$@" -d \
	    "{\"jsonrpc\":\"2.0\",\"id\":$_id,\"method\":\"tools/call\",\"params\":{\"name\":\"$_tool\",\"arguments\":$_args}}" \
	    "$URL"
}
running() { kill -0 "$1" 2>/dev/null; }
done_with() { ! kill -0 "$1" 2>/dev/null; }
commits_for() {
	git --git-dir=root/audit.git log --format=%s --grep="Proposal-Id: $1" main
}

# --- JSON: approve ------------------------------------------------------------
call 1 egress-block '{"host":"api.github.com","path_allowlist":["/repos"],"justification":"clone"}' >out1 &
c1=$!
check "the call files a proposal" wait_for 10 has_pending 1
ID=$(supervise-list web1 | cut -f1)
check_match "the proposal is a spool file" "$(ls $Q/proposals/new $Q/proposals/cur)" "$ID"
sleep 2
check "the call is still waiting after twice the idle timeout" running $c1
t0=$(date +%s%N)
supervise-approve -n "ok, go" "$ID" >/dev/null
wait $c1
t1=$(date +%s%N)
diag "decision to answer: $(( (t1 - t0) / 1000000 )) ms (supervise-approve included)"
check_same "the call is answered with the decision" "$(cat out1)" \
    '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"status: approved\napplied: no: no hook configured\nnotes: ok, go"}],"isError":false}}'
check_same "the decision is committed to the audit repository" \
    "$(commits_for "$ID")" "web1: approve egress-block api.github.com"
check_match "the route is merged into the bottle's routes" \
    "$(git --git-dir=root/audit.git show main:web1/egress/routes.json)" \
    '"host": "api.github.com"'
# Archiving and flagging come after the answer (supervise-spool(5)).
check "the response is archived" \
    wait_for "$T_WAIT" test -f "$Q/responses/cur/$ID:2,S"
check "the proposal is flagged decided" \
    wait_for "$T_WAIT" test -f "$Q/proposals/cur/$ID:2,RS"

# --- JSON: rejected by a hand-written response file -------------------------
call 2 gitleaks-allow '{"fingerprint":"abc:config/app.env:generic-api-key:3","justification":"fixture"}' >out2 &
c2=$!
check "a second proposal" wait_for 10 has_pending 1
ID=$(supervise-list web1 | cut -f1)
printf '{"status": "rejected", "notes": "not a fixture"}\n' >"$Q/responses/tmp/$ID" &&
    mv "$Q/responses/tmp/$ID" "$Q/responses/new/"
wait $c2
check_same "a rejection has isError true" "$(cat out2)" \
    '{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"status: rejected\nnotes: not a fixture"}],"isError":true}}'
check_same "the rejection is committed" "$(commits_for "$ID")" \
    "web1: reject gitleaks-allow abc:config/app.env:generic-api-key:3"

# --- a malformed response leaves the call waiting -----------------------------
call 3 pipelock-block '{"failed_url":"https://pypi.org/simple/x","justification":"pip"}' >out3 &
c3=$!
check "a third proposal" wait_for 10 has_pending 1
ID=$(supervise-list web1 | cut -f1)
printf '{"status": "maybe"}\n' >"$Q/responses/tmp/$ID" &&
    mv "$Q/responses/tmp/$ID" "$Q/responses/new/"
check "the malformed response is moved aside" wait_for 10 sh -c "ls $Q/responses/bad | grep -q '^$ID~.*\.err\$'"
check "the daemon says why" wait_for 5 grep -q "refused the response to $ID" d.log
check "the call keeps waiting" running $c3
check_same "the proposal stays pending" "$(supervise-list web1 | cut -f1)" "$ID"
printf 'FROM debian\n' >final
supervise-approve -n "edited" "$ID" >/dev/null
wait $c3
check_match "then the real decision answers it" "$(cat out3)" \
    '"text":"status: approved\\napplied: no: no hook configured\\nnotes: edited"\}\],"isError":false'

# --- modified -------------------------------------------------------------------
call 4 capability-block '{"dockerfile":"FROM debian\nRUN apt-get install -y jq\n","justification":"jq"}' >out4 &
c4=$!
check "a fourth proposal" wait_for 10 has_pending 1
ID=$(supervise-list web1 | cut -f1)
printf 'FROM debian\nRUN apt-get install -y --no-install-recommends jq\n' >final
supervise-approve -f final -n "slimmer" "$ID" >/dev/null
wait $c4
check_same "a modified decision says so" "$(cat out4)" \
    '{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"status: modified\napplied: no: no hook configured\nnotes: slimmer\nthe operator modified your proposal before approving; the final config is the operator'"'"'s version"}],"isError":false}}'
check_same "the final Dockerfile is committed" \
    "$(git --git-dir=root/audit.git show main:web1/capability/Dockerfile)" \
    "$(cat final)"

# --- SSE with a progress token ---------------------------------------------------
curl -sN -H "Content-Type: application/json" --max-time 60 -H 'Accept: application/json, text/event-stream' \
    -D sse1.hdr -d '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"_meta":{"progressToken":"tok-5"},"name":"egress-allow","arguments":{"host":"registry.npmjs.org","justification":"npm"}}}' \
    "$URL" >sse1 &
c5=$!
check "an SSE call proposes" wait_for 10 has_pending 1
ID=$(supervise-list web1 | cut -f1)
check_match "its current_file_hash is the blob of the routes on main" \
    "$(cat "$Q/proposals/new/$ID")" \
    "\"current_file_hash\": \"$(git --git-dir=root/audit.git rev-parse main:web1/egress/routes.json)\""
check "the SSE headers arrive at once" wait_for 5 grep -qs '^Content-Type: text/event-stream' sse1.hdr
check "progress arrives while waiting" wait_for 10 sh -c 'grep -c notifications/progress sse1 | grep -q "^[3-9]"'
ID=$(supervise-list web1 | cut -f1)
supervise-approve -n "npm ok" "$ID" >/dev/null
check "the stream ends after the answer" wait_for 10 done_with $c5
progress=$(grep -o '"progress":[0-9]*' sse1 | cut -d: -f2 | tr '\n' ' ')
check_match "progress counts up" "$progress" '^1 2 3 '
check_match "progress names the token and the wait" "$(grep -m1 notifications/progress sse1)" \
    '^data: \{"jsonrpc":"2.0","method":"notifications/progress","params":\{"progressToken":"tok-5","progress":1,"message":"waiting for operator \(1s\)"\}\}$'
check_same "the last event is the result, nothing after it" \
    "$(grep '^data:' sse1 | tail -n 1)" \
    'data: {"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"status: approved\napplied: no: no hook configured\nnotes: npm ok"}],"isError":false}}'
check_same "the SSE answer is committed" "$(commits_for "$ID")" \
    "web1: approve egress-allow registry.npmjs.org"

# An answer far longer than the stream's write block arrives whole.
curl -sN -H "Content-Type: application/json" --max-time 60 -H 'Accept: text/event-stream' -d \
    '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"pipelock-block","arguments":{"failed_url":"https://long.example.org/x","justification":"long notes"}}}' \
    "$URL" >sse7 &
c7=$!
check "a call for the long answer proposes" wait_for 10 has_pending 1
ID=$(supervise-list web1 | cut -f1)
notes=$(awk 'BEGIN { for (i = 0; i < 400; i++) printf "note%04d ", i }')
supervise-approve -n "$notes" "$ID" >/dev/null
check "the long answer's stream ends" wait_for 10 done_with $c7
check_same "the long answer is one event, whole" \
    "$(grep '^data:' sse7 | tail -n 1)" \
    "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"status: approved\\napplied: no: no hook configured\\nnotes: $notes\"}],\"isError\":false}}"

# --- SSE without a progress token: comments keep the stream alive -------------------
curl -sN -H "Content-Type: application/json" --max-time 60 -H 'Accept: text/event-stream' \
    -d '{"jsonrpc":"2.0","id":"six","method":"tools/call","params":{"name":"gitleaks-allow","arguments":{"fingerprint":"f:6","justification":"j"}}}' \
    "$URL" >sse2 &
c6=$!
check "comments arrive while waiting" wait_for 10 grep -q '^: waiting for operator (1s)$' sse2
ID=$(supervise-list web1 | cut -f1)
check_match "with no .gitleaksignore yet, current_file_hash is the empty blob" \
    "$(cat "$Q/proposals/new/$ID")" \
    '"current_file_hash": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"'

supervise-reject -n "no" "$ID" >/dev/null
check "the stream ends" wait_for 10 done_with $c6
check_same "no progress notification without a token" \
    "$(grep -c notifications/progress sse2)" 0
check_match "the rejection ends the stream" "$(tail -n 2 sse2)" \
    '"id":"six","result":\{"content":\[\{"type":"text","text":"status: rejected\\nnotes: no"\}\],"isError":true\}\}'

check "stops with status 0" stop_daemon d
done_testing
