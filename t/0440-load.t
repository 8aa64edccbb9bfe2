#!/bin/sh
# Load: LOAD_N proposals (1000 here; `make check-load` runs 10,000) from
# LOAD_CLIENTS concurrent agents, decided while they arrive by two
# operators at once (one approving, one rejecting), every one accounted for
# in the spool (in cur/ with R) and in the audit repository (one record and
# one commit each), within LOAD_SECONDS.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
N=${LOAD_N:-1000}
CLIENTS=${LOAD_CLIENTS:-100}
LIMIT=${LOAD_SECONDS:-$((N / 10 + 60))}
plan 12

supervise-init "$SLUG" >/dev/null 2>&1
start_daemon d -s "$SLUG" || { not_ok "supervised starts"; done_testing; exit 1; }
start=$(date +%s)

timeout "$LIMIT" node "$T_TOP/t/loadclient.mjs" "$URL" "$N" distinct l "$CLIENTS" \
    >client.out 2>client.err &
client=$!

# operator VERB: decide what is pending, in batches, until the agents are
# done.  Two operators race for the same proposals: one wins each, the
# other is told "already decided" (not a failure of the test).
# Like the client (timeout LIMIT), they stop after LIMIT seconds at most.
operator() {
	_op_end=$(($(date +%s) + LIMIT + 10)) _op_n=0
	while kill -0 "$client" 2>/dev/null &&
	    [ "$(date +%s)" -lt "$_op_end" ] &&
	    [ "$_op_n" -lt $(((LIMIT + 10) * 20)) ]; do
		_op_n=$((_op_n + 1))
		supervise-list 2>/dev/null | cut -f1 | awk 'NR % 2 == '"$2" |
		    head -n 200 | supervise-"$1" -n "load" >>"$1.out" 2>>"$1.err"
		sleep 0.05
	done
}
operator approve 0 &
op1=$!
operator reject 1 &
op2=$!
wait "$client"
client_rc=$?
wait "$op1" "$op2"
elapsed=$(($(date +%s) - start))
summary=$(tail -n 1 client.out)
diag "$N calls from $CLIENTS agents: $summary; $elapsed s in all"
check_same "the agents finished in time" "$client_rc" 0
check_match "every call got a decision" "$summary" \
    "^answered $N approved [0-9]+ rejected [0-9]+ failed 0 "
approved=$(echo "$summary" | awk '{ print $4 }')
rejected=$(echo "$summary" | awk '{ print $6 }')
check "both operators decided some" test "$approved" -gt 0 -a "$rejected" -gt 0
[ -s client.err ] && diag "$(head -n 5 client.err)"
check_same "none is left pending" "$(supervise-list | grep -c .)" 0

check "supervised stops cleanly" stop_daemon d
spoolcheck -c -a "$AUDIT" >final 2>final.err
check_same "spool and audit repository agree" "$(head -n 5 final.err)" ""
check_match "$N proposals, all in cur/ and decided" "$(cat final)" \
    "^proposals=$N new=0 decided=$N withdrawn=0 responses_new=0 responses_cur=$N "
check_same "$N audit records" "$(audit_records)" "$N"
check_same "$N decision commits" "$(audit_commits)" "$N"
check_same "no decision committed twice" "$(audit_dup_commits)" ""
check_same "the audit agrees with what the agents were told" \
    "$(audit_decisions | awk '{ n[$2]++ } END { printf "%d %d", n["approved"], n["rejected"] }')" \
    "$approved $rejected"
fsck=$(git --git-dir="$AUDIT" fsck --strict --no-dangling 2>&1)
check "audit repository passes git fsck --strict" test $? -eq 0
[ -z "$fsck" ] || diag "$fsck"
done_testing
