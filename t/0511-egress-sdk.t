#!/bin/sh
# End to end with the MCP TypeScript SDK as the agent and mitmdump
# (t/egress.py) as the bottle's egress proxy: a request the proxy refuses,
# egress-block, the operator's approval, the route in the live file (and
# its host on pipelock's), the proxy reloaded on SIGHUP, list-egress-routes
# showing what the proxy enforces before and after, and the request passing.
. "$(dirname "$0")/lib.sh"
if [ ! -d "$T_TOP/t/node_modules/@modelcontextprotocol/sdk" ]; then
	echo "1..0 # SKIP the MCP SDK is not installed (make check runs npm ci in t/)"
	exit 0
fi
plan 14
CLIENT="$T_TOP/t/mcp-client.mjs"
L=$SUPERVISE_ROOT/state/web1

printf '{"routes": [{"host": "pypi.org"}]}\n' >routes.json
supervise-init --routes routes.json web1 >/dev/null

check "mitmdump listens" start_egress "$L/egress/routes.json"
check "supervised starts" start_daemon d -s web1 --egress-proxy "$PROXY"
# What the agent fetches: the sidecar's own /health, as host localhost.
target=http://localhost:$PORT/health
fetch() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -x "$PROXY" "$target"; }
has_pending() { [ "$(supervise-list web1 2>/dev/null | wc -l)" -ge 1 ]; }
done_with() { ! kill -0 "$1" 2>/dev/null; }
sdk_routes() {
	timeout 60 node "$CLIENT" "$URL" call list-egress-routes '{}' |
	    sed -n 's/^result //p'
}

check_same "egress refuses the request" "$(fetch)" 403

timeout 60 node "$CLIENT" "$URL" call egress-block \
    '{"host":"localhost","path_allowlist":["/health"],"justification":"health checks"}' \
    >call 2>&1 &
c=$!
check "egress-block files a proposal" wait_for 20 has_pending
supervise-approve -n "for the checks" "$(supervise-list web1 | cut -f1)" >/dev/null
check "the SDK call returns" wait_for 20 done_with $c
check_match "approved" "$(sed -n 's/^result //p' call)" '"text":"status: approved'
check_match "the route is in the live file" "$(cat "$L/egress/routes.json")" \
    '"host": "localhost"'
check_same "its host is on pipelock's live allowlist" \
    "$(cat "$L/pipelock/allowlist")" localhost

out=$(sdk_routes)
check_match "list-egress-routes answers with the proxy's table" "$out" \
    "source: the egress proxy's live route table"
check_fail "... which has not reloaded: no route for localhost yet" \
    sh -c 'printf "%s" "$1" | grep -q localhost' - "$out"
check_same "egress still refuses" "$(fetch)" 403
kill -HUP "$(cat "$T_DIR/mitm.pid")"
check "mitmdump reloads" wait_for "$T_WAIT" grep -q 'reloaded 2 routes' mitm.log
check_match "list-egress-routes: the route is live" "$(sdk_routes)" \
    '\\"host\\": \\"localhost\\"'
check_same "the request passes" "$(fetch)" 200
done_testing
