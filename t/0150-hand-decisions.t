#!/bin/sh
# Deciding by hand, exactly as DESIGN.md and supervise-spool(5) show it
# (write-and-move, edit-and-move), seen by the CLIs, then consumed by
# `supervised --drain`: commits in the audit repository, files archived,
# a malformed response moved aside with its proposal still pending.
. "$(dirname "$0")/lib.sh"
plan 29

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
A=$SUPERVISE_ROOT/audit.git
Q=$SUPERVISE_ROOT/queue/web1
g() { git --git-dir="$A" "$@"; }
propose() { supervise-propose -s web1 -t "$1" -j why "$2"; }

printf '{"routes": [{"host": "api.github.com"}]}\n' >routes.json
supervise-init --routes routes.json web1 >/dev/null
w=$(propose egress-block '{"host": "write.example.com"}')
e=$(propose egress-block '{"host": "edit.example.com", "path_allowlist": ["/"]}')
r=$(propose pipelock-block 'https://reject.example.com/x')
m=$(propose capability-block 'FROM malformed')
supervise-show -q "$w" "$e" "$r" "$m"

# An editor for the edit-and-move way: add the status, narrow the route.
cat >ed <<'EOF'
#!/bin/sh
perl -MJSON::PP -i -0777 -pe '
	my $j = decode_json($_);
	$j->{status} = "approved";
	$j->{proposed_file} = "{\"host\": \"edit.example.com\", \"path_allowlist\": [\"/v2/\"]}";
	$_ = JSON::PP->new->canonical->pretty->encode($j);' "$1"
EOF
chmod +x ed
EDITOR=$T_DIR/ed

(
	cd "$Q" || exit 1
	# write and move: the smallest response
	ID=$w
	printf '{"status": "approved", "notes": "ok"}\n' > responses/tmp/$ID && mv responses/tmp/$ID responses/new/
	# edit and move: copy the proposal, add "status", change "proposed_file"
	ID=$e
	cp proposals/cur/$ID:2,S responses/tmp/$ID && $EDITOR responses/tmp/$ID && mv responses/tmp/$ID responses/new/
	ID=$r
	printf '{"status": "rejected", "notes": "use the mirror"}\n' > responses/tmp/$ID && mv responses/tmp/$ID responses/new/
	ID=$m
	printf '{"status": "approved", "note": "typo in the key"}\n' > responses/tmp/$ID && mv responses/tmp/$ID responses/new/
)
check "the hand-written responses are in responses/new/" \
    test -f "$Q/responses/new/$w" -a -f "$Q/responses/new/$e" -a \
    -f "$Q/responses/new/$r" -a -f "$Q/responses/new/$m"

# The CLIs count a hand decision as a decision.
run supervise-list web1
check_same "decided by hand: nothing is pending" "$out" ""
run supervise-approve "$w"
check_same "a CLI decision after a hand one: refused" "$rc:$err" \
    "1:supervise-approve: can't approve '$w': already decided"
check_match "show says decided" "$(supervise-show "$e")" '^State: decided$'

# The daemon drains them.
if command -v supervised >/dev/null 2>&1; then
	SUPERVISE_BOTTLE_SLUG=web1 timeout 30 supervised --drain >drain.out 2>drain.err
	rc=$?
else
	echo "supervised is not built" >drain.err
	rc=127
fi
check_same "supervised --drain exits 0" "$rc" 0
[ "$rc" = 0 ] || diag "$(cat drain.err)"

check_same "three decisions, three commits after the init" "$(g rev-list --count main)" 4
subjects=$(g log --format=%s main)
check_match "write-and-move: an approve commit" "$subjects" \
    '^web1: approve egress-block write\.example\.com$'
check_match "edit-and-move: a modify commit" "$subjects" \
    '^web1: modify egress-block edit\.example\.com$'
check_match "a hand rejection: a reject commit" "$subjects" \
    '^web1: reject pipelock-block reject\.example\.com$'
check_same "the routes: the approved host and the edited route" \
    "$(g show main:web1/egress/routes.json)" '{
  "routes": [
    {
      "host": "api.github.com"
    },
    {
      "host": "edit.example.com",
      "path_allowlist": [
        "/v2/"
      ]
    },
    {
      "host": "write.example.com"
    }
  ]
}'
# The approved routes' hosts are mirrored onto pipelock's allowlist; the
# rejected pipelock-block's host is not there.
check_same "the rejection changed no config" \
    "$(g show main:web1/pipelock/allowlist 2>/dev/null)" \
    "edit.example.com
write.example.com"
check_same "decided_by defaults to the file owner: the commit author" \
    "$(g log -1 --format=%an --grep="^Proposal-Id: $w\$" main)" "$(id -un)"
check_match "the notes are in the commit body" \
    "$(g log -1 --format=%b --grep="^Proposal-Id: $r\$" main)" 'use the mirror'
check_same "Status trailers" \
    "$(g log --format='%(trailers:key=Status,valueonly)' main | grep . | sort | tr '\n' ' ')" \
    "approved modified rejected "

for id in $w $e $r; do
	check "$id: the response is archived to responses/cur/ID:2,S" \
	    test -f "$Q/responses/cur/$id:2,S" -a ! -e "$Q/responses/new/$id"
	check "$id: the proposal is flagged replied" test -f "$Q/proposals/cur/$id:2,RS"
done

# The malformed one: moved aside with its reason, never deleted.
bad=$(ls "$Q/responses/bad" 2>/dev/null | grep -v '\.err$')
check_match "the malformed response is in responses/bad/ as ID~SEC.USEC" \
    "$bad" "^$m~[0-9]+\\.[0-9]+\$"
check_same "its content is kept" "$(cat "$Q/responses/bad/$bad" 2>/dev/null)" \
    '{"status": "approved", "note": "typo in the key"}'
check_match "its reason: FILE:LINE:COLUMN and the key" \
    "$(cat "$Q/responses/bad/$bad.err" 2>/dev/null)" ":1:[0-9]+: .*note"
check_same "its reason is one line" "$(wc -l <"$Q/responses/bad/$bad.err" 2>/dev/null)" 1
check "nothing is left in responses/new/" test -z "$(ls -A "$Q/responses/new")"
run supervise-list web1
check_same "the proposal is pending again" "$(printf '%s\n' "$out" | cut -f1,5)" \
    "$m	seen"
run supervise-approve -n fixed "$m"
check_same "and can be decided again" "$rc" 0
if command -v supervised >/dev/null 2>&1; then
	SUPERVISE_BOTTLE_SLUG=web1 timeout 30 supervised --drain >/dev/null 2>&1
fi
check_match "whose decision then lands" "$(g log -1 --format=%s main)" \
    '^web1: approve capability-block Dockerfile$'
check "a second drain commits nothing twice" \
    test "$(g log --format=%s main | sort | uniq -d)" = ""

done_testing
