#!/bin/sh
# container-base.sh [IMAGE]: make the base image Dockerfile.supervise builds
# FROM (default debian:bookworm-slim) when the container engine lacks it.
#
# Where no registry can be reached, the image is made locally: debootstrap
# a minbase bookworm from the Debian mirror this machine's apt already
# uses, trim it like the official slim image (no docs, man pages or
# locales), and import the tree.  The engine's image store is the cache:
# once the image exists this script returns at once.  To rebuild it,
# remove the image (podman rmi debian:bookworm-slim).
#
# Environment:
#   SUPERVISE_CONTAINER_CLI  docker or podman (default: podman, else docker)
#   SUPERVISE_DEBIAN_MIRROR  mirror URI (default: the first bookworm "deb"
#                            source in /etc/apt/sources.list.d/*.sources or
#                            /etc/apt/sources.list)
#   TMPDIR                   where the tree is made (default /var/tmp)
#
# Needs root (debootstrap) and the debootstrap package.
set -eu

prog=container-base.sh
image=${1:-debian:bookworm-slim}
suite=bookworm

die() {
	echo "$prog: $*" >&2
	exit 1
}

cli=${SUPERVISE_CONTAINER_CLI:-}
if [ -z "$cli" ]; then
	if command -v podman >/dev/null 2>&1; then cli=podman
	elif command -v docker >/dev/null 2>&1; then cli=docker
	else die "can't find docker or podman"
	fi
fi

if "$cli" image inspect "$image" >/dev/null 2>&1; then
	exit 0
fi

# The mirror of the first "deb" source for $suite, in deb822 or one-line
# form; the name is never written down, it is read from apt each time.
apt_mirror() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v suite="$suite" '
		BEGIN { RS = ""; FS = "\n" }
		{
			types = ""; uris = ""; suites = ""
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^Types:/) types = " " substr($i, 7) " "
				else if ($i ~ /^URIs:/) uris = substr($i, 6)
				else if ($i ~ /^Suites:/) suites = " " substr($i, 8) " "
			}
			if (types ~ /[ \t]deb[ \t]/ && suites ~ ("[ \t]" suite "[ \t]")) {
				split(uris, u, " ")
				print u[1]
				exit
			}
		}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		awk -v suite="$suite" '
		$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) while ($i !~ /\]$/ && i < NF) i++
			if ($i ~ /^\[/) i++
			if ($(i + 1) == suite) { print $i; exit }
		}' "$f"
	done
}

mirror=${SUPERVISE_DEBIAN_MIRROR:-$(apt_mirror | sed -n 1p)}
[ -n "$mirror" ] ||
	die "can't find a Debian mirror for $suite in the apt sources; set SUPERVISE_DEBIAN_MIRROR"
[ "$(id -u)" = 0 ] || die "can't make $image: debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 ||
	die "can't make $image: debootstrap is not installed (apt-get install debootstrap)"

tree=$(mktemp -d "${TMPDIR:-/var/tmp}/supervise-base.XXXXXX")
cleanup() {
	# debootstrap mounts these while it runs; never delete through them.
	for m in dev/pts proc sys; do
		umount "$tree/$m" 2>/dev/null || true
	done
	rm -rf --one-file-system "$tree"
	rm -f "$tree.log"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "$prog: making $image with debootstrap ($suite, minbase)" >&2
debootstrap --variant=minbase "$suite" "$tree" "$mirror" >"$tree.log" 2>&1 || {
	tail -n 20 "$tree.log" >&2
	rm -f "$tree.log"
	die "can't debootstrap $suite into '$tree'"
}
rm -f "$tree.log"

# Trim like the official slim image: later package installs skip docs too.
cat >"$tree/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$tree/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
rm -rf "$tree/usr/share/man" "$tree/usr/share/info"
find "$tree/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
	-exec rm -rf {} +
rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin \
	"$tree"/var/cache/apt/archives/*.deb "$tree"/var/log/*.log
# As the official image does: no recommends, and no package caches left
# in a layer after an install.
cat >"$tree/etc/apt/apt.conf.d/90slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF

tar --numeric-owner -C "$tree" -c . |
	"$cli" import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null 2>"$tree.log" || {
	cat "$tree.log" >&2
	rm -f "$tree.log"
	die "can't import '$tree' as $image"
}
rm -f "$tree.log"
echo "$prog: made $image" >&2
