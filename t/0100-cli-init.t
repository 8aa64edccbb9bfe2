#!/bin/sh
# supervise-init: the spool it creates, idempotence, refused slugs, usage.
. "$(dirname "$0")/lib.sh"
plan 26

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
Q=$SUPERVISE_ROOT/queue

run supervise-init web1
check_same "init exits 0" "$rc" 0
check_same "init prints the queue directory" "$out" "$Q/web1"
check_same "init is quiet on stderr" "$err" ""
modes=
for d in "" proposals proposals/tmp proposals/new proposals/cur responses \
    responses/tmp responses/new responses/cur responses/bad; do
	modes="$modes $(stat -c %a "$Q/web1/$d" 2>&1)"
done
check_same "every spool directory exists with mode 0700" "$modes" \
    " 700 700 700 700 700 700 700 700 700 700"
check "no audit repository without config files" test ! -e "$SUPERVISE_ROOT/audit.git"

# Again: same output, nothing lost.
printf 'x' >"$Q/web1/proposals/tmp/keep"
run supervise-init web1
check_same "init again exits 0" "$rc" 0
check_same "init again prints the same path" "$out" "$Q/web1"
check "init again leaves the spool's files alone" test -f "$Q/web1/proposals/tmp/keep"

# Slugs that could leave the spool, or are not names, are refused.
bad_slug() {
	run supervise-init -- "$1"
	check_same "init refuses slug '$1' (exit 1)" "$rc" 1
	check_same "init says why for '$1'" "$err" "$2"
}
bad_slug ../evil "supervise-init: can't init '../evil': invalid bottle slug '../evil': must start with a letter or digit"
bad_slug a/b "supervise-init: can't init 'a/b': invalid bottle slug 'a/b': '/' is not allowed (letters, digits, '.', '_', '-' only)"
bad_slug .hidden "supervise-init: can't init '.hidden': invalid bottle slug '.hidden': must start with a letter or digit"
bad_slug "" "supervise-init: can't init '': invalid bottle slug '': empty"
long=$(printf '%065d' 0)
bad_slug "$long" "supervise-init: can't init '$long': invalid bottle slug '$(printf '%064d' 0)...': longer than 64 bytes"
check_same "nothing was created besides web1" "$(ls -A "$Q")" "web1"
check "nothing was created next to the root" test ! -e "$T_DIR/evil" -a ! -e "$SUPERVISE_ROOT/evil"

# A slug with a terminal escape is echoed escaped.
run supervise-init "$(printf 'a\033[2Jb')"
check_match "an escape in a slug is shown escaped" "$err" 'a\\x1b\[2Jb'

# Usage.
run supervise-init
check_same "no slug: exit 2" "$rc" 2
check_match "no slug: usage line" "$err" '^usage: supervise-init '
run supervise-init a b
check_same "two slugs: exit 2" "$rc" 2
run supervise-init -h
check_same "-h: exit 0" "$rc" 0
check_match "-h: usage on stdout" "$out" '^usage: supervise-init '

done_testing
