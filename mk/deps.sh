#!/bin/sh
# deps.sh build|check: make sure the Debian packages the build (or the test
# suite) needs are present.  As root with apt-get, missing ones are
# installed; otherwise the missing packages are named and we fail.
set -u
build_pkgs="gcc make pkg-config libmicrohttpd-dev libgit2-dev libjansson-dev liburiparser-dev libssl-dev zlib1g-dev"
check_pkgs="perl git curl nodejs npm mandoc procps"
case "${1:-build}" in
build) want=$build_pkgs ;;
check) want="$build_pkgs $check_pkgs" ;;
*) echo "usage: deps.sh build|check" >&2; exit 2 ;;
esac
missing=
for p in $want; do
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
	echo "deps.sh: installing $missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $missing >&2 && exit 0
	echo "deps.sh: can't install: $missing" >&2
	exit 1
fi
echo "deps.sh: missing Debian packages: $missing" >&2
echo "deps.sh: install them with: apt-get install $missing" >&2
exit 1
