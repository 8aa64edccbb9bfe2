#!/bin/sh
# fuzz/run.sh SECONDS BUILD-DIR NAME...: run each libFuzzer target for a
# bounded time and report its executions.
#
# The seed corpus fuzz/corpus/NAME/ is read but never written: new inputs
# go to BUILD-DIR/corpus/NAME/, crash inputs to BUILD-DIR/artifacts/.  A
# target that crashes, leaks or breaks a property fails the run after all
# targets have had their turn; add the input to fuzz/corpus/NAME/ once
# the bug is fixed, so t/replay-NAME keeps it fixed.
set -u
seconds=$1 build=$2
shift 2
status=0
printf '%-8s %12s %10s %8s  %s\n' target execs exec/s corpus result
for name; do
	bin=$build/fuzz/$name
	work=$build/corpus/$name
	art=$build/artifacts
	log=$build/$name.log
	mkdir -p "$work" "$art"
	# -timeout: one input taking this long is a hang, a finding.
	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$art/$name-" \
	    ${FUZZ_FLAGS:-} "$work" "fuzz/corpus/$name" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	units=$(ls "$work" | wc -l)
	if [ "$rc" -eq 0 ]; then
		result=ok
	else
		status=1
		result="FAILED (exit $rc): see $log; input in $art/"
	fi
	printf '%-8s %12s %10s %8s  %s\n' "$name" "${execs:-?}" "${rate:-?}" \
	    "$units" "$result"
	if [ "$rc" -ne 0 ]; then
		grep -E 'ERROR:|property failed|SUMMARY:' "$log" | head -5 |
		    sed 's/^/    /'
	fi
done
exit $status
