#!/bin/sh
# The seed corpus of fuzz/merge.c, replayed without libFuzzer.
exec "${SUPERVISE_BUILD:-$(dirname "$0")/../build}/t/replay-merge" "$(dirname "$0")/../fuzz/corpus/merge"
