#!/bin/sh
# supervise-list: which proposals are pending, the line format, the order
# across bottles, -0, and what it says about bottles it can't read.
. "$(dirname "$0")/lib.sh"
plan 27

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
Q=$SUPERVISE_ROOT/queue
EMPTY_BLOB=e69de29bb2d1d6434b8b29ae775ad8c2e48c5391
TAB=$(printf '\t')
# mkprop BOTTLE ID TOOL AGO PAYLOAD: a proposal that arrived AGO ago
# (a date(1) offset), written as any component would write one.
mkprop() {
	at=$(date -u -d "-$4" +%Y-%m-%dT%H:%M:%S.000000Z)
	printf '{"arrival_timestamp": "%s", "bottle_slug": "%s", "current_file_hash": "%s", "id": "%s", "justification": "why", "proposed_file": "%s", "tool": "%s"}\n' \
	    "$at" "$1" $EMPTY_BLOB "$2" "$5" "$3" >"$Q/$1/proposals/tmp/$2"
	mv "$Q/$1/proposals/tmp/$2" "$Q/$1/proposals/new/$2"
}

run supervise-list
check_same "no queue directory: exit 0" "$rc" 0
check_same "no queue directory: no output" "$out$err" ""
supervise-init web1 >/dev/null
supervise-init web2 >/dev/null
run supervise-list
check_same "empty bottles: exit 0 and quiet" "$rc:$out$err" "0:"

A=1700000001.M000001P1Q1R00000000000000aa.h
B=1700000002.M000001P1Q1R00000000000000bb.h
C=1700000003.M000001P1Q1R00000000000000cc.h
D=1700000004.M000001P1Q1R00000000000000dd.h
E=1700000005.M000001P1Q1R00000000000000ee.h
F=1700000006.M000001P1Q1R00000000000000ff.h
# Names and arrival disagree on purpose: the order is by arrival.
mkprop web1 $A egress-block "3 hours" '{\"host\": \"api.example.com\"}'
mkprop web2 $B pipelock-block "2 days" 'https://pkg.example.org/x'
mkprop web1 $C capability-block "5 minutes" 'FROM debian'
mkprop web2 $D gitleaks-allow "3 seconds" 'abc:f.env:rule:1'
mkprop web1 $E egress-allow "1 minute" '{\"host\": \"e.example.com\"}'
mkprop web1 $F egress-allow "2 minutes" '{\"host\": \"f.example.com\"}'

run supervise-list
check_same "list exits 0" "$rc" 0
check_same "list is quiet on stderr" "$err" ""
check_same "one line per proposal, oldest first across bottles" \
    "$(printf '%s\n' "$out" | cut -f1)" "$(printf '%s\n' $B $A $C $F $E $D)"
check_same "a line: id, bottle, tool, age, state, summary, expiry" \
    "$(printf '%s\n' "$out" | head -1)" \
    "$B${TAB}web2${TAB}pipelock-block${TAB}2d${TAB}new${TAB}pkg.example.org${TAB}-"
check_same "ages in hours and minutes; summaries per tool" \
    "$(printf '%s\n' "$out" | sed -n 2,3p | cut -f2-)" \
    "web1${TAB}egress-block${TAB}3h${TAB}new${TAB}api.example.com${TAB}-
web1${TAB}capability-block${TAB}5m${TAB}new${TAB}Dockerfile${TAB}-"
check_match "age in seconds" "$(printf '%s\n' "$out" | tail -1)" \
    "^$D${TAB}web2${TAB}gitleaks-allow${TAB}[0-9]+s${TAB}new${TAB}abc:f.env:rule:1${TAB}-\$"
# The sidecar's --expire, as it leaves it in the queue directory.
echo 86400 >"$Q/web2/expire"
echo 600 >"$Q/web1/expire"
run supervise-list
check_same "when each proposal expires, by its bottle's setting" \
    "$(printf '%s\n' "$out" | cut -f2,7 | sed 's/[0-9][0-9]*\([mh]\)$/N\1/')" \
    "web2${TAB}expiring
web1${TAB}expiring
web1${TAB}expires in Nm
web1${TAB}expires in Nm
web1${TAB}expires in Nm
web2${TAB}expires in Nh"
rm "$Q/web2/expire" "$Q/web1/expire"

# States: seen, withdrawn; decided ones and answered ones are not pending.
mv "$Q/web1/proposals/new/$A" "$Q/web1/proposals/cur/$A:2,S"
mv "$Q/web1/proposals/new/$C" "$Q/web1/proposals/cur/$C:2,ST"
mv "$Q/web1/proposals/new/$E" "$Q/web1/proposals/cur/$E:2,RS"
printf '{"status": "rejected"}\n' >"$Q/web1/responses/new/$F"
run supervise-list web1
check_same "a named bottle only; seen and withdrawn states" \
    "$(printf '%s\n' "$out" | cut -f1,2,5)" \
    "$A${TAB}web1${TAB}seen
$C${TAB}web1${TAB}withdrawn"
mv "$Q/web1/responses/new/$F" "$Q/web1/responses/cur/$F:2,S"
run supervise-list web1 web2
check_same "an archived response still means decided" \
    "$(printf '%s\n' "$out" | cut -f1)" "$(printf '%s\n' $B $A $C $D)"

# -0: the same records, NUL-terminated.
supervise-list >nl.out
supervise-list -0 >nul.out
check_same "-0 ends each record with NUL" "$(tr -cd '\0' <nul.out | wc -c)" 4
check_same "-0 has no newline" "$(tr -cd '\n' <nul.out | wc -c)" 0
tr '\0' '\n' <nul.out >nul.nl
# Not the age (field 4): a second may pass between the two runs.
cut -f1-3,5- nl.out >nl.cut
cut -f1-3,5- nul.nl >nul.cut
check "-0 records are the lines" cmp -s nl.cut nul.cut

# Bottles that can't be listed are reported; the others still are.
run supervise-list web2 nosuch
check_same "a missing bottle: exit 1" "$rc" 1
check_match "a missing bottle: message" "$err" "^supervise-list: can't list 'nosuch': "
check_same "a missing bottle: the others are listed" \
    "$(printf '%s\n' "$out" | cut -f1)" "$(printf '%s\n' $B $D)"
run supervise-list ../web1
check_same "a slug that leaves the root: exit 1" "$rc" 1
check_same "a slug that leaves the root: message" "$err" \
    "supervise-list: can't list '../web1': invalid bottle slug '../web1': must start with a letter or digit"
check_same "a slug that leaves the root lists nothing" "$out" ""

# A malformed proposal is reported with its path; the rest are listed.
G=1700000007.M000001P1Q1R00000000000000ab.h
printf '{"id": "%s", "id": "twice"}\n' $G >"$Q/web2/proposals/new/$G"
run supervise-list web2
check_same "a malformed proposal: exit 1" "$rc" 1
check_match "a malformed proposal: FILE:LINE:COLUMN message" "$err" \
    "^supervise-list: .*/web2/proposals/new/$G:1:[0-9]+: "
check_same "a malformed proposal: the others are listed" \
    "$(printf '%s\n' "$out" | cut -f1)" "$(printf '%s\n' $B $D)"
rm "$Q/web2/proposals/new/$G"

# Usage.
run supervise-list -x
check_same "a bad option: exit 2" "$rc" 2
check_match "a bad option: usage line" "$err" '^usage: supervise-list \[-0\] \[SLUG \.\.\.\]$'
run supervise-list -h
check_same "-h: exit 0, usage on stdout" "$rc:$out" "0:usage: supervise-list [-0] [SLUG ...]"

done_testing
