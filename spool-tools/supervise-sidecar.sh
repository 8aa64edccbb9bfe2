#!/bin/sh
# supervise-sidecar: start, stop or ask after the supervised container of
# one bottle, with docker or podman, as the bottle launcher does.
#
#   supervise-sidecar start SLUG    build the image when missing, create
#                                   supervise-SLUG on the bottle's internal
#                                   network (alias "supervise"), start it,
#                                   wait until supervised listens
#   supervise-sidecar stop SLUG     stop and remove it; no container is fine
#   supervise-sidecar status SLUG   "NAME STATE HEALTH"; exit 0 healthy,
#                                   1 running but not healthy, 3 not running,
#                                   4 the engine does not answer
#
# The container runs as the uid:gid that owns the bottle's queue directory
# on the host, so every file supervised writes into the spool and the audit
# repository stays the operator's, and the daemon's owner checks on
# response files (queue owner or root) hold inside the container as they
# do outside.  Rootless podman maps that uid into the container with
# --userns=keep-id; rootless docker runs the container as its root, which is
# the invoking user on the host.  See supervise-sidecar(1).
#
# The bottle's live directory (state/SLUG) is mounted read-write here, for
# supervised to publish into; the agent's container mounts its capability/
# read-only at /etc/claude-bottle/current-config, where capability-block's
# description sends the agent for the current Dockerfile.
set -u

prog=supervise-sidecar
in_port=9100
queue_mnt=/run/supervise/queue
audit_mnt=/var/lib/supervise/audit.git
state_mnt=/run/supervise/state

usage() {
	echo "usage: $prog start|stop|status SLUG" >&2
	exit 2
}
die() {
	echo "$prog: $*" >&2
	exit 1
}

[ $# -eq 2 ] || usage
verb=$1
slug=$2
case $verb in start|stop|status) ;; *) usage ;; esac

# Same rule as sv_valid_slug(): it also keeps the container name valid.
case $slug in
[A-Za-z0-9]*) ;;
*) die "can't use slug '$slug': must start with a letter or digit" ;;
esac
case $slug in
*[!A-Za-z0-9._-]*) die "can't use slug '$slug': only letters, digits, '.', '_' and '-'" ;;
esac
[ ${#slug} -le 64 ] || die "can't use slug '$slug': longer than 64 bytes"

name=supervise-$slug
image=${SUPERVISE_IMAGE:-supervise:latest}

# The container CLI: as named, else the one whose engine answers (docker
# first, as the bottle launcher uses docker), else whichever is installed.
cli=${SUPERVISE_CONTAINER_CLI:-}
if [ -z "$cli" ]; then
	if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
		cli=docker
	elif command -v podman >/dev/null 2>&1; then
		cli=podman
	elif command -v docker >/dev/null 2>&1; then
		cli=docker
	else
		die "can't find docker or podman (set SUPERVISE_CONTAINER_CLI)"
	fi
fi
command -v "$cli" >/dev/null 2>&1 || die "can't run '$cli': not found"
case ${cli##*/} in
podman*) flavour=podman ;;
*) flavour=docker ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/$prog.XXXXXX") || die "can't make a temporary directory"
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM HUP

# state: running, exited, created, ... or "missing"; "unreachable" when
# the engine does not answer (docker version fails without a daemon).
container_state() {
	if s=$("$cli" container inspect --format '{{.State.Status}}' "$name" 2>/dev/null); then
		echo "$s"
	elif "$cli" version >/dev/null 2>&1; then
		echo missing
	else
		echo unreachable
	fi
}

# Remove the container; a container that is already gone is success.
remove_container() {
	case $(container_state) in
	missing) return 0 ;;
	unreachable) echo "$prog: can't reach the $cli engine" >&2; return 1 ;;
	esac
	"$cli" stop -t 10 "$name" >/dev/null 2>"$work/stop.err"
	"$cli" rm -f -v "$name" >/dev/null 2>"$work/rm.err" && return 0
	[ "$(container_state)" = missing ] && return 0
	cat "$work/stop.err" "$work/rm.err" >&2
	echo "$prog: can't remove container '$name'; clean up with '$cli rm -f $name'" >&2
	return 1
}

# The source tree holding Dockerfile.supervise: $SUPERVISE_SRC, else the
# tree this script runs from (spool-tools/ or a build directory's bin/).
source_tree() {
	if [ -n "${SUPERVISE_SRC:-}" ]; then
		[ -f "$SUPERVISE_SRC/Dockerfile.supervise" ] ||
			die "can't build $image: no Dockerfile.supervise in SUPERVISE_SRC '$SUPERVISE_SRC'"
		echo "$SUPERVISE_SRC"
		return
	fi
	self=$0
	if command -v readlink >/dev/null 2>&1; then
		self=$(readlink -f "$0" 2>/dev/null || echo "$0")
	fi
	here=$(cd "$(dirname "$self")" && pwd) || die "can't find the directory of '$0'"
	for d in "$here/.." "$here/../.."; do
		if [ -f "$d/Dockerfile.supervise" ]; then
			(cd "$d" && pwd)
			return
		fi
	done
	die "can't build $image: no source tree found; set SUPERVISE_SRC to a supervise checkout"
}

build_image() {
	src=$(source_tree) || exit 1
	set -- build -f "$src/Dockerfile.supervise" -t "$image"
	# The OCI format has no HEALTHCHECK; keep it.
	[ "$flavour" = podman ] && set -- "$@" --format docker
	[ -n "${SUPERVISE_BUILD_NETWORK:-}" ] && set -- "$@" --network "$SUPERVISE_BUILD_NETWORK"
	echo "$prog: building $image from $src" >&2
	if ! "$cli" "$@" "$src" >"$work/build.log" 2>&1; then
		tail -n 30 "$work/build.log" >&2
		die "can't build $image from '$src/Dockerfile.supervise'"
	fi
}

# uid:gid owning a path, numerically (POSIX ls -n).
owner_of() {
	# shellcheck disable=SC2012
	ls -nd "$1" | awk '{ print $3 ":" $4 }'
}

# -p argument for SUPERVISE_PUBLISH: host loopback only, since the MCP
# endpoint lets whoever reaches it queue proposals for the operator.  Port
# 0 lets the engine pick one (see `docker port NAME 9100`).
publish_arg() {
	case $1 in
	127.0.0.1:*) addr=127.0.0.1 port=${1#127.0.0.1:} ;;
	'[::1]:'*) addr='[::1]' port=${1#\[::1\]:} ;;
	*:*) die "can't publish on '$1': only on the loopback (127.0.0.1:PORT, [::1]:PORT or PORT)" ;;
	*) addr=127.0.0.1 port=$1 ;;
	esac
	case $port in
	''|*[!0-9]*) die "can't publish on '$1': bad port" ;;
	esac
	[ "$port" -eq 0 ] && port=
	echo "$addr:$port:$in_port"
}

wait_ready() {
	timeout=${SUPERVISE_START_TIMEOUT:-30}
	ticks=$((timeout * 5))
	while [ "$ticks" -gt 0 ]; do
		"$cli" logs "$name" >"$work/log" 2>&1
		grep -q '^supervised: listening on ' "$work/log" && return 0
		[ "$(container_state)" = running ] || {
			cat "$work/log" >&2
			echo "$prog: $name exited before supervised listened" >&2
			return 1
		}
		sleep 0.2 2>/dev/null || { sleep 1; ticks=$((ticks - 4)); }
		ticks=$((ticks - 1))
	done
	cat "$work/log" >&2
	echo "$prog: $name not listening after ${timeout}s" >&2
	return 1
}

do_start() {
	root=${SUPERVISE_ROOT:-${HOME:-}/.bot-bottle}
	queue=${SUPERVISE_QUEUE_DIR:-$root/queue/$slug}
	audit=${SUPERVISE_AUDIT_DIR:-$root/audit.git}
	state=${SUPERVISE_STATE_DIR:-$root/state/$slug}
	network=${SUPERVISE_NETWORK:-bottle-$slug-internal}
	publish=
	if [ -n "${SUPERVISE_PUBLISH:-}" ]; then
		publish=$(publish_arg "$SUPERVISE_PUBLISH") || exit 1
	fi

	[ -d "$queue" ] || die "can't use queue directory '$queue': missing (run supervise-init $slug)"
	queue=$(cd "$queue" && pwd) || die "can't enter '$queue'"
	user=$(owner_of "$queue")
	# supervised makes the repository in an empty directory on first use;
	# the bind mount needs the directory, and it must be the operator's.
	if [ ! -d "$audit" ]; then
		{ mkdir -p "$(dirname "$audit")" && mkdir -m 700 "$audit"; } ||
			die "can't create '$audit'"
		if [ "$(id -u)" = 0 ]; then
			chown "$user" "$audit" || die "can't give '$audit' to $user"
		fi
	fi
	audit=$(cd "$audit" && pwd) || die "can't enter '$audit'"
	[ "$(owner_of "$audit")" = "$user" ] ||
		echo "$prog: warning: '$audit' is owned by $(owner_of "$audit"), '$queue' by $user; supervised runs as $user" >&2
	# The live directory: supervised publishes the bottle's config files
	# into it, the proxies and the agent mount it.  capability/ is made
	# now, so the agent's read-only mount of it (the current Dockerfile)
	# has a source before any Dockerfile was approved.
	for d in "$state" "$state/capability"; do
		[ -d "$d" ] && continue
		mkdir -p "$d" || die "can't create '$d'"
		if [ "$(id -u)" = 0 ]; then
			chown "$user" "$d" || die "can't give '$d' to $user"
		fi
	done
	state=$(cd "$state" && pwd) || die "can't enter '$state'"

	case $(container_state) in
	running)
		echo "$prog: $name is already running (stop it first to change it)" >&2
		echo "$name"
		return 0 ;;
	missing) ;;
	unreachable) die "can't reach the $cli engine" ;;
	*) remove_container || exit 1 ;;
	esac

	"$cli" network inspect "$network" >/dev/null 2>&1 ||
		die "can't use network '$network': it does not exist (the bottle's launcher creates it; or set SUPERVISE_NETWORK)"

	"$cli" image inspect "$image" >/dev/null 2>&1 || build_image

	set -- create --name "$name" \
		--label "org.bot-bottle.supervise.slug=$slug" \
		--network "$network" --network-alias supervise \
		--read-only --tmpfs /tmp --cap-drop ALL \
		--security-opt no-new-privileges \
		-e "SUPERVISE_BOTTLE_SLUG=$slug" \
		-e "SUPERVISE_STATE_DIR=$state_mnt" \
		-v "$queue:$queue_mnt" -v "$audit:$audit_mnt" -v "$state:$state_mnt"
	if [ "$flavour" = podman ] && [ "$(id -u)" != 0 ]; then
		set -- "$@" --userns=keep-id --user "$user"
	elif [ "$flavour" = docker ] &&
	    "$cli" info --format '{{.SecurityOptions}}' 2>/dev/null | grep -q rootless; then
		set -- "$@" --user 0:0
	else
		set -- "$@" --user "$user"
	fi
	# Passed by name, so the token never shows in a process listing.
	[ -n "${SUPERVISE_TOKEN:-}" ] && set -- "$@" -e SUPERVISE_TOKEN
	[ -n "${SUPERVISE_EGRESS_PROXY:-}" ] && set -- "$@" -e SUPERVISE_EGRESS_PROXY
	[ -n "$publish" ] && set -- "$@" -p "$publish"
	"$cli" "$@" "$image" >/dev/null 2>"$work/create.err" || {
		cat "$work/create.err" >&2
		"$cli" rm -f -v "$name" >/dev/null 2>&1
		die "can't create container '$name'"
	}
	if ! "$cli" start "$name" >/dev/null 2>"$work/start.err"; then
		cat "$work/start.err" >&2
		remove_container
		die "can't start container '$name'"
	fi
	if ! wait_ready; then
		remove_container
		die "can't start container '$name'"
	fi
	echo "$name"
}

do_stop() {
	remove_container || exit 1
}

do_status() {
	state=$(container_state)
	case $state in
	running) ;;
	unreachable)
		echo "$prog: can't reach the $cli engine" >&2
		exit 4 ;;
	*)
		echo "$name $state -"
		exit 3 ;;
	esac
	if [ "$flavour" = podman ]; then
		# podman runs health checks from systemd timers; without systemd
		# nothing would; ask now instead (and so update the state).
		"$cli" healthcheck run "$name" >/dev/null 2>&1
	fi
	health=$("$cli" container inspect \
	    --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' \
	    "$name" 2>/dev/null)
	echo "$name running ${health:-unknown}"
	[ "$health" = healthy ] && exit 0
	exit 1
}

case $verb in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
esac
