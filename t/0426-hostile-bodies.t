#!/bin/sh
# Trickled bodies cannot exhaust the sidecar's memory: 3000 connections
# at once each send most of a 1 MiB body and then one byte now and then.  The
# bodies held at once stay within --body-budget (the rest are refused
# with 503 at once), a body that does not arrive within --body-timeout
# has its connection closed however often a byte comes, RSS (from /proc)
# stays under the budget plus a small allowance and, once the attack is
# over, comes back to the idle level within seconds (glibc would keep
# what the connections and bodies took), and the sidecar answers
# throughout and after.
. "$(dirname "$0")/lib.sh"
. "$T_TOP/t/hardlib.sh"
plan 10

supervise-init "$SLUG" >/dev/null 2>&1
# Under AddressSanitizer freed memory waits in a quarantine, and its
# allocator gives free pages back only now and then: RSS would measure
# that, not what the sidecar keeps.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:allocator_release_to_os_interval_ms=100"
export ASAN_OPTIONS
start_daemon d -s "$SLUG" --body-budget 64 --body-timeout 3 ||
    { not_ok "supervised starts"; done_testing; exit 1; }
pid=$(cat d.pid)
rss() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$pid/status"; }
idle=$(rss)

# N connections at once (many: each costs the sidecar a connection and
# its memory pool while it is open): each sends the headers of a 1 MiB
# body; those not refused at once (503) send 1,048,000 bytes of it, then
# a byte every 0.5 s.  Prints how many were refused at once, how many
# were closed by the sidecar while still trickling, and the peak RSS.
perl -MIO::Socket::INET -MTime::HiRes=time,sleep -e '
	$SIG{PIPE} = "IGNORE";
	my ($port, $n, $pid) = @ARGV;
	my @s; my $head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n" .
	    "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
	my $chunk = "x" x 1048000;
	sub rss { open my $f, "<", "/proc/$pid/status" or return 0;
		while (<$f>) { return int($1 / 1024) if /^VmRSS:\s+(\d+)/ } 0 }
	my $peak = 0;
	for my $i (1 .. $n) {
		my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
		    PeerPort => $port) or die "connect: $!";
		$c->blocking(0);
		push @s, $c;
	}
	syswrite($_, $head) for @s;
	my ($refused, $closed) = (0, 0); my %done;
	my $end = time + 2;
	while (time < $end && $refused < $n) {
		for my $i (0 .. $#s) {
			next if $done{$i};
			my $buf; my $got = sysread($s[$i], $buf, 4096);
			if (defined $got && $got > 0 && $buf =~ m{^HTTP/1\.1 503}) {
				$refused++; $done{$i} = 1;
			}
		}
		my $r = rss(); $peak = $r if $r > $peak;
		sleep 0.2;
	}
	for my $i (0 .. $#s) {
		next if $done{$i};
		my $off = 0; my $t = time;
		while ($off < length $chunk && time - $t < 5) {
			my $w = syswrite($s[$i], $chunk, 65536, $off);
			if (defined $w) { $off += $w } else { sleep 0.001 }
			last if !defined $w && $! != 11;
		}
	}
	$end = time + 8;
	while (time < $end && keys(%done) < $n) {
		for my $i (0 .. $#s) {
			next if $done{$i};
			my $buf; my $got = sysread($s[$i], $buf, 4096);
			if (defined $got && $got > 0 && $buf =~ m{^HTTP/1\.1 503}) {
				$refused++; $done{$i} = 1; next;
			}
			if (defined $got && $got == 0) { $closed++; $done{$i} = 1; next; }
			syswrite($s[$i], "x", 1);
		}
		my $r = rss(); $peak = $r if $r > $peak;
		sleep 0.5;
	}
	close $_ for @s;
	print "$refused $closed $peak\n";
' "$PORT" 3000 "$pid" >trickle.out 2>trickle.err
read refused closed peak <trickle.out
diag "idle RSS $idle MiB; peak under 3000 connections of trickled 1 MiB bodies $peak MiB; refused $refused, closed $closed"
check_match "the attack ran" "$refused $closed $peak" '^[0-9]+ [0-9]+ [0-9]+$'
check "most were refused at once (503): the budget holds 64 bodies" \
    test "${refused:-0}" -ge 2930
check_same "every other was closed by the sidecar though it kept sending" \
    "$(( ${refused:-0} + ${closed:-0} ))" 3000
check "peak RSS stayed under idle + budget + 24 MiB" \
    test "${peak:-99999}" -le $((idle + 64 + 24))
check_match "the refusals are logged once, with the budget" "$(cat d.log)" \
    'refused [0-9]+ requests?: request bodies hold the whole budget of 64 MiB'
check_match "the slow bodies are logged" "$(cat d.log)" \
    'closed [0-9]+ connections? whose body took longer than 3s'
check_same "one line for each, however many" \
    "$(grep -c 'refused [0-9]* request' d.log)" 1
check "the sidecar answers after" alive
rss_back() { [ "$(rss)" -le $((idle + 4)) ]; }
check "RSS back to idle + 4 MiB within 5 s" wait_for 5 rss_back
diag "RSS after: $(rss) MiB"
check "supervised stops cleanly" stop_daemon d
done_testing
