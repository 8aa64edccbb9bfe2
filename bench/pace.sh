#!/bin/sh
# bench/pace.sh: decision -> agent at an operator's pace, next to back to
# back, from one sidecar in the same rounds.
#
#   sh bench/pace.sh [BUILD [ROUNDS [N [PACE_MS]]]]
#
# bench/latency sends its calls back to back (each once the sidecar is
# idle again): the bench's figure.  An operator deciding by hand spaces
# them by seconds.  Each round: the disk's floors (bench/floor -f, and -r
# 5: the two rounds of fsync an approval waits for), the floor of the path
# (a rename seen by inotify in another process, answered over loopback
# TCP: floor -s) paced PACE_MS apart and back to back, then N calls paced
# PACE_MS apart (latency -i), then N back to back.  ROUNDS rounds
# (default 3, N 60, PACE_MS 1000), samples pooled, summarised by
# bench/stats against the floors.  Every loop is bounded; the sidecar is stopped by
# its pid; the work directory is removed.
set -u

B=${1:-$(cd "$(dirname "$0")/.." && pwd)/build} R=${2:-3} N=${3:-60} I=${4:-1000}
for p in "$B/bin/supervised" "$B/bin/supervise-init" "$B/bench/latency" \
    "$B/bench/floor" "$B/bench/stats"; do
	[ -x "$p" ] || { echo "pace.sh: missing '$p' (make bench-build)" >&2; exit 2; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/supervise-pace.XXXXXX") || exit 1
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export SUPERVISE_OPERATOR="Bench Operator <bench@localhost>"
unset SUPERVISE_TOKEN SUPERVISE_QUEUE_DIR SUPERVISE_AUDIT_DIR SUPERVISE_STATE_DIR

SUPERVISE_ROOT=$W/root "$B/bin/supervise-init" pace >/dev/null || exit 1
SUPERVISE_ROOT=$W/root SUPERVISE_BOTTLE_SLUG=pace SUPERVISE_PORT=0 \
    "$B/bin/supervised" --port-file "$W/port" 2>"$W/log" &
dpid=$!
i=0
while [ ! -s "$W/port" ] && [ $i -lt 100 ]; do
	sleep 0.1; i=$((i + 1))
done
[ -s "$W/port" ] || { echo "pace.sh: supervised did not start" >&2; cat "$W/log" >&2; exit 1; }
P=$(cat "$W/port")

load() { cut -d' ' -f1-3 /proc/loadavg; }
lat() {
	"$B/bench/latency" -p "$P" -d "$W/root/queue/pace" -n "$N" -w 2 "$@" \
	    >/dev/null || { echo "pace.sh: latency $* failed" >&2; exit 1; }
}

echo "# B=$B rounds=$R n=$N pace=${I}ms"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) load $(load)"
r=0
while [ $r -lt "$R" ]; do
	r=$((r + 1))
	"$B/bench/floor" -f -n 50 -o "$W/floor.raw" "$W/floor" >/dev/null
	"$B/bench/floor" -r 5 -n 50 -o "$W/round.raw" "$W/floor" >/dev/null
	"$B/bench/floor" -s -n 20 -i "$I" -o "$W/tcp-paced.raw" "$W/floor" >/dev/null
	"$B/bench/floor" -s -n 200 -o "$W/tcp-b2b.raw" "$W/floor" >/dev/null
	lat -i "$I" -o "$W/paced.raw"
	lat -o "$W/b2b.raw"
done
echo "# done $(date -u +%H:%M:%S) load $(load)"
"$B/bench/stats" "disk write+fsync+dir fsync" "$W/floor.raw"
"$B/bench/stats" -f "$W/floor.raw" "disk: an approval's two rounds" "$W/round.raw"
"$B/bench/stats" "floor rename->inotify->tcp, back to back" "$W/tcp-b2b.raw"
"$B/bench/stats" -f "$W/tcp-b2b.raw" -n "back to back" "floor rename->inotify->tcp, ${I} ms apart" \
    "$W/tcp-paced.raw"
"$B/bench/stats" -f "$W/floor.raw" "decision->agent, back to back" "$W/b2b.raw"
"$B/bench/stats" -f "$W/floor.raw" "decision->agent, ${I} ms apart" "$W/paced.raw"
"$B/bench/stats" -f "$W/b2b.raw" -n "back to back" "${I} ms apart" "$W/paced.raw" | tail -1
