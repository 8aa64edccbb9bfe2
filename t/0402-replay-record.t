#!/bin/sh
# The seed corpus of fuzz/record.c, replayed without libFuzzer.
exec "${SUPERVISE_BUILD:-$(dirname "$0")/../build}/t/replay-record" "$(dirname "$0")/../fuzz/corpus/record"
