#!/bin/sh
# supervise-approve and supervise-reject: the response file each writes,
# -f, the first decision winning, batches, ids from stdin and -0, id
# prefixes and random parts, ambiguity, and refused ids.
. "$(dirname "$0")/lib.sh"
plan 71

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
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
R=$Q/web1/responses
propose() { supervise-propose -s "$1" -t "$2" -j why "$3"; }

supervise-init web1 >/dev/null
supervise-init web2 >/dev/null

# Approve: the response, with every field.
a=$(propose web1 egress-block '{"host": "api.example.com"}')
run supervise-approve -n 'ok for now' "$a"
check_same "approve exits 0" "$rc" 0
check_same "approve prints the response path" "$out" "$R/new/$a"
check_same "approve is quiet on stderr" "$err" ""
check_same "the response is 0600" "$(stat -c %a "$R/new/$a")" 600
check_same "the response has every field" "$(jkeys "$R/new/$a")" \
    decided_at,decided_by,final_file,notes,proposal_id,status
check_same "proposal_id" "$(jget "$R/new/$a" proposal_id)" "$a"
check_same "status approved" "$(jget "$R/new/$a" status)" approved
check_same "final_file is the proposed file" "$(jget "$R/new/$a" final_file)" \
    '{"host": "api.example.com"}'
check_same "notes" "$(jget "$R/new/$a" notes)" 'ok for now'
check_same "decided_by is the operator" "$(jget "$R/new/$a" decided_by)" \
    "$SUPERVISE_OPERATOR"
check_match "decided_at is UTC now" "$(jget "$R/new/$a" decided_at)" \
    "^$(date -u +%Y-%m-%d)T[0-9:]{8}\.[0-9]{6}Z\$"
check "the proposal itself stays in new/ for the daemon" \
    test -f "$Q/web1/proposals/new/$a"
check_same "nothing is left in responses/tmp/" "$(ls -A "$R/tmp")" ""

# The second decision is refused, whichever it is; the first stands.
cp "$R/new/$a" first
run supervise-approve "$a"
check_same "a second approve: exit 1" "$rc" 1
check_same "a second approve: message" "$err" \
    "supervise-approve: can't approve '$a': already decided"
check_same "a second approve prints nothing" "$out" ""
run supervise-reject -n no "$a"
check_same "a reject after approve: exit 1" "$rc" 1
check_same "a reject after approve: message" "$err" \
    "supervise-reject: can't reject '$a': already decided"
check "the first response is unchanged" cmp -s first "$R/new/$a"
mv "$R/new/$a" "$R/cur/$a:2,S"
run supervise-reject "$a"
check_same "a consumed decision still counts: message" "$err" \
    "supervise-reject: can't reject '$a': already decided"

# Reject.
r=$(propose web1 pipelock-block 'https://x.example.org/')
run supervise-reject -n 'use the mirror' "$r"
check_same "reject exits 0" "$rc" 0
check_same "reject prints the response path" "$out" "$R/new/$r"
check_same "status rejected" "$(jget "$R/new/$r" status)" rejected
check_same "a rejection has a null final_file" "$(jget "$R/new/$r" final_file)" "(null)"
check_same "a rejection's notes" "$(jget "$R/new/$r" notes)" 'use the mirror'
check_same "a rejection has every field" "$(jkeys "$R/new/$r")" \
    decided_at,decided_by,final_file,notes,proposal_id,status

# -f: modified with the operator's file; the same text stays approved.
m=$(propose web1 egress-block '{"host": "api.example.com"}')
printf '{\n  "host": "api.example.com",\n  "path_allowlist": ["/repos/"]\n}\n' >route
run supervise-approve -f route "$m"
check_same "-f: exit 0" "$rc" 0
check_same "-f: status modified" "$(jget "$R/new/$m" status)" modified
jget "$R/new/$m" final_file >got
check "-f: final_file is the file" cmp -s got route
s=$(propose web1 capability-block 'FROM debian:12')
printf 'FROM debian:12' >same
run supervise-approve -f same "$s"
check_same "-f with the proposed text: approved" "$(jget "$R/new/$s" status)" approved
b=$(propose web1 egress-block '{"host": "b.example.com"}')
printf '{"host": "b.example.com:8080"}' >badroute
run supervise-approve -f badroute "$b"
check_same "-f with a text the tool refuses: exit 1" "$rc" 1
check_match "-f with a text the tool refuses: message" "$err" \
    "^supervise-approve: can't approve '$b': egress-block: "
check "-f with a text the tool refuses writes nothing" test ! -e "$R/new/$b"
run supervise-approve -f nofile "$b"
check_same "-f with a missing file: exit 2" "$rc" 2
check_same "-f with a missing file: message" "$err" \
    "supervise-approve: can't open 'nofile': No such file or directory"
run supervise-approve -n "$(printf 'bad \377 byte')" "$b"
check_same "notes that are not UTF-8: exit 1" "$rc" 1
check_same "notes that are not UTF-8: message" "$err" \
    "supervise-approve: can't approve '$b': notes: not valid UTF-8"

# A batch: one failure does not stop the others.
x=$(propose web1 gitleaks-allow 'abc:a.env:rule:1')
y=$(propose web2 gitleaks-allow 'abc:b.env:rule:2')
run supervise-reject "$x" nosuch "$y"
check_same "a batch with a bad id: exit 1" "$rc" 1
check_same "a batch with a bad id: the others are decided" "$out" \
    "$R/new/$x
$Q/web2/responses/new/$y"
check_same "a batch with a bad id: message" "$err" \
    "supervise-reject: can't reject 'nosuch': no such proposal"

# Ids from stdin: supervise-list lines, or -0 records.
c1=$(propose web2 capability-block 'FROM a')
c2=$(propose web2 capability-block 'FROM b')
run sh -c 'supervise-list web2 | supervise-approve'
check_same "ids from supervise-list on stdin: exit 0" "$rc" 0
check_same "ids from stdin: each decided" "$out" \
    "$Q/web2/responses/new/$c1
$Q/web2/responses/new/$c2"
c3=$(propose web2 capability-block 'FROM c')
c4=$(propose web2 capability-block 'FROM d')
supervise-list -0 web2 | supervise-reject -0 >nul.out
check_same "-0 in and out: NUL-terminated paths" "$(tr '\0' '\n' <nul.out)" \
    "$Q/web2/responses/new/$c3
$Q/web2/responses/new/$c4"
check_same "-0 output has no newline" "$(tr -cd '\n' <nul.out | wc -c)" 0

# Prefixes and the random part.
p1=$(propose web1 capability-block 'FROM p1')
rnd=$(printf '%s' "$p1" | sed 's/.*R\([0-9a-f]\{16\}\)\..*/\1/')
run supervise-approve "$(printf '%s' "$rnd" | cut -c1-8)"
check_same "the random part's first 8 digits name it" "$out" "$R/new/$p1"
p2=$(propose web1 capability-block 'FROM p2')
run supervise-approve "$(printf '%s' "$p2" | sed 's/\.[^.]*$//')"
check_same "a prefix of the id names it" "$out" "$R/new/$p2"
run supervise-approve web2/"$(printf '%s' "$p2" | cut -c1-20)"
check_same "SLUG/ID looks in that bottle only" "$err" \
    "supervise-approve: can't approve 'web2/$(printf '%s' "$p2" | cut -c1-20)': no such proposal"
# Two bottles, one random-part prefix.
EMPTY_BLOB=e69de29bb2d1d6434b8b29ae775ad8c2e48c5391
for pair in web1:1700000001.M000001P1Q1Rbeef000000000001.h \
    web2:1700000002.M000001P1Q1Rbeef000000000002.h; do
	slug=${pair%%:*} id=${pair#*:}
	printf '{"arrival_timestamp": "2026-01-01T00:00:00.000000Z", "bottle_slug": "%s", "current_file_hash": "%s", "id": "%s", "justification": "j", "proposed_file": "FROM x", "tool": "capability-block"}\n' \
	    "$slug" $EMPTY_BLOB "$id" >"$Q/$slug/proposals/new/$id"
done
run supervise-reject beef
check_same "a prefix matching in two bottles: exit 1" "$rc" 1
check_same "a prefix matching in two bottles: message" "$err" \
    "supervise-reject: can't reject 'beef': 'beef' is ambiguous: it matches in bottles 'web1' and 'web2'"
run supervise-reject web2/beef
check_same "SLUG/ID settles it" "$out" \
    "$Q/web2/responses/new/1700000002.M000001P1Q1Rbeef000000000002.h"
run supervise-reject 1700000001.M000001P1Q1Rbeef00000000000
check_same "a longer prefix settles it too" "$out" \
    "$R/new/1700000001.M000001P1Q1Rbeef000000000001.h"

# Ids and slugs that could leave the spool are refused; nothing is made.
t=$(propose web1 capability-block 'FROM t')
before=$(cd "$T_DIR" && find . | sort)
for bad in ../../../x .. "web1/../../x" "../web1/$t" ".hidden" "web1/" \
    "/etc/passwd" "web1/a/b"; do
	run supervise-approve "$bad"
	check_match "'$bad' is refused with exit 1 and a reason" "$rc:$err" \
	    "^1:supervise-approve: can't approve '$(printf '%s' "$bad" | sed 's/[.]/[.]/g')': invalid (bottle slug|proposal id) "
done
check_same "refused ids created nothing anywhere" "$(cd "$T_DIR" && find . -path ./out -prune -o -path ./err -prune -o -print | sort)" \
    "$(printf '%s\n' "$before" | grep -v -x -e ./out -e ./err)"

# Ids that come together are decided together, each on its own: the
# same id twice in one batch is decided once; the order of the output
# is the order of the ids.
b1=$(propose web1 egress-block '{"host": "b1.example.com"}')
b2=$(propose web2 egress-block '{"host": "b2.example.com"}')
run supervise-approve "$b1" "$b2" "$b1"
check_same "one batch, two bottles, one id twice: exit 1" "$rc" 1
check_same "... the two decided, in order" "$out" \
    "$(printf '%s\n%s' "$R/new/$b1" "$Q/web2/responses/new/$b2")"
check_same "... the second $b1 already decided" "$err" \
    "supervise-approve: can't approve '$b1': already decided"
check_same "... and nothing left in tmp/" "$(ls -A "$R/tmp" "$Q/web2/responses/tmp" | grep -v : | grep -v '^$')" ""

# A stream on stdin is decided as it comes, not at its end.
s1=$(propose web1 egress-block '{"host": "s1.example.com"}')
s2=$(propose web1 egress-block '{"host": "s2.example.com"}')
mkfifo ids.fifo
supervise-reject -n stream <ids.fifo >out 2>err &
rpid=$!
exec 7>ids.fifo
echo "$s1" >&7
i=0
while [ ! -e "$R/new/$s1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
check "the first id of a stream is decided while the stream is open" \
    test -e "$R/new/$s1"
echo "$s2" >&7
exec 7>&-
wait "$rpid"
check_same "... and the next when it comes: exit 0" "$?:$(cat out | wc -l | tr -d ' ')" "0:2"

# A long list: one open spool a bottle, not one an id (a spool is
# eleven descriptors), so 300 ids pass under a limit of 64.
spool_proposals "$Q/web2" 300 bulk >bulk.ids
(ulimit -n 64 && supervise-approve <bulk.ids >out 2>err)
check_same "300 ids with 64 descriptors: exit 0, 300 paths, quiet" \
    "$?:$(wc -l <out | tr -d ' '):$(cat err)" "0:300:"
check_same "... 300 responses" "$(ls "$Q/web2/responses/new" | grep -c bulk)" 300

# Usage.
run supervise-approve -x "$t"
check_same "a bad option: exit 2" "$rc" 2
check_match "a bad option: usage line" "$err" '^usage: supervise-approve '
run supervise-reject -f route "$t"
check_same "reject has no -f: exit 2" "$rc" 2

done_testing
