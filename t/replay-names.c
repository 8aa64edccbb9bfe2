/* replay-names.c: fuzz/names.c (the name validators and sv_escape) over its seed corpus. */
#include "../fuzz/names.c"
#include "../fuzz/replay.h"
