#!/bin/sh
# Agent text never reaches the terminal raw: a justification and payloads
# carrying ESC[2J (clear screen), ESC]0; (set title), U+202E (right-to-left
# override) and U+009B (C1 CSI) are shown escaped by supervise-show,
# supervise-list, supervise-watch and in error messages.
. "$(dirname "$0")/lib.sh"
plan 23

Q=$SUPERVISE_ROOT/queue
supervise-init web1 >/dev/null

nasty=$(printf 'A\033[2JB\033]0;owned\007C\342\200\256D\302\233E')
shown='A\x1b[2JB\x1b]0;owned\x07C\u{202e}D\u{9b}E'
# raw FILE: does FILE hold any of the dangerous bytes?
raw() { LC_ALL=C grep -q "$(printf '[\033\007\233]\\|\342\200\256')" "$1"; }

printf '%s' "$nasty" >nasty
check "the check below would see a raw sequence" raw nasty

id=$(supervise-propose -s web1 -t egress-token-allow -j "why: $nasty
second line" "token for $nasty")
check "the proposal was filed" test -n "$id"

supervise-show "$id" >show.out 2>show.err
check_same "show: exit 0" "$?" 0
check_fail "show: no ESC, BEL, C1 or U+202E byte in the output" raw show.out
check_same "show: the justification, escaped, newlines kept" \
    "$(sed -n '/^Justification:$/,/^$/p' show.out)" \
    "Justification:
why: $shown
second line"
check_same "show: the proposed file, escaped" \
    "$(sed -n '/^Proposed file:$/{n;p;}' show.out)" "token for $shown"

supervise-list >list.out 2>list.err
check_same "list: exit 0" "$?" 0
check_fail "list: no dangerous byte in the output" raw list.out
check_same "list: the summary, escaped" "$(cut -f6 list.out)" "token for $shown"

# A payload with a newline and a tab still makes one line of seven fields.
id2=$(supervise-propose -s web1 -t egress-token-allow -j why "$(printf 'one\ttab\\ \033[31mred')")
supervise-list >list.out
check_same "list: tab, backslash and ESC escaped in a summary" \
    "$(grep "^$id2" list.out | cut -f6)" 'one\ttab\\ \x1b[31mred'
check_same "list: still seven fields a line" "$(awk -F'\t' '{print NF}' list.out | sort -u)" 7

# A record written by another component: its tool is agent-reachable text.
t=1700000001.M000001P1Q1R00000000000000aa.h
printf '{"arrival_timestamp": "2026-01-01T00:00:00.000000Z", "bottle_slug": "web1", "current_file_hash": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391", "id": "%s", "justification": "\\u001b[2J", "proposed_file": "\\u202ex", "tool": "egress-block\\u001b]0;t\\u0007"}\n' \
    "$t" >"$Q/web1/proposals/new/$t"
supervise-list >list.out 2>&1
check_fail "list: a hand-written tool name is not raw" raw list.out
check_same "list: a hand-written tool name, escaped" \
    "$(grep "^$t" list.out | cut -f3)" 'egress-block\x1b]0;t\x07'
supervise-show "$t" >show.out 2>&1
check_fail "show: a hand-written record is not raw" raw show.out
check_match "show: its tool, escaped" "$(cat show.out)" '^Tool: egress-block\\x1b\]0;t\\x07$'

# watch prints the same escaped line.
perl -e 'exec @ARGV or die' supervise-watch web1 >watch.out 2>&1 &
echo $! >"$T_DIR/watch.pid"
for i in $(seq 100); do
	[ "$(cat /proc/"$(cat "$T_DIR/watch.pid")"/fdinfo/* 2>/dev/null |
	    grep -c '^inotify wd:')" -ge 1 ] && break
	sleep 0.05
done
id3=$(supervise-propose -s web1 -t egress-token-allow -j why "$nasty")
for i in $(seq 100); do [ -s watch.out ] && break; sleep 0.05; done
kill "$(cat "$T_DIR/watch.pid")"
wait "$(cat "$T_DIR/watch.pid")"
check_fail "watch: no dangerous byte in the output" raw watch.out
check_same "watch: the summary, escaped" "$(cut -f1,6 watch.out)" \
    "$id3	$shown"

# Ids and slugs in error messages are operator text, escaped all the same.
for prog in supervise-show supervise-approve supervise-reject supervise-edit; do
	$prog "$nasty" >out 2>err
	check_fail "$prog: an id with escapes is not echoed raw" raw err
done
supervise-list "$nasty" >out 2>err
check_fail "list: a slug with escapes is not echoed raw" raw err
supervise-approve "web1/x$nasty" >out 2>err
check_match "approve: the escaped id is in the message" "$(cat err)" \
    "^supervise-approve: can't approve 'web1/xA\\\\x1b\\[2JB"

done_testing
