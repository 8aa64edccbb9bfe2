#!/bin/sh
# supervised holds 1,000 blocked calls at once (JSON and SSE, no thread per
# call) and answers every one after a single bulk approve, each decision
# with its own audit commit.
#
# The spool and the audit repository go to tmpfs when there is one: this
# measures the daemon, not the disk.  With fsync on a real disk every
# commit costs a few fsyncs (about 35 ms each decision on ext4 on a VM
# disk), so 1,000 decisions take about 40 s there (SUPERVISE_BURST_DISK=1
# to measure that).
if [ -z "${SUPERVISE_BURST_DISK:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	TMPDIR=/dev/shm
	export TMPDIR
fi
. "$(dirname "$0")/lib.sh"
plan 8
# Under $SUPERVISED_WRAPPER (make check-valgrind puts memcheck there) a
# commit takes about 0.1 s instead of a few ms, and 1,000 decisions outlast
# the waits below (the answers alone take well over 90 s): there the burst
# is 200 calls, with longer waits.  What is checked is the same; the
# normal suite keeps 1,000 calls and its limits.  SUPERVISE_BURST sets N.
if [ -n "${SUPERVISED_WRAPPER:-}" ]; then
	N=${SUPERVISE_BURST:-200} file_s=120 answer_s=240 node_s=360
else
	N=${SUPERVISE_BURST:-1000} file_s=60 answer_s=90 node_s=120
fi
supervise-init web1 >/dev/null 2>&1
check "supervised starts" start_daemon d -s web1

npending() { supervise-list web1 2>/dev/null | wc -l; }
all_pending() { [ "$(npending)" -ge "$N" ]; }
done_with() { ! kill -0 "$1" 2>/dev/null; }

t0=$(date +%s%N)
timeout "$node_s" node "$T_TOP/t/burst.mjs" "$URL" "$N" >burst.out 2>&1 &
b=$!
check "$N calls file $N proposals" wait_for "$file_s" all_pending
t1=$(date +%s%N)
check_same "exactly $N" "$(npending)" "$N"
check "every call is still waiting" kill -0 $b
supervise-list web1 | cut -f1 | supervise-approve -n bulk >/dev/null
t2=$(date +%s%N)
check "every call is answered" wait_for "$answer_s" done_with $b
t3=$(date +%s%N)
diag "$N proposals filed in $(( (t1 - t0) / 1000000 )) ms;" \
    "bulk approve $(( (t2 - t1) / 1000000 )) ms;" \
    "all answered (commits included) $(( (t3 - t2) / 1000000 )) ms after it"
check_same "all approved" "$(tail -n 1 burst.out)" "answered $N approved $N failed 0"
check_same "one commit per decision" \
    "$(git --git-dir=root/audit.git log --format=%s main |
    grep -c '^web1: approve egress-block h[0-9]*\.burst\.example$')" "$N"
check "stops with status 0" stop_daemon d
done_testing
