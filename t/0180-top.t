#!/bin/sh
# supervise-top driven as a person drives it: tmux runs it in an 80x24
# window, send-keys types, capture-pane reads the screen.  A proposal
# arriving while it is open; the detail (marks seen); approve; reject with
# notes; Escape cancels; modify through a scripted EDITOR; bulk approve; a
# proposal decided from another terminal; a withdrawn call; hostile text;
# resize; NO_COLOR; the terminal as it was after q, SIGINT and SIGTERM;
# and the decisions (approve, reject, modify) in audit.git exactly as the
# CLI's.  The helpers are in t/tmux.sh.
. "$(dirname "$0")/lib.sh"
plan 75

Q=$SUPERVISE_ROOT/queue
A=$SUPERVISE_ROOT/audit.git
. "$T_TOP/t/tmux.sh"
propose() { supervise-propose -s "$1" -t "$2" -j "$3" "$4"; }
field() { sed -n "s/^  \"$2\": \"\\(.*\\)\",\{0,1\}\$/\\1/p" "$1"; }

# An editor that narrows a gitleaks fingerprint, as a person would.
cat >edit.sh <<'EOF'
#!/bin/sh
sed -i 's/rule:1/rule:2/' "$1"
EOF
chmod +x edit.sh

titled() { tm display -p -t "$1" '#{pane_title}' | grep -q -- "$2"; }
# coloured NAME: the screen holds a colour (SGR 30-38, 90-97).
coloured() { tm capture-pane -e -p -t "$1" | grep -Eq '(\[|;)(3[0-8]|9[0-7])(;|m)'; }

supervise-init web1 >/dev/null
supervise-init web2 >/dev/null
a=$(propose web1 egress-block 'need the API' '{"host": "api.github.com"}')
b=$(propose web2 pipelock-block 'pip needs the index' \
    'https://pkg.example.org/simple/x')

start s
check "it lists what is pending in every bottle" see s '2 pending in 2 bottles'
check_match "oldest first: the first row is the oldest" "$(line s 3)" \
    'api\.github\.com'

c=$(propose web1 gitleaks-allow 'a test fixture' 'abc:x.env:rule:1')
check "a proposal arriving while it is open is shown" see s 'abc:x.env:rule:1'
check "and counted" see s '3 pending in 2 bottles'
check_match "a row: bottle, tool, age, caller, summary" "$(row s abc:x.env)" \
    '^  web1 +gitleaks-allow +[0-9]+s +waiting +abc:x\.env:rule:1 *$'

# The detail, seen: the second row (j), Enter.
keys s j Enter
check "Enter opens the proposal" see s '^Justification:'
check "the justification is shown" see s '^pip needs the index'
check "the diff against the bottle's config is shown" see s '^+pkg\.example\.org'
check "opening it marks it seen" wait_for "$T_WAIT" test -f "$Q/web2/proposals/cur/$b:2,S"
keys s q
check "q goes back to the list" see s 'BOTTLE'

# Approve the first row with notes.
keys s g a
check "a asks for notes" see s 'Approve, notes (Enter accepts, Esc cancels)'
text s 'fine by me'
keys s Enter
check "approve: the response is written" wait_for "$T_WAIT" test -f "$Q/web1/responses/new/$a"
check_same "approve: its status and notes" \
    "$(field "$Q/web1/responses/new/$a" status) $(field "$Q/web1/responses/new/$a" notes)" \
    "approved fine by me"
check_same "approve: decided by the operator" \
    "$(field "$Q/web1/responses/new/$a" decided_by)" "$SUPERVISE_OPERATOR"
check "approve: the row goes" unsee s 'api.github.com'
check "approve: the status line says so" see s "approved web1/$a"

# Escape cancels the whole decision.
keys s g r
check "r asks for notes" see s 'Reject, notes'
text s 'not this'
keys s Escape
check "Escape cancels" see s 'cancelled; nothing written'
check "Escape wrote nothing" test ! -e "$Q/web2/responses/new/$b"

# Reject with notes (the cursor is on b, the oldest left).
keys s g r
see s 'Reject, notes' >/dev/null
text s 'use the mirror'
keys s Enter
check "reject: the response is written" wait_for "$T_WAIT" test -f "$Q/web2/responses/new/$b"
check_same "reject: status and notes" \
    "$(field "$Q/web2/responses/new/$b" status) $(field "$Q/web2/responses/new/$b" notes)" \
    "rejected use the mirror"
check "reject: the row goes" unsee s 'pkg.example.org'

# Modify through $EDITOR: the diff to be committed, then notes.
keys s g e
check "e: the edited payload is shown" see s '^abc:x\.env:rule:2'
check "e: with the diff it will commit" see s '^+abc:x\.env:rule:2'
check "e: and asks for notes" see s 'Approve as modified, notes'
text s 'narrowed'
keys s Enter
check "modify: the response is written" wait_for "$T_WAIT" test -f "$Q/web1/responses/new/$c"
check_same "modify: status, final file, notes" \
    "$(field "$Q/web1/responses/new/$c" status) $(field "$Q/web1/responses/new/$c" final_file) $(field "$Q/web1/responses/new/$c" notes)" \
    "modified abc:x.env:rule:2 narrowed"

# Bulk: select the first and third of three, approve both.
d1=$(propose web2 gitleaks-allow why 'bulk:one:rule:1')
d2=$(propose web2 gitleaks-allow why 'bulk:two:rule:1')
d3=$(propose web2 gitleaks-allow why 'bulk:three:rule:1')
see s 'bulk:three' >/dev/null
keys s g Space j Space
check "space selects" see s '2 selected'
check_match "a selected row is marked" "$(row s bulk:one)" '^\* '
keys s a
check "a on a selection asks once for all" see s 'Approve 2 proposals, notes'
keys s Enter
check "bulk: the first is approved" wait_for "$T_WAIT" test -f "$Q/web2/responses/new/$d1"
check "bulk: the third is approved" wait_for "$T_WAIT" test -f "$Q/web2/responses/new/$d3"
check "bulk: the one not selected is not" test ! -e "$Q/web2/responses/new/$d2"
check "bulk: the status line counts them" see s 'approved 2 proposals'

# Decided from another terminal: the row vanishes.
supervise-reject -n elsewhere "$d2" >/dev/null
check "a proposal decided elsewhere leaves the list" unsee s 'bulk:two'

# Decided elsewhere while open here: a clear message, no second response.
e=$(propose web1 capability-block 'needs curl' 'FROM debian:12')
see s Dockerfile >/dev/null
keys s g Enter
see s '^FROM debian:12' >/dev/null
supervise-approve -n 'from the cli' "$e" >/dev/null
check "the open proposal says it was decided elsewhere" see s 'decided elsewhere or gone: '
keys s a
see s 'Approve, notes' >/dev/null
keys s Enter
check "deciding it here says so" see s 'already decided elsewhere, nothing written: '
check_same "the first decision stands" \
    "$(field "$Q/web1/responses/new/$e" notes)" "from the cli"

# A withdrawn call (flag T) is shown as cancelled.
f=$(propose web1 gitleaks-allow why 'gone:caller:rule:1')
see s 'gone:caller' >/dev/null
mv "$Q/web1/proposals/new/$f" "$Q/web1/proposals/cur/$f:2,T"
check "a withdrawn call shows as cancelled" wait_for "$T_WAIT" \
    row_has s gone:caller cancelled

# A call on the line, then its agent hangs up: waiting, then gone (the
# sidecar marks it in gone/).
start_daemon d -s web1 || exit 1
printf '%s\n' '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "gitleaks-allow", "arguments": {"fingerprint": "left:caller:rule:1", "justification": "x"}}}' >call.json
curl -s --max-time 60 -H 'Content-Type: application/json' \
    -H 'Accept: application/json' --data-binary @call.json "$URL" >/dev/null &
cpid=$!
check "an agent on the line shows as waiting" wait_for "$T_WAIT" \
    row_has s left:caller waiting
kill "$cpid"
{ wait "$cpid"; } 2>/dev/null
check "an agent whose connection dropped shows as gone" wait_for "$T_WAIT" \
    row_has s left:caller gone
stop_daemon d

# Hostile text, filed by hand as any component may: escape sequences, a
# C1 control, a bidi override, a 10,000-character line.
long=$(awk 'BEGIN { while (n++ < 10000) printf "A" }')
h=1795400000.M1P1Q1.hostile
cat >"$Q/web2/proposals/tmp/$h" <<EOF
{
  "arrival_timestamp": "2026-11-23T00:00:00.000000Z",
  "bottle_slug": "web2",
  "current_file_hash": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
  "id": "$h",
  "justification": "\u001b]0;pwned\u0007\u001b[2J\u009b31m \u202egnp.exe $long",
  "proposed_file": "\u001b[2J\u202eevil $long",
  "tool": "egress-token-allow"
}
EOF
mv "$Q/web2/proposals/tmp/$h" "$Q/web2/proposals/new/$h"
check "hostile: the row is shown, escaped" see s '\\x1b\[2J\\u{202e}evil AAAA'
check "hostile: the long line is cut at the width" width_is s 'x1b\[2J' 80
check "hostile: the title line is intact" see s '^ supervise-top: '
check "hostile: the key line is intact" line_has s 24 '^ j/k move'
keys s g Enter
check "hostile: the justification is escaped" see s '^\\x1b\]0;pwned\\x07\\x1b\[2J'
check "hostile: C1 and bidi controls are escaped" see s '\\u{9b}31m \\u{202e}gnp'
check_fail "hostile: the window title was not changed" titled s pwned
keys s q

# Resize: the layout follows.
tm resize-window -t s -x 120 -y 30
check "resize: the cut line grows to the new width" wait_for "$T_WAIT" \
    width_is s 'x1b\[2J' 120
check "resize: the key line is the new last line" wait_for "$T_WAIT" \
    line_has s 30 '^ j/k move'

# q: the terminal as it was found.
keys s q
check "q exits" wait_for "$T_WAIT" exited s
check_same "q: exit status 0" "$(cat s.status)" 0
check_same "q: the terminal's settings are as they were" "$(cat s.after)" "$(cat s.before)"
check_same "q: the alternate screen is left" \
    "$(tm display -p -t s '#{alternate_on}')" 0
check_same "q: the cursor is visible" "$(tm display -p -t s '#{cursor_flag}')" 1

# Colour, and NO_COLOR (capture-pane -e shows the attributes).
# The withdrawn call's row is in colour (not under the cursor: the
# hostile row, older, is the first).
start col
see col 'gone:caller' >/dev/null
keys col g
check "colour by default" wait_for "$T_WAIT" coloured col
start nc NO_COLOR=1
see nc 'gone:caller' >/dev/null
keys nc g
see nc 'gone:caller' >/dev/null
check_fail "NO_COLOR: no colour at all" coloured nc

# SIGINT (^C) and SIGTERM leave the terminal as they found it too.
keys col C-c
check "SIGINT exits" wait_for "$T_WAIT" exited col
check_same "SIGINT: the terminal's settings are as they were" "$(cat col.after)" "$(cat col.before)"
check_same "SIGINT: the alternate screen is left" "$(tm display -p -t col '#{alternate_on}')" 0
check_same "SIGINT: the cursor is visible" "$(tm display -p -t col '#{cursor_flag}')" 1
kill -TERM "$(toppid nc)"
check "SIGTERM exits" wait_for "$T_WAIT" exited nc
check_same "SIGTERM: the terminal's settings are as they were" "$(cat nc.after)" "$(cat nc.before)"
check_same "SIGTERM: the alternate screen is left" "$(tm display -p -t nc '#{alternate_on}')" 0
check_same "SIGTERM: the cursor is visible" "$(tm display -p -t nc '#{cursor_flag}')" 1

# The decisions land in audit.git exactly as the CLI's: pairs of
# identical proposals in a bottle of their own, one of each decided here,
# the other with supervise-approve, -reject and -edit.
supervise-init web3 >/dev/null
propose3() { supervise-propose -s web3 -t "$1" -j 'same words' "$2"; }
g1=$(propose3 pipelock-block 'https://same.example.org/')
g2=$(propose3 pipelock-block 'https://same.example.org/')
r1=$(propose3 egress-block '{"host": "same.example.net"}')
r2=$(propose3 egress-block '{"host": "same.example.net"}')
m1=$(propose3 gitleaks-allow 'same:x.env:rule:1')
m2=$(propose3 gitleaks-allow 'same:x.env:rule:1')
start cmp -- web3
see cmp '6 pending in 1 bottle' >/dev/null
# Oldest first: each time, the first row is the one decided here.
keys cmp g a
see cmp 'Approve, notes' >/dev/null
text cmp 'same notes'
keys cmp Enter
see cmp '5 pending' >/dev/null
supervise-approve -n 'same notes' "$g2" >/dev/null
see cmp '4 pending' >/dev/null
keys cmp g r
see cmp 'Reject, notes' >/dev/null
text cmp 'same notes'
keys cmp Enter
see cmp '3 pending' >/dev/null
supervise-reject -n 'same notes' "$r2" >/dev/null
see cmp '2 pending' >/dev/null
keys cmp g e
see cmp 'Approve as modified, notes' >/dev/null
text cmp 'same notes'
keys cmp Enter
see cmp '1 pending' >/dev/null
env EDITOR="$T_DIR/edit.sh" supervise-edit -n 'same notes' "$m2" >/dev/null
see cmp '0 pending' >/dev/null
keys cmp q
SUPERVISE_BOTTLE_SLUG=web3 timeout 60 supervised --drain >/dev/null 2>drain.err
rec() {
	_h=$(printf %s "$1" | git hash-object --stdin)
	git -C "$A" show "main:web3/decisions/$(echo "$_h" |
	    sed 's,^\(.\)\(.\)\(.\)\(.\).*,\1/\2/\3/\4,')/$1.json" |
	    sed -e "s/$1/ID/g" -e 's/"[0-9-]*T[0-9:.]*Z"/"TIME"/g'
}
commit() {
	git -C "$A" log --all-match --grep="^Proposal-Id: $1\$" \
	    --format='%an <%ae>%n%s%n%b' main | sed -e "s/$1/ID/g" \
	    -e 's/[0-9-]*T[0-9:.]*Z/TIME/g'
}
check_match "approved here: committed" "$(commit "$g1")" 'Status: approved'
check_same "approve: the record committed is the CLI's" "$(rec "$g1")" "$(rec "$g2")"
check_same "approve: the commit is the CLI's" "$(commit "$g1")" "$(commit "$g2")"
check_match "rejected here: committed" "$(commit "$r1")" 'Status: rejected'
check_same "reject: the record committed is the CLI's" "$(rec "$r1")" "$(rec "$r2")"
check_same "reject: the commit is the CLI's" "$(commit "$r1")" "$(commit "$r2")"
check_match "modified here: committed" "$(commit "$m1")" 'Status: modified'
check_match "with the edited payload" "$(rec "$m1")" 'same:x\.env:rule:2'
check_same "modify: the record committed is the CLI's" "$(rec "$m1")" "$(rec "$m2")"
check_same "modify: the commit is the CLI's" "$(commit "$m1")" "$(commit "$m2")"

done_testing
