#!/bin/sh
# The apply hook's bounds: a hook that runs holds up no other call (and
# the rejections answered meanwhile run no hook and change no file); one
# that hangs is killed, with its children, at its timeout; one that
# writes 100 MB has the tail of it kept; a hook that can't be run is a
# configuration error at start-up.
. "$(dirname "$0")/lib.sh"
if [ ! -d "$T_TOP/t/node_modules" ]; then
	echo "1..0 # SKIP node modules are not installed (make check runs npm ci in t/)"
	exit 0
fi
plan 29
A=root/audit.git
N=${SUPERVISE_BURST:-200}
SLEEPER=$((100000 + $$))	# a sleep we can find by its argument

# What the hook does depends on the tool approved.
cat >hook <<HOOK
#!/bin/sh
echo "\$SUPERVISE_PROPOSAL_ID \$SUPERVISE_STATUS" >>"$T_DIR/hook.runs"
case "\$SUPERVISE_TOOL" in
gitleaks-allow)		# runs until released (bounded)
	touch "$T_DIR/running"
	n=0
	while [ ! -e "$T_DIR/release" ] && [ \$n -lt 1200 ]; do
		sleep 0.05; n=\$((n + 1))
	done
	echo released ;;
capability-block)	# hangs, with a child
	sleep $SLEEPER &
	wait ;;
pipelock-block)		# 100 MB of output
	head -c 100000000 /dev/zero | tr '\\000' x
	echo
	echo END-OF-OUTPUT ;;
esac
HOOK
chmod +x hook
printf '{"routes": [{"host": "pypi.org"}]}\n' >routes
supervise-init --routes routes web1 >/dev/null

# --- a hook that can't be run is refused at start-up ----------------------------
printf 'echo\n' >not-exec
supervised -s web1 --apply-hook "$T_DIR/not-exec" >start.out 2>&1
check_same "a hook that is not executable: exit 2" "$?" 2
check_match "... saying why" "$(cat start.out)" \
    "apply hook '$T_DIR/not-exec': not an executable file"
SUPERVISE_APPLY_HOOK=$T_DIR/missing supervised -s web1 >start.out 2>&1
check_same "a hook that does not exist (SUPERVISE_APPLY_HOOK): exit 2" "$?" 2
check_match "... saying why" "$(cat start.out)" \
    "apply hook '$T_DIR/missing': No such file or directory"
supervised -s web1 --apply-hook hook >start.out 2>&1
check_same "a relative hook path: exit 2" "$?" 2

call() {
	curl -s --max-time 120 -H 'Content-Type: application/json' -H 'Accept: application/json' -d \
	    "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":$3}}" \
	    "$URL"
}
pending_tool() { supervise-list web1 2>/dev/null | awk -F '\t' -v t="$1" '$3 == t { print $1 }'; }
has_tool() { [ -n "$(pending_tool "$1")" ]; }
gone() { ! kill -0 "$1" 2>/dev/null; }
# The note is written just after the answer: wait for it.
note_to() { git --git-dir=$A notes --ref=apply show "$1" >"$2" 2>/dev/null; }
running() { pgrep -f "$1" >/dev/null; }

# --- while a hook runs, other calls flow ---------------------------------------
check "supervised starts" start_daemon d -s web1 --apply-hook "$T_DIR/hook" \
    --apply-timeout 120
call 1 gitleaks-allow '{"fingerprint":"f:a.env:k:1","justification":"j"}' >out1 &
c1=$!
wait_for 20 has_tool gitleaks-allow
supervise-approve "$(pending_tool gitleaks-allow)" >/dev/null
check "the hook is running" wait_for 20 test -e running
routes_before=$(stat -c '%i %Y' root/state/web1/egress/routes.json)
timeout 120 node "$T_TOP/t/burst.mjs" "$URL" "$N" >burst.out 2>&1 &
b=$!
all_filed() { [ "$(pending_tool egress-block | wc -l)" -ge "$N" ]; }
check "$N calls are filed while the hook runs" wait_for 60 all_filed
pending_tool egress-block | supervise-reject -n busy >/dev/null
check "... and all answered" wait_for 60 gone $b
check_same "... each with its decision" "$(grep -c ' status: rejected$' burst.out)" "$N"
check "the hook is still running meanwhile" running "$T_DIR/hook"
check "its call still waits" kill -0 $c1
check_same "the rejections changed no live file" \
    "$(stat -c '%i %Y' root/state/web1/egress/routes.json)" "$routes_before"
# Hooks run one at a time: an approval that lands meanwhile is committed,
# and answered after the hook before its own.
call 4 egress-block '{"host":"after.example.org","justification":"j"}' >out4 &
c4=$!
wait_for 20 has_tool egress-block
supervise-approve "$(pending_tool egress-block)" >/dev/null
committed() { git --git-dir=$A log --format=%s main | grep -q 'egress-block after\.example\.org$'; }
check "an approval behind the running hook is committed" wait_for 20 committed
check "... and its call waits for the hook before its own" kill -0 $c4
touch release
wait $c1
check_match "released, its call is answered" "$(cat out1)" \
    'status: approved\\napplied: yes'
wait $c4
check_match "... then the one behind it" "$(cat out4)" \
    'status: approved\\napplied: yes'
check_same "the hook ran for the two approvals, not for the $N rejections" \
    "$(cut -d ' ' -f 2 hook.runs | sort | uniq -c | tr -s ' ')" " 2 approved"
notes_written() { [ "$(git --git-dir=$A notes --ref=apply list | wc -l)" -ge 2 ]; }
wait_for 20 notes_written
check_same "... and only the approvals have notes" \
    "$(git --git-dir=$A notes --ref=apply list | wc -l)" 2
check "stops" stop_daemon d

# --- a hook that hangs is killed at its timeout -----------------------------------
check "supervised starts with a 2 s timeout" start_daemon d -s web1 \
    --apply-hook "$T_DIR/hook" --apply-timeout 2
call 2 capability-block '{"dockerfile":"FROM debian:12\n","justification":"j"}' >out2 &
c2=$!
wait_for 20 has_tool capability-block
supervise-approve "$(pending_tool capability-block)" >/dev/null
check "the hook's child is running" wait_for 20 running "sleep $SLEEPER"
check_match "a tools/list is answered meanwhile" \
    "$(mcp_post -d '{"jsonrpc":"2.0","id":9,"method":"tools/list"}')" '"egress-block"'
wait $c2
check_match "the call is answered when the hook times out" "$(cat out2)" \
    'status: approved\\napplied: no: the hook timed out after 2 s'
check_fail "the hook's child was killed too" running "sleep $SLEEPER"
commit=$(git --git-dir=$A log -1 --format=%H --grep='Tool: capability-block' main)
wait_for 20 note_to "$commit" note2
check_match "the note says it timed out" "$(tr '\n' ' ' <note2)" \
    '^applied: no: the hook timed out after 2 s Hook: .* Timeout: 2 '

# --- 100 MB of output ---------------------------------------------------------------
call 3 pipelock-block '{"failed_url":"https://pypi.org/x","justification":"j"}' >out3 &
c3=$!
wait_for 20 has_tool pipelock-block
supervise-approve "$(pending_tool pipelock-block)" >/dev/null
wait $c3
check_match "a hook that writes 100 MB succeeds" "$(cat out3)" 'applied: yes'
commit=$(git --git-dir=$A log -1 --format=%H --grep='Tool: pipelock-block' main)
wait_for 20 note_to "$commit" note3
check_match "the note counts every byte and keeps the tail" \
    "$(grep '^Output-Bytes: ' note3) $(tail -n 1 note3)" \
    '^Output-Bytes: 100000015 END-OF-OUTPUT$'
check "the note holds at most the bound" test "$(wc -c <note3)" -lt 20000
done_testing
