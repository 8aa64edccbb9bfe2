#!/bin/sh
# Hostile JSON-RPC: every malformed request gets a clear error, the sidecar
# stays up, and nothing reaches the spool.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 44

supervise-init "$SLUG" >/dev/null 2>&1
start_daemon d -s "$SLUG" || { not_ok "supervised starts"; done_testing; exit 1; }

# expect NAME HTTP-CODE BODY-REGEX: the last answer, and the daemon alive.
expect() {
	check_match "$1: HTTP $2" "$HTTP" "^$2\$"
	check_match "$1: answer" "$BODY" "$3"
	check "$1: supervised still answers" alive
}

rpc '{"jsonrpc": "2.0", "id": 1, "method": '
expect "truncated JSON" 200 '"code":-32700'

rpc '[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]'
expect "a batch (not an object)" 200 '"code":-32600'

rpc '{"jsonrpc": "2.0", "id": 1, "method": 5}'
expect "method of the wrong type" 200 '"code":-32600,"message":"method must be a string"'

rpc '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1]}'
expect "params of the wrong type" 200 '"code":-32602'

rpc "$(tool_call 1 egress-block '{"host": 42, "justification": "x"}')"
expect "a host of the wrong type" 200 '"code":-32602,"message":"egress-block: .host. is required'

rpc "$(tool_call 1 proposal-status '{"proposal_id": "../../../etc/passwd"}')"
expect "a proposal id with a path in it" 200 '"code":-32602.*proposal id'

rpc "$(tool_call 1 ../../bin/sh '{"justification": "x"}')"
expect "a tool name with a path in it" 200 '"code":-32602.*unknown tool'

# Over the 1 MiB limit, with a length and chunked.
head -c 2000000 /dev/zero | tr '\0' ' ' >big.json
rpc_post big.json
expect "a 2 MB body" 413 'too large'
rpc_post big.json -H 'Transfer-Encoding: chunked'
expect "a 2 MB chunked body" 413 'too large'

awk 'BEGIN { for (i = 0; i < 100000; i++) printf "["; }' >deep.json
rpc_post deep.json
expect "100000 nested arrays" 200 '"code":-32700.*depth'

printf '{"jsonrpc": "2.0", "id": 1, "method": "p\377\376ng"}' >badutf8.json
rpc_post badutf8.json
expect "invalid UTF-8" 200 '"code":-32700'

printf '{"jsonrpc": "2.0", "id": 1, "method": "pi\000ng"}' >nul.json
rpc_post nul.json
expect "a NUL byte" 200 '"code":-32700'

rpc "$(tool_call 1 capability-block '{"dockerfile": "FROM x\u0000RUN evil", "justification": "x"}')"
expect "an escaped NUL in an argument" 200 '"code":-32602|"code":-32700'

# jansson's message for this invalid escape ends inside a UTF-8 sequence.
printf '{"jsonrpc": "2.0", "id": 1, "method": "\\u00\326\235"}' >partial.json
rpc_post partial.json
expect "a parse error that quotes half a character" 200 '"code":-32700'

check_same "nothing reached the spool" \
    "$(find "$QUEUE/proposals" -type f | grep -c .)" 0
check "supervised stops cleanly" stop_daemon d
done_testing
