/* replay-record.c: fuzz/record.c (the record loader and shape checks) over its seed corpus. */
#include "../fuzz/record.c"
#include "../fuzz/replay.h"
