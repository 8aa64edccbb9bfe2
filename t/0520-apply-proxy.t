#!/bin/sh
# An approval takes effect: a real forward proxy (tinyproxy) is the
# bottle's egress, its filter built by the apply hook from the live
# routes.json.  A request through it is refused; the agent (the MCP
# TypeScript SDK) calls egress-block; the operator approves; the hook
# rebuilds the filter and makes tinyproxy reload it (SIGUSR1); the answer
# says "applied: yes", and the same request now passes.  Then a hook that
# fails: the answer says why, the note records it, supervise-apply puts
# it right.  Everything on 127.0.0.1, ports picked at run time.
. "$(dirname "$0")/lib.sh"
if [ ! -d "$T_TOP/t/node_modules/@modelcontextprotocol/sdk" ]; then
	echo "1..0 # SKIP the MCP SDK is not installed (make check runs npm ci in t/)"
	exit 0
fi
if ! command -v tinyproxy >/dev/null 2>&1; then
	echo "1..0 # SKIP tinyproxy is not installed (mk/deps.sh check installs it)"
	exit 0
fi
plan 30
CLIENT="$T_TOP/t/mcp-client.mjs"
A=root/audit.git
L=root/state/web1

# --- the origin, and tinyproxy as the bottle's egress -------------------------
node "$T_TOP/t/origin.mjs" "$T_DIR/origin.port" >origin.log 2>&1 &
echo $! >origin.pid
wait_for 20 test -s origin.port || { diag "no origin server"; exit 1; }
ORIGIN="http://localhost:$(cat origin.port)/"

# The hook: the filter from the live routes (one anchored host a line),
# then tinyproxy reloads it; done when tinyproxy says it re-read it.
cat >hook <<'HOOK'
#!/bin/sh
# apply hook for tinyproxy: egress/routes.json -> filter, SIGUSR1
echo "hook: $SUPERVISE_TOOL $SUPERVISE_STATUS $SUPERVISE_PROPOSAL_ID"
echo "$SUPERVISE_PROPOSAL_ID $SUPERVISE_COMMIT $SUPERVISE_COMPONENT $SUPERVISE_FILES" >>"$HOOK_DIR/hook.runs"
cat >"$HOOK_DIR/hook.stdin"
if [ -e "$HOOK_DIR/fail" ]; then
	echo "the egress proxy is down" >&2
	exit 3
fi
sed -n 's/.*"host": "\([^"]*\)".*/\1/p' "$SUPERVISE_STATE_DIR/egress/routes.json" |
    sed 's/\./\\./g; s/.*/^&$/' >"$HOOK_DIR/filter.tmp" &&
    mv "$HOOK_DIR/filter.tmp" "$HOOK_DIR/filter" || exit 1
pid=$(cat "$HOOK_DIR/tinyproxy.pid" 2>/dev/null) || exit 0
before=$(grep -c 'Re-reading filter file' "$HOOK_DIR/tinyproxy.log")
kill -USR1 "$pid" || exit 1
n=0
while [ "$(grep -c 'Re-reading filter file' "$HOOK_DIR/tinyproxy.log")" -le "$before" ]; do
	n=$((n + 1))
	[ "$n" -gt 200 ] && { echo "tinyproxy did not reload" >&2; exit 4; }
	sleep 0.05
done
echo "tinyproxy reloaded its filter"
HOOK
chmod +x hook
export HOOK_DIR="$T_DIR"

printf '{"routes": [{"host": "pypi.org"}]}\n' >routes
supervise-init --routes routes web1 >/dev/null
SUPERVISE_STATE_DIR=$PWD/$L ./hook </dev/null >/dev/null	# the first filter

free_port() {
	node -e 'const s = require("net").createServer();
	    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
start_tinyproxy() {
	TP_PORT=$(free_port)
	cat >tinyproxy.conf <<EOF2
Port $TP_PORT
Listen 127.0.0.1
Timeout 20
MaxClients 20
LogFile "$T_DIR/tinyproxy.log"
LogLevel Info
PidFile "$T_DIR/tinyproxy.pid"
Filter "$T_DIR/filter"
FilterType ere
FilterDefaultDeny Yes
EOF2
	: >tinyproxy.log
	tinyproxy -d -c tinyproxy.conf >/dev/null 2>&1 &
	echo $! >tinyproxy.pid.t
	wait_for 10 grep -q 'Accepting connections' tinyproxy.log
}
# A port picked at run time may be taken before tinyproxy binds it: retry.
tries=0
until start_tinyproxy; do
	kill "$(cat tinyproxy.pid.t)" 2>/dev/null
	tries=$((tries + 1))
	[ "$tries" -ge 5 ] && { diag "tinyproxy did not start:" "$(cat tinyproxy.log)"; exit 1; }
done
mv tinyproxy.pid.t tinyproxy-main.pid	# killed by lib.sh's cleanup (*.pid)
PROXY="http://127.0.0.1:$TP_PORT"
fetch() { curl -s --max-time 20 -o fetched -w '%{http_code}' -x "$PROXY" "$ORIGIN"; }

check_same "through the proxy, localhost is refused" "$(fetch)" 403

# --- the agent asks, the operator approves, the hook applies -----------------
check "supervised starts with the hook" start_daemon d -s web1 --apply-hook "$T_DIR/hook"
has_pending() { [ "$(supervise-list web1 2>/dev/null | wc -l)" -ge 1 ]; }
done_with() { ! kill -0 "$1" 2>/dev/null; }
commit_of() { git --git-dir=$A log --format=%H --grep="Proposal-Id: $1" main; }
note_of() { git --git-dir=$A notes --ref=apply show "$(commit_of "$1")"; }
# The note is written just after the answer: wait for it.
noted() { note_of "$1" >/dev/null 2>&1; }

timeout 60 node "$CLIENT" "$URL" call egress-block \
    '{"host":"localhost","justification":"the test origin"}' >call1 2>&1 &
c1=$!
check "the agent's call files a proposal" wait_for 20 has_pending
ID=$(supervise-list web1 | cut -f1)
check_same "still refused before the decision" "$(fetch)" 403
supervise-approve -n "go" "$ID" >/dev/null
check "the agent's call returns" wait_for 30 done_with $c1
check_same "the answer says the change is in effect" \
    "$(sed -n 's/^result //p' call1)" \
    '{"content":[{"type":"text","text":"status: approved\napplied: yes\nnotes: go"}],"isError":false}'
check_same "the same request now passes" "$(fetch)" 200
check_same "... to the origin" "$(cat fetched)" "hello from origin"
check_match "the hook got the decision record on stdin" "$(cat hook.stdin)" \
    "\"proposal_id\": \"$ID\""
check_same "the hook got what changed in its environment" "$(tail -n 1 hook.runs)" \
    "$ID $(commit_of "$ID") egress $PWD/$L/egress/routes.json $PWD/$L/pipelock/allowlist"
check "the outcome is noted" wait_for 20 noted "$ID"
check_same "the note's first line is the answer's" \
    "$(note_of "$ID" | head -n 1)" "applied: yes"
check_match "the note names the hook and its exit" \
    "$(note_of "$ID" | tr '\n' ' ')" "Hook: $T_DIR/hook Exit: 0 Duration-Ms: [0-9]+ "
check_match "the note says which files and which commit" \
    "$(note_of "$ID" | tr '\n' ' ')" \
    "Files: egress/routes.json pipelock/allowlist Commit: $(commit_of "$ID")"
check_match "the note keeps the hook's output" "$(note_of "$ID" | tail -n 1)" \
    '^tinyproxy reloaded its filter$'
check_match "git log --notes=apply shows it" \
    "$(git --git-dir=$A log -1 --notes=apply "$(commit_of "$ID")")" \
    'Notes \(apply\):'
check_match "supervise-log lists it as in effect" "$(supervise-log web1 | head -n 1)" \
    "^$ID	web1	egress-block	approved	applied: yes	"

# --- a hook that fails ----------------------------------------------------------
touch fail
timeout 60 node "$CLIENT" "$URL" call egress-block \
    '{"host":"registry.npmjs.org","justification":"npm install"}' >call2 2>&1 &
c2=$!
check "a second proposal" wait_for 20 has_pending
ID2=$(supervise-list web1 | cut -f1)
supervise-approve "$ID2" >/dev/null
check "the second call returns" wait_for 30 done_with $c2
check_same "the answer says it is not in effect, and why" \
    "$(sed -n 's/^result //p' call2)" \
    '{"content":[{"type":"text","text":"status: approved\napplied: no: the hook failed with status 3"}],"isError":false}'
wait_for 20 noted "$ID2"
check_same "the note records it" "$(note_of "$ID2" | head -n 1)" \
    "applied: no: the hook failed with status 3"
check_match "... with the exit status and what the hook said" \
    "$(note_of "$ID2" | tr '\n' ' ')" 'Exit: 3 .*the egress proxy is down'
check_match "nothing is lost: the route is on main" \
    "$(git --git-dir=$A show main:web1/egress/routes.json)" registry.npmjs.org
check_match "... and in the live file" "$(cat $L/egress/routes.json)" registry.npmjs.org
check_same "supervise-log -u lists what did not take effect" \
    "$(supervise-log -u web1 | cut -f1,5)" "$ID2	applied: no: the hook failed with status 3"

rm fail
supervise-apply --apply-hook "$T_DIR/hook" web1 >apply.out 2>apply.err
check_same "supervise-apply puts it right" "$(cat apply.out)" "$ID2	applied: yes"
check_same "the note now says so" "$(note_of "$ID2" | head -n 1)" "applied: yes"
check_same "the notes' history keeps the failure" \
    "$(git --git-dir=$A log --format=%s refs/notes/apply | wc -l)" 3
check_match "and tinyproxy reloaded the filter with the new host" \
    "$(cat filter)" 'registry\\\.npmjs\\\.org'
check "stops with status 0" stop_daemon d
done_testing
