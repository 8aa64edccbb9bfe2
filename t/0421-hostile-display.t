#!/bin/sh
# Text an agent sends through supervised never reaches a terminal raw:
# ANSI sequences, other C0 controls (CR, BS, BEL), DEL, C1, bidi overrides
# and isolates, zero-width characters and a BOM, tag characters (hidden
# text), U+2028, U+0085 and U+00A0, in a justification and in
# a Dockerfile, are shown escaped by supervise-list, supervise-show (the
# diff too) and supervise-watch, and the audit log's messages carry them
# escaped.  Raw output bytes are checked, not what a terminal would show.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 22

supervise-init "$SLUG" >/dev/null 2>&1
start_daemon d -s "$SLUG" || { not_ok "supervised starts"; done_testing; exit 1; }

# As JSON escapes, so the request itself is plain ASCII.
evil='A\u001b[2J\u001b]0;owned\u0007B\rC\bD\u007fE\u009bF\u202eG\u2066H\u200bI\ufeffJ\udb40\udc69\udb40\udc67K\u2028L\u0085M\u00a0N'
curl -s --max-time 30 -o answer -H 'Content-Type: application/json' \
    -H 'Accept: application/json' --data-binary "$(tool_call 1 capability-block \
    "{\"dockerfile\": \"FROM debian:12\\nRUN echo $evil\\n\", \"justification\": \"why $evil\"}")" \
    "$URL" &
curl_pid=$!
pending() { [ -n "$(supervise-list 2>/dev/null)" ]; }
check "the call is filed" wait_for 10 pending
id=$(supervise-list | cut -f1)

printf 'x\033y\342\200\256z\302\233' >probe
check_same "the byte check sees raw sequences" "$(raw_control probe)" 3
printf 'a\363\240\201\251b\342\200\250c\302\205d\302\240' >probe
check_same "  and tags, U+2028, U+0085, U+00A0" "$(raw_control probe)" 4

supervise-list >list.out 2>&1
check_same "list: exit 0" "$?" 0
check_same "list: no raw control or format character" "$(raw_control list.out)" 0

supervise-show "$id" >show.out 2>&1
check_same "show: exit 0" "$?" 0
check_same "show: no raw control or format character" "$(raw_control show.out)" 0
check_match "show: the justification, escaped" "$(cat show.out)" \
    '^why A\\x1b\[2J\\x1b\]0;owned\\x07B\\x0dC\\x08D\\x7fE\\u\{9b\}F\\u\{202e\}G\\u\{2066\}H\\u\{200b\}I\\u\{feff\}J\\u\{e0069\}\\u\{e0067\}K\\u\{2028\}L\\u\{85\}M\\u\{a0\}N$'
check_match "show: the diff's added line, escaped" "$(cat show.out)" \
    '^\+RUN echo A\\x1b\[2J.*\\u\{202e\}G'

timeout 2 supervise-watch -n "$SLUG" >watch.out 2>&1
check_match "watch: prints the proposal" "$(cat watch.out)" "^$id"
check_same "watch: no raw control or format character" "$(raw_control watch.out)" 0

# The operator's notes are trusted, but the log shows them escaped too.
supervise-approve -n "$(printf 'ok \033[31mred\302\233')" "$id" >/dev/null
wait "$curl_pid"
check_match "the agent gets the decision" "$(cat answer)" 'status: approved'
git --git-dir="$AUDIT" log -1 main >log.out 2>&1
check_same "git log: no raw control or format character" "$(raw_control log.out)" 0
check_match "git log: the justification, escaped" "$(cat log.out)" \
    'why A\\x1b\[2J'
check_match "git log: tags, separators and spaces, escaped" "$(cat log.out)" \
    'J\\u\{e0069\}\\u\{e0067\}K\\u\{2028\}L\\u\{85\}M\\u\{a0\}N'
check_match "git log: the notes, escaped" "$(cat log.out)" 'ok \\x1b\[31mred'
git --git-dir="$AUDIT" show main -- "$SLUG/decisions" >record.out 2>&1
# JSON needs no escape for DEL (0x7f); a terminal-safe record does.
check_same "git show of the record: no raw control (DEL included)" \
    "$(raw_control record.out)" 0

# Errors that quote agent text escape it as well.
rpc "$(tool_call 2 "$(printf 'x\\u001b[2Jy')" '{"justification": "x"}')"
check_match "an unknown tool's name is quoted escaped" "$BODY" 'unknown tool .x\\\\x1b\[2Jy'
check_same "  and the JSON answer holds no raw ESC" \
    "$(printf '%s' "$BODY" | od -An -c | grep -c '033')" 0
rpc "$(tool_call 3 egress-block "{\"host\": \"a\\u001b[2J\\u202e.example\", \"justification\": \"x\"}")"
check_match "a bad host is quoted escaped" "$BODY" '\\\\x1b\[2[Jj]\\\\u\{202e\}'

rpc "$(tool_call 4 capability-block "{\"dockerfile\": \"FROM x\", \"justification\": \"$evil\"}")" \
    --max-time 1
check_same "supervised's log holds no raw control or format character" \
    "$(raw_control d.log)" 0
check "supervised stops cleanly" stop_daemon d
done_testing
