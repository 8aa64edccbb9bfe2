#!/bin/sh
# Requests the sidecar refuses before it reads a body, and requests it
# refuses once it has: a Host name it does not answer to (421: DNS
# rebinding) or a malformed one (400), a POST whose body is not
# application/json (415), a request whose id is null (-32600, nothing
# filed); and the log line of a second response to a decided proposal.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 21

supervise-init "$SLUG" >/dev/null 2>&1
start_daemon d -s "$SLUG" --allow-host sidecar.internal ||
    { not_ok "supervised starts"; done_testing; exit 1; }
ping='{"jsonrpc": "2.0", "id": 1, "method": "ping"}'

host_status() {
	curl -s --max-time 20 -o /dev/null -w '%{http_code}' -H "Host: $1" \
	    -H 'Content-Type: application/json' --data-binary "$ping" "$URL"
}
check_same "Host: 127.0.0.1:PORT" "$(host_status "127.0.0.1:$PORT")" 200
check_same "Host: localhost" "$(host_status localhost)" 200
check_same "Host: supervise:9100 (the container alias)" "$(host_status supervise:9100)" 200
check_same "Host: [::1]:PORT" "$(host_status "[::1]:$PORT")" 200
check_same "Host: another address (no rebinding without a name)" \
    "$(host_status 10.0.0.7:9100)" 200
check_same "Host: a name given with --allow-host, any case" \
    "$(host_status SideCar.Internal)" 200
check_same "Host: a name that resolves here but is not ours: 421" \
    "$(host_status attacker.example:$PORT)" 421
check_same "Host: garbage: 400" "$(host_status 'a b')" 400
check_same "Host: a port that is not a number: 400" "$(host_status 'localhost:x')" 400
check_same "/health answers whatever the Host" \
    "$(curl -s --max-time 20 -H 'Host: attacker.example' "http://127.0.0.1:$PORT/health")" ok

type_status() {
	curl -s --max-time 20 -o type.out -w '%{http_code}' "$@" \
	    --data-binary "$ping" "$URL"
}
check_same "POST as a form (curl's default): 415" \
    "$(type_status)" 415
check_match "  saying what it wants" "$(cat type.out)" 'application/json'
check_same "POST as text/plain: 415" \
    "$(type_status -H 'Content-Type: text/plain')" 415
check_same "POST without a Content-Type: 415" \
    "$(type_status -H 'Content-Type:')" 415
check_same "application/json; charset=utf-8 is JSON" \
    "$(type_status -H 'Content-Type: Application/JSON; charset=utf-8')" 200

rpc '{"jsonrpc": "2.0", "id": null, "method": "tools/call", "params": {"name": "egress-block", "arguments": {"host": "null.example", "justification": "x"}}}'
check_match "a tools/call with id null is an invalid request" "$BODY" \
    '"code":-32600.*id must be a string or a number, not null'
check_same "  and files nothing" "$(supervise-list "$SLUG" | wc -l | tr -d ' ')" 0

# A second response to a decided proposal: refused, and said so.
curl -s --max-time 60 -H 'Content-Type: application/json' \
    -H 'Accept: application/json' --data-binary \
    "$(tool_call 5 egress-block '{"host": "late.example", "justification": "x"}')" \
    "$URL" >answer &
cpid=$!
filed() { [ -n "$(supervise-list "$SLUG")" ]; }
wait_for 20 filed
id=$(supervise-list "$SLUG" | cut -f1)
supervise-approve "$id" >/dev/null
wait "$cpid"
check_match "the first decision answers the call" "$(cat answer)" 'status: approved'
# The answer comes before the first response is archived (supervised(8)):
# a second one written before that would take its place in new/.
wait_for 20 test -e "$QUEUE/responses/cur/$id:2,S"
printf '{"status": "rejected", "notes": "late"}\n' >"$QUEUE/responses/tmp/$id"
mv "$QUEUE/responses/tmp/$id" "$QUEUE/responses/new/$id"
logged() { grep -q "refused a second response to $id" d.log; }
check "the late response is logged as what it is" wait_for 20 logged
check_same "  not as a proposal that stays pending" \
    "$(grep -c "$id.*stays pending" d.log)" 0
check "supervised stops cleanly" stop_daemon d
done_testing
