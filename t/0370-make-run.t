#!/bin/sh
# mk/run.sh (make run): a local spool, instructions, a daemon that answers.
. "$(dirname "$0")/lib.sh"
plan 9
SUPERVISE_PORT=0 SUPERVISE_ROOT="$T_DIR/run" \
    sh "$T_TOP/mk/run.sh" "$T_BUILD/bin" --port-file "$T_DIR/run.port" \
    >run.out 2>run.err &
echo $! >"$T_DIR/run.pid"
check "supervised starts" wait_for "$T_WAIT" test -s run.port
PORT=$(cat run.port)
check_same "it serves" "$(curl -s "http://127.0.0.1:$PORT/health")" ok
check "the bottle's spool is created" test -d run/queue/demo/proposals/new
check "the audit repository is created" test -d run/audit.git
check_match "it says how to connect Claude Code" "$(cat run.out)" \
    'claude mcp add --transport http supervise http://127.0.0.1:0/mcp'
check_match "and Codex" "$(cat run.out)" '^ *\[mcp_servers\.supervise\]$'
check_match "and where the spool is" "$(cat run.out)" \
    "^  export SUPERVISE_ROOT=$T_DIR/run PATH="
check_match "and how to approve" "$(cat run.out)" \
    'supervise-list \| cut -f1 \| supervise-approve$'

check "it stops on SIGTERM" stop_daemon run
done_testing
