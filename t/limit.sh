#!/bin/sh
# t/limit.sh TEST: how prove runs each test file (make check passes it as
# --exec): TEST, by the interpreter its #! line names, under a time limit
# of $SUPERVISE_TEST_LIMIT seconds (300), so that a test that hangs fails
# with its name and the reason instead of holding the suite.  timeout(1)
# signals the test's whole process group: daemons it started stop too.
limit=${SUPERVISE_TEST_LIMIT:-300}
t=${1:?usage: limit.sh TEST}
interp=
IFS= read -r first <"$t" || first=
case $first in
'#!'*) interp=${first#??} ;;
esac
# shellcheck disable=SC2086	# "/usr/bin/env node": split on purpose
timeout -k 10 "$limit" ${interp:-/bin/sh} "$t"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "not ok - $t still running after $limit s (SUPERVISE_TEST_LIMIT); stopped"
	echo "$t: still running after $limit s (SUPERVISE_TEST_LIMIT); stopped" >&2
fi
exit "$rc"
