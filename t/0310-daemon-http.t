#!/bin/sh
# supervised over HTTP: every protocol edge and error path, with curl
# against the real daemon on a loopback port.
. "$(dirname "$0")/lib.sh"
plan 49

supervise-init web1 >/dev/null 2>&1
check "supervised starts" start_daemon d -s web1 --idle-timeout 2

# status BODYFILE [CURL_ARG...]: the HTTP status of a request to $URL
status() {
	_f=$1; shift
	curl -s -H "Content-Type: application/json" --max-time 20 -o "$_f" -w '%{http_code}' "$@"
}
rpc() { mcp_post -d "$1"; }

check_same "GET /health" "$(curl -s "http://127.0.0.1:$PORT/health")" "ok"
check_same "GET /mcp is 405" "$(status b "$URL")" 405
check_same "GET / is 405" "$(status b "http://127.0.0.1:$PORT/")" 405
check_same "DELETE /mcp is 405" "$(status b -X DELETE "$URL")" 405
check_same "unknown path is 404" "$(status b -X POST -d '{}' \
    "http://127.0.0.1:$PORT/nope")" 404
check_same "POST / serves MCP" "$(curl -s -H "Content-Type: application/json" -d \
    '{"jsonrpc":"2.0","id":1,"method":"ping"}' "http://127.0.0.1:$PORT/")" \
    '{"jsonrpc":"2.0","id":1,"result":{}}'
check_same "POST with neither length nor chunked is 411" \
    "$(status b -X POST "$URL")" 411
head -c 1048577 /dev/zero | tr '\0' ' ' >big
check_same "Content-Length over 1 MiB is 413" \
    "$(status b --data-binary @big "$URL")" 413
check_same "chunked body over 1 MiB is 413" \
    "$(status b -H 'Transfer-Encoding: chunked' --data-binary @big "$URL")" 413
check_match "413 says why" "$(cat b)" "too large"
check_same "chunked body within the limit is served" \
    "$(curl -s -H "Content-Type: application/json" -H 'Transfer-Encoding: chunked' \
    -d '{"jsonrpc":"2.0","id":2,"method":"ping"}' "$URL")" \
    '{"jsonrpc":"2.0","id":2,"result":{}}'
{ printf '{"jsonrpc":"2.0","id":3,"method":"ping","params":{"pad":"'
  head -c 1048000 /dev/zero | tr '\0' 'x'; printf '"}}'; } >near
check_same "a body just under 1 MiB is served" \
    "$(status b --data-binary @near "$URL")" 200
check_same "unsupported MCP-Protocol-Version is 400" \
    "$(status b -H 'MCP-Protocol-Version: 1999-01-01' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 400
check_match "400 names the supported versions" "$(cat b)" \
    '"code":-32600,"message":"unsupported MCP-Protocol-Version .1999-01-01. \(supported: 2025-11-25'
for v in 2025-11-25 2025-06-18 2025-03-26 2024-11-05; do
	check_same "MCP-Protocol-Version $v accepted" \
	    "$(status b -H "MCP-Protocol-Version: $v" \
	    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 200
done
check_same "foreign Origin is 403" "$(status b -H 'Origin: http://evil.example' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 403
check_same "look-alike Origin is 403" \
    "$(status b -H 'Origin: http://localhost.evil.example' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 403
check_same "Origin null is 403" "$(status b -H 'Origin: null' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 403
check_same "loopback Origin allowed" \
    "$(status b -H 'Origin: http://localhost:6274' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 200
check_same "127.0.0.1 Origin allowed" \
    "$(status b -H 'Origin: http://127.0.0.1:8080' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 200

check_match "-32700 on bad JSON" "$(rpc '{"jsonrpc":')" \
    '^\{"jsonrpc":"2.0","id":null,"error":\{"code":-32700,"message":"parse error: '
check_same "-32600 on a batch" "$(rpc '[{"jsonrpc":"2.0","id":1,"method":"ping"}]')" \
    '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"request must be a JSON object"}}'
check_same "-32600 on jsonrpc 1.0" "$(rpc '{"jsonrpc":"1.0","id":4,"method":"ping"}')" \
    '{"jsonrpc":"2.0","id":4,"error":{"code":-32600,"message":"jsonrpc field must be '"'2.0'"'"}}'
check_same "-32601 on server/discover (Claude Code's probe)" \
    "$(rpc '{"jsonrpc":"2.0","id":5,"method":"server/discover"}')" \
    '{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"method not found: server/discover"}}'
check_same "-32602 on params that are not an object" \
    "$(rpc '{"jsonrpc":"2.0","id":6,"method":"tools/list","params":[]}')" \
    '{"jsonrpc":"2.0","id":6,"error":{"code":-32602,"message":"params must be an object"}}'
check_same "-32602 on an unknown tool" \
    "$(rpc '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"rm-rf"}}')" \
    '{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"unknown tool '"'rm-rf'"'"}}'
check_same "-32602 with the seed's message" \
    "$(rpc '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"egress-block","arguments":{"justification":"j"}}}')" \
    '{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"egress-block: '"'host'"' is required and must be a non-empty string"}}'
check_same "-32602 on a bad URL" \
    "$(rpc '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"pipelock-block","arguments":{"failed_url":"ftp://x.example/","justification":"j"}}}')" \
    '{"jsonrpc":"2.0","id":9,"error":{"code":-32602,"message":"pipelock-block: failed_url must start with http:// or https:// (got '"'ftp://x.example/'"')"}}'

check_same "a notification gets 202" "$(status b \
    -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$URL")" 202
check_same "202 has no body" "$(cat b)" ""

curl -s -H "Content-Type: application/json" -D hdr -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}' "$URL" >init
check_match "initialize echoes 2025-06-18" "$(cat init)" \
    '"result":\{"protocolVersion":"2025-06-18","capabilities":\{"tools":\{"listChanged":false\}\},"serverInfo":\{"name":"supervise"'
check_match "initialize assigns a session" "$(cat hdr)" '^Mcp-Session-Id: [0-9a-f]{32}'
check_match "initialize with an unknown version gets the newest" \
    "$(rpc '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2030-01-01"}}')" \
    '"protocolVersion":"2025-11-25"'

tools=$(rpc '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' |
    grep -o '"name":"[a-z-]*","description"' | sed 's/"name":"//; s/",.*//' |
    tr '\n' ' ')
check_same "tools/list offers DESIGN's tools" "$tools" \
    "egress-block egress-allow list-egress-routes pipelock-block capability-block gitleaks-allow proposal-status "

got=$(rpc '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list-egress-routes","arguments":{}}}')
check_match "list-egress-routes without a proxy: the live file's routes" "$got" \
    '^\{"jsonrpc":"2\.0","id":3,"result":\{"content":\[\{"type":"text","text":"\{\\"routes\\": \[\]\}\\n"\},\{"type":"text","text":"source: the live file [^"]*/state/web1/egress/routes\.json \(absent: no routes\), which'

# A call waiting on the operator is not idle: an SSE stream with no
# traffic (no progress for 25 s) outlives --idle-timeout.  The event that
# shows the timeout has passed for it: a connection opened after it, and
# idle since, is dropped (slowloris: nothing is waiting on that one).
curl -sN -H "Content-Type: application/json" --max-time 30 -H 'Accept: text/event-stream' -d \
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"gitleaks-allow","arguments":{"fingerprint":"f:idle","justification":"j"}}}' \
    "$URL" >idle &
c=$!
wait_for 10 sh -c 'supervise-list web1 | grep -q .'
check "a half-sent request is dropped after the idle timeout" perl -MIO::Socket::INET -e '
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or exit 2;
	print $s "POST /mcp HTTP/1.1\r\nHost: x\r\n";
	my $t = time; local $SIG{ALRM} = sub { exit 1 }; alarm 10;
	my $buf; my $n = sysread($s, $buf, 100);
	exit((time - $t >= 1 && !$n) ? 0 : 1);' "$PORT"
check "a waiting SSE call outlives the idle timeout" kill -0 $c
supervise-list web1 | cut -f1 | supervise-approve >/dev/null
wait $c
check_match "and is answered" "$(tail -n 2 idle)" '"text":"status: approved\\napplied: no: no hook configured"'

check "stops on SIGTERM with status 0" stop_daemon d

# A bearer token: required on the MCP endpoint, not on /health.
echo 's3cret' >token
check "supervised starts with a token file" start_daemon t -s web1 --token-file token
check_same "no token is 401" "$(status b -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 401
check_same "a wrong token is 401" "$(status b -H 'Authorization: Bearer nope' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 401
check_same "the token is accepted" "$(status b -H 'Authorization: Bearer s3cret' \
    -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$URL")" 200
check_same "/health needs no token" "$(curl -s "http://127.0.0.1:$PORT/health")" ok
check "stops with status 0" stop_daemon t
done_testing
