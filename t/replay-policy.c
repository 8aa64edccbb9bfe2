/* replay-policy.c: fuzz/policy.c (the policy parser and matcher) over its seed corpus. */
#include "../fuzz/policy.c"
#include "../fuzz/replay.h"
