# t/hardlib.sh: what the hardening tests (t/04xx) share, on top of lib.sh.
#
#   rpc_post FILE|-d BODY [CURL_ARG...]
#                           POST to $URL; sets HTTP (the status code) and
#                           BODY (the answer, at most 64 KiB of it)
#   rpc BODY                rpc_post with an inline JSON body
#   tool_call ID TOOL ARGS  the JSON-RPC text of a tools/call
#   alive                   the daemon answers GET /health with "ok"
#   spoolcheck [ARG...]     $T_BUILD/t/spoolcheck on the web1 spool
#   audit_records           number of decision records on the audit main
#   audit_decisions         "ID STATUS" for each decision commit on main
#   audit_commits           number of decision commits (Proposal-Id trailers)
#   audit_dup_commits       Proposal-Ids that have more than one commit
#   rand N, rand_sleep MS   a random number below N; a random nap below MS
#   raw_control FILE        bytes of FILE that a terminal would obey
#                           (ESC, other C0 but tab and newline, DEL, C1,
#                           bidi and zero-width format characters, tag
#                           characters, line and paragraph separators,
#                           unusual spaces)

SLUG=web1
QUEUE=$SUPERVISE_ROOT/queue/$SLUG
AUDIT=$SUPERVISE_ROOT/audit.git

rpc_post() {
	_rp_out=$T_DIR/rpc.out
	rm -f "$_rp_out"
	if [ "$1" = -d ]; then
		_rp_data=$2; shift 2
		HTTP=$(curl -s --max-time 20 -o "$_rp_out" -w '%{http_code}' \
		    -H 'Content-Type: application/json' \
		    -H 'Accept: application/json' --data-binary "$_rp_data" \
		    "$@" "$URL")
	else
		_rp_file=$1; shift
		HTTP=$(curl -s --max-time 20 -o "$_rp_out" -w '%{http_code}' \
		    -H 'Content-Type: application/json' \
		    -H 'Accept: application/json' --data-binary "@$_rp_file" \
		    "$@" "$URL")
	fi
	BODY=$(head -c 65536 "$_rp_out" 2>/dev/null)
}

rpc() { rpc_post -d "$@"; }

tool_call() {
	printf '{"jsonrpc": "2.0", "id": %s, "method": "tools/call", "params": {"name": "%s", "arguments": %s}}' "$1" "$2" "$3"
}

alive() {
	[ "$(curl -s --max-time 5 "http://127.0.0.1:$PORT/health")" = ok ]
}

spoolcheck() {
	"$T_BUILD/t/spoolcheck" "$@" "$QUEUE" "$SLUG"
}

audit_records() {
	git --git-dir="$AUDIT" ls-tree -r --name-only main -- "$SLUG/decisions" \
	    2>/dev/null | grep -c '\.json$'
}

# One line per decision commit on main: "PROPOSAL-ID STATUS".
audit_decisions() {
	git --git-dir="$AUDIT" log --format='%(trailers:key=Proposal-Id,valueonly,separator=%x20) %(trailers:key=Status,valueonly,separator=%x20)' \
	    main 2>/dev/null | grep -v '^ '
}

audit_commits() {
	audit_decisions | grep -c .
}

audit_dup_commits() {
	audit_decisions | cut -d' ' -f1 | sort | uniq -d
}

# Random whole number in [0, $1).
rand() {
	echo $(( $(od -An -N2 -tu2 /dev/urandom) % $1 ))
}

# Sleep a random number of milliseconds in [0, $1).
rand_sleep() {
	sleep "$(awk -v ms="$(rand "$1")" 'BEGIN { printf "%.3f", ms / 1000 }')"
}

raw_control() {
	perl -0777 -ne '
		my $n = 0;
		$n++ while /[\x00-\x08\x0b-\x1f\x7f]/g;
		# C1 controls and format characters, as UTF-8 byte sequences.
		$n++ while /\xc2[\x80-\x9f]/g;
		$n++ while /\xe2\x80[\x8b-\x8f\xaa-\xae]|\xe2\x81[\xa6-\xa9]|\xd8\x9c|\xef\xbb\xbf/g;
		# Tags (U+E0000-E007F), U+2028/2029, no-break and other spaces.
		$n++ while /\xf3\xa0[\x80\x81][\x80-\xbf]|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xc2\xa0|\xe3\x80\x80/g;
		print $n;
	' "$1"
}
