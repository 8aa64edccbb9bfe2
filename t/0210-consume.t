#!/bin/sh
# The decision consumer and the audit repository, read back with git:
# propose -> approve / modify / reject -> drain, the commit of each
# decision (subject, author, committer, body, trailers, tree), route
# merges in the history, idempotence, refused responses, hand-written
# responses, and recovery from a consumer that stopped half way.
. "$(dirname "$0")/lib.sh"
plan 70

A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue/web1
g() { git -C "$A" "$@"; }
drain() { SUPERVISE_BOTTLE_SLUG=${1:-web1} timeout 60 supervised --drain; }
propose() { supervise-propose -s web1 -t "$1" -j "$2" "$3"; }
ncommits() { g rev-list --count main 2>/dev/null || echo 0; }
trailer() { g log -1 --format="%(trailers:key=$1,valueonly)" "${2:-main}"; }

printf '{"routes": [{"host": "pypi.org"}]}\n' >routes.json
supervise-init --routes routes.json web1 >/dev/null
check_same "init: one commit" "$(ncommits)" 1
check_same "init: subject" "$(g log -1 --format=%s)" "web1: init config"

# Approve.
a=$(propose egress-block 'need the API' \
    '{"host": "api.github.com", "path_allowlist": ["/repos"]}')
supervise-approve -n 'fine' "$a" >/dev/null
drain >out 2>err
check_same "drain exits 0" "$?" 0
check_same "drain reports the decision" "$(cat out)" "$a	approved"
check_same "approve: one more commit" "$(ncommits)" 2
check_same "subject" "$(g log -1 --format=%s)" \
    "web1: approve egress-block api.github.com"
check_same "author is the operator" "$(g log -1 --format='%an <%ae>')" \
    "$SUPERVISE_OPERATOR"
check_match "committer is the daemon" "$(g log -1 --format='%cn <%ce>')" \
    '^supervised <supervised@[A-Za-z0-9.-]+>$'
check_same "body: justification and notes" \
    "$(g log -1 --format=%b | sed -n '1,5p')" \
    "Justification:
> need the API

Notes:
> fine"
check_same "trailer Proposal-Id" "$(trailer Proposal-Id)" "$a"
check_same "trailer Bottle" "$(trailer Bottle)" web1
check_same "trailer Tool" "$(trailer Tool)" egress-block
check_same "trailer Status" "$(trailer Status)" approved
check_match "trailer Arrived" "$(trailer Arrived)" \
    '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{6}Z$'
check_match "trailer Decided" "$(trailer Decided)" \
    '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{6}Z$'
h=$(printf %s "$a" | git hash-object --stdin)
rec=web1/decisions/$(echo "$h" | sed 's,^\(.\)\(.\)\(.\)\(.\).*,\1/\2/\3/\4,')/$a.json
check_same "the commit touches the routes, the allowlist and the record" \
    "$(g show --format= --name-only main | sort)" \
    "$(printf '%s\n%s\n%s' "$rec" web1/egress/routes.json \
    web1/pipelock/allowlist | sort)"
check "the record holds proposal and response" sh -c \
    "git -C '$A' show 'main:$rec' | grep -q '\"proposal\": {' &&
     git -C '$A' show 'main:$rec' | grep -q '\"status\": \"approved\"'"
check_same "routes: the host merged in, sorted by host" \
    "$(g show main:web1/egress/routes.json)" '{
  "routes": [
    {
      "host": "api.github.com",
      "path_allowlist": [
        "/repos"
      ]
    },
    {
      "host": "pypi.org"
    }
  ]
}'
check "response archived to cur/ID:2,S" test -f "$Q/responses/cur/$a:2,S"
check "proposal flagged decided" test -f "$Q/proposals/cur/$a:2,RS"
check_same "responses/new is empty" "$(ls -A "$Q/responses/new")" ""

# Modify (-f): the operator's route is merged, a union with what is there.
m=$(propose egress-block 'need gists' \
    '{"host": "API.github.com", "path_allowlist": ["/gists", "/admin"]}')
printf '{"host": "api.github.com", "path_allowlist": ["/gists", "/issues"]}\n' \
    >final.json
supervise-approve -f final.json -n 'not /admin' "$m" >/dev/null
drain >out 2>err
check_same "modify: drained" "$(cat out)" "$m	modified"
check_same "modify: subject" "$(g log -1 --format=%s)" \
    "web1: modify egress-block api.github.com"
check_same "modify: Status trailer" "$(trailer Status)" modified
check_same "modify: path prefixes are the union" \
    "$(g show main:web1/egress/routes.json | tr -d ' \n')" \
    '{"routes":[{"host":"api.github.com","path_allowlist":["/gists","/issues","/repos"]},{"host":"pypi.org"}]}'
check_same "modify: the proposal's /admin did not get in" \
    "$(g show main:web1/egress/routes.json | grep -c admin)" 0

# Reject: the record only.
r=$(propose pipelock-block 'need files' 'https://files.example.org/x.tar')
supervise-reject -n 'use the mirror' "$r" >/dev/null
drain >out 2>err
check_same "reject: drained" "$(cat out)" "$r	rejected"
check_same "reject: subject" "$(g log -1 --format=%s)" \
    "web1: reject pipelock-block files.example.org"
check_same "reject: only the record changed" \
    "$(g show --format= --name-only main | sed 's,/decisions/.*,/decisions,')" \
    web1/decisions
check_same "reject: the allowlist holds only the routes' host" \
    "$(g show main:web1/pipelock/allowlist)" api.github.com

# The other tools.
p=$(propose pipelock-block 'downloads' 'https://Dl.Example.NET/a/b?c=d')
c=$(propose capability-block 'need jq' "$(printf 'FROM debian:12\nRUN apt-get install -y jq\n')")
k=$(propose gitleaks-allow 'test fixture' 'abc123:config/app.env:generic-api-key:12')
t=$(propose egress-token-allow 'proxy asks' 'token for api.example.com')
supervise-approve "$p" "$c" "$k" "$t" >/dev/null
before=$(ncommits)
drain >out 2>err
check_same "four decisions, four commits" "$(ncommits)" $((before + 4))
check_same "pipelock: the URL's host, lowercased" \
    "$(g show main:web1/pipelock/allowlist)" "api.github.com
dl.example.net"
check_same "capability: the Dockerfile" \
    "$(g show main:web1/capability/Dockerfile)" \
    "$(printf 'FROM debian:12\nRUN apt-get install -y jq\n')"
check_same "gitleaks: the fingerprint" \
    "$(g show main:web1/gitleaks/.gitleaksignore)" \
    'abc123:config/app.env:generic-api-key:12'
check_same "egress-token-allow: recorded, no config file" \
    "$(g show --format= --name-only --grep="^Proposal-Id: $t\$" main |
    sed 's,/decisions/.*,/decisions,')" web1/decisions

# The questions the trail answers.
check_same "Status trailers, newest first" \
    "$(g log --format='%(trailers:key=Status,valueonly)' main | sed '/^$/d' |
    tr '\n' ' ')" \
    "approved approved approved approved rejected modified approved "
check_same "all rejections" \
    "$(g log --grep='^Status: rejected$' --format=%s main)" \
    "web1: reject pipelock-block files.example.org"
check_same "git log -p on routes.json: which decision added which prefix" \
    "$(g log --format='%(trailers:key=Proposal-Id,valueonly)' -p \
    -- web1/egress/routes.json | grep -E '^\+ +"/|^[0-9]' | tr -d ' ')" \
    "$(printf '%s\n+"/gists",\n+"/issues",\n%s\n+"/repos"' "$m" "$a")"
check_same "who allowed api.github.com (pickaxe)" \
    "$(g log -S'"api.github.com"' --format='%an %s' -- web1/egress/routes.json)" \
    "Test Operator web1: approve egress-block api.github.com"

# Idempotence: nothing waiting, nothing committed.
before=$(ncommits)
drain >out 2>err
check_same "drain again: exit 0" "$?" 0
check_same "drain again: no commit" "$(ncommits)" "$before"

# Recovery: the commit landed but the consumer stopped before the
# archive (response back in new/, proposal without R): no second commit.
mv "$Q/responses/cur/$a:2,S" "$Q/responses/new/$a"
mv "$Q/proposals/cur/$a:2,RS" "$Q/proposals/cur/$a:2,S"
drain >out 2>err
check_same "recovery after commit: no second commit" "$(ncommits)" "$before"
check "recovery after commit: archived" test -f "$Q/responses/cur/$a:2,S"
check "recovery after commit: flagged" test -f "$Q/proposals/cur/$a:2,RS"
check_same "recovery after commit: one commit for the id" \
    "$(g log --format=%H --grep="^Proposal-Id: $a\$" main | wc -l)" 1
# A record of the first layout, decisions/XX/YY/ID.json, counts as well:
# move the record there, as a repository written before holds it.
old=web1/decisions/$(echo "$h" | cut -c1-2)/$(echo "$h" | cut -c3-4)/$a.json
blob=$(g rev-parse "main:$rec")
mkdir wt
gi() { GIT_INDEX_FILE=$PWD/moved.idx GIT_WORK_TREE=$PWD/wt g "$@"; }
gi read-tree main &&
    gi update-index --force-remove "$rec" &&
    gi update-index --add --cacheinfo "100644,$blob,$old" &&
    moved=$(g commit-tree "$(gi write-tree)" -p main \
    -m 'web1: the record at the first layout') &&
    g update-ref refs/heads/main "$moved"
check_same "the record is at the first layout only" \
    "$(g ls-tree -r --name-only main | grep "/$a.json\$")" "$old"
before=$(ncommits)
mv "$Q/responses/cur/$a:2,S" "$Q/responses/new/$a"
mv "$Q/proposals/cur/$a:2,RS" "$Q/proposals/cur/$a:2,S"
drain >out 2>err
check_same "a record at the first layout: no second commit" "$(ncommits)" \
    "$before"
check "a record at the first layout: archived" \
    test -f "$Q/responses/cur/$a:2,S"
# Archived, but stopped before the R flag.
mv "$Q/proposals/cur/$r:2,RS" "$Q/proposals/cur/$r:2,S"
drain >out 2>err
check "recovery after archive: flag added" test -f "$Q/proposals/cur/$r:2,RS"
check_same "recovery after archive: no commit" "$(ncommits)" "$before"
# The same with the proposal still in new/ and its archived response
# renamed by a mail reader (FS); a pending proposal beside it stays so.
p1=$(propose egress-block 'p1' '{"host": "p1.example"}')
p2=$(propose egress-block 'p2' '{"host": "p2.example"}')
supervise-approve "$p1" >/dev/null
drain >out 2>err
before=$(ncommits)
mv "$Q/proposals/cur/$p1:2,RS" "$Q/proposals/new/$p1"
mv "$Q/responses/cur/$p1:2,S" "$Q/responses/cur/$p1:2,FS"
drain >out 2>err
check "recovery: a proposal in new/ with its response archived as FS gets R" \
    test -f "$Q/proposals/cur/$p1:2,RS"
check_same "recovery: a pending proposal stays pending" \
    "$(ls "$Q/proposals/new" "$Q/proposals/cur" | grep -c "^$p2")" 1
check_same "... in new/, and no commit" \
    "$(test -f "$Q/proposals/new/$p2" && echo new):$(ncommits)" "new:$before"

# Refused responses: moved to bad/ with a reason, never committed.
x=$(propose egress-block 'x' '{"host": "x.example"}')
printf '{"status": "approved", "colour": "red"}\n' >"$Q/responses/tmp/$x"
mv "$Q/responses/tmp/$x" "$Q/responses/new/$x"
drain >out 2>err
check_match "a malformed response is reported" "$(cat out)" \
    "^$x	refused	.*responses/new/$x:1:[0-9]+: .*colour"
check_same "malformed: no commit" "$(ncommits)" "$before"
check_same "malformed: moved to bad/ with its reason" \
    "$(ls "$Q/responses/bad" | sed 's/~[0-9]*\.[0-9]*/~T/' | sort)" \
    "$(printf '%s~T\n%s~T.err' "$x" "$x" | sort)"
check_match "malformed: the proposal stays pending" \
    "$(supervise-list web1)" "^$x	"
printf '{"status": "approved"}\n' >"$Q/responses/tmp/nosuch"
mv "$Q/responses/tmp/nosuch" "$Q/responses/new/nosuch"
drain >out 2>err
check_match "a response for no proposal is refused" "$(cat out)" \
    "^nosuch	refused	.*no proposal"
printf '{"status": "rejected"}\n' >"$Q/responses/tmp/$a"
mv "$Q/responses/tmp/$a" "$Q/responses/new/$a"
drain >out 2>err
check_match "a second decision is refused" "$(cat out)" \
    "^$a	refused	.*already decided"
check_same "the first decision stands" "$(ncommits)" "$before"
printf '{"status": "approved"}\n' >"$Q/responses/tmp/$x"
chmod 622 "$Q/responses/tmp/$x"
mv "$Q/responses/tmp/$x" "$Q/responses/new/$x"
drain >out 2>err
check_match "a group-writable response is refused" "$(cat out)" \
    "^$x	refused	.*writable by group or others"

# Deciding by hand: the smallest response; the file's owner decided.
printf '{"status": "approved", "notes": "by hand"}\n' >"$Q/responses/tmp/$x"
mv "$Q/responses/tmp/$x" "$Q/responses/new/$x"
drain >out 2>err
check_same "hand-written approval consumed" "$(cat out)" "$x	approved"
check_same "author: the owner's login, at this host" \
    "$(g log -1 --format='%an|%ae')" "$(id -un)|$(id -un)@$(mail_host)"
check_same "hand-written notes" "$(g log -1 --format=%b | sed -n 5p)" "> by hand"

# Agent text cannot forge the trail: escapes made visible, a fake
# trailer block and a patch divider inside the justification are inert.
esc=$(printf 'ok\033[2J\n\n---\nStatus: approved\nProposal-Id: forged')
f=$(propose egress-block "$esc" '{"host": "f.example"}')
supervise-reject "$f" >/dev/null
drain >/dev/null 2>&1
check_same "no raw escape byte in the message" \
    "$(g log -1 --format=%B | tr -d '\n' | od -An -c | grep -c 033)" 0
check "the escape is shown as text" sh -c \
    "git -C '$A' log -1 --format=%B | grep -qF 'ok\\x1b[2J'"
check_same "trailers are ours only" \
    "$(trailer Status)|$(trailer Proposal-Id)" "rejected|$f"
rlo=$(printf 'see \342\200\256evil')
o=$(propose egress-block "$rlo" '{"host": "o.example"}')
supervise-reject "$o" >/dev/null
drain >/dev/null 2>&1
check_same "a bidi override: escaped in the message, \\u in the record" \
    "$(g log -1 --format=%b | sed -n 2p)|$(g show --format= -p main |
    grep -c "$(printf '\342\200\256')")|$(g show --format= -p main |
    grep -c 'see \\u202Eevil')" '> see \u{202e}evil|0|1'

check "git fsck --strict is clean" g fsck --strict --no-progress
check_same "history is linear" "$(g rev-list --merges main | wc -l)" 0
done_testing
