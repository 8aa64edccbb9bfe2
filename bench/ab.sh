#!/bin/sh
# bench/ab.sh: decision -> agent of two builds side by side, in the same
# rounds: what BENCHMARKS.md calls a before/after.
#
#   sh bench/ab.sh A_BUILD B_BUILD [ROUNDS [N [COTENANT]]]
#
# Each build's supervised runs on a bottle of its own in a SUPERVISE_ROOT
# of its own (the two never share a repository or a lock).  Each round:
# the disk's floor (bench/floor -f: write + fsync + directory fsync), then
# N calls of bench/latency against A and N against B, the order swapped
# every round.  ROUNDS rounds (default 6, N 50) with nothing else of ours
# running, then, unless COTENANT is 0, the same rounds again while
# bench/cotenant writes 400 MB files to the same file system.  Samples
# are pooled per phase and summarised by bench/stats against the floor
# of the same phase.  The bench programs are B's.  Every loop is bounded;
# each daemon is stopped by its pid; the work directory is removed.
set -u

[ $# -ge 2 ] || { echo "usage: sh bench/ab.sh A_BUILD B_BUILD [ROUNDS [N [COTENANT]]]" >&2; exit 2; }
A=$1 B=$2 R=${3:-6} N=${4:-50} COT=${5:-1}
for p in "$A/bin/supervised" "$B/bin/supervised" "$A/bin/supervise-init" \
    "$B/bench/latency" "$B/bench/floor" "$B/bench/stats" "$B/bench/cotenant"; do
	[ -x "$p" ] || { echo "ab.sh: missing '$p' (make bench-build)" >&2; exit 2; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/supervise-ab.XXXXXX") || exit 1
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export SUPERVISE_OPERATOR="Bench Operator <bench@localhost>"
unset SUPERVISE_TOKEN SUPERVISE_QUEUE_DIR SUPERVISE_AUDIT_DIR SUPERVISE_STATE_DIR

# start NAME BUILD
start() {
	mkdir -p "$W/$1"
	SUPERVISE_ROOT=$W/$1/root "$2/bin/supervise-init" "$1" >/dev/null || exit 1
	SUPERVISE_ROOT=$W/$1/root SUPERVISE_BOTTLE_SLUG=$1 SUPERVISE_PORT=0 \
	    "$2/bin/supervised" --port-file "$W/$1.port" 2>"$W/$1.log" &
	pids="$pids $!"
	i=0
	while [ ! -s "$W/$1.port" ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	[ -s "$W/$1.port" ] || { echo "ab.sh: supervised ($2) did not start" >&2; cat "$W/$1.log" >&2; exit 1; }
}

# lat NAME RAW
lat() {
	"$B/bench/latency" -p "$(cat "$W/$1.port")" -d "$W/$1/root/queue/$1" \
	    -n "$N" -o "$2" >/dev/null || echo "ab.sh: latency against $1 failed" >&2
}

# phase TAG
phase() {
	r=0
	while [ $r -lt "$R" ]; do
		r=$((r + 1))
		"$B/bench/floor" -f -n 50 -o "$W/floor-$1.raw" "$W/floor" >/dev/null
		if [ $((r % 2)) = 1 ]; then
			lat a "$W/a-$1.raw"; lat b "$W/b-$1.raw"
		else
			lat b "$W/b-$1.raw"; lat a "$W/a-$1.raw"
		fi
	done
}

load() { cut -d' ' -f1-3 /proc/loadavg; }

start a "$A"
start b "$B"
echo "# A=$A B=$B rounds=$R n=$N"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) load $(load)"
phase quiet
echo "# no co-tenant done $(date -u +%H:%M:%S) load $(load)"
if [ "$COT" != 0 ]; then
	mkdir -p "$W/cot"
	"$B/bench/cotenant" -d "$W/cot" -s 400 -t 900 -r "$W/cot/ready" >"$W/cot.out" &
	cpid=$!
	i=0
	while [ ! -e "$W/cot/ready" ] && [ $i -lt 600 ]; do
		sleep 0.1; i=$((i + 1))
	done
	[ -e "$W/cot/ready" ] || { echo "ab.sh: the co-tenant wrote nothing in 60 s" >&2; kill "$cpid"; exit 1; }
	phase load
	kill "$cpid"; wait "$cpid"
	cat "$W/cot.out"
	echo "# co-tenant done $(date -u +%H:%M:%S) load $(load)"
fi
for p in quiet load; do
	[ -e "$W/floor-$p.raw" ] || continue
	"$B/bench/stats" "$p: disk write+fsync+dir fsync" "$W/floor-$p.raw"
	"$B/bench/stats" -f "$W/floor-$p.raw" "$p: A decision->agent" "$W/a-$p.raw"
	"$B/bench/stats" -f "$W/floor-$p.raw" "$p: B decision->agent" "$W/b-$p.raw"
done
