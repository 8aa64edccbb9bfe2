#!/bin/sh
# supervise-config: an operator's edit of a bottle's config through
# $EDITOR (a script here) or -f, as one operator-edit commit; unchanged
# text commits nothing; a refused edit is kept; an approval that lands
# during the edit is never reverted.
. "$(dirname "$0")/lib.sh"
plan 36

A=$SUPERVISE_ROOT/audit.git
g() { git -C "$A" "$@"; }
run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
ncommits() { g rev-list --count main 2>/dev/null || echo 0; }
trailer() { g log -1 --format="%(trailers:key=$1,valueonly)" main; }
drain() { SUPERVISE_BOTTLE_SLUG=web1 timeout 60 supervised --drain; }
unset VISUAL
# A TMPDIR of our own: the temporary files are counted below, and the
# shared one may hold another run's supervise-config files at any moment.
export TMPDIR=$T_DIR/tmp
mkdir "$TMPDIR"
supervise-init web1 >/dev/null

run supervise-config -p web1 egress
check_same "-p of an absent file: exit 1" "$rc" 1
check_same "-p of an absent file: message" "$err" \
    "supervise-config: no 'web1/egress/routes.json' on main"

# The editor gets the current text (the empty routes document) and
# writes its own; the result is checked, made canonical and committed.
cat >ed-routes <<'EOF'
#!/bin/sh
cp "$1" seen-by-editor
printf '{"routes": [{"host": "B.example"}, {"host": "a.example", "path_allowlist": ["/x"]}]}\n' >"$1"
EOF
chmod +x ed-routes
EDITOR=./ed-routes run supervise-config -m 'open a and b for the build' web1 egress
check_same "edit: exit 0" "$rc" 0
check_same "edit: quiet on stderr" "$err" ""
check_same "the editor started from an empty routes document" \
    "$(cat seen-by-editor)" '{
  "routes": []
}'
check_match "edit: the diff is printed" "$out" \
    '^diff --git a/web1/egress/routes.json b/web1/egress/routes.json'
check_match "edit: the diff shows the new host" "$out" '\+      "host": "b.example"'
check_same "edit: one commit" "$(ncommits)" 1
check_same "edit: subject" "$(g log -1 --format=%s)" \
    "web1: operator edit egress/routes.json"
check_same "edit: author is the operator" "$(g log -1 --format='%an <%ae>')" \
    "$SUPERVISE_OPERATOR"
check_same "edit: the message, then the trailers" "$(g log -1 --format=%b)" \
    "open a and b for the build

Bottle: web1
Component: egress/routes.json
Action: operator-edit"
check_same "edit: Action trailer" "$(trailer Action)" operator-edit
check_same "edit: canonical text on main" \
    "$(g show main:web1/egress/routes.json | tr -d ' \n')" \
    '{"routes":[{"host":"a.example","path_allowlist":["/x"]},{"host":"b.example"}]}'
run supervise-config -p web1 egress
check_same "-p prints the file as on main" "$out" \
    "$(g show main:web1/egress/routes.json)"

# Unchanged text: nothing to commit.
EDITOR=true run supervise-config web1 egress
check_same "unchanged: exit 0" "$rc" 0
check_same "unchanged: says so" "$err" \
    "supervise-config: 'web1/egress/routes.json' unchanged; nothing committed"
check_same "unchanged: no commit" "$(ncommits)" 1

# VISUAL wins over EDITOR; a failing editor commits nothing.
VISUAL=false EDITOR=./ed-routes run supervise-config web1 egress
check_same "a failing editor: exit 1" "$rc" 1
check_match "a failing editor: message" "$err" "the editor 'false' failed"
check_same "a failing editor: no commit" "$(ncommits)" 1
check_same "a failing editor leaves no temporary file" \
    "$(ls -A "$TMPDIR")" ""

# A refused edit is kept, and can be fixed and applied with -f.
cat >ed-bad <<'EOF'
#!/bin/sh
printf 'a.example\nnot a host\n' >"$1"
EOF
chmod +x ed-bad
EDITOR=./ed-bad run supervise-config web1 pipelock
check_same "refused edit: exit 1" "$rc" 1
check_match "refused edit: the line is named" "$err" \
    "can't use the edit of 'web1/pipelock/allowlist': pipelock/allowlist:2: host 'not a host'"
kept=$(printf '%s\n' "$err" | sed -n "s/.*kept in '\([^']*\)'.*/\1/p")
check "refused edit: kept in a file" test -f "$kept"
check_same "refused edit: no commit" "$(ncommits)" 1
printf 'a.example\nZ.example\n' >"$kept"
run supervise-config -f "$kept" web1 pipelock
check_same "-f applies the fixed file" "$rc:$(g show main:web1/pipelock/allowlist)" \
    "0:a.example
z.example"
rm -f "$kept"

# An approval that lands while the operator edits is not reverted.
id=$(supervise-propose -s web1 -t egress-block -j why '{"host": "c.example"}')
supervise-approve "$id" >/dev/null
cat >ed-slow <<'EOF'
#!/bin/sh
# meanwhile, the daemon commits the approval
SUPERVISE_BOTTLE_SLUG=web1 supervised --drain >/dev/null
printf '{"routes": [{"host": "a.example"}]}\n' >"$1"
EOF
chmod +x ed-slow
before=$(ncommits)
EDITOR=./ed-slow run supervise-config web1 egress
check_same "stale edit: exit 1" "$rc" 1
check_match "stale edit: says main changed" "$err" \
    "'web1/egress/routes.json' changed on main since it was read"
check_same "stale edit: only the approval was committed" "$(ncommits)" \
    $((before + 1))
check_match "stale edit: the approved host is still there" \
    "$(g show main:web1/egress/routes.json)" '"c.example"'
kept=$(printf '%s\n' "$err" | sed -n "s/.*kept in '\([^']*\)'.*/\1/p")
check "stale edit: kept for the operator" test -f "$kept"
rm -f "$kept"

# Usage.
run supervise-config web1 nosuch
check_same "unknown component: exit 2" "$rc:$err" \
    "2:supervise-config: unknown component 'nosuch' (egress, pipelock, capability, gitleaks, policy)"
run supervise-config ../x egress
check_same "bad slug: exit 2" "$rc" 2
run supervise-config web1
check_same "missing component: exit 2" "$rc" 2
check_match "usage on stderr" "$err" '^usage: supervise-config '

check "git fsck --strict is clean" g fsck --strict --no-progress
done_testing
