#!/bin/sh
# supervise-propose: the proposal file it delivers, payload sources and
# checks, the bottle it picks, and its errors.
. "$(dirname "$0")/lib.sh"
plan 33

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
# jget FILE KEY: a string field of a JSON record ("(null)" for null).
jget() {
	perl -MJSON::PP -e 'local $/; open my $f, "<", $ARGV[0] or die;
	    my $j = decode_json(<$f>); my $v = $j->{$ARGV[1]};
	    binmode STDOUT, ":utf8"; print defined $v ? $v : "(null)"' "$1" "$2"
}
jkeys() {
	perl -MJSON::PP -e 'local $/; open my $f, "<", $ARGV[0] or die;
	    print join(",", sort keys %{decode_json(<$f>)})' "$1"
}
Q=$SUPERVISE_ROOT/queue
EMPTY_BLOB=e69de29bb2d1d6434b8b29ae775ad8c2e48c5391

supervise-init web1 >/dev/null

run supervise-propose -s web1 -t egress-block -j 'the build needs it' \
    '{"host": "api.example.com"}'
check_same "propose exits 0" "$rc" 0
check_match "propose prints a maildir unique name" "$out" \
    '^[0-9]+\.M[0-9]{6}P[0-9]+Q[0-9]+R[0-9a-f]{16}\.[A-Za-z0-9-]+$'
id=$out
f=$Q/web1/proposals/new/$id
check "the proposal is in proposals/new/" test -f "$f"
check_same "the proposal file is 0600" "$(stat -c %a "$f")" 600
check_same "the proposal has exactly the seven fields" "$(jkeys "$f")" \
    arrival_timestamp,bottle_slug,current_file_hash,id,justification,proposed_file,tool
check_same "id field is the file name" "$(jget "$f" id)" "$id"
check_same "bottle_slug" "$(jget "$f" bottle_slug)" web1
check_same "tool" "$(jget "$f" tool)" egress-block
check_same "justification" "$(jget "$f" justification)" 'the build needs it'
check_same "proposed_file is the payload" "$(jget "$f" proposed_file)" \
    '{"host": "api.example.com"}'
check_match "arrival_timestamp is UTC with microseconds" \
    "$(jget "$f" arrival_timestamp)" \
    '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$'
check_same "no audit repository: current_file_hash is the empty blob" \
    "$(jget "$f" current_file_hash)" $EMPTY_BLOB
check "proposing does not create the audit repository" \
    test ! -e "$SUPERVISE_ROOT/audit.git"
check_same "nothing is left in proposals/tmp/" \
    "$(ls -A "$Q/web1/proposals/tmp")" ""

# Payload from stdin and from a file, taken verbatim.
run sh -c "printf 'https://x.example.org/a?b' |
    supervise-propose -s web1 -t pipelock-block -j why"
check_same "payload from stdin: exit 0" "$rc" 0
check_same "payload from stdin is the proposed file" \
    "$(jget "$Q/web1/proposals/new/$out" proposed_file)" 'https://x.example.org/a?b'
printf 'FROM debian:12\nRUN apt-get install -y jq\n' >Dockerfile
run supervise-propose -s web1 -t capability-block -j why -f Dockerfile
check_same "payload from -f: exit 0" "$rc" 0
jget "$Q/web1/proposals/new/$out" proposed_file >got
check "payload from -f is the file, byte for byte" cmp -s got Dockerfile

# The bottle from the environment.
run env SUPERVISE_BOTTLE_SLUG=web1 supervise-propose -t gitleaks-allow -j why \
    'abc123:config/app.env:generic-api-key:12'
check_same "SUPERVISE_BOTTLE_SLUG names the bottle" \
    "$(jget "$Q/web1/proposals/new/$out" bottle_slug)" web1

before=$(ls "$Q/web1/proposals/new" | wc -l)
run supervise-propose -t egress-block -j why '{"host": "a.example.com"}'
check_same "no bottle: exit 2" "$rc" 2
check_same "no bottle: message" "$err" \
    "supervise-propose: no bottle: give -s SLUG or set SUPERVISE_BOTTLE_SLUG"
run supervise-propose -s web1 -t nope -j why x
check_same "unknown tool: exit 2" "$rc" 2
check_same "unknown tool: message" "$err" \
    "supervise-propose: can't propose 'nope': not a proposing tool"
run supervise-propose -s web1 -t list-egress-routes -j why x
check_same "a read-only tool proposes nothing: exit 2" "$rc" 2
run supervise-propose -s web1 -t egress-block -j '' '{"host": "a.example.com"}'
check_same "empty justification: exit 2" "$rc" 2
run supervise-propose -s web1 -t egress-block -j why '{"host": "10.0.0.1"}'
check_same "a payload the tool refuses: exit 1" "$rc" 1
check_match "a refused payload says why" "$err" \
    "^supervise-propose: can't propose: egress-block: "
run supervise-propose -s nosuch -t egress-block -j why '{"host": "a.example.com"}'
check_same "a bottle without a spool: exit 1" "$rc" 1
check_match "a bottle without a spool: message" "$err" \
    "^supervise-propose: can't propose to 'nosuch': "
check "no spool is created for it" test ! -e "$Q/nosuch"
run supervise-propose -s ../web1 -t egress-block -j why '{"host": "a.example.com"}'
check_same "a slug that leaves the root: exit 1" "$rc" 1
check_same "nothing was delivered by the failures" \
    "$(ls "$Q/web1/proposals/new" | wc -l)" "$before"
run supervise-propose -s web1 -j why x
check_same "no -t: usage, exit 2" "$rc" 2

done_testing
