#!/bin/sh
# supervised with the official MCP TypeScript SDK (t/mcp-client.mjs): the
# client an agent really uses connects, lists the tools, and calls one that
# blocks until the operator decides, with progress notifications meanwhile.
. "$(dirname "$0")/lib.sh"
if [ ! -d "$T_TOP/t/node_modules/@modelcontextprotocol/sdk" ]; then
	echo "1..0 # SKIP the MCP SDK is not installed (make check runs npm ci in t/)"
	exit 0
fi
plan 17
CLIENT="$T_TOP/t/mcp-client.mjs"
Q=root/queue/web1
supervise-init web1 >/dev/null 2>&1
check "supervised starts" start_daemon d -s web1 --progress 1

has_pending() { [ "$(supervise-list web1 2>/dev/null | wc -l)" -ge 1 ]; }
done_with() { ! kill -0 "$1" 2>/dev/null; }
ncommits() {
	git --git-dir=root/audit.git log --format=%s --grep="Proposal-Id: $1" main | wc -l
}

timeout 60 node "$CLIENT" "$URL" list >list 2>&1
check_match "the SDK connects and negotiates 2025-11-25" "$(head -n 1 list)" \
    '^connected supervise 2025-11-25$'
check_same "the SDK lists the tools" "$(sed -n 's/^tool //p' list | tr '\n' ' ')" \
    "egress-block egress-allow list-egress-routes pipelock-block capability-block gitleaks-allow proposal-status "

timeout 60 node "$CLIENT" "$URL" call egress-block \
    '{"host":"api.github.com","path_allowlist":["/repos"],"justification":"clone the repo"}' \
    progress >call1 2>&1 &
c1=$!
check "the call files a proposal" wait_for 20 has_pending
check "progress notifications reach the SDK while it waits" \
    wait_for 20 sh -c '[ $(grep -c "^progress " call1) -ge 2 ]'
ID=$(supervise-list web1 | cut -f1)
supervise-approve -n "go ahead" "$ID" >/dev/null
check "the SDK call returns" wait_for 20 done_with $c1
check_same "the SDK gets the decision" "$(sed -n 's/^result //p' call1)" \
    '{"content":[{"type":"text","text":"status: approved\napplied: no: no hook configured\nnotes: go ahead"}],"isError":false}'
check_match "progress counted up in the SDK" \
    "$(grep '^progress ' call1 | head -n 2 | tr '\n' ' ')" \
    '^progress 1 waiting for operator \(1s\) progress 2 waiting for operator \(2s\) $'
check_same "the decision is committed" "$(ncommits "$ID")" 1

# Without progress: the SDK sends no token; SSE comments keep it alive
# through a proxy that drops connections idle for 2 s (tinyproxy, as a
# reverse proxy), while a plain JSON call through it is dropped.
tp_port=$(perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(
    Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0)->sockport')
cat >tp.conf <<EOF
Port $tp_port
Listen 127.0.0.1
Timeout 2
LogLevel Warning
MaxClients 20
ReversePath "/" "http://127.0.0.1:$PORT/"
ReverseOnly Yes
EOF
tinyproxy -d -c tp.conf >tp.log 2>&1 &
echo $! >"$T_DIR/tp.pid"
TP_URL="http://127.0.0.1:$tp_port/mcp"
proxied() { [ "$(curl -s --max-time 5 "http://127.0.0.1:$tp_port/health")" = ok ]; }
check "tinyproxy relays to supervised" wait_for "$T_WAIT" proxied
timeout 60 node "$CLIENT" "$TP_URL" call gitleaks-allow \
    '{"fingerprint":"deadbeef:test/fixtures/key.pem:private-key:1","justification":"test fixture"}' \
    >call2 2>&1 &
c2=$!
check "a second call files a proposal" wait_for 20 has_pending
ID=$(supervise-list web1 | cut -f1)
curl -s --max-time 60 -H 'Accept: application/json' \
    -H 'Content-Type: application/json' -d \
    '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"egress-block","arguments":{"host":"idle.example","justification":"j"}}}' \
    "$TP_URL" >idle.out 2>&1 &
idle=$!
check "a JSON call waiting through the proxy is dropped as idle" \
    wait_for "$T_WAIT" done_with $idle
check_same "  with no answer" "$(cat idle.out)" ""
supervise-reject -n "rotate it instead" "$ID" >/dev/null
check "the SDK call returns" wait_for 20 done_with $c2
check_same "a rejection reaches the SDK with isError" "$(sed -n 's/^result //p' call2)" \
    '{"content":[{"type":"text","text":"status: rejected\nnotes: rotate it instead"}],"isError":true}'
check_same "the rejection is committed" "$(ncommits "$ID")" 1
check "stops with status 0" stop_daemon d
done_testing
