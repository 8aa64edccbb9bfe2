#!/bin/sh
# Request headers are held in each connection's small memory pool (see
# supervised(8), Limits), which is most of what a waiting call costs.
# What an MCP client sends (the headers of the TypeScript SDK on Node,
# with a bearer token, a session and a long user agent and trace header
# besides) is answered, as JSON and on an SSE stream; one header too
# large, or a flood of small ones, gets 431, and the sidecar answers after.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 8

supervise-init "$SLUG" >/dev/null 2>&1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
start_daemon d -s "$SLUG" --token-file token ||
    { not_ok "supervised starts"; done_testing; exit 1; }
tok=$(cat token)
sid=0123456789abcdef0123456789abcdef
ua="claude-code/2.0.14 (external, cli) node/22.11.0 linux-x64 $(printf '%060d' 0)"
trace=$(printf 'trace-%0150d' 7)

# sdk SECONDS OUT ACCEPT BODY: POST with the SDK's headers (curl adds
# Host and Content-Length): 14 lines, about 720 bytes.
sdk() {
	curl -s --max-time "$1" -o "$2" -w '%{http_code}' \
	    -H 'Connection: keep-alive' -H 'Content-Type: application/json' \
	    -H "Accept: $3" -H 'Accept-Language: *' -H 'Sec-Fetch-Mode: cors' \
	    -H "User-Agent: $ua" -H 'Accept-Encoding: gzip, deflate' \
	    -H "Authorization: Bearer $tok" -H "Mcp-Session-Id: $sid" \
	    -H 'MCP-Protocol-Version: 2025-06-18' -H "X-Agent-Trace: $trace" \
	    --data-binary "$4" "$URL"
}
check_same "an SDK client's headers, and more: answered (JSON)" \
    "$(sdk 20 ping.out application/json '{"jsonrpc": "2.0", "id": 1, "method": "ping"}')" 200
check_match "  with the answer" "$(cat ping.out)" '"result":[{][}]'
call='{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "egress-block", "arguments": {"host": "headers.example.com", "justification": "x"}}}'
# The stream stays open while the call waits: curl gives up after 3 s.
code=$(sdk 3 sse.out 'application/json, text/event-stream' "$call")
check_same "  and on an SSE stream that waits" "$code" 200
check_match "  which says so" "$(cat sse.out)" '^: waiting for operator'
check_same "  the call was filed" "$(supervise-list "$SLUG" | grep -c headers.example.com)" 1

ping='{"jsonrpc": "2.0", "id": 1, "method": "ping"}'
big=$(printf '%04096d' 0)
check_same "a 4 KiB header: 431" "$(curl -s --max-time 20 -o /dev/null \
    -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "X-Big: $big" --data-binary "$ping" "$URL")" 431
i=0 flood=
while [ $i -lt 100 ]; do flood="$flood -H X-F$i:$i"; i=$((i + 1)); done
# shellcheck disable=SC2086
check_same "100 small headers: 431" "$(curl -s --max-time 20 -o /dev/null \
    -w '%{http_code}' -H 'Content-Type: application/json' $flood \
    --data-binary "$ping" "$URL")" 431
check "the sidecar answers after" alive
stop_daemon d
done_testing
