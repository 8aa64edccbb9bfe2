#!/bin/sh
# deps.sh LIST...: make sure the Debian packages a make target needs are
# present.  The lists:
#   build     the compiler and libraries (make, every target)
#   check     what the test suite runs (make check)
#   run       what make run's instructions tell the user to run (curl)
#   clang     clang and its sanitizer runtimes (check-asan, fuzz)
#   valgrind  valgrind (check-valgrind)
# As root with apt-get, missing ones are installed, quietly: one line says
# what, apt's output goes to a log whose path is printed if it fails.
# Otherwise one line names the missing packages and we fail.
set -u
build_pkgs="gcc make pkg-config libmicrohttpd-dev libgit2-dev libjansson-dev liburiparser-dev libssl-dev zlib1g-dev libncursesw5-dev libcurl4-openssl-dev"
check_pkgs="perl python3 git curl nodejs npm mandoc procps tmux mitmproxy tinyproxy"
want=
for list in "${@:-build}"; do
	case $list in
	build) want="$want $build_pkgs" ;;
	check) want="$want $build_pkgs $check_pkgs" ;;
	run) want="$want curl" ;;
	clang) want="$want clang libclang-rt-dev" ;;
	valgrind) want="$want valgrind" ;;
	*) echo "usage: deps.sh build|check|run|clang|valgrind..." >&2; exit 2 ;;
	esac
done
missing=
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
# node may come from outside Debian's packages; accept a working one.
case "$missing" in *nodejs*|*npm*)
	if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
		missing=$(printf '%s\n' $missing | grep -v -x -e nodejs -e npm | tr '\n' ' ')
	fi ;;
esac
missing=$(echo $missing)
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	log=$(mktemp "${TMPDIR:-/tmp}/supervise-deps.XXXXXX") || exit 1
	echo "deps.sh: installing $missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086	# one word per package
	if { apt-get update && apt-get install -y --no-install-recommends \
	    $missing; } >"$log" 2>&1 </dev/null; then
		rm -f "$log"
		exit 0
	fi
	echo "deps.sh: can't install $missing: see $log" >&2
	exit 1
fi
echo "deps.sh: missing Debian packages: $missing (as root: apt-get install $missing)" >&2
exit 1
