# t/tmux.sh: drive supervise-top as a person would, for the t/018x tests
# (sourced after t/lib.sh).  A tmux server of the test's own runs each
# supervise-top in a window of a fixed size; send-keys types, capture-pane
# reads the screen.  Every wait is bounded (wait_for, $T_WAIT seconds).
#
#   tm ARG...               tmux on the test's own server
#   screen NAME             what window NAME shows, one line a row
#   shows NAME ERE / hides  the screen has (has not) a line matching ERE
#   see NAME ERE            wait for the screen to show ERE; the screen
#                           as a diagnostic when it does not
#   unsee NAME ERE          wait for it to stop showing ERE
#   keys NAME KEY...        type keys (tmux key names: Enter, Escape, C-c)
#   text NAME STRING        type STRING as it is
#   row NAME ERE            the rows showing ERE
#   line NAME N             row N (from 1)
#   row_has NAME ERE1 ERE2  the row showing ERE1 also shows ERE2
#   line_has NAME N ERE     row N shows ERE
#   width_is NAME ERE N     the row showing ERE is N columns wide
#   start NAME [ENV=VALUE...] [-- ARG...]
#                           supervise-top ARG... in a new window NAME,
#                           80x24, LANG=C.UTF-8, EDITOR=$T_DIR/edit.sh;
#                           the terminal's settings before and after in
#                           NAME.before and NAME.after, its exit status in
#                           NAME.status
#   exited NAME             it has exited, and the window's shell has
#                           written the status and the settings
#   toppid NAME             its pid (the child of the window's shell)
tm() { tmux -S "$T_DIR/tmux.sock" -f /dev/null "$@"; }
trap 'tm kill-server 2>/dev/null; cleanup' EXIT
screen() { tm capture-pane -p -t "$1"; }
shows() { screen "$1" | grep -q -- "$2"; }
hides() { ! shows "$@"; }
see() { wait_for "$T_WAIT" shows "$@" || { diag "screen:" "$(screen "$1")"; false; }; }
unsee() { wait_for "$T_WAIT" hides "$@" || { diag "screen:" "$(screen "$1")"; false; }; }
keys() { _k_n=$1; shift; tm send-keys -t "$_k_n" "$@"; }
text() { tm send-keys -t "$1" -l "$2"; }
row() { screen "$1" | grep -- "$2"; }
line() { screen "$1" | sed -n "$2p"; }
row_has() { row "$1" "$2" | grep -q -- "$3"; }
line_has() { line "$1" "$2" | grep -q -- "$3"; }
width_is() { [ "$(row "$1" "$2" | awk '{ print length($0) }')" = "$3" ]; }
start() {
	_s_n=$1; shift
	_s_env=
	while [ "$#" -gt 0 ] && [ "$1" != -- ]; do _s_env="$_s_env $1"; shift; done
	[ "$#" -gt 0 ] && shift
	rm -f "$_s_n.before" "$_s_n.after" "$_s_n.status"
	# trap: the shell outlives a ^C meant for supervise-top.
	tm new-session -d -x 80 -y 24 -s "$_s_n" "trap : INT; stty -g >$_s_n.before;
	    env LANG=C.UTF-8 SUPERVISE_ROOT='$SUPERVISE_ROOT' PATH='$PATH' \
	    SUPERVISE_OPERATOR='$SUPERVISE_OPERATOR' EDITOR='$T_DIR/edit.sh' \
	    $_s_env supervise-top $*; echo \$? >$_s_n.status; stty -g >$_s_n.after;
	    exec sleep 3600"
}
exited() { test -s "$1.status" && test -s "$1.after"; }
toppid() { ps -o pid= --ppid "$(tm display -p -t "$1" '#{pane_pid}')" | tr -d ' '; }
