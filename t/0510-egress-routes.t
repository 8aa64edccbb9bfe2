#!/bin/sh
# list-egress-routes asks the egress proxy (--egress-proxy): mitmdump with
# t/egress.py as the bottle's egress, on a loopback port, enforcing the
# live routes.json and answering GET http://_egress.local/allowlist.  The
# table comes from the proxy, not the file, until the proxy reloads; a
# proxy that is not there, or never answers, is an error within the
# timeout, and the sidecar answers other calls meanwhile.  Without the
# address it answers from the live file and says so.
. "$(dirname "$0")/lib.sh"
plan 25

L=$SUPERVISE_ROOT/state/web1
# content[I].text of a tools/call answer, or isError.
text() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{
	const r=JSON.parse(s).result; process.stdout.write(process.argv[1]==="err"?
	String(r.isError):r.content[+process.argv[1]].text)})' "$1"; }
routes() { mcp_post -d '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list-egress-routes","arguments":{}}}'; }
# JSON text in one canonical form, to compare.
canon() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(JSON.parse(s))))'; }
ms() { date +%s%3N; }

printf '{"routes": [{"host": "pypi.org"}]}\n' >routes.json
supervise-init --routes routes.json web1 >/dev/null

check "mitmdump listens" start_egress "$L/egress/routes.json"
check "supervised starts with --egress-proxy" start_daemon d -s web1 --egress-proxy "$PROXY"
DPORT=$PORT

via() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 -x "$PROXY" "$1"; }
check_same "the proxy refuses a host without a route" \
    "$(via "http://localhost:$DPORT/health")" 403

got=$(routes)
check_same "the answer is not an error" "$(printf '%s' "$got" | text err)" false
check_same "the table is the proxy's own" \
    "$(printf '%s' "$got" | text 0 | canon)" \
    "$(curl -s --max-time 10 -x "$PROXY" http://_egress.local/allowlist | canon)"
check_match "and says where it came from" "$(printf '%s' "$got" | text 1)" \
    "^source: the egress proxy's live route table, GET http://_egress.local/allowlist via $PROXY\$"

# The live file changes (as an approval publishes it); the proxy has not
# reloaded, and the tool tells what the proxy enforces.
printf '{"routes": [{"host": "localhost", "path_allowlist": ["/health"]}, {"host": "pypi.org"}]}\n' \
    >"$L/egress/routes.json.new" && mv "$L/egress/routes.json.new" "$L/egress/routes.json"
check_fail "before SIGHUP: not in the proxy's table" \
    sh -c 'printf "%s" "$1" | grep -q localhost' - "$(routes | text 0)"
kill -HUP "$(cat "$T_DIR/mitm.pid")"
check "mitmdump reloads on SIGHUP" wait_for "$T_WAIT" grep -q 'reloaded 2 routes' mitm.log
check_match "after SIGHUP: in the proxy's table" "$(routes | text 0)" '"host": "localhost"'
check_same "the proxy lets the route's path through" \
    "$(curl -s --max-time 10 -x "$PROXY" "http://localhost:$DPORT/health")" ok
check_same "and refuses a path outside it" "$(via "http://localhost:$DPORT/mcp")" 403
check "supervised stops" stop_daemon d

# No proxy there: a port that was free a moment ago.
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_daemon d2 -s web1 --egress-proxy "http://127.0.0.1:$DEAD"
got=$(routes)
check_same "no proxy: an error" "$(printf '%s' "$got" | text err)" true
check_match "that names what could not be reached" "$(printf '%s' "$got" | text 0)" \
    "^list-egress-routes: could not reach 'http://_egress.local/allowlist' via 'http://127.0.0.1:$DEAD': "
check "stops cleanly" stop_daemon d2

# A proxy that accepts and never answers: bounded by the timeout, and
# the sidecar's spool thread answers another call meanwhile.
python3 -c 'import os,socket,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(16); s.settimeout(120)
open(sys.argv[1]+".tmp","w").write("%d\n" % s.getsockname()[1])
os.rename(sys.argv[1]+".tmp", sys.argv[1]); held=[]
while True:
	held.append(s.accept()); open(sys.argv[2],"a").write("accepted\n")' \
    "$T_DIR/hang.port" "$T_DIR/hang.log" &
echo $! >"$T_DIR/hang.pid"
wait_for "$T_WAIT" test -s "$T_DIR/hang.port"
start_daemon d3 -s web1 --egress-proxy "http://127.0.0.1:$(cat "$T_DIR/hang.port")"
t0=$(ms)
routes >hung &
hung=$!
check "the sidecar connects to it" wait_for 10 test -s "$T_DIR/hang.log"
tm=$(ms)
st=$(mcp_post -d '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"proposal-status","arguments":{"proposal_id":"1795400000.M1P1Q1.none"}}}')
t1=$(ms)
wait $hung
t2=$(ms)
check_match "meanwhile another call is answered" "$st" "no proposal '1795400000.M1P1Q1.none'"
check "... at once (under 2 s)" test $((t1 - tm)) -lt 2000
check_match "the hung proxy: an error after the timeout" "$(text 0 <hung)" \
    "^list-egress-routes: could not reach .*([Tt]ime(d)? ?out|Timeout)"
# Slack for a loaded machine, more under valgrind (SUPERVISE_TEST_WAIT).
bound=$((T_WAIT > 30 ? 20000 : 10000))
check "... of 5 s, not more than $((bound / 1000)) s" \
    test $((t2 - t0)) -ge 4500 -a $((t2 - t0)) -lt $bound
check "stops cleanly with a fetch that timed out" stop_daemon d3
kill "$(cat "$T_DIR/hang.pid")"

# No address: the live file, and the answer says so.
start_daemon d4 -s web1
got=$(routes)
check_same "no address: the live file's table" "$(printf '%s' "$got" | text 0)" \
    "$(cat "$L/egress/routes.json")"
check_match "and it says so" "$(printf '%s' "$got" | text 1)" \
    "^source: the live file $L/egress/routes.json, which the egress proxy reads"
check "stops cleanly" stop_daemon d4

check_same "a bad address: exit 2, one line" \
    "$(supervised -s web1 --egress-proxy 'ftp://127.0.0.1:1' 2>&1; echo "rc=$?")" \
    "supervised: invalid egress proxy 'ftp://127.0.0.1:1': the scheme must be http or https
rc=2"
done_testing
