/* replay-rpc.c: fuzz/rpc.c (the JSON-RPC request path) over its seed corpus. */
#include "../fuzz/rpc.c"
#include "../fuzz/replay.h"
