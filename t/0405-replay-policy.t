#!/bin/sh
# The seed corpus of fuzz/policy.c, replayed without libFuzzer.
exec "${SUPERVISE_BUILD:-$(dirname "$0")/../build}/t/replay-policy" "$(dirname "$0")/../fuzz/corpus/policy"
