/*
 * The hostile-peer operation decoder shared by fuzz/region_fuzz.c (under
 * libFuzzer) and test/region_random.c (seeded random inputs, every build).
 *
 * tro_run() turns an arbitrary byte string into one uspair pair and an
 * interleaving of ordinary non-blocking calls on either end and writes
 * into the pair's shared region (what a buggy or hostile peer process
 * could do), and checks the answers; see t_region_ops.c for the input
 * format and the exact rules.  No call it makes may block.
 */
#ifndef T_REGION_OPS_H
#define T_REGION_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tro_stats {
	unsigned long inputs;
	unsigned long calls;	   /* usp_* calls made */
	unsigned long corruptions; /* writes into the region */
	unsigned long eio_pairs;   /* inputs whose pair ended with EIO */
	unsigned long data_checked; /* received bytes compared with what was sent */
};

/* Before the process's first pair: every region gets a PROT_NONE page
 * after it, so that a read or write past the region (which the
 * sanitizers do not see in mmap'd memory) is a crash, a finding.  False
 * if a region was mapped already. */
bool tro_guard_regions(void);

/* Runs one input.  Returns the number of rule violations (each printed to
 * stderr with the step that broke it); 0 means the input passed.
 * Environment: TRO_VERBOSE=1 prints every step. */
int tro_run(const uint8_t *data, size_t size, struct tro_stats *stats);

/* Prints the input as a C string literal (for a regression case). */
void tro_print_input(const uint8_t *data, size_t size);

#endif /* T_REGION_OPS_H */
