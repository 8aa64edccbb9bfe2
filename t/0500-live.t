#!/bin/sh
# The live config directory: the bottle's config files as main has them,
# published by supervise-init, supervise-config, each approval (before
# the answer) and the daemon's start-up; atomic, unchanged files left
# alone.
. "$(dirname "$0")/lib.sh"
plan 23

A=root/audit.git
L=root/state/web1
main_file() { git --git-dir=$A show "main:web1/$1"; }
same_as_main() { [ "$(cat "$L/$1")" = "$(main_file "$1")" ]; }
inode() { stat -c %i "$1"; }

printf '{"routes": [{"host": "pypi.org"}]}\n' >routes
# api.github.com listed already, so its route's mirror changes nothing.
printf 'api.github.com\npypi.org\n' >allow
check "supervise-init without config files succeeds" supervise-init web0
check "... and makes an empty live directory" test -d root/state/web0
check_same "... which is empty" "$(ls -A root/state/web0)" ""
supervise-init --routes routes --allowlist allow web1 >/dev/null
check "supervise-init publishes routes.json" same_as_main egress/routes.json
check "supervise-init publishes the allowlist" same_as_main pipelock/allowlist
check_fail "no file that main lacks" test -e "$L/capability/Dockerfile"
check_same "files are readable by the proxies (0644)" \
    "$(stat -c %a "$L/egress/routes.json")" 644
check_same "no temporary file is left" "$(find "$L" -name '.*')" ""

# --- an approval reaches the live file before the answer ---------------------
check "supervised starts" start_daemon d -s web1
ino_allow=$(inode "$L/pipelock/allowlist")
call() {
	curl -s -H "Content-Type: application/json" --max-time 60 -H 'Accept: application/json' -d \
	    "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":$3}}" \
	    "$URL"
}
has_pending() { [ "$(supervise-list web1 2>/dev/null | wc -l)" -ge 1 ]; }
# The answer is read, then the live file at once: it must already hold it.
(call 1 egress-block '{"host":"api.github.com","justification":"clone"}' >out1;
    cat "$L/egress/routes.json" >seen1) &
c1=$!
check "the call files a proposal" wait_for 10 has_pending
supervise-approve "$(supervise-list web1 | cut -f1)" >/dev/null
wait $c1
check_match "the call is approved" "$(cat out1)" 'status: approved'
check_match "the live routes held the route when the agent was answered" \
    "$(cat seen1)" '"host": "api.github.com"'
check "the live routes equal main's" same_as_main egress/routes.json
check_same "an unchanged file is not rewritten" \
    "$(inode "$L/pipelock/allowlist")" "$ino_allow"

# --- supervise-config updates it ----------------------------------------------
printf 'pypi.org\nfiles.pythonhosted.org\n' >allow2
supervise-config -f allow2 web1 pipelock >/dev/null
check "supervise-config publishes" same_as_main pipelock/allowlist
check_match "... the edit" "$(cat "$L/pipelock/allowlist")" files.pythonhosted.org

# --- start-up brings it up to date --------------------------------------------
check "supervised stops" stop_daemon d
printf 'stale\n' >"$L/pipelock/allowlist"
rm "$L/egress/routes.json"
check "supervised restarts" start_daemon d -s web1
check "start-up restores a stale file" same_as_main pipelock/allowlist
check "start-up restores a removed file" same_as_main egress/routes.json
check "supervised stops again" stop_daemon d

# --- --state-dir and SUPERVISE_STATE_DIR ----------------------------------------
start_daemon e -s web1 --state-dir "$PWD/elsewhere"
check "supervised --state-dir DIR publishes there" \
    test -f elsewhere/egress/routes.json
stop_daemon e
SUPERVISE_STATE_DIR=$PWD/env-state supervise-config -f allow web1 pipelock >/dev/null
check_same "SUPERVISE_STATE_DIR moves it for the tools too" \
    "$(cat env-state/pipelock/allowlist)" "$(main_file pipelock/allowlist)"
done_testing
