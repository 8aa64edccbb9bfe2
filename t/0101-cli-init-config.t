#!/bin/sh
# supervise-init with config files: one "SLUG: init config" commit in the
# audit repository, canonical files, idempotence, refusals; then what
# supervise-propose and supervise-show read from it.
. "$(dirname "$0")/lib.sh"
plan 33

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue
g() { git --git-dir="$A" "$@"; }

printf '{"routes": [{"host": "Zeta.example.com"}, {"host": "api.github.com", "path_allowlist": ["/repos/"]}]}\n' >routes.json
printf 'b.example.com\nA.example.com\n\nb.example.com\n' >allowlist
printf 'FROM debian:12\nRUN apt-get update\n' >Dockerfile
printf 'fp2:b.env:rule:1\nfp1:a.env:rule:2\n' >gitleaksignore

run supervise-init --routes routes.json --allowlist allowlist \
    --dockerfile Dockerfile --gitleaksignore gitleaksignore web1
check_same "init with config: exit 0" "$rc" 0
check_same "init with config: prints the queue directory" "$out" "$Q/web1"
check "the spool is made too" test -d "$Q/web1/proposals/new"
check_same "one commit" "$(g rev-list --count main)" 1
check_same "its subject" "$(g log -1 --format=%s main)" "web1: init config"
check_same "its trailers" "$(g log -1 --format='%(trailers:only)' main)" \
    "Bottle: web1
Component: egress/routes.json
Component: pipelock/allowlist
Component: capability/Dockerfile
Component: gitleaks/.gitleaksignore
Action: init"
check_same "its author is the operator" "$(g log -1 --format='%an <%ae>' main)" \
    "$SUPERVISE_OPERATOR"
check_same "the tree holds the four files" "$(g ls-tree -r --name-only main)" \
    "web1/capability/Dockerfile
web1/egress/routes.json
web1/gitleaks/.gitleaksignore
web1/pipelock/allowlist"
check_same "routes.json is canonical: sorted by host, lowercased" \
    "$(g show main:web1/egress/routes.json)" '{
  "routes": [
    {
      "host": "api.github.com",
      "path_allowlist": [
        "/repos/"
      ]
    },
    {
      "host": "zeta.example.com"
    }
  ]
}'
check_same "the allowlist is sorted and unique" \
    "$(g show main:web1/pipelock/allowlist)" "a.example.com
b.example.com"
g show main:web1/capability/Dockerfile >got
check "the Dockerfile is as given" cmp -s got Dockerfile
check_same "the gitleaksignore is sorted" \
    "$(g show main:web1/gitleaks/.gitleaksignore)" "fp1:a.env:rule:2
fp2:b.env:rule:1"

# Again with the same files: nothing new.
run supervise-init --routes routes.json --allowlist allowlist web1
check_same "the same config again: exit 0" "$rc" 0
check_same "the same config again: no commit" "$(g rev-list --count main)" 1

# A different file for a bottle that has one: refused, not overwritten.
printf 'c.example.com\n' >allowlist2
run supervise-init --allowlist allowlist2 web1
check_same "another config over a live one: exit 1" "$rc" 1
check_same "another config over a live one: message" "$err" \
    "supervise-init: can't init config of 'web1': 'web1/pipelock/allowlist' is already on main with other content; change it with an operator edit"
check_same "another config over a live one: no commit" "$(g rev-list --count main)" 1

# Files that are not good configs: nothing is created at all.
printf '{"routes": [{"host": "10.0.0.1"}]}\n' >bad-routes
run supervise-init --routes bad-routes web2
check_same "a bad routes file: exit 2" "$rc" 2
check_match "a bad routes file: message names the file" "$err" \
    "^supervise-init: can't use 'bad-routes' as egress/routes.json: "
check_same "a bad routes file: the config's name once, then why" "$err" \
    "supervise-init: can't use 'bad-routes' as egress/routes.json: routes[0]: host '10.0.0.1' must be a DNS name, not an IP address"
check "a bad routes file: no spool" test ! -e "$Q/web2"
printf 'ok.example.com\nnot a host\n' >bad-allowlist
run supervise-init --allowlist bad-allowlist web2
check_same "a bad allowlist: exit 2" "$rc" 2
run supervise-init --dockerfile nofile web2
check_same "a missing file: exit 2 and message" "$rc:$err" \
    "2:supervise-init: can't open 'nofile': No such file or directory"
check "a missing file: no spool" test ! -e "$Q/web2"
check_same "refused configs made no commit" "$(g rev-list --count main)" 1

# A second bottle: its own commit.
run supervise-init --routes routes.json web2
check_same "a second bottle's config: its own commit" \
    "$(g rev-list --count main):$(g log -1 --format=%s main)" "2:web2: init config"

# What proposals and show read from the repository.
id=$(supervise-propose -s web1 -t egress-block -j why \
    '{"host": "api.github.com", "path_allowlist": ["/orgs/"]}')
check_same "current_file_hash is the blob of routes.json on main" \
    "$(sed -n 's/.*"current_file_hash": "\(.*\)".*/\1/p' "$Q/web1/proposals/new/$id")" \
    "$(g rev-parse main:web1/egress/routes.json)"
run supervise-show "$id"
check_same "show with a config: exit 0" "$rc" 0
check_same "show: the diff of the merge" \
    "$(printf '%s\n' "$out" | sed -n '/^Diff of/,$p' | grep '^[-+@D]')" \
    "Diff of web1/egress/routes.json:
--- a/web1/egress/routes.json
+++ b/web1/egress/routes.json
@@ -3,6 +3,7 @@
+        \"/orgs/\",
Diff of web1/pipelock/allowlist:
--- a/web1/pipelock/allowlist
+++ b/web1/pipelock/allowlist
@@ -1,2 +1,3 @@
+api.github.com"
id=$(supervise-propose -s web1 -t pipelock-block -j why 'https://b.example.com/x')
check_match "show: nothing to change" "$(supervise-show "$id")" \
    '^Diff: none, web1/pipelock/allowlist already allows this$'
id=$(supervise-propose -s web1 -t capability-block -j why 'FROM alpine')
check_same "show: a replaced Dockerfile, git's own marker kept" \
    "$(supervise-show "$id" | sed -n '/^@@/,/^$/p' | sed '$d')" \
    '@@ -1,2 +1 @@
-FROM debian:12
-RUN apt-get update
+FROM alpine
\ No newline at end of file'
# A proposal made before the config changed says so.
supervise-init web3 >/dev/null
id=$(supervise-propose -s web3 -t egress-block -j why '{"host": "new.example.com"}')
supervise-init --routes routes.json web3 >/dev/null
check_match "show: a config changed since the proposal is noted" \
    "$(supervise-show "$id")" \
    '^Note: web3/egress/routes.json changed since the proposal was made$'
check "show did not create anything in the repository" \
    test "$(g rev-list --count main)" = 3

done_testing
