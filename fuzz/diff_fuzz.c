/*
 * diff_fuzz: libFuzzer target.  The input bytes are decoded into an
 * operation sequence (socket type, creation mode, operations: see
 * test/t_opseq.h), which runs on a kernel socketpair and on a uspair pair
 * with every result compared.  On a divergence it shrinks the sequence,
 * prints the reproducer (C initialisers for the regression table of
 * test/random_diff.c, and both traces) and traps.
 *
 * Build it as the project's fuzz target does (the command is in the line
 * comments below this block: it holds glob patterns), then run
 *   build-fuzz/diff_fuzz -max_total_time=60 fuzz/corpus/diff_fuzz
 * DIFF_FUZZ_NO_SHRINK=1 prints a divergence without shrinking it first.
 */
// clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE
//   -pthread -Iinclude -Isrc -Itest fuzz/diff_fuzz.c test/t_*.c src/*.c
//   -o build-fuzz/diff_fuzz
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "t_opseq.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* not t_init(): libFuzzer owns SIGALRM (its -timeout) */
	opseq_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct opseq s;
	int where;
	opseq_init();
	opseq_decode(&s, data, size);
	if (s.nops == 0)
		return 0;
	if (!opseq_compare(&s, &where, NULL))
		return 0;
	fprintf(stderr, "diff_fuzz: divergence at step %d of %d%s\n", where + 1, s.nops,
		getenv("DIFF_FUZZ_NO_SHRINK") ? "" : "; shrinking");
	/* DIFF_FUZZ_NO_SHRINK=1 prints the sequence as decoded: for inputs
	 * whose shrinking itself hangs or takes long */
	if (!getenv("DIFF_FUZZ_NO_SHRINK"))
		opseq_shrink(&s);
	opseq_print_repro(stderr, &s, "diff_fuzz");
	fflush(stderr);
	__builtin_trap();
}
