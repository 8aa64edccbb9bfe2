/* replay-merge.c: fuzz/merge.c (the config merges and payload checks) over its seed corpus. */
#include "../fuzz/merge.c"
#include "../fuzz/replay.h"
