#!/bin/sh
# supervise-edit with scripted editors: unchanged approves, changed
# modifies, emptied aborts, a bad edit or a failing editor writes nothing.
. "$(dirname "$0")/lib.sh"
plan 31

run() { "$@" >out 2>err; rc=$?; out=$(cat out); err=$(cat err); }
jget() {
	perl -MJSON::PP -e 'local $/; open my $f, "<", $ARGV[0] or die;
	    my $j = decode_json(<$f>); my $v = $j->{$ARGV[1]};
	    binmode STDOUT, ":utf8"; print defined $v ? $v : "(null)"' "$1" "$2"
}
Q=$SUPERVISE_ROOT/queue
R=$Q/web1/responses
export TMPDIR=$T_DIR/tmp
mkdir "$TMPDIR"
unset VISUAL
supervise-init web1 >/dev/null
propose() { supervise-propose -s web1 -t egress-block -j why "$1"; }

# Editors: each records what it was given, then does its one thing.
cat >ed-keep <<'EOF'
#!/bin/sh
stat -c %a "$1" >"$T_DIR/ed.mode"; cp "$1" "$T_DIR/ed.seen"; echo "$1" >"$T_DIR/ed.path"
EOF
cat >ed-change <<'EOF'
#!/bin/sh
printf '{\n  "host": "api.example.com",\n  "path_allowlist": ["/v1/"]\n}\n' >"$1"
EOF
cat >ed-empty <<'EOF'
#!/bin/sh
: >"$1"
EOF
cat >ed-bad <<'EOF'
#!/bin/sh
printf '{"host": "api.example.com", "port": 1}\n' >"$1"
EOF
cat >ed-args <<'EOF'
#!/bin/sh
printf '%s\n' "$@" >"$T_DIR/ed.args"
EOF
chmod +x ed-keep ed-change ed-empty ed-bad ed-args
export T_DIR

# Unchanged: approved.
a=$(propose '{"host": "api.example.com"}')
run env EDITOR="$T_DIR/ed-keep" supervise-edit "$a"
check_same "unchanged: exit 0" "$rc" 0
check_same "unchanged: prints the response path" "$out" "$R/new/$a"
check_same "unchanged: approved" "$(jget "$R/new/$a" status)" approved
check_same "unchanged: final_file is the proposed file" \
    "$(jget "$R/new/$a" final_file)" '{"host": "api.example.com"}'
check_same "the editor got the proposed file" "$(cat ed.seen)" \
    '{"host": "api.example.com"}'
check_same "the file edited is 0600" "$(cat ed.mode)" 600
check_match "the file edited is in TMPDIR" "$(cat ed.path)" "^$TMPDIR/"
check_same "the temporary file is removed" "$(ls -A "$TMPDIR")" ""

# Changed: modified with the text, and the notes.
m=$(propose '{"host": "api.example.com"}')
run env EDITOR="$T_DIR/ed-change" supervise-edit -n narrowed "$m"
check_same "changed: exit 0" "$rc" 0
check_same "changed: modified" "$(jget "$R/new/$m" status)" modified
jget "$R/new/$m" final_file >got
"$T_DIR/ed-change" want
check "changed: final_file is the edited text" cmp -s got want
check_same "changed: notes" "$(jget "$R/new/$m" notes)" narrowed

# Emptied: aborted, nothing written.
e=$(propose '{"host": "api.example.com"}')
run env EDITOR="$T_DIR/ed-empty" supervise-edit "$e"
check_same "emptied: exit 1" "$rc" 1
check_same "emptied: message" "$err" \
    "supervise-edit: can't edit '$e': the file is empty, aborted; nothing written"
check "emptied: no response" test ! -e "$R/new/$e"
check_same "emptied: the temporary file is removed" "$(ls -A "$TMPDIR")" ""
check_same "emptied: the proposal is still pending" \
    "$(supervise-list web1 | cut -f1)" "$e"

# A bad edit: refused, nothing written, the edit kept for the operator.
run env EDITOR="$T_DIR/ed-bad" supervise-edit "$e"
check_same "a bad edit: exit 1" "$rc" 1
check_match "a bad edit: message says why and where the edit is" "$err" \
    "^supervise-edit: can't edit '$e': egress-block: .* \\(the edit is kept in '$TMPDIR/supervise-edit\\.[A-Za-z0-9]{6}'\\)\$"
check "a bad edit: no response" test ! -e "$R/new/$e"
kept=$(ls "$TMPDIR")
check_same "a bad edit: the kept file holds the edit" "$(cat "$TMPDIR/$kept")" \
    '{"host": "api.example.com", "port": 1}'
rm -f "$TMPDIR"/*

# A failing editor: nothing written.
run env EDITOR=false supervise-edit "$e"
check_same "a failing editor: exit 1" "$rc" 1
check_same "a failing editor: message" "$err" \
    "supervise-edit: can't edit '$e': the editor 'false' failed; nothing written"
check "a failing editor: no response" test ! -e "$R/new/$e"

# VISUAL before EDITOR, and editors with arguments.
run env VISUAL="$T_DIR/ed-args -x" EDITOR=false supervise-edit "$e"
check_same "VISUAL wins, with its arguments: exit 0" "$rc" 0
check_match "VISUAL wins, with its arguments" "$(cat ed.args)" \
    "^-x
$TMPDIR/supervise-edit\\.[A-Za-z0-9]{6}\$"

# Already decided: the editor is not even started.
rm -f ed.seen
run env EDITOR="$T_DIR/ed-keep" supervise-edit "$a"
check_same "already decided: exit 1" "$rc" 1
check_same "already decided: message" "$err" \
    "supervise-edit: can't edit '$a': already decided"
check "already decided: no editor" test ! -e ed.seen

run supervise-edit
check_same "no id: exit 2" "$rc" 2
run supervise-edit nosuch
check_same "an unknown id: exit 1" "$rc:$err" \
    "1:supervise-edit: can't edit 'nosuch': no such proposal"

done_testing
