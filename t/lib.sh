# t/lib.sh: TAP helpers for the shell tests, sourced by t/NNNN-*.t.
#
#   plan N                  print the plan
#   check MSG CMD...        ok when CMD exits 0
#   check_fail MSG CMD...   ok when CMD exits non-zero
#   check_same MSG GOT WANT ok when the two strings are equal
#   check_match MSG GOT ERE ok when GOT matches the extended regex
#   done_testing            exit non-zero when a test failed
#   nfiles DIR...           how many names the DIRs hold
#   nflagged FLAG DIR...    how many names in the DIRs carry maildir flag
#                           FLAG (a letter after ":2,")
#   mail_host               this host's name as our programs put it in
#                           an email (LOGIN@HOST)
#   use_bottle SLUG         supervise-init SLUG, quietly; sets Q (its queue)
#                           and A (the audit repository), both relative to
#                           the test's directory
#   g GIT_ARG...            git on the audit repository $A
#   spool_proposals QUEUE K TAG
#                           write K egress-block proposals straight into
#                           QUEUE/proposals/new (as any component may: the
#                           spool is a public interface); their ids, one a
#                           line, on stdout, named NNN.M<i>P1Q1.TAG
#
# Every test runs in a fresh directory with its own SUPERVISE_ROOT; the
# directory is removed when the test exits.

ntest=0
nfail=0
plan() { echo "1..$1"; }
ok() { ntest=$((ntest + 1)); echo "ok $ntest - $1"; }
not_ok() {
	ntest=$((ntest + 1)); nfail=$((nfail + 1))
	echo "not ok $ntest - $1"
}
diag() { printf '%s\n' "$@" | sed 's/^/# /' >&2; }
check() {
	msg=$1; shift
	if "$@"; then ok "$msg"; else not_ok "$msg"; fi
}
check_fail() {
	msg=$1; shift
	if "$@"; then not_ok "$msg"; else ok "$msg"; fi
}
check_same() {
	if [ "$2" = "$3" ]; then ok "$1"; else
		not_ok "$1"; diag "got:" "$2" "wanted:" "$3"
	fi
}
check_match() {
	if printf '%s\n' "$2" | grep -Eq -- "$3"; then ok "$1"; else
		not_ok "$1"; diag "got:" "$2" "wanted match:" "$3"
	fi
}
done_testing() { [ "$nfail" -eq 0 ]; }

# Count names, not lines that merely contain a letter: ids hold capitals of
# their own (the R before the random part, the P and Q of the pid and
# sequence, the host), and `ls DIR1 DIR2` adds a header line for each DIR,
# a path that may contain any letter too.
spool_proposals() {
	awk -v k="$2" -v tag="$3" -v dir="$1/proposals/new" -v slug="${1##*/}" 'BEGIN {
		for (i = 1; i <= k; i++) {
			id = sprintf("1795400000.M%dP1Q1.%s", i, tag)
			f = dir "/" id
			printf "{\n  \"arrival_timestamp\": \"2026-11-23T00:00:00Z\",\n" \
			    "  \"bottle_slug\": \"%s\",\n" \
			    "  \"current_file_hash\": \"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\",\n" \
			    "  \"id\": \"%s\",\n  \"justification\": \"job %d\",\n" \
			    "  \"proposed_file\": \"{\\\"host\\\": \\\"h%d.example\\\"}\",\n" \
			    "  \"tool\": \"egress-block\"\n}\n", slug, id, i, i > f
			close(f)
			print id
		}
	}'
}
use_bottle() {
	supervise-init "$1" >/dev/null 2>&1
	Q=root/queue/$1
	A=root/audit.git
}
g() { git --git-dir="$A" "$@"; }
mail_host() {
	uname -n | tr -c 'A-Za-z0-9._\n-' '-'
}
nfiles() {
	for _nf_d; do ls -A -- "$_nf_d"; done | wc -l | tr -d ' '
}
nflagged() {
	_nf_flag=$1; shift
	for _nf_d; do ls -A -- "$_nf_d"; done |
	    awk -v f="$_nf_flag" '{ i = index($0, ":2,") }
	        i && index(substr($0, i + 3), f) { n++ } END { print n + 0 }'
}

T_TOP=$(cd "$(dirname "$0")/.." && pwd)
T_BUILD=${SUPERVISE_BUILD:-$T_TOP/build}
PATH="$T_BUILD/bin:$PATH"
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/supervise-t.XXXXXX")
cleanup() {
	for f in "$T_DIR"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	rm -rf "$T_DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
export SUPERVISE_ROOT="$T_DIR/root"
export SUPERVISE_OPERATOR="Test Operator <op@example.org>"
# git as on a fresh clone on a fresh machine: no system or global config
# (no identity of this machine's, none of the developer's), and the
# identity our own git commands (commit-tree, commit) need, set here.
# Our programs read ~/.gitconfig (through libgit2) only when
# SUPERVISE_OPERATOR, above, is unset.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="Test Git" GIT_AUTHOR_EMAIL=git@example.org
export GIT_COMMITTER_NAME="Test Git" GIT_COMMITTER_EMAIL=git@example.org
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY \
    GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_CONFIG GIT_CONFIG_PARAMETERS \
    GIT_CONFIG_COUNT EMAIL
unset SUPERVISE_AUDIT_DIR SUPERVISE_QUEUE_DIR SUPERVISE_BOTTLE_SLUG SUPERVISE_TOKEN \
    SUPERVISE_STATE_DIR SUPERVISE_APPLY_HOOK SUPERVISE_APPLY_TIMEOUT
# Nor a repository around the test's directory (TMPDIR may be in a clone).
export GIT_CEILING_DIRECTORIES="${T_DIR%/*}"
cd "$T_DIR" || exit 1

# --- supervised on a loopback port (the 03xx tests) -------------------------
#
#   start_daemon NAME [ARG...]  start supervised ARG... on 127.0.0.1, port 0
#                               (a free one, read back from --port-file);
#                               sets PORT and URL; stderr goes to
#                               $T_DIR/NAME.log, the pid to $T_DIR/NAME.pid
#                               (so cleanup stops it).  $SUPERVISED_WRAPPER,
#                               when set, is put in front (valgrind ...).
#   stop_daemon NAME            SIGTERM, wait (bounded); returns its status
#   wait_for SECONDS CMD...     run CMD every 0.05 s until it succeeds;
#                               fails after SECONDS
#   mcp_post [CURL_ARG...]      POST to $URL with curl (-s, 20 s cap)
#   tool_call ID TOOL ARGS [CURL_ARG...]
#                               a blocking tools/call answered as one JSON
#                               body (60 s cap); ARGS is a JSON object
#   start_egress ROUTES         mitmdump with t/egress.py as the bottle's
#                               egress proxy on a loopback port, enforcing
#                               the live ROUTES file; sets PROXY; its log
#                               is $T_DIR/mitm.log, its pid $T_DIR/mitm.pid

T_WAIT=${SUPERVISE_TEST_WAIT:-30}	# seconds; longer under valgrind

wait_for() {
	_wf_n=$(($1 * 20)); shift
	while ! "$@"; do
		_wf_n=$((_wf_n - 1))
		[ "$_wf_n" -le 0 ] && return 1
		sleep 0.05
	done
	return 0
}

start_daemon() {
	_sd_name=$1; shift
	rm -f "$T_DIR/$_sd_name.port"
	# Not on our stdout: a daemon left behind must not hold prove's pipe.
	SUPERVISE_PORT=0 SUPERVISE_BIND=127.0.0.1 $SUPERVISED_WRAPPER \
	    supervised --port-file "$T_DIR/$_sd_name.port" "$@" \
	    >"$T_DIR/$_sd_name.log" 2>&1 &
	echo $! >"$T_DIR/$_sd_name.pid"
	if ! wait_for "$T_WAIT" test -s "$T_DIR/$_sd_name.port"; then
		diag "supervised $* did not start:" "$(cat "$T_DIR/$_sd_name.log")"
		# Stop it now: a second start_daemon NAME would lose its pid.
		stop_daemon "$_sd_name" >/dev/null 2>&1
		return 1
	fi
	PORT=$(cat "$T_DIR/$_sd_name.port")
	URL="http://127.0.0.1:$PORT/mcp"
}

stop_daemon() {
	_sd_pid=$(cat "$T_DIR/$1.pid" 2>/dev/null) || return 1
	kill -TERM "$_sd_pid" 2>/dev/null
	if ! wait_for "$T_WAIT" _sd_gone "$_sd_pid"; then
		diag "supervised did not stop; killing it"
		kill -KILL "$_sd_pid" 2>/dev/null
	fi
	wait "$_sd_pid"
	_sd_status=$?
	rm -f "$T_DIR/$1.pid"
	[ "$_sd_status" -eq 0 ] || diag "supervised exited $_sd_status:" \
	    "$(tail -n 40 "$T_DIR/$1.log")"
	return "$_sd_status"
}
# Exited: gone, or a zombie waiting for our `wait`.
_sd_gone() {
	! kill -0 "$1" 2>/dev/null ||
	    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'
}

tool_call() {
	_tc_id=$1 _tc_tool=$2 _tc_args=$3; shift 3
	curl -s -H "Content-Type: application/json" --max-time 60 -H 'Accept: application/json' "$@" -d \
	    "{\"jsonrpc\":\"2.0\",\"id\":$_tc_id,\"method\":\"tools/call\",\"params\":{\"name\":\"$_tc_tool\",\"arguments\":$_tc_args}}" \
	    "$URL"
}

mcp_post() {
	curl -s --max-time 20 -H 'Content-Type: application/json' \
	    -H 'Accept: application/json' "$@" "$URL"
}

start_egress() {
	mitmdump -q --listen-host 127.0.0.1 -p 0 -s "$T_TOP/t/egress.py" \
	    --set egress_routes="$1" \
	    --set egress_port_file="$T_DIR/mitm.port" >"$T_DIR/mitm.log" 2>&1 &
	echo $! >"$T_DIR/mitm.pid"
	wait_for "$T_WAIT" test -s "$T_DIR/mitm.port" || return 1
	PROXY=http://127.0.0.1:$(cat "$T_DIR/mitm.port")
}
