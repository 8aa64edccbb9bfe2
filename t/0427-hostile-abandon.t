#!/bin/sh
# Callers that hang up are noticed at once, plain-JSON and SSE calls
# alike: 100 distinct calls and then 100 identical 256 KiB calls are sent
# and held, then their clients close; the sidecar's file descriptors and
# RSS (from /proc) come back to the idle level within seconds, not when
# the operator decides; each proposal stays pending, marked gone (ls
# gone/, supervise-list), and a retry clears the mark.  Identical calls
# share one payload: holding 100 of them costs far less than 100 copies.
# Each departure is logged once, by the sidecar, and by nothing else.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 15

supervise-init "$SLUG" >/dev/null 2>&1
# Under AddressSanitizer freed memory waits in a quarantine: RSS would
# measure that, not what the sidecar keeps.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
export ASAN_OPTIONS
start_daemon d -s "$SLUG" --max-waiters 200 ||
    { not_ok "supervised starts"; done_testing; exit 1; }
pid=$(cat d.pid)
nfd() { ls "/proc/$pid/fd" | wc -l; }
rss() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$pid/status"; }
idle_fd=$(nfd)
idle_rss=$(rss)

# hold N SSE-EVERY FILE: N connections each send a tools/call, FILE's
# text with its id made unique, or FILE with %d as the connection's
# number; every SSE-EVERY'th asks for SSE (0: none).  Then they wait for
# a line on the fifo ctl, close, and exit.
hold() {
	perl -MIO::Socket::INET -e '
		$SIG{PIPE} = "IGNORE";
		my ($port, $n, $sse, $file) = @ARGV;
		my @s;
		for my $i (1 .. $n) {
			open my $f, "<", sprintf($file, $i) or die; local $/;
			(my $b = <$f>) =~ s/"id": 1,/"id": $i,/;
			my $accept = $sse && $i % $sse == 0 ? "text/event-stream" :
			    "application/json";
			my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
			    PeerPort => $port) or die "connect: $!";
			print $c "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n" .
			    "Content-Type: application/json\r\nAccept: $accept\r\n" .
			    "Content-Length: " . length($b) . "\r\n\r\n" . $b;
			push @s, $c;
		}
		open my $ctl, "<", "ctl" or die; my $x = <$ctl>;
		close $_ for @s;
	' "$PORT" "$@"
}
mkfifo ctl

# 1. Distinct plain-JSON calls, and a few SSE ones.
i=0
printf '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "gitleaks-allow", "arguments": {"fingerprint": "RAND", "justification": "x"}}}' >one.json
sed "s/RAND/$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')/" one.json >a.json
perl -e '
	open my $f, "<", "a.json"; local $/; my $b = <$f>;
	for my $i (1 .. 100) { (my $c = $b) =~ s/"fingerprint": "([^"]*)"/"fingerprint": "$1:$i"/; open my $o, ">", "call$i.json"; print $o $c }'
# One connection per file: distinct payloads; every tenth on SSE.
hold 100 10 'call%d.json' &
hpid=$!
filed() { [ "$(supervise-list "$SLUG" | grep -c .)" -ge "$1" ]; }
check "100 distinct calls filed and waiting" wait_for 30 filed 100
held_fd=$(nfd)
check "  each holds a descriptor" test "$held_fd" -ge $((idle_fd + 100))
echo close >ctl
wait "$hpid"
fds_back() { [ "$(nfd)" -le $((idle_fd + 5)) ]; }
check "their clients close: descriptors back to idle within 5 s" wait_for 5 fds_back
left_logged() { [ "$(grep -c 'the caller waiting on .* left' d.log)" -ge 100 ]; }
check "each departure is logged" wait_for 5 left_logged
check_same "every proposal stays pending" "$(supervise-list "$SLUG" | grep -c .)" 100
marks() { [ "$(ls "$QUEUE/gone" 2>/dev/null | wc -l)" -eq "$1" ]; }
check "each is marked in gone/" wait_for 5 marks 100
check_same "supervise-list shows it" \
    "$(supervise-list "$SLUG" | cut -f5 | sort -u | tr '\n' ' ')" "new,gone "

# A retry of one of them attaches and clears its mark; deciding keeps it clear.
curl -s --max-time 60 -H 'Content-Type: application/json' \
    -H 'Accept: application/json' --data-binary @call7.json "$URL" >retry.out &
cpid=$!
check "an identical retry attaches: its mark goes" wait_for 10 marks 99
id=$(supervise-list "$SLUG" | grep -v ',gone' | cut -f1)
supervise-approve "$id" >/dev/null
wait "$cpid"
check_match "  and gets the decision" "$(cat retry.out)" 'status: approved'

# 2. Identical calls with a 256 KiB payload: one proposal, one payload.
big=$(head -c 196608 /dev/urandom | base64 -w0)
printf '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "capability-block", "arguments": {"dockerfile": "FROM debian:12\\nRUN echo %s\\n", "justification": "x"}}}' "$big" >big.json
base_rss=$(rss)
hold 100 0 big.json &
hpid=$!
attached() { [ "$(grep -c 'identical call attached' d.log)" -ge 99 ]; }
check "100 identical calls: one proposal, 99 attached" wait_for 30 attached
held_rss=$(rss)
diag "idle RSS $idle_rss MiB, before $base_rss MiB, holding 100 identical 256 KiB calls $held_rss MiB"
check "  sharing one payload: RSS grew by less than 10 MiB (100 copies: 25)" \
    test "$held_rss" -le $((base_rss + 10))
echo close >ctl
wait "$hpid"
check "their clients close: descriptors back to idle within 5 s" wait_for 5 fds_back
# Closing those connections is the sidecar's doing, and said once; it is
# not libmicrohttpd's "internal error" or "error generating response".
check_same "no libmicrohttpd error for a caller that left (plain JSON)" \
    "$(grep -c 'libmicrohttpd: Application reported internal error' d.log)" 0
check_same "no libmicrohttpd error for a caller that left (SSE)" \
    "$(grep -c 'libmicrohttpd: Closing connection (application error' d.log)" 0
check "supervised stops cleanly" stop_daemon d
done_testing
