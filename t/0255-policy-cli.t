#!/bin/sh
# The policy file in the operator's tools: supervise-config commits a
# policy as one operator-edit commit and refuses a broken one with
# FILE:LINE: reason (hostile lines included), -p prints it, and
# supervise-show says which rule would decide a proposal and why the
# others would not.
. "$(dirname "$0")/lib.sh"
plan 20

A=$SUPERVISE_ROOT/audit.git
g() { git -C "$A" "$@"; }
run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
unset VISUAL
export TMPDIR=$T_DIR/tmp
mkdir "$TMPDIR"
supervise-init web1 >/dev/null

cat >p1 <<'EOF2'
# registries every bottle uses
approve egress-block host=*.pypi.org path=/simple/   # the index only
reject capability-block
EOF2
run supervise-config -m 'pypi for the builds' -f p1 web1 policy
check_same "a policy is committed: exit 0" "$rc:$err" "0:"
check_match "the diff is shown" "$out" '^\+approve egress-block host=\*\.pypi\.org'
check_same "one operator-edit commit of web1/policy" \
    "$(g log -1 --format=%s main)" "web1: operator edit policy"
check_same "the file is kept as written, comments and all" \
    "$(g show main:web1/policy)" "$(cat p1)"
check_same "git log -- web1/policy is the history of the rules" \
    "$(g log --format=%s -- web1/policy)" "web1: operator edit policy"
run supervise-config -p web1 policy
check_same "-p prints the policy" "$out" "$(cat p1)"

printf 'approve egress-block host=*.pypi.org\nallow pipelock-block\n' >p2
run supervise-config -f p2 web1 policy
check_same "a syntax error: exit 1" "$rc" 1
check_same "a syntax error is named FILE:LINE: reason" "$err" \
    "supervise-config: p2:2: unknown action 'allow' (approve or reject)"
check_same "nothing committed" "$(g show main:web1/policy)" "$(cat p1)"

printf '# \033]0;pwned\007 a title\napprove egress-block\n' >p3
run supervise-config -f p3 web1 policy
check_same "an escape sequence in a comment: refused" "$rc:$err" \
    "1:supervise-config: p3:1: control character 0x1b (even a comment may hold none)"

awk 'BEGIN { printf "approve egress-block\n#"; for (i = 0; i < 1000000; i++) printf "x"; printf "\n" }' >p4
run supervise-config -f p4 web1 policy
check_same "a 1 MB line: refused with its line" "$rc:$err" \
    "1:supervise-config: p4:2: line longer than 4096 bytes"
check_same "still the first policy" "$(g show main:web1/policy)" "$(cat p1)"

# Through the editor, a refused edit is kept, named by its file.
cat >ed <<'EOF2'
#!/bin/sh
printf 'approve egress-block host=a*.org\n' >"$1"
EOF2
chmod +x ed
EDITOR=./ed run supervise-config web1 policy
tmp=$(ls "$TMPDIR")
check_same "an editor's broken policy: exit 1" "$rc" 1
check_match "the message names the kept file and its line" "$err" \
    "^supervise-config: $TMPDIR/supervise-config\.[A-Za-z0-9]+\.policy:1: host pattern 'a\*\.org'"
check "the edit is kept" test -s "$TMPDIR/$tmp"

# supervise-show: which rule would decide, and why the others would not.
id=$(supervise-propose -s web1 -t egress-block -j 'index' \
    '{"host": "files.pypi.org", "path_allowlist": ["/simple/numpy/"]}')
run supervise-show "$id"
check_same "show with a policy: exit 0" "$rc:$err" "0:"
check_same "the rule that would have matched" \
    "$(printf '%s\n' "$out" | sed -n '/^Policy/,$p')" \
"Policy of web1/policy:
line 2: approve egress-block host=*.pypi.org path=/simple/: matches"
id=$(supervise-propose -s web1 -t egress-block -j 'index' \
    '{"host": "pypi.org.evil.net", "path_allowlist": ["/simple/"]}')
run supervise-show "$id"
check_same "why not" "$(printf '%s\n' "$out" | sed -n '/^Policy/,$p')" \
"Policy of web1/policy:
line 2: approve egress-block host=*.pypi.org path=/simple/: host 'pypi.org.evil.net' is not a host the rule names
no rule matches: the operator decides"
id=$(supervise-propose -s web1 -t gitleaks-allow -j 'fixture' 'abc:t/x:rule:1')
run supervise-show "$id"
check_same "a tool without rules" "$(printf '%s\n' "$out" | sed -n '/^Policy/,$p')" \
"Policy of web1/policy:
no rule matches: the operator decides"
supervise-init web2 >/dev/null
id=$(supervise-propose -s web2 -t gitleaks-allow -j 'fixture' 'abc:t/x:rule:1')
run supervise-show "$id"
check_same "a bottle without a policy" "$(printf '%s\n' "$out" | sed -n '/^Policy/,$p')" \
"Policy: none, no web2/policy on main"
done_testing
