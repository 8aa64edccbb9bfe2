#!/bin/sh
# supervise-watch -d: each decision printed once it is committed and, for
# an approval, once the apply hook's outcome is noted; in supervise-log's
# format; only the bottles named; nothing from before the start; a
# hostile decision commit printed escaped, on one line; a clean exit on
# SIGTERM.
. "$(dirname "$0")/lib.sh"
plan 21

TAB=$(printf '\t')
propose() { supervise-propose -s "$1" -t "$2" -j why "$3"; }
# A hook that fails until the file ok exists.
cat >hook <<EOF
#!/bin/sh
test -e '$T_DIR/ok' || { echo 'proxy down'; exit 3; }
echo reloaded
EOF
chmod +x hook

start() {
	name=$1; shift
	supervise-watch -d "$@" >"$name.out" 2>"$name.err" &
	echo $! >"$T_DIR/$name.pid"
}
# watching NAME N: it holds N inotify watches.
watching() {
	pid=$(cat "$T_DIR/$1.pid")
	[ "$(cat /proc/"$pid"/fdinfo/* 2>/dev/null | grep -c '^inotify wd:')" -ge "$2" ]
}
# lines NAME N: NAME.out has N lines.
lines() { [ "$(wc -l <"$1.out")" -ge "$2" ]; }
stop() {
	pid=$(cat "$T_DIR/$1.pid")
	kill -TERM "$pid"
	wait_for "$T_WAIT" _sd_gone "$pid" || kill -9 "$pid"
	wait "$pid"
	st=$?
	rm -f "$T_DIR/$1.pid"
	return $st
}

supervise-init web1 >/dev/null
supervise-init web2 >/dev/null
start_daemon d1 -s web1 --apply-hook "$T_DIR/hook" || exit 1
before=$(propose web1 gitleaks-allow 'old:x.env:rule:1')
supervise-reject "$before" >/dev/null
wait_for "$T_WAIT" sh -c "supervise-log web1 | grep -q '^$before'"

start w
start w2 web2
check "-d watches the repository's refs" wait_for "$T_WAIT" watching w 3
wait_for "$T_WAIT" watching w2 3

a=$(propose web1 egress-block '{"host": "api.example.com"}')
supervise-approve -n fine "$a" >/dev/null
check "an approval is printed once its outcome is noted" wait_for "$T_WAIT" lines w 1
check_match "bottle, tool, status, outcome, commit, date, who" "$(cat w.out)" \
    "^$a${TAB}web1${TAB}egress-block${TAB}approved${TAB}applied: no: the hook failed with status 3${TAB}[0-9a-f]{12}${TAB}20[0-9-]{8}T[0-9:]{8}Z${TAB}Test Operator <op@example.org>\$"
check_same "the line is supervise-log's" "$(cat w.out)" \
    "$(supervise-log web1 | grep "^$a")"
check "the decision from before the start is not printed" \
    sh -c "! grep -q '^$before' w.out"

b=$(propose web1 gitleaks-allow 'abc:x.env:rule:2')
supervise-reject -n no "$b" >/dev/null
check "a rejection is printed" wait_for "$T_WAIT" lines w 2
check_match "a rejection changes nothing: its outcome is -" \
    "$(sed -n 2p w.out | cut -f1,4,5)" "^$b${TAB}rejected${TAB}-\$"

touch ok
c=$(propose web1 pipelock-block 'https://pkg.example.org/simple/')
supervise-approve "$c" >/dev/null
check "an approval that took effect" wait_for "$T_WAIT" lines w 3
check_same "says so" "$(sed -n 3p w.out | cut -f1,5)" "$c${TAB}applied: yes"

# A second bottle, its own daemon: the watcher of web2 sees only it.
start_daemon d2 -s web2 --apply-hook "$T_DIR/hook" || exit 1
e=$(propose web2 egress-block '{"host": "db.example.com"}')
supervise-approve "$e" >/dev/null
check "a decision in another bottle is printed" wait_for "$T_WAIT" lines w 4
check "and by the watcher of that bottle" wait_for "$T_WAIT" lines w2 1
check_same "which printed nothing else" "$(cut -f1,2 w2.out)" "$e${TAB}web2"
check_same "each decision once, in order" "$(cut -f1 w.out)" \
    "$(printf '%s\n' "$a" "$b" "$c" "$e")"

# A decision commit whose trailers and author hold what a terminal would
# obey (an escape sequence, a title change, a bidi override, a tab, a
# line of its own), put on main by hand, as anyone who can write the
# repository can: one line, eight fields, every one escaped.
A=$SUPERVISE_ROOT/audit.git
ESC=$(printf '\033')
hid=1795400000.M9P9Q9.hostile
msg=$(printf 'web1: reject hostile\n\nProposal-Id: %s\nBottle: web1\nTool: egress-block\033[2J\342\200\256kcolb\tx\n  continued\nStatus: rejected\n' "$hid")
old=$(git -C "$A" rev-parse main)
new=$(printf '%s\n' "$msg" | GIT_AUTHOR_NAME=$(printf 'Eve\033]0;pwned\007 Mallory') \
    GIT_AUTHOR_EMAIL=eve@example.org git -C "$A" commit-tree -p "$old" "main^{tree}")
flock "$A/supervise.lock" git -C "$A" update-ref refs/heads/main "$new" "$old"
check "a hostile decision is printed" wait_for "$T_WAIT" lines w 5
hostile=$(sed -n 5p w.out)
check_same "on one line of eight fields" \
    "$(sed -n '5,$p' w.out | awk -F '\t' '{ print NF }')" 8
check_same "no escape character reaches the terminal" \
    "$(grep -c "$ESC" w.out)" 0
check_same "the tool, escaped: controls, bidi, tab and newline" \
    "$(printf '%s\n' "$hostile" | cut -f3)" \
    'egress-block\x1b[2J\u{202e}kcolb\tx\n  continued'
check_match "who, escaped" "$(printf '%s\n' "$hostile" | cut -f8)" \
    '^Eve\\x1b\]0;pwned\\x07 Mallory <eve@example\.org>$'

stop w
check_same "SIGTERM: exit 0" "$?" 0
check_same "stderr is quiet" "$(cat w.err w2.err)" ""
stop w2 >/dev/null
both() { supervise-watch -d -n 2>/dev/null; }
check_fail "-d and -n do not go together" both
stop_daemon d1
stop_daemon d2
done_testing
