#!/bin/sh
# supervise-show: the text it prints, marking seen (new/ID -> cur/ID:2,S),
# -q, ids from stdin, and its errors.
. "$(dirname "$0")/lib.sh"
plan 27

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
Q=$SUPERVISE_ROOT/queue
P=$Q/web1/proposals

supervise-init web1 >/dev/null
id=$(supervise-propose -s web1 -t pipelock-block -j 'pip needs the index
to install the build tools' 'https://pkg.example.org/simple/x')
at=$(sed -n 's/.*"arrival_timestamp": "\([^"]*\)".*/\1/p' "$P/new/$id")

run supervise-show "$id"
check_same "show exits 0" "$rc" 0
check_same "show is quiet on stderr" "$err" ""
check_same "headers, justification and proposed file" \
    "$(printf '%s\n' "$out" | sed -n 1,14p)" \
"Id: $id
Bottle: web1
Tool: pipelock-block
Arrived: $at
State: new

Justification:
pip needs the index
to install the build tools

Proposed file:
https://pkg.example.org/simple/x

Diff of web1/pipelock/allowlist:"
check_match "the diff adds the host" "$out" '^\+pkg\.example\.org$'
check "show moved new/ID to cur/ID:2,S" test -f "$P/cur/$id:2,S"
check "show left nothing in new/" test ! -e "$P/new/$id"

run supervise-show "$id"
check_same "show again: exit 0" "$rc" 0
check_match "show again: the state is seen" "$out" '^State: seen$'
check "show again leaves cur/ID:2,S" test -f "$P/cur/$id:2,S"

# -q only marks seen.
id2=$(supervise-propose -s web1 -t capability-block -j why 'FROM debian:12')
run supervise-show -q "$id2"
check_same "-q: exit 0, no output" "$rc:$out$err" "0:"
check "-q marked it seen" test -f "$P/cur/$id2:2,S"

# Ids from stdin, the first field of supervise-list lines.
id3=$(supervise-propose -s web1 -t capability-block -j why 'FROM alpine')
id4=$(supervise-propose -s web1 -t gitleaks-allow -j why 'abc:x.env:rule:3')
supervise-list web1 >list
run sh -c 'grep -v "	seen	" list | supervise-show'
check_same "ids from stdin: exit 0" "$rc" 0
check_same "ids from stdin: each shown, in order" \
    "$(printf '%s\n' "$out" | sed -n 's/^Id: //p')" "$(printf '%s\n' "$id3" "$id4")"
check_match "proposals are separated by a blank line" \
    "$(printf '%s\n' "$out" | grep -B1 '^Id: ' | sed -n 3p)" '^$'
check "both were marked seen" test -f "$P/cur/$id3:2,S" -a -f "$P/cur/$id4:2,S"

# The state of a decided proposal, and no diff for it.
supervise-reject "$id3" >/dev/null
run supervise-show "$id3"
check_match "a decided proposal shows as decided" "$out" '^State: decided$'
check_match "a decided proposal has no diff" "$out" \
    '^Diff: none, the proposal is decided$'
check_match "SLUG/ID: the diff names the bottle's file" \
    "$(supervise-show web1/"$id4" 2>&1)" \
    '^Diff of web1/gitleaks/\.gitleaksignore:$'
id5=$(supervise-propose -s web1 -t egress-token-allow -j why 'GH_TOKEN for api.github.com')
check_match "a tool without config says so" "$(supervise-show "$id5" 2>&1)" \
    '^Diff: none, egress-token-allow changes no config$'

# Errors: a failure does not stop the rest, and sets exit 1.
run supervise-show nosuch "$id2"
check_same "an unknown id: exit 1" "$rc" 1
check_same "an unknown id: message" "$err" \
    "supervise-show: can't show 'nosuch': no such proposal"
check_match "an unknown id: the next one is still shown" "$out" "^Id: $id2\$"
run supervise-show 1
check_same "an ambiguous prefix: exit 1" "$rc" 1
check_match "an ambiguous prefix: message" "$err" \
    "^supervise-show: can't show '1': '1' is ambiguous: 5 proposals match$"
run supervise-show ../../etc/passwd
check_same "a path: exit 1" "$rc" 1
check_same "a path is refused" "$err" \
    "supervise-show: can't show '../../etc/passwd': invalid bottle slug '..': must start with a letter or digit"
run supervise-show </dev/null
check_same "no ids on an empty stdin: exit 0" "$rc:$out" "0:"

done_testing
