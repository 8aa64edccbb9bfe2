#!/bin/sh
# supervise-watch: new proposals printed as they arrive, once each, in the
# supervise-list format; bottles created later; -n; -0; a clean exit on
# SIGTERM and SIGINT.
. "$(dirname "$0")/lib.sh"
plan 25

Q=$SUPERVISE_ROOT/queue
TAB=$(printf '\t')
propose() { supervise-propose -s "$1" -t "$2" -j why "$3"; }

# start NAME ARGS...: run supervise-watch with SIGINT at its default (a
# background job of a script inherits it ignored), output in NAME.out.
start() {
	name=$1; shift
	perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV or die' \
	    supervise-watch "$@" >"$name.out" 2>"$name.err" &
	echo $! >"$T_DIR/$name.pid"
}
# watching NAME N: wait (at most 5 s) until it holds N inotify watches.
watching() {
	pid=$(cat "$T_DIR/$1.pid")
	for i in $(seq 100); do
		n=$(cat /proc/"$pid"/fdinfo/* 2>/dev/null | grep -c '^inotify wd:')
		[ "$n" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
# lines NAME N: wait (at most 5 s) until NAME.out has N records.
lines() {
	for i in $(seq 100); do
		[ "$(tr '\0' '\n' <"$1.out" | wc -l)" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
# stop NAME SIGNAL: send it, wait (at most 5 s) for the exit; its status.
stop() {
	pid=$(cat "$T_DIR/$1.pid")
	kill -s "$2" "$pid"
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid"
	st=$?
	rm -f "$T_DIR/$1.pid"
	return $st
}

supervise-init web1 >/dev/null
old=$(propose web1 capability-block 'FROM old')

# Every bottle: the queue directory and web1's proposals/new.
start w
check "watch places its watches" watching w 2
a=$(propose web1 egress-block '{"host": "api.example.com"}')
check "a new proposal is printed" lines w 1
check_match "the line is in the supervise-list format" "$(cat w.out)" \
    "^$a${TAB}web1${TAB}egress-block${TAB}[0-9]+s${TAB}new${TAB}api.example.com\$"
supervise-show -q "$a"
supervise-init web2 >/dev/null
b=$(propose web2 gitleaks-allow 'abc:x.env:rule:1')
check "a proposal in a bottle made after the start is printed" lines w 2
c=$(propose web1 capability-block 'FROM c')
check "and the next one" lines w 3
stop w TERM
check_same "SIGTERM: exit 0" "$?" 0
check_same "each new proposal once, in order of arrival" \
    "$(cut -f1 w.out)" "$(printf '%s\n' "$a" "$b" "$c")"
check_same "the bottles" "$(cut -f2 w.out | tr '\n' ' ')" "web1 web2 web1 "
check_same "stderr is quiet" "$(cat w.err)" ""

# -n first prints what is pending, as supervise-list does.
supervise-list web1 >list.out
npending=$(wc -l <list.out)
start n -n web1
check "-n: watch places its watch" watching n 1
check "-n: the pending ones are printed" lines n "$npending"
# The age column (4) can tick over between the two runs; the rest must match.
check_same "-n: first the lines of supervise-list" \
    "$(head -n "$npending" n.out | cut -f1-3,5-)" "$(cut -f1-3,5- list.out)"
d=$(propose web1 pipelock-block 'https://d.example.org/')
check "-n: then the new ones" lines n $((npending + 1))
check_same "-n: the new one last" "$(tail -1 n.out | cut -f1,3,6)" \
    "$d${TAB}pipelock-block${TAB}d.example.org"
stop n INT
check_same "SIGINT: exit 0" "$?" 0
check_same "-n: nothing printed twice" "$(cut -f1 n.out | sort | uniq -d)" ""

# A named bottle that does not exist yet is waited for; -0.
start z -0 web3
check "a missing bottle: watch waits on an ancestor" watching z 1
supervise-init web3 >/dev/null
e=$(propose web3 capability-block 'FROM e')
check "a missing bottle: its first proposal is printed" lines z 1
f=$(propose web1 capability-block 'FROM f')
g=$(propose web3 capability-block 'FROM g')
check "-0: the next one" lines z 2
stop z TERM
check_same "-0: records end in NUL, no newline" \
    "$(tr -cd '\0\n' <z.out | od -An -c | tr -d ' \n')" '\0\0'
check_same "only the named bottle is watched" "$(tr '\0' '\n' <z.out | cut -f1)" \
    "$(printf '%s\n' "$e" "$g")"

# Usage.
supervise-watch ../x >out 2>err
check_same "a slug that leaves the root: exit 2" "$?" 2
check_same "a slug that leaves the root: message" "$(cat err)" \
    "supervise-watch: can't watch '../x': invalid bottle slug '../x': must start with a letter or digit"
supervise-watch -x >out 2>err
check_same "a bad option: exit 2" "$?" 2
supervise-watch -h >out 2>err
check_same "-h: exit 0, usage" "$?:$(cat out)" "0:usage: supervise-watch [-0n] [SLUG ...]
       supervise-watch -d [-0] [SLUG ...]"

done_testing
