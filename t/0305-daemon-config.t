#!/bin/sh
# supervised's configuration: flags and environment, one clear line and
# exit 2 on bad configuration, -h.
. "$(dirname "$0")/lib.sh"
plan 17

# run ARG...: exit status, then stderr
run() { supervised "$@" >out 2>err; echo $?; }

check_same "no bottle: exit 2" "$(run)" 2
check_same "says how to name one" "$(cat err)" \
    "supervised: no bottle: set SUPERVISE_BOTTLE_SLUG or use -s SLUG"
check_same "invalid slug: exit 2" "$(run -s ../x)" 2
check_match "one line naming it" "$(cat err)" "^supervised: invalid bottle slug '\.\./x'"
check_same "one line only" "$(wc -l <err)" 1
check_same "bad port: exit 2" "$(SUPERVISE_PORT=99999 run -s web1)" 2
check_same "names the value" "$(cat err)" \
    "supervised: invalid port '99999': want a whole number from 0 to 65535"
check_same "bad --max-wait: exit 2" "$(run -s web1 --max-wait soon)" 2
check_same "bad --progress: exit 2" "$(run -s web1 --progress 0)" 2
check_same "bad bind address: exit 2" "$(run -s web1 -b localhost -p 0)" 2
check_same "names it" "$(cat err)" \
    "supervised: invalid bind address 'localhost': want an IPv4 or IPv6 address"
check_same "unknown option: exit 2" "$(run -s web1 --frobnicate)" 2
check_same "missing token file: exit 2" "$(run -s web1 --token-file nope)" 2
check_match "-h prints the usage" "$(supervised -h)" '^usage: supervised '

supervise-init web1 >/dev/null 2>&1
start_daemon d -s web1
check_same "a busy port: exit 1" "$(run -s web1 -p "$PORT")" 1
check_match "says so" "$(cat err)" "^supervised: can't listen on 127.0.0.1:$PORT"
check "the first one still stops cleanly" stop_daemon d
done_testing
