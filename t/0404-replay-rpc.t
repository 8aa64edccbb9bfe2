#!/bin/sh
# The seed corpus of fuzz/rpc.c, replayed without libFuzzer.
exec "${SUPERVISE_BUILD:-$(dirname "$0")/../build}/t/replay-rpc" "$(dirname "$0")/../fuzz/corpus/rpc"
