/*
 * region_fuzz: the hostile peer under libFuzzer.  Each input is decoded by
 * test/t_region_ops.c into one uspair pair (AF_UNIX, or AF_TIPC:
 * test/t_region_tipc.c), ordinary non-blocking calls on both ends and
 * writes into the pair's shared region; a rule violation
 * (see the rules there) aborts, so libFuzzer keeps the input.  Sanitizer
 * reports, crashes and hangs (-timeout) are findings too.
 *
 *   make fuzz && build-fuzz/region_fuzz -max_total_time=600 CORPUS_DIR fuzz/corpus/region_fuzz
 *   TRO_VERBOSE=1 build-fuzz/region_fuzz CRASH_FILE    # replay one input, every step
 *
 * test/region_random runs the same decoder on seeded random inputs in the
 * ordinary test builds.
 */
#include <stdio.h>
#include <stdlib.h>

#include "t_region_ops.h"

static struct tro_stats stats;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!tro_guard_regions())
		abort(); /* a region was mapped before: no guard pages */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (tro_run(data, size, &stats) != 0) {
		tro_print_input(data, size);
		abort();
	}
	return 0;
}
