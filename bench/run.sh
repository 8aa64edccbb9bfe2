#!/bin/sh
# bench/run.sh: run the benchmarks of BENCHMARKS.md against one build and
# write each figure to bench/results/FIGURE.txt (and to stdout).
#
#   make bench                        builds, then runs this
#   BENCH_BUILD=DIR sh bench/run.sh   the build dir holding bin/ and bench/
#   BENCH_QUICK=1                     about a minute: fewer samples, 10,000
#                                     decisions of history, no 10,000 burst
#   BENCH_ONLY="latency throughput"   a subset of: latency apply
#                                     concurrency throughput scale footprint
#                                     console cotenant attacks
#   BENCH_RESULTS=DIR                 where the .txt files go
#   BENCH_VS=DIR                      apply: also another build's
#                                     sidecars, in the same rounds
#   BENCH_APPLY_ROUNDS=N              apply: the same samples in N
#                                     shorter turns
#   BENCH_KEEP=1                      keep the work directory (logs,
#                                     repositories) and say where
#   TMPDIR=DIR                        run on DIR's file system
#
# Everything runs on loopback, in a fresh SUPERVISE_ROOT under $TMPDIR,
# removed at the end.  Competitors run in the same run, interleaved in
# rounds (the floor and the daemon take turns), because this machine has
# 2 cores and neighbours: figures from different runs are not comparable.
# Every loop is bounded by a count and a time limit; each daemon this
# script starts is stopped by its pid.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
B=${BENCH_BUILD:-$top/build}
case $B in /*) ;; *) B=$top/$B ;; esac
bin=$B/bin
bb=$B/bench
res=${BENCH_RESULTS:-$top/bench/results}
quick=${BENCH_QUICK:-0}
# scale goes last: it leaves ~10^6 deleted inodes behind, and on this
# machine's ext4 (no journal) creating files right after mass deletion is
# slower (the allocator skips recently deleted inodes).
only=${BENCH_ONLY:-latency apply concurrency throughput footprint console cotenant attacks scale}

for p in "$bin/supervised" "$bin/supervise-init" "$bin/supervise-list" \
    "$bb/floor" "$bb/latency" "$bb/burst" "$bb/cycle" "$bb/approver" \
    "$bb/audit" "$bb/fill" "$bb/timeit" "$bb/stats" "$bb/startup" \
    "$bin/supervise-top" "$bb/keys" "$bb/cotenant" "$bb/attack"; do
	[ -x "$p" ] || { echo "run.sh: missing '$p' (make bench builds it)" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/supervise-bench.XXXXXX") || exit 1
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	if [ -n "${BENCH_KEEP:-}" ]; then echo "run.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SUPERVISE_ROOT="$work/root"
export SUPERVISE_OPERATOR="Bench Operator <bench@localhost>"
export PATH="$bin:$PATH"
unset SUPERVISE_TOKEN SUPERVISE_QUEUE_DIR SUPERVISE_AUDIT_DIR
mkdir -p "$SUPERVISE_ROOT" "$res"

# 10,000 blocked calls need 10,000 sockets on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)

if [ "$quick" = 1 ]; then
	lat_rounds=2 lat_n=100 floor_n=200
	bursts=1000
	cyc_secs=5 cyc_concs="1 16" audit_n=300
	hist_n=10000 hist_every=2000 hist_sample=100
	routes_n=400 routes_every=100
	list_n=10000 list_runs=3
	start_runs=5
	keys_rounds=2 keys_n=200
	cot_rounds=2 cot_n=40 cot_mb=400
	atk_burst=1000 atk_n=2000
else
	lat_rounds=5 lat_n=200 floor_n=400
	bursts="1000 10000"
	cyc_secs=15 cyc_concs="1 16 64" audit_n=2000
	hist_n=100000 hist_every=10000 hist_sample=200
	routes_n=2000 routes_every=500
	list_n=100000 list_runs=5
	start_runs=20
	keys_rounds=5 keys_n=400
	cot_rounds=4 cot_n=50 cot_mb=400
	atk_burst=10000 atk_n=$((nofile - 200))
fi

# Print a command, then run it; the result files carry exact commands.
run() {
	# printf, not echo: dash's echo would turn a \r in KEYS into a CR.
	printf '$ %s\n' "$*" | sed "s|$work|\$W|g; s|$B|\$B|g"
	"$@"
}

# The commit of the build measured ($B's checkout), and of this script
# when it comes from another checkout.
commit_of_build() {
	_bc=$(git -C "$B/.." rev-parse --short HEAD 2>/dev/null) || _bc=unknown
	_tc=$(git -C "$top" rev-parse --short HEAD 2>/dev/null)
	if [ "$_bc" = "$_tc" ]; then
		echo "commit $_bc"
	else
		echo "commit $_bc (bench/run.sh of $_tc)"
	fi
}

header() {
	echo "# $1"
	echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(commit_of_build)" \
	    "$(uname -sr), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
	    "ulimit -n $nofile, quick=$quick"
	echo "# \$B=$B  \$W=<fresh temporary directory>"
}

# start_daemon SLUG: init the bottle, start supervised on a free port;
# sets dpid and dport.
start_daemon() {
	supervise-init "$1" >/dev/null 2>"$work/$1.init.err" || {
		echo "run.sh: supervise-init $1 failed:" >&2
		cat "$work/$1.init.err" >&2
		return 1
	}
	rm -f "$work/$1.port"
	SUPERVISE_BOTTLE_SLUG=$1 SUPERVISE_PORT=0 \
	    ${BENCH_DAEMON_WRAPPER:-} "${BENCH_DAEMON_BIN:-$bin}/supervised" --port-file "$work/$1.port" \
	    ${BENCH_DAEMON_ARGS:-} 2>"$work/$1.log" &
	dpid=$!
	pids="$pids $dpid"
	i=0
	while [ ! -s "$work/$1.port" ] && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	if [ ! -s "$work/$1.port" ]; then
		echo "run.sh: supervised for $1 did not start:" >&2
		cat "$work/$1.log" >&2
		return 1
	fi
	dport=$(cat "$work/$1.port")
	dq="$SUPERVISE_ROOT/queue/$1"
}

stop_daemon() {
	kill "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

fig_latency() {
	header "1. decision to agent: publish (rename into responses/new) -> HTTP answer complete; 1b. call -> answer, decided by rule"
	# A second bottle whose policy approves every call: call -> answer,
	# in turns with the operator's calls (latency -r).
	start_daemon rule || return 1
	rpid=$dpid rport=$dport rq=$dq
	printf 'approve egress-block host=*.example.com\n' >"$work/rule.policy"
	supervise-config -f "$work/rule.policy" rule policy >/dev/null || return 1
	start_daemon lat || return 1
	r=0
	while [ $r -lt $lat_rounds ]; do
		r=$((r + 1))
		echo "## round $r of $lat_rounds"
		run "$bb/floor" -n $floor_n -o "$work/floor.raw" "$work/floor"
		run "$bb/floor" -s -n $floor_n -o "$work/floortcp.raw" "$work/floor"
		run "$bb/floor" -f -n 100 -o "$work/fsync-lat.raw" "$work/floor"
		run "$bb/floor" -r 5 -n 100 -o "$work/round-lat.raw" "$work/floor"
		# The operator's calls and the rule's in turns, one of each
		# an iteration, in one process: the ratio of 1b.
		run "$bb/latency" -p "$dport" -d "$dq" -r "$rport" -q "$rq" \
		    -n $lat_n -o "$work/sse.raw" -P "$work/prop.raw" \
		    -R "$work/rule.raw" -C "$work/opcall.raw"
		run "$bb/latency" -j -p "$dport" -d "$dq" -n $lat_n -o "$work/json.raw"
	done
	echo "## all rounds (ms)"
	"$bb/stats" "floor rename->inotify" "$work/floor.raw"
	"$bb/stats" -f "$work/floor.raw" "floor rename->inotify->tcp" "$work/floortcp.raw"
	"$bb/stats" -f "$work/floor.raw" "decision->agent sse" "$work/sse.raw"
	"$bb/stats" -f "$work/floortcp.raw" "decision->agent sse (vs tcp floor)" "$work/sse.raw" | tail -1
	"$bb/stats" -f "$work/floor.raw" "decision->agent json" "$work/json.raw"
	# 1b: the same rounds, the same process, calls in turns.
	"$bb/stats" -f "$work/sse.raw" -n "decision->agent sse" "call->agent by rule sse" "$work/rule.raw"
	"$bb/stats" "call->agent by operator sse, less the operator's time" "$work/opcall.raw"
	"$bb/stats" -f "$work/opcall.raw" -n "operator's call less its wait" "call->agent by rule sse" "$work/rule.raw" | tail -1
	"$bb/stats" "call->proposal visible" "$work/prop.raw"
	"$bb/stats" "disk: write+fsync+dir fsync" "$work/fsync-lat.raw"
	"$bb/stats" -f "$work/fsync-lat.raw" "disk: an approval's two rounds (5 fsyncs at once, dir fsync)" \
	    "$work/round-lat.raw"
	stop_daemon "$dpid"
	stop_daemon "$rpid"
}

fig_apply() {
	header "7. the apply hook: decision to agent with a hook that does nothing, next to none"
	# Three bottles in the same run, taking turns: no hook ("applied: no:
	# no hook configured"), /bin/true, and a two-line sh script.  What the
	# hook adds is starting it: fork/exec, the pipe, waiting for its exit.
	# The floor in the same rounds: a small program starting /bin/true
	# and waiting for it (timeit), which no hook can beat.
	printf '#!/bin/sh\nexit 0\n' >"$work/hook.sh" && chmod 755 "$work/hook.sh"
	start_daemon nohook || return 1
	npid=$dpid nport=$dport nq=$dq
	BENCH_DAEMON_ARGS="--apply-hook /bin/true" start_daemon truehook || return 1
	tpid=$dpid tport=$dport tq=$dq
	BENCH_DAEMON_ARGS="--apply-hook $work/hook.sh" start_daemon shhook || return 1
	spid=$dpid sport=$dport sq=$dq
	# BENCH_VS=DIR: the same without a hook and with /bin/true, from
	# another build, in the same rounds: the two builds side by side.
	vs=${BENCH_VS:-}
	case $vs in ''|/*) ;; *) vs=$top/$vs ;; esac
	if [ -n "$vs" ]; then
		echo "# vs: \$VS=$vs (commit $(git -C "$vs/.." rev-parse --short HEAD 2>/dev/null))"
		BENCH_DAEMON_BIN=$vs/bin start_daemon vsnohook || return 1
		vnpid=$dpid vnport=$dport vnq=$dq
		BENCH_DAEMON_BIN=$vs/bin BENCH_DAEMON_ARGS="--apply-hook /bin/true" \
		    start_daemon vstruehook || return 1
		vtpid=$dpid vtport=$dport vtq=$dq
	fi
	# BENCH_APPLY_ROUNDS=N: as many samples in N shorter turns (and 5
	# warm-up calls a turn, not 20), so that a neighbour's burst of work
	# falls on every sidecar alike.
	ar=${BENCH_APPLY_ROUNDS:-$lat_rounds} aw=20
	an=$(( (lat_rounds * lat_n + ar - 1) / ar ))
	[ "$ar" = "$lat_rounds" ] || aw=5
	r=0
	while [ $r -lt $ar ]; do
		r=$((r + 1))
		echo "## round $r of $ar"
		run "$bb/timeit" -n $an -o "$work/apply-spawn.raw" \
		    "floor: start /bin/true, wait for its exit" -- /bin/true
		run "$bb/latency" -p "$nport" -d "$nq" -n $an -w $aw -o "$work/apply-none.raw" \
		    -a "applied: no: no hook configured"
		run "$bb/latency" -p "$tport" -d "$tq" -n $an -w $aw -o "$work/apply-true.raw" \
		    -a "applied: yes"
		run "$bb/latency" -p "$sport" -d "$sq" -n $an -w $aw -o "$work/apply-sh.raw" \
		    -a "applied: yes"
		[ -n "$vs" ] || continue
		run "$bb/latency" -p "$vnport" -d "$vnq" -n $an -w $aw -o "$work/apply-vsnone.raw" \
		    -a "applied: no: no hook configured"
		run "$bb/latency" -p "$vtport" -d "$vtq" -n $an -w $aw -o "$work/apply-vstrue.raw" \
		    -a "applied: yes"
	done
	echo "## all rounds (ms)"
	"$bb/stats" "floor: start /bin/true, wait for its exit" "$work/apply-spawn.raw"
	"$bb/stats" "decision->agent sse, no hook" "$work/apply-none.raw"
	"$bb/stats" -f "$work/apply-none.raw" "decision->agent sse, hook /bin/true (vs no hook)" \
	    "$work/apply-true.raw"
	"$bb/stats" -f "$work/apply-none.raw" "decision->agent sse, hook sh script (vs no hook)" \
	    "$work/apply-sh.raw"
	if [ -n "$vs" ]; then
		"$bb/stats" "\$VS decision->agent sse, no hook" "$work/apply-vsnone.raw"
		"$bb/stats" -f "$work/apply-vsnone.raw" "\$VS decision->agent sse, hook /bin/true (vs its no hook)" \
		    "$work/apply-vstrue.raw"
		"$bb/stats" -f "$work/apply-vstrue.raw" -n "\$VS's" \
		    "decision->agent sse, hook /bin/true" "$work/apply-true.raw" | tail -1
		"$bb/stats" -f "$work/apply-vsnone.raw" -n "\$VS's" \
		    "decision->agent sse, no hook" "$work/apply-none.raw" | tail -1
		stop_daemon "$vnpid"
		stop_daemon "$vtpid"
	fi
	stop_daemon "$npid"
	stop_daemon "$tpid"
	stop_daemon "$spid"
}

fig_concurrency() {
	header "2. concurrency: N blocked calls in one burst, one bulk approve"
	for n in $bursts; do
		echo "## $n calls"
		start_daemon "burst$n" || return 1
		run "$bb/burst" -p "$dport" -d "$dq" -P "$dpid" -n "$n" -t 300
		stop_daemon "$dpid"
	done
}

fig_throughput() {
	header "3. throughput: propose -> approve -> audit commit -> answer, fsync on"
	for c in $cyc_concs; do
		echo "## $c calls in flight"
		start_daemon "cyc$c" || return 1
		"$bb/approver" -d "$dq" -t $((cyc_secs + 120)) &
		apid=$!
		pids="$pids $apid"
		run "$bb/floor" -f -n 100 -o "$work/fsync-tp.raw" "$work/floor"
		run "$bb/cycle" -p "$dport" -c "$c" -t "$cyc_secs"
		kill "$apid"; wait "$apid"
		stop_daemon "$dpid"
	done
	echo "## audit commits on their own (sv_audit_commit_decisions in a loop)"
	run "$bb/floor" -f -n 100 -o "$work/fsync-tp.raw" "$work/floor"
	run "$bb/audit" -r "$work/commits.git" -n "$audit_n"
	echo "## the same in batches of 16 and 64, as responses arriving together"
	run "$bb/audit" -r "$work/batch16.git" -n "$audit_n" -b 16
	run "$bb/audit" -r "$work/batch64.git" -n "$audit_n" -b 64
	run "$bb/floor" -f -n 100 -o "$work/fsync-tp.raw" "$work/floor"
	"$bb/stats" "disk over the figure: write+fsync+dir fsync" "$work/fsync-tp.raw"
}

fig_scale() {
	header "4. scale: commit time as history grows; supervise-list with many pending"
	run "$bb/audit" -r "$work/history.git" -n "$hist_n" -s "$hist_every" \
	    -k "$hist_sample" -F
	echo "## the same with a new host approved each time: routes.json grows"
	run "$bb/audit" -r "$work/routes.git" -n "$routes_n" -s "$routes_every" -u
	echo "## history size: $(find "$work/history.git/objects" -type f | wc -l) files in objects/," \
	    "$(du -sh "$work/history.git" | cut -f1)"
	supervise-init listing >/dev/null || return 1
	run "$bb/fill" -d "$SUPERVISE_ROOT/queue/listing" -n "$list_n"
	run "$bb/timeit" -n "$list_runs" "supervise-list ($list_n pending)" -- \
	    supervise-list listing
	run "$bb/timeit" -n "$list_runs" "floor: readdir+read each" -- \
	    "$bb/fill" -d "$SUPERVISE_ROOT/queue/listing" -r
	echo "## check: $(supervise-list listing | wc -l) lines listed"
}

fig_footprint() {
	header "5. footprint: start-up (exec -> /health answered) and idle RSS"
	supervise-init foot >/dev/null || return 1
	SUPERVISE_BOTTLE_SLUG=foot run "$bb/startup" -b "$bin/supervised" -n "$start_runs"
}

fig_console() {
	header "6. console: supervise-top, key -> screen through a pty (80x24), 1,000 pending"
	supervise-init console >/dev/null || return 1
	run "$bb/fill" -d "$SUPERVISE_ROOT/queue/console" -n 1000
	r=0
	while [ $r -lt $keys_rounds ]; do
		r=$((r + 1))
		echo "## round $r of $keys_rounds"
		run "$bb/keys" -n $keys_n -o "$work/keysfloor.raw" -- cat
		run "$bb/keys" -n $keys_n -w '1000 pending' -o "$work/keysj.raw" \
		    -- supervise-top console
		run "$bb/keys" -n $((keys_n / 4)) -k '\rq' \
		    -w '1000 pending' -o "$work/keysopen.raw" -- supervise-top console
	done
	echo "## all rounds (ms)"
	"$bb/stats" "floor: key -> echo (cat on the pty)" "$work/keysfloor.raw"
	"$bb/stats" -f "$work/keysfloor.raw" "j: the next row" "$work/keysj.raw"
	"$bb/stats" -f "$work/keysfloor.raw" "Enter, q: open a proposal (read, diff, mark seen), back" \
	    "$work/keysopen.raw"
}

# 8. Another program keeps writing large files to the same file system:
# the disk's floor and decision to agent, each quiet and under that
# load, taking turns within each round so both see the same load.
fig_cotenant() {
	header "8. a co-tenant: decision to agent while another program writes ${cot_mb} MB files to the same file system"
	start_daemon cot || return 1
	mkdir -p "$work/cot"
	r=0
	while [ $r -lt $cot_rounds ]; do
		r=$((r + 1))
		echo "## round $r of $cot_rounds: quiet"
		run "$bb/floor" -f -n $cot_n -o "$work/cot-floor-quiet.raw" "$work/floor"
		run "$bb/floor" -r 5 -n $cot_n -o "$work/cot-round-quiet.raw" "$work/floor"
		run "$bb/latency" -p "$dport" -d "$dq" -n $cot_n -o "$work/cot-sse-quiet.raw"
		echo "## round $r of $cot_rounds: while the co-tenant writes"
		rm -f "$work/cot/ready"
		"$bb/cotenant" -d "$work/cot" -s $cot_mb -t 600 -r "$work/cot/ready" \
		    >"$work/cot.out" &
		cpid=$!
		pids="$pids $cpid"
		i=0
		while [ ! -e "$work/cot/ready" ] && [ $i -lt 600 ]; do
			sleep 0.1; i=$((i + 1))
		done
		if [ ! -e "$work/cot/ready" ]; then
			echo "run.sh: the co-tenant wrote nothing in 60 s" >&2
			kill "$cpid"; wait "$cpid"
			return 1
		fi
		for half in 1 2; do
			run "$bb/floor" -f -n $cot_n -o "$work/cot-floor-load.raw" "$work/floor"
			run "$bb/floor" -r 5 -n $cot_n -o "$work/cot-round-load.raw" "$work/floor"
			run "$bb/latency" -p "$dport" -d "$dq" -n $cot_n -o "$work/cot-sse-load.raw"
		done
		kill "$cpid"; wait "$cpid"
		cat "$work/cot.out"
	done
	echo "## all rounds (ms)"
	"$bb/stats" "quiet: disk write+fsync+dir fsync" "$work/cot-floor-quiet.raw"
	"$bb/stats" -f "$work/cot-floor-quiet.raw" "quiet: disk, an approval's two rounds (5 fsyncs at once, dir fsync)" \
	    "$work/cot-round-quiet.raw"
	"$bb/stats" -f "$work/cot-floor-quiet.raw" "quiet: decision->agent sse" "$work/cot-sse-quiet.raw"
	"$bb/stats" "co-tenant: disk write+fsync+dir fsync" "$work/cot-floor-load.raw"
	"$bb/stats" -f "$work/cot-floor-load.raw" "co-tenant: disk, an approval's two rounds (5 fsyncs at once, dir fsync)" \
	    "$work/cot-round-load.raw"
	"$bb/stats" -f "$work/cot-floor-load.raw" "co-tenant: decision->agent sse" "$work/cot-sse-load.raw"
	stop_daemon "$dpid"
}

# 9. What an agent can make the daemon hold, each attack on a fresh
# daemon with the defaults (--body-budget 64 MiB, --body-timeout 30 s,
# --max-waiters 64), next to idle and to calls that wait as they should.
fig_attacks() {
	header "9. attacks: the daemon's RSS under the worst an agent can do, next to idle and $atk_burst waiting calls"
	echo "## $atk_burst calls waiting (SSE), then dropped"
	start_daemon atkwait || return 1
	run "$bb/burst" -p "$dport" -d "$dq" -P "$dpid" -n "$atk_burst" -t 300 -w
	stop_daemon "$dpid"
	echo "## trickled 1 MiB bodies on $atk_n connections at once (the fd limit less 200)"
	start_daemon atktrickle || return 1
	run "$bb/attack" -p "$dport" -P "$dpid" -m trickle -n "$atk_n" -t 90
	stop_daemon "$dpid"
	echo "## identical calls, each closed as soon as it is sent"
	start_daemon atkabandon || return 1
	run "$bb/attack" -p "$dport" -P "$dpid" -m abandon -n 500 -s 900000 -t 120
	run "$bb/attack" -p "$dport" -P "$dpid" -m abandon -n 9800 -s 1000 -t 120
	stop_daemon "$dpid"
}

status=0
for f in $only; do
	case $f in
	latency|apply|concurrency|throughput|scale|footprint|console|cotenant|attacks) ;;
	*) echo "run.sh: unknown figure '$f'" >&2; exit 2 ;;
	esac
	echo "==> $f" >&2
	fig_$f >"$work/$f.txt" 2>&1 || status=1
	cp "$work/$f.txt" "$res/$f.txt"
	cat "$res/$f.txt"
done
exit $status
