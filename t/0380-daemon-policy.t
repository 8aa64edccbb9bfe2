#!/bin/sh
# supervised decides by rule: a proposal a rule of web1/policy matches is
# decided when it is filed, as its own commit (author policy, Rule and
# Policy-Commit trailers), and the agent is answered at once; a policy
# change committed by supervise-config holds for the next call; a broken
# policy on main decides nothing and says so; kill -9 while a rule's
# decision is on its way: committed once after the restart.
. "$(dirname "$0")/lib.sh"
plan 43

use_bottle web1
npending() { supervise-list web1 2>/dev/null | wc -l; }
has_pending() { [ "$(npending)" -ge "$1" ]; }
commits_for() { g log --format=%s --grep="Proposal-Id: $1" main; }

cat >p1 <<'EOF2'
# the index for every build
approve egress-block host=*.pypi.org path=/simple/
reject capability-block   # a human reads Dockerfiles, not a rule
EOF2
supervise-config -f p1 web1 policy >/dev/null
pc1=$(g rev-parse main)
check "supervised starts" start_daemon d -s web1
check_match "it names the policy at start-up" "$(cat d.log)" \
    "web1/policy of commit $(echo "$pc1" | cut -c1-12): 2 rules"

# --- approved by rule, answered at once ---------------------------------------
tool_call 1 egress-block '{"host":"Files.PyPI.org","path_allowlist":["/simple/numpy/"],"justification":"pip"}' >out1
check_same "the call is answered by the rule at once" "$(cat out1)" \
    '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"status: approved\napplied: no: no hook configured\nnotes: rule web1/policy:2: approve egress-block host=*.pypi.org path=/simple/"}],"isError":false}}'
id=$(g log -1 --format='%(trailers:key=Proposal-Id,valueonly)' main)
check_same "its own commit" "$(commits_for "$id")" \
    "web1: approve egress-block files.pypi.org"
check_same "author policy" "$(g log -1 --format=%an main)" "policy"
check_same "Rule: quotes the line" \
    "$(g log -1 --format='%(trailers:key=Rule,valueonly)' main)" \
    "web1/policy:2: approve egress-block host=*.pypi.org path=/simple/"
check_same "Policy-Commit: the commit of the policy file" \
    "$(g log -1 --format='%(trailers:key=Policy-Commit,valueonly)' main)" "$pc1"
check_match "the route is merged" "$(g show main:web1/egress/routes.json)" \
    '"host": "files.pypi.org"'
check_match "the record names the rule" \
    "$(g show main:web1/decisions/$(g ls-tree -r --name-only main -- web1/decisions | grep "$id" | sed 's|^web1/decisions/||'))" \
    '"rule": "web1/policy:2: '
check "the proposal is flagged decided" test -f "$Q/proposals/cur/$id:2,RS"
check_same "nothing pending" "$(npending)" 0
# The files the next rule's decision fills are made once it is answered,
# so filing it creates none (supervise-spool(5), spare/).
spares() { test -f $Q/spare/proposal && test -f $Q/spare/response; }
check "spare files are made for the next decision" wait_for 10 spares
sp=$(stat -c %i $Q/spare/proposal) sr=$(stat -c %i $Q/spare/response)
tool_call 8 egress-block '{"host":"e.pypi.org","path_allowlist":["/simple/"],"justification":"pip"}' >out8
id=$(g log -1 --format='%(trailers:key=Proposal-Id,valueonly)' main | sed '/^$/d')
check_same "the next rule's proposal and response are those files" \
    "$(stat -c %i $Q/proposals/cur/$id:2,RS $Q/responses/cur/$id:2,S | tr '\n' ' ')" "$sp $sr "

# --- rejected by rule -----------------------------------------------------------
tool_call 2 capability-block '{"dockerfile":"FROM alpine","justification":"tools"}' >out2
check_same "a rule's rejection, answered at once" "$(cat out2)" \
    '{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"status: rejected\nnotes: rule web1/policy:3: reject capability-block"}],"isError":true}}'
check_same "committed as a rejection" "$(g log -1 --format=%s main)" \
    "web1: reject capability-block Dockerfile"

# --- no rule: the operator decides ---------------------------------------------
tool_call 3 egress-block '{"host":"pypi.org.evil.net","path_allowlist":["/simple/"],"justification":"x"}' >out3 &
c3=$!
check "no rule matches: the proposal waits" wait_for 10 has_pending 1
id3=$(supervise-list web1 | cut -f1)
supervise-reject -n 'no' "$id3" >/dev/null
wait $c3
check_match "answered by the operator" "$(cat out3)" 'status: rejected\\nnotes: no"'
check_same "authored by the operator" "$(g log -1 --format=%an main)" "Test Operator"

# --- a policy change holds for the next call ------------------------------------
printf 'approve egress-block host=*.evil.net path=/simple/\n' >p2
supervise-config -f p2 web1 policy >/dev/null
pc2=$(g rev-parse main)
tool_call 4 egress-block '{"host":"pypi.org.evil.net","path_allowlist":["/simple/"],"justification":"y"}' >out4
check_match "the new rule decides the next call" "$(cat out4)" \
    'status: approved\\napplied: no: no hook configured\\nnotes: rule web1/policy:1: approve egress-block host=\*.evil.net'
check_same "Policy-Commit names the new policy's commit" \
    "$(g log -1 --format='%(trailers:key=Policy-Commit,valueonly)' main)" "$pc2"

# --- a broken policy on main decides nothing, loudly ------------------------------
blob=$(printf 'approve egress-block\nallow everything\n' | g hash-object -w --stdin)
GIT_INDEX_FILE=$T_DIR/index g read-tree main
GIT_INDEX_FILE=$T_DIR/index g update-index --cacheinfo "100644,$blob,web1/policy"
tree=$(GIT_INDEX_FILE=$T_DIR/index g write-tree)
g update-ref refs/heads/main "$(echo 'broken policy, pushed by hand' | g commit-tree "$tree" -p main)" main
tool_call 5 egress-block '{"host":"a.evil.net","path_allowlist":["/simple/"],"justification":"z"}' >out5 &
c5=$!
check "a broken policy: the proposal waits for the operator" wait_for 10 has_pending 1
check_match "and the sidecar says why, loudly" "$(cat d.log)" \
    "POLICY BROKEN: web1/policy on main does not parse, so no rule decides and every proposal waits for the operator: web1/policy:2: unknown action 'allow'"
supervise-approve "$(supervise-list web1 | cut -f1)" >/dev/null
wait $c5
check_match "the operator decides it" "$(cat out5)" 'status: approved'
check "supervised stops" stop_daemon d

# --- kill -9 while a rule's decision is on its way ---------------------------------
# Killed at a random moment after the proposal is filed: before the rule's
# response, after it (the restart commits it), or after the commit.  Each
# proposal must end committed once, or pending for the operator.
supervise-config -f p1 web1 policy >/dev/null
filed() { cat $Q/proposals/new/* $Q/proposals/cur/* 2>/dev/null |
    grep -q "\"b$1.pypi.org"; }
bad=0
for round in 1 2 3 4 5 6; do
	start_daemon k -s web1 || bad=$((bad + 1))
	tool_call 6 egress-block "{\"host\":\"b$round.pypi.org\",\"path_allowlist\":[\"/simple/\"],\"justification\":\"k\"}" --max-time 20 >/dev/null &
	c6=$!
	wait_for 10 filed "$round" || bad=$((bad + 1))
	sleep "0.0$(awk -v r="$round" 'BEGIN { srand(); printf "%02d", int(rand() * 40) }')"
	kill -9 "$(cat k.pid)"
	wait $c6
	rm -f k.pid
done
check_same "every round filed its proposal" "$bad" 0
check "supervised starts after the kills" start_daemon d3 -s web1
committed=$(g log --format='%(trailers:key=Proposal-Id,valueonly)' --grep='b[0-9].pypi.org' main | sed '/^$/d')
check_same "no proposal committed twice" "$(echo "$committed" | sort | uniq -d)" ""
check_same "each is committed once or waits for the operator" \
    "$(( $(echo "$committed" | sed '/^$/d' | wc -l) + $(npending) ))" 6
check_same "nothing left in responses/new" "$(ls $Q/responses/new)" ""
check "supervised stops" stop_daemon d3
# The state a kill leaves between the rule's files and its commit, made
# by hand: the proposal and the rule's response, as the sidecar writes
# them.  The next start commits it, with its trailers, once.
id=$(supervise-propose -s web1 -t egress-block -j 'left' '{"host": "c.pypi.org", "path_allowlist": ["/simple/"]}')
pc=$(g rev-parse main)
printf '{"decided_at": "2026-12-04T12:00:00Z", "decided_by": "policy", "final_file": null, "notes": "rule web1/policy:2: approve egress-block host=*.pypi.org path=/simple/", "policy_commit": "%s", "proposal_id": "%s", "rule": "web1/policy:2: approve egress-block host=*.pypi.org path=/simple/", "status": "approved"}\n' "$pc" "$id" >"$Q/responses/tmp/$id"
mv "$Q/responses/tmp/$id" "$Q/responses/new/$id"
check "supervised starts over a rule's uncommitted response" start_daemon d4 -s web1
check_same "recovery commits it once, as the rule's" \
    "$(g log --format='%an|%(trailers:key=Rule,valueonly,separator=)|%(trailers:key=Policy-Commit,valueonly,separator=)' --grep="Proposal-Id: $id" main)" \
    "policy|web1/policy:2: approve egress-block host=*.pypi.org path=/simple/|$pc"
check "supervised stops" stop_daemon d4
check "and starts again" start_daemon d5 -s web1
check "supervised stops" stop_daemon d5
check_same "still one commit" "$(g log --format=%h --grep="Proposal-Id: $id" main | wc -l)" 1
# A rule's approval takes effect like the operator's: the live file is
# written and the apply hook runs before the answer, which says so.
cat >hook <<'HOOK'
#!/bin/sh
echo "$SUPERVISE_PROPOSAL_ID $SUPERVISE_STATUS" >>"$HOOK_DIR/hook.runs"
HOOK
chmod +x hook
export HOOK_DIR="$T_DIR"
check "supervised starts with an apply hook" start_daemon d6 -s web1 --apply-hook "$T_DIR/hook"
tool_call 7 egress-block '{"host":"d.pypi.org","path_allowlist":["/simple/"],"justification":"h"}' >out7
id=$(g log -1 --format='%(trailers:key=Proposal-Id,valueonly)' main | sed '/^$/d')
check_match "the rule's answer says the change is in effect" "$(cat out7)" \
    'status: approved\\napplied: yes\\nnotes: rule web1/policy:2: '
check_same "the hook ran once, for that decision" "$(cat hook.runs)" "$id approved"
check_match "the live routes hold the host" "$(cat root/state/web1/egress/routes.json)" '"d\.pypi\.org"'
# The note is written just after the answer: wait for it.
noted() { g notes --ref=apply show "$(g log -1 --format=%H --grep="Proposal-Id: $id" main)" 2>/dev/null | grep -q '^applied: yes$'; }
check "the apply note on the rule's commit says applied: yes" wait_for 20 noted
check "supervised stops" stop_daemon d6
check "git fsck --strict is clean (dangling objects of a killed commit are not errors)" g fsck --strict --no-progress
done_testing
