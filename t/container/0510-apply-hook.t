#!/bin/sh
# 0510-apply-hook.t: etc/apply-hook against real containers, with podman.
#
# Two containers stand in for a bottle's egress proxy and pipelock, under
# the names the hook looks for (claude-bottle-egress-SLUG,
# claude-bottle-pipelock-SLUG).  Each mounts its directory of the live
# directory read-only, as a bottle's would, and writes what it sees to a
# log on the host: the egress stand-in the hosts of routes.json each time
# it gets SIGHUP, the pipelock stand-in its allowlist each time it starts.
# supervised runs on the host with etc/apply-hook as its hook; an agent's
# calls are approved by the operator, and the test checks that the hook
# did what it says: egress signalled and reading the new routes, pipelock
# restarted and reading the new allowlist, "applied: yes"; a capability
# change printed as the build it needs, "applied: no"; a stopped egress
# container is a failure, and supervise-apply puts it right once it runs
# again.  Where podman cannot run, this test says so and fails: it never
# passes without having run the containers.
t_here=$(cd "$(dirname "$0")" && pwd)
. "$t_here/podman.sh"
unset SUPERVISE_CONTAINER_CLI EGRESS_CONTAINER PIPELOCK_CONTAINER
HOOK=$t_top/etc/apply-hook
slug=ah$$
egress=claude-bottle-egress-$slug
pipelock=claude-bottle-pipelock-$slug
state=$SUPERVISE_ROOT/state/$slug
A=$SUPERVISE_ROOT/audit.git
logs=$T_DIR/logs

plan 33

podman_ready

cleanup_containers() {
	# One at a time: podman rm stops at a name it does not know.
	podman rm -f -t 0 "$egress" >/dev/null 2>&1
	podman rm -f -t 0 "$pipelock" >/dev/null 2>&1
	podman rmi -f "claude-bottle-$slug" >/dev/null 2>&1
	cleanup
}
trap cleanup_containers EXIT

printf 'FROM debian:bookworm-slim\nLABEL bottle=%s\n' "$slug" >Dockerfile
printf '{"routes": [{"host": "pypi.org"}]}\n' >routes
check "supervise-init makes the spool and the live directory" \
	eval 'supervise-init --routes routes --dockerfile Dockerfile "$slug" >/dev/null'
check "the live routes are there" test -s "$state/egress/routes.json"

# The stand-ins.  A shell as PID 1 gets only the signals it traps, as a
# real proxy gets only those it handles.
mkdir -m 777 "$logs"
cat >egress.sh <<'EOF'
hosts() { sed -n 's/.*"host": "\([^"]*\)".*/\1/p' /etc/egress/routes.json | tr '\n' ' '; }
trap 'echo "reload: $(hosts)" >>/log/egress.log' HUP
trap 'exit 0' TERM
echo "start: $(hosts)" >>/log/egress.log
while :; do sleep 1 & wait $!; done
EOF
cat >pipelock.sh <<'EOF'
trap 'exit 0' TERM
echo "start: $(tr '\n' ' ' </etc/pipelock/allowlist)" >>/log/pipelock.log
while :; do sleep 1 & wait $!; done
EOF
run_standin() {	# NAME DIR-IN-LIVE SCRIPT
	podman run -d --name "$1" --network none \
	    -v "$state/$2:/etc/$2:ro" -v "$logs:/log" \
	    -v "$T_DIR/$3:/$3:ro" debian:bookworm-slim sh "/$3" \
	    >/dev/null 2>>"$T_DIR/podman.err"
}
count() { cat "$logs/$2" 2>/dev/null | grep -c "^$1"; }
check "the egress stand-in starts" run_standin "$egress" egress egress.sh
check "the pipelock stand-in starts" run_standin "$pipelock" pipelock pipelock.sh
check "... and both are running" wait_for 30 eval \
    'test "$(count start: egress.log)" = 1 && test "$(count start: pipelock.log)" = 1'

# supervised with the sample hook, which finds podman by itself.
check "supervised starts with etc/apply-hook" \
	start_daemon d -s "$slug" --apply-hook "$HOOK"

pending_id() { supervise-list "$slug" 2>/dev/null | awk -F '\t' -v t="$1" '$3 == t { print $1; exit }'; }
has_pending() { [ -n "$(pending_id "$1")" ]; }
gone() { ! kill -0 "$1" 2>/dev/null; }
# decide TOOL ARGS VERB OUT: the agent's call, the operator's decision,
# the answer in OUT; the proposal's id in $ID.
decide() {
	tool_call 1 "$1" "$2" --max-time 120 >"$4" &
	_c=$!
	wait_for 30 has_pending "$1" || { diag "no $1 proposal"; kill $_c; return 1; }
	ID=$(pending_id "$1")
	"supervise-$3" "$ID" >/dev/null || return 1
	wait_for 90 gone $_c
	wait $_c
}
note() { git --git-dir="$A" notes --ref=apply show "$(git --git-dir="$A" log --format=%H -1 --grep="^Proposal-Id: $1\$" main)" 2>/dev/null; }
noted() { note "$1" >/dev/null; }

# --- an egress route: egress reloads, pipelock restarts --------------------
check "egress-block is approved" decide egress-block \
    '{"host":"registry.npmjs.org","justification":"npm install"}' approve call1.out
check_match "the agent is told it is in effect" "$(cat call1.out)" 'applied: yes'
check_same "egress got SIGHUP once" "$(count reload: egress.log)" 1
check_match "... and read the new routes through its mount" \
	"$(grep '^reload:' "$logs/egress.log")" 'registry\.npmjs\.org'
check_same "pipelock was restarted" "$(count start: pipelock.log)" 2
check_match "... and read the mirrored host at its start" \
	"$(tail -n 1 "$logs/pipelock.log")" 'registry\.npmjs\.org'
check_same "both containers run on" \
	"$(podman inspect --format '{{.State.Running}}' "$egress" "$pipelock" | tr '\n' ' ')" \
	"true true "
check "the outcome is noted" wait_for 20 noted "$ID"
note "$ID" >note1
check_match "the note says so, with the hook's words" "$(cat note1)" \
	"egress: $egress reloads its routes"
check_match "... for pipelock too" "$(cat note1)" "pipelock: $pipelock restarted"

# --- a capability change: what it needs, not in effect ---------------------
check "capability-block is approved" decide capability-block \
    "{\"dockerfile\":\"FROM debian:bookworm-slim\\nLABEL bottle=$slug\\nLABEL tool=jq\\n\",\"justification\":\"jq\"}" \
    approve call2.out
check_match "the agent is told it is not in effect yet" "$(cat call2.out)" \
	'applied: no: the hook failed with status 1'
check "the outcome is noted" wait_for 20 noted "$ID"
note "$ID" >note2
check_match "the note says what it needs" "$(cat note2)" \
	"Rebuild the bottle's image from it and restart the bottle"
build=$(sed -n 's/^  \(podman build .*\)$/\1/p' note2)
check_same "... as a podman build of the live Dockerfile" "$build" \
	"podman build -t claude-bottle-$slug -f $state/capability/Dockerfile $state/capability"
check_same "no container was touched" \
	"$(count reload: egress.log):$(count start: pipelock.log)" "1:2"
# The printed command is one to run as it stands.
eval "$build" >build.out 2>&1
check_same "the printed build runs" "$?" 0
check_same "... and builds the approved Dockerfile" \
	"$(podman image inspect --format '{{index .Config.Labels "tool"}}' "claude-bottle-$slug")" jq

# --- egress is down: not in effect; supervise-apply once it is back ---------
podman stop -t 5 "$egress" >/dev/null 2>>"$T_DIR/podman.err"
check "egress-allow is approved while egress is stopped" decide egress-allow \
    '{"host":"api.github.com","justification":"gh"}' approve call3.out
check_match "the agent is told it is not in effect" "$(cat call3.out)" \
	'applied: no: the hook failed with status 1'
check "the outcome is noted" wait_for 20 noted "$ID"
check_match "the note says which container" "$(note "$ID")" "egress: can't signal $egress"
podman start "$egress" >/dev/null 2>>"$T_DIR/podman.err"
check "egress runs again" wait_for 30 eval 'test "$(count start: egress.log)" = 2'
supervise-apply --apply-hook "$HOOK" "$slug" "$ID" >apply.out 2>apply.err
check_same "supervise-apply puts it right" "$(cat apply.out)" "$ID	applied: yes"
check_match "egress reloaded with the new route" \
	"$(grep '^reload:' "$logs/egress.log" | tail -n 1)" 'api\.github\.com'

check "supervised stops cleanly" stop_daemon d
done_testing
