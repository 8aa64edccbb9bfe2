# t/lib.sh: TAP helpers for the shell tests, sourced by t/NNNN-*.t.
#
#   plan N                  print the plan
#   check MSG CMD...        ok when CMD exits 0
#   check_fail MSG CMD...   ok when CMD exits non-zero
#   check_same MSG GOT WANT ok when the two strings are equal
#   check_match MSG GOT ERE ok when GOT matches the extended regex
#   done_testing            exit non-zero when a test failed
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
unset SUPERVISE_AUDIT_DIR SUPERVISE_QUEUE_DIR SUPERVISE_BOTTLE_SLUG SUPERVISE_TOKEN
cd "$T_DIR"
