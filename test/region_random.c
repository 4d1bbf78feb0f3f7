/*
 * region_random: the hostile-peer decoder of fuzz/region_fuzz.c
 * (test/t_region_ops.c) fed with seeded pseudo-random inputs, so that the
 * ordinary builds (plain, ASan+UBSan, TSan, all gcc) run it without
 * libFuzzer.  Each input is one pair (AF_UNIX or, with bit 0x20 of its
 * first byte, AF_TIPC), a random interleaving of non-blocking calls on
 * both ends and writes into the shared region; see t_region_ops.c for the
 * rules checked.
 *
 * Environment: T_SEED (default: from the clock; printed), T_SECONDS (run
 * time, default 3), T_INPUTS (stop after this many inputs instead).
 * A failing input is printed as a C string for a regression case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "t_helpers.h"
#include "t_region_ops.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Random bytes, but with runs of "ordinary" ops more often than the
 * uniform decoding gives, so that queues fill before they are broken. */
static size_t make_input(uint8_t *buf, size_t cap)
{
	size_t len = 1 + rng() % cap;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)rng();
	return len;
}

int main(void)
{
	if (!tro_guard_regions()) { /* before t_init's warm-up pair */
		fprintf(stderr, "region_random: a region was mapped before main\n");
		return 1;
	}
	t_init("region_random");
	const char *e = getenv("T_SEED");
	unsigned long long seed = e ? strtoull(e, NULL, 0)
				    : (unsigned long long)time(NULL) ^ ((unsigned long long)clock() << 20);
	double seconds = getenv("T_SECONDS") ? atof(getenv("T_SECONDS")) : 3.0;
	unsigned long max_inputs = getenv("T_INPUTS") ? strtoul(getenv("T_INPUTS"), NULL, 0) : 0;
	printf("region_random: seed %llu (rerun with T_SEED=%llu)\n", seed, seed);
	rng_state = seed;
	t_watchdog((unsigned)seconds + 60, "region_random (a call hung?)");
	struct tro_stats stats;
	memset(&stats, 0, sizeof(stats));
	static uint8_t buf[1024];
	double start = t_now();
	int bad = 0;
	while (bad < 3) {
		if (max_inputs ? stats.inputs >= max_inputs : t_now() - start >= seconds)
			break;
		size_t len = make_input(buf, rng() % 4 ? 128 : sizeof(buf));
		if (tro_run(buf, len, &stats) != 0) {
			bad++;
			t_fail("input %lu of seed %llu broke a rule", stats.inputs, seed);
			tro_print_input(buf, len);
		}
	}
	printf("region_random: %lu inputs, %lu calls, %lu corruption writes, "
	       "%lu pairs ended with EIO, %lu bytes checked, %.1f s\n",
	       stats.inputs, stats.calls, stats.corruptions, stats.eio_pairs, stats.data_checked,
	       t_now() - start);
	return t_finish();
}
