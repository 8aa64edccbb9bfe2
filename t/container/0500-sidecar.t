#!/bin/sh
# 0500-sidecar.t: the sidecar image end to end with podman.
#
# supervise-sidecar builds Dockerfile.supervise (from the base image that
# mk/container-base.sh makes), starts the container on a bottle network
# with its port published on the loopback, and a client on the host drives
# propose -> approve -> answer through it: the call blocks, the operator
# approves on the host spool, the call returns approved, the audit
# repository on the host has the commit.  The spool belongs to a non-root
# uid, as an operator's does, so the run also shows that the container
# writes the spool as that owner.  Where podman cannot run, this test says
# so and fails: it never passes without having run the container.
t_here=$(cd "$(dirname "$0")" && pwd)
. "$t_here/podman.sh"
export SUPERVISE_CONTAINER_CLI=podman SUPERVISE_SRC="$t_top"
export SUPERVISE_IMAGE=supervise:check SUPERVISE_BUILD_NETWORK=host
unset SUPERVISE_PUBLISH SUPERVISE_NETWORK
# Image builds, not tests, take the time; the rest is bounded by these.
export SUPERVISE_START_TIMEOUT=60
wait_secs=30

slug=ct$$
name=supervise-$slug
net=supervise-t$$
queue=$SUPERVISE_ROOT/queue/$slug
audit=$SUPERVISE_ROOT/audit.git
state=$SUPERVISE_ROOT/state/$slug

plan 37

podman_ready

cleanup_containers() {
	podman rm -f -t 0 "$name" >/dev/null 2>&1
	podman network rm -f "$net" >/dev/null 2>&1
	cleanup
}
trap cleanup_containers EXIT

# The operator: a non-root uid when we are root, so that ownership shows.
if [ "$(id -u)" = 0 ]; then
	op_uid=4242 op_gid=4242
	# HOME: libgit2 looks for a ~/.gitconfig, and root's is out of reach.
	as_op() { HOME=$T_DIR setpriv --reuid="$op_uid" --regid="$op_gid" --clear-groups "$@"; }
else
	op_uid=$(id -u) op_gid=$(id -g)
	as_op() { "$@"; }
fi
quietly() { "$@" >/dev/null; }
chmod 711 "$T_DIR"
mkdir -m 700 "$SUPERVISE_ROOT" && chown "$op_uid:$op_gid" "$SUPERVISE_ROOT"
printf 'FROM debian:bookworm-slim\nRUN true\n' >"$T_DIR/Dockerfile"
chmod 644 "$T_DIR/Dockerfile"
check "supervise-init makes the spool" \
	quietly as_op supervise-init --dockerfile "$T_DIR/Dockerfile" "$slug"

# Not --internal as a bottle's is: engines forward no published port into
# an internal network, and the host must reach the port here.
podman network create "$net" >/dev/null 2>"$T_DIR/bail.err" ||
	bail "can't create the network $net"

# start without a network fails and leaves nothing behind
SUPERVISE_NETWORK=no-such-net$$ supervise-sidecar start "$slug" \
	>/dev/null 2>"$T_DIR/start.err"
check_same "start on a missing network exits 1" "$?" 1
check_match "and says why" "$(cat "$T_DIR/start.err")" "network 'no-such-net$$'"
check_fail "and leaves no container" podman container exists "$name"

# start builds the image when missing (layers stay cached between runs)
podman rmi -f "$SUPERVISE_IMAGE" >/dev/null 2>&1
token=t0ken$$
out=$(SUPERVISE_NETWORK=$net SUPERVISE_PUBLISH=127.0.0.1:0 SUPERVISE_TOKEN=$token \
	supervise-sidecar start "$slug" 2>"$T_DIR/start.err")
rc=$?
[ "$rc" = 0 ] || diag "$(tail -n 40 "$T_DIR/start.err")"
check_same "start builds the image and starts the container" "$rc:$out" "0:$name"
check "the image exists" podman image exists "$SUPERVISE_IMAGE"
check_same "the container runs as the spool's owner" \
	"$(podman container inspect --format '{{.Config.User}}' "$name")" "$op_uid:$op_gid"
hostport=$(podman port "$name" 9100/tcp | sed -n 1p)
check_match "the port is published on the loopback" "$hostport" '^127\.0\.0\.1:[0-9]+$'
url=http://$hostport

health=
i=0
while [ $i -lt $wait_secs ]; do
	health=$(curl -sS --max-time 2 "$url/health" 2>/dev/null) && break
	sleep 1
	i=$((i + 1))
done
check_match "GET /health answers through the published port" "$health" '^ok'

out=$(podman run --rm --network "$net" debian:bookworm-slim timeout 10 bash -c \
	'exec 3<>/dev/tcp/supervise/9100 && printf "GET /health HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>&1)
check_match "a bottle container reaches it as supervise:9100" "$out" '^HTTP/1\.[01] 200'

out=$(supervise-sidecar status "$slug")
check_same "status: running and healthy" "$?:$out" "0:$name running healthy"

code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
	-H 'Content-Type: application/json' --data-binary '{}' "$url/mcp")
check_same "SUPERVISE_TOKEN reaches the daemon: no token, 401" "$code" 401

# MCP: initialize, then a blocking tools/call.
mcp() {
	curl -sS --max-time "$1" -D "$T_DIR/headers" \
		-H 'Content-Type: application/json' \
		-H 'Accept: application/json, text/event-stream' \
		-H "Authorization: Bearer $token" \
		${session:+-H "Mcp-Session-Id: $session"} \
		--data-binary "$2" "$url/mcp"
}
session=
out=$(mcp 10 '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"0500-sidecar.t","version":"1"}}}')
check_match "initialize answers" "$out" '"protocolVersion"'
session=$(tr -d '\r' <"$T_DIR/headers" | sed -n 's/^[Mm][Cc][Pp]-[Ss]ession-[Ii][Dd]: *//p')
mcp 10 '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null

mcp 120 '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"egress-block","arguments":{"host":"api.example.org","path_allowlist":["/v1/"],"justification":"the build needs the example API"}}}' \
	>"$T_DIR/call.out" 2>"$T_DIR/call.err" &
echo $! >"$T_DIR/call.pid"

first_proposal() {
	for f in "$queue"/proposals/new/* "$queue"/proposals/cur/*; do
		[ -f "$f" ] && { echo "$f"; return; }
	done
}
pfile=
i=0
while [ $i -lt $((wait_secs * 5)) ]; do
	pfile=$(first_proposal)
	[ -n "$pfile" ] && break
	sleep 0.2
	i=$((i + 1))
done
id=${pfile##*/}
id=${id%%:2,*}
check_match "the call queues a proposal in the host spool" "$id" '^[0-9]+\.'
# shellcheck disable=SC2012
check_same "the proposal file is the operator's, mode 0600" \
	"$(ls -n "$pfile" | awk '{ print $1, $3 ":" $4 }')" "-rw------- $op_uid:$op_gid"
check "the call is still waiting for the operator" \
	kill -0 "$(cat "$T_DIR/call.pid")"

check "supervise-approve decides on the host" \
	quietly as_op supervise-approve -n 'fine for the test' "$id"

i=0
while kill -0 "$(cat "$T_DIR/call.pid")" 2>/dev/null && [ $i -lt $((wait_secs * 5)) ]; do
	sleep 0.2
	i=$((i + 1))
done
wait "$(cat "$T_DIR/call.pid")"
check_same "the call returns" "$?" 0
rm -f "$T_DIR/call.pid"
check_match "the agent is told: approved" "$(cat "$T_DIR/call.out")" 'status: approved'
check_match "with the operator's notes" "$(cat "$T_DIR/call.out")" 'notes: fine for the test'

git_audit() {
	git -c safe.directory="$audit" --git-dir="$audit" "$@"
}
check_same "the audit commit's subject" \
	"$(git_audit log -1 --format=%s main)" "$slug: approve egress-block api.example.org"
check_same "its Proposal-Id trailer" \
	"$(git_audit log -1 --format='%(trailers:key=Proposal-Id,valueonly)' main | sed -n 1p)" "$id"
check_match "routes.json has the route" \
	"$(git_audit show "main:$slug/egress/routes.json")" '"host": "api.example.org"'
check "git fsck is clean" git_audit fsck --no-progress --strict
# The live directory, mounted into the sidecar: published before the answer.
check_same "the sidecar published the live routes on the host" \
	"$(cat "$state/egress/routes.json")" "$(git_audit show "main:$slug/egress/routes.json")"
check_same "and the mirrored host on pipelock's allowlist" \
	"$(cat "$state/pipelock/allowlist")" api.example.org
# The agent's container reads the current Dockerfile where capability-block
# points, and cannot change it.
agent_mount=$state/capability:/etc/claude-bottle/current-config:ro
check_same "the agent reads /etc/claude-bottle/current-config/Dockerfile" \
	"$(podman run --rm --network none -v "$agent_mount" debian:bookworm-slim \
	    cat /etc/claude-bottle/current-config/Dockerfile 2>&1)" \
	"$(cat "$T_DIR/Dockerfile")"
check_fail "read-only for the agent" podman run --rm --network none \
	-v "$agent_mount" debian:bookworm-slim \
	sh -c 'echo x >/etc/claude-bottle/current-config/Dockerfile' 2>/dev/null
check_same "everything the container wrote is the operator's" \
	"$(find "$queue" "$audit" "$state" ! -user "$op_uid" | sed -n 1p)" ""

# supervised is PID 1 in the container: without its own SIGTERM handling
# the engine would wait out the 10 s grace and kill it.
t0=$(date +%s)
check_same "stop exits 0" "$(supervise-sidecar stop "$slug" 2>&1; echo $?)" 0
t1=$(date +%s)
check "supervised stops on SIGTERM, well within the grace period" \
	test $((t1 - t0)) -lt 8
out=$(supervise-sidecar status "$slug")
check_same "status after stop: not running, exit 3" "$?:$out" "3:$name missing -"
check_same "stop again still exits 0" "$(supervise-sidecar stop "$slug" 2>&1; echo $?)" 0

# A daemon that cannot start takes its container with it.
chmod 000 "$queue"
SUPERVISE_NETWORK=$net supervise-sidecar start "$slug" >/dev/null 2>"$T_DIR/start.err"
check_same "start exits 1 when supervised exits at once" "$?" 1
chmod 700 "$queue"
check_match "and shows supervised's own message" "$(cat "$T_DIR/start.err")" '^supervised: '
check_fail "and removes the container" podman container exists "$name"

done_testing
