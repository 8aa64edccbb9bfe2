#!/bin/sh
# supervise-top's second tab, driven in tmux: the recent decisions, who
# made them and whether each took effect (the apply hook's note), a
# decision's note with the hook's output, and A running the apply again
# once what made it fail is fixed.
. "$(dirname "$0")/lib.sh"
plan 14

. "$T_TOP/t/tmux.sh"
propose() { supervise-propose -s "$1" -t "$2" -j why "$3"; }

cat >hook <<EOF
#!/bin/sh
test -e '$T_DIR/ok' || { echo 'the proxy is down'; exit 3; }
echo reloaded
EOF
chmod +x hook

supervise-init web1 >/dev/null
start_daemon d -s web1 --apply-hook "$T_DIR/hook" || exit 1
start s SUPERVISE_APPLY_HOOK="$T_DIR/hook"
see s 'pending in 1 bottle' >/dev/null
keys s Tab
check "Tab shows the recent decisions" see s 'Pending \[Recent\]'
check "none yet" see s 'No decision yet.'

a=$(propose web1 egress-block '{"host": "api.example.com"}')
supervise-approve -n fine "$a" >/dev/null
check "a decision made elsewhere appears" see s 'egress-block  *approved'
check "with who made it" wait_for "$T_WAIT" row_has s egress-block 'Test Operat'
check "and that it did not take effect, and why" wait_for "$T_WAIT" \
    row_has s egress-block 'no: the hook failed'

b=$(propose web1 gitleaks-allow 'abc:x.env:rule:1')
supervise-reject -n no "$b" >/dev/null
check "a rejection: nothing to take effect" wait_for "$T_WAIT" \
    row_has s gitleaks-allow 'rejected .* -$'

# Newest first: the rejection, then the approval (j).
keys s g j Enter
check "Enter opens the decision" see s "^Id: $a"
check "with its note: the hook's output" see s '^the proxy is down'
keys s q
see s 'Pending \[Recent\]' >/dev/null
keys s g A
check "A on a rejection: nothing to apply" see s 'nothing to apply'

touch ok
keys s j A
check "A runs the apply again" see s "applied again web1/$a: applied: yes"
check "the row says it took effect now" wait_for "$T_WAIT" \
    row_has s egress-block 'yes$'
check_same "the note says so too" \
    "$(supervise-log web1 | grep "^$a" | cut -f5)" "applied: yes"

keys s Tab
check "Tab goes back to the pending proposals" see s '\[Pending\] Recent'
keys s q
check "q quits from there" wait_for "$T_WAIT" exited s
stop_daemon d
done_testing
