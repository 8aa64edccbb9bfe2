# podman.sh: what the container tests share, sourced with t_here set to
# t/container: t/lib.sh, the build and the engine's configuration, and
# podman_ready, which stops the test, loudly, where podman can't run
# containers from the base image: everything after needs it, and a test
# that could not run its containers must not pass.  It is the plan's
# first test.
t_top=$(cd "$t_here/../.." && pwd)
: "${SUPERVISE_BUILD:=$t_top/build}"
export SUPERVISE_BUILD
. "$t_here/../lib.sh"
: "${CONTAINERS_CONF:=$t_here/containers.conf}"
export CONTAINERS_CONF

# bail MESSAGE: not ok, the tail of $T_DIR/bail.err, "Bail out!", exit 1.
bail() {
	not_ok "$1"
	[ -s "$T_DIR/bail.err" ] && diag "$(tail -n 20 "$T_DIR/bail.err")"
	echo "Bail out! $1"
	exit 1
}

podman_ready() {
	command -v podman >/dev/null 2>&1 ||
		bail "podman is not installed: this test needs it (make check-container installs it as root)"
	podman info >/dev/null 2>"$T_DIR/bail.err" ||
		bail "podman does not work here ('podman info' failed)"
	sh "$t_top/mk/container-base.sh" >/dev/null 2>"$T_DIR/bail.err" ||
		bail "can't make the base image debian:bookworm-slim (mk/container-base.sh)"
	podman run --rm --network none debian:bookworm-slim true 2>"$T_DIR/bail.err" ||
		bail "podman can't run a container here"
	ok "podman runs containers from debian:bookworm-slim"
}
