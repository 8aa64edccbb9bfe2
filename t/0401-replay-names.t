#!/bin/sh
# The seed corpus of fuzz/names.c, replayed without libFuzzer.
exec "${SUPERVISE_BUILD:-$(dirname "$0")/../build}/t/replay-names" "$(dirname "$0")/../fuzz/corpus/names"
