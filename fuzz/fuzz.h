/*
 * fuzz.h: what the libFuzzer targets in fuzz/ share.
 *
 * A target is one LLVMFuzzerTestOneInput over one entry point of
 * libsupervise.  Beyond "does not crash, leak or trip UBSan" each target
 * checks properties the contract promises (a dumped record loads again,
 * a merge is idempotent, an escaped string holds no control byte), so a
 * violated promise aborts like a crash and libFuzzer keeps the input.
 *
 * The same files are built without libFuzzer by t/replay-NAME.c, which
 * runs the seed corpus in fuzz/corpus/NAME/ as a regression test under
 * `make check` (and so under check-asan and valgrind too).
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise: say which, then abort so the input is kept. */
#define FUZZ_ASSERT(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__,\
		    __LINE__, #cond);					\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

/*
 * Inputs with several parts separate them with FUZZ_SEP.  A multi-byte
 * separator leaves every single byte (NUL included) to the parts; the
 * fuzzer learns it from the memmem comparison.
 */
#define FUZZ_SEP	"\n@@\n"
#define FUZZ_SEPLEN	4

struct fuzz_part {
	char *s;	/* NUL-terminated copy (may hold NULs inside) */
	size_t len;
};

/*
 * Split data into at most max parts at FUZZ_SEP; returns the count.  Each
 * part is a malloc'd NUL-terminated copy; free with fuzz_parts_free.
 */
static inline size_t
fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts,
    size_t max)
{
	size_t n = 0;
	const uint8_t *p = data, *end = data + size;

	while (n < max) {
		const uint8_t *sep = n + 1 < max ?
		    memmem(p, (size_t)(end - p), FUZZ_SEP, FUZZ_SEPLEN) : NULL;
		size_t len = sep ? (size_t)(sep - p) : (size_t)(end - p);

		parts[n].s = malloc(len + 1);
		if (parts[n].s == NULL)
			abort();
		memcpy(parts[n].s, p, len);
		parts[n].s[len] = '\0';
		parts[n].len = len;
		n++;
		if (sep == NULL)
			break;
		p = sep + FUZZ_SEPLEN;
	}
	return n;
}

static inline void
fuzz_parts_free(struct fuzz_part *parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(parts[i].s);
}

/* The part as a C string only when it holds no NUL (else NULL). */
static inline const char *
fuzz_cstr(const struct fuzz_part *part)
{
	return strlen(part->s) == part->len ? part->s : NULL;
}

#endif
