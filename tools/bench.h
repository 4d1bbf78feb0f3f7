/*
 * The `uspair bench` benchmark: options shared by the command line
 * (tools/uspair.c) and the measurements (tools/bench.c).
 */
#ifndef USPAIR_TOOLS_BENCH_H
#define USPAIR_TOOLS_BENCH_H

#include <stdbool.h>
#include <stddef.h>

/* Socket types to measure (bit set).  SOCK_RDM exists for AF_TIPC only. */
enum {
	BENCH_TYPE_STREAM = 1u << 0,
	BENCH_TYPE_SEQPACKET = 1u << 1,
	BENCH_TYPE_DGRAM = 1u << 2,
	BENCH_TYPE_RDM = 1u << 3,
	BENCH_TYPE_ALL = BENCH_TYPE_STREAM | BENCH_TYPE_SEQPACKET | BENCH_TYPE_DGRAM |
			 BENCH_TYPE_RDM,
};

/* Address families to measure (bit set): uspair's AF_UNIX pairs and its
 * AF_TIPC pairs. */
enum {
	BENCH_FAMILY_UNIX = 1u << 0,
	BENCH_FAMILY_TIPC = 1u << 1,
	BENCH_FAMILY_ALL = BENCH_FAMILY_UNIX | BENCH_FAMILY_TIPC,
};

/* How the receiving side waits (bit set). */
enum {
	BENCH_MODE_SPIN = 1u << 0,  /* back-to-back traffic: RTT, floor, throughput */
	BENCH_MODE_SLEEP = 1u << 1, /* reader idles between messages */
	BENCH_MODE_ALL = BENCH_MODE_SPIN | BENCH_MODE_SLEEP,
};

/* Which measurements to run (bit set). */
enum {
	BENCH_TEST_RTT = 1u << 0,
	BENCH_TEST_THROUGHPUT = 1u << 1,
	BENCH_TEST_CREATE = 1u << 2,
	BENCH_TEST_MEMORY = 1u << 3,
	BENCH_TEST_ALL = BENCH_TEST_RTT | BENCH_TEST_THROUGHPUT | BENCH_TEST_CREATE |
			 BENCH_TEST_MEMORY,
};

enum bench_output {
	BENCH_OUTPUT_TABLE,
	BENCH_OUTPUT_JSON,
	BENCH_OUTPUT_CSV,
};

#define BENCH_MAX_SIZES 16
#define BENCH_MAX_MESSAGE_SIZE (64u << 20)

#define BENCH_DEFAULT_DURATION_S 0.6
#define BENCH_DEFAULT_ROUNDS 3u
#define BENCH_QUICK_DURATION_S 0.05
#define BENCH_QUICK_ROUNDS 2u
#define BENCH_CHECK_DURATION_S 0.3
#define BENCH_CHECK_ROUNDS 3u
#define BENCH_DEFAULT_SLEEP_GAP_US 200u
#define BENCH_DEFAULT_MEMORY_PAIRS 1000u
/* AF_TIPC rows run this share of the default (or --quick) duration, so
 * that a default run stays at about a minute; --duration, and --check's
 * one TIPC row, take the duration as it is */
#define BENCH_TIPC_DURATION_SHARE 0.5
#define BENCH_QUICK_MEMORY_PAIRS 200u

/* Regression bounds of --check (ratios, uspair against the kernel). */
#define BENCH_CHECK_MIN_RTT_SPEEDUP 2.0
/* AF_TIPC 1-byte STREAM round trip against the kernel's reference pair
 * (its AF_TIPC pair, or AF_UNIX on a kernel without TIPC) */
#define BENCH_CHECK_MIN_TIPC_RTT_SPEEDUP 2.0
/* a sleeping reader's round trip: about 1.0-1.2x on the project's machine,
 * 0.4x while a consume still woke a peer waiting for the answer */
#define BENCH_CHECK_MIN_SLEEP_SPEEDUP 0.6
/* --check: above this background load (CPUs used by other processes) a
 * failed bound is reported as inconclusive instead */
#define BENCH_CHECK_BUSY_CPUS 0.5
#define BENCH_CHECK_MIN_THROUGHPUT_RATIO 0.5
/* socketpair()+close(): uspair may cost at most 4 times the kernel's
 * (1.7 times on the project's machine; 8 times before the region cache) */
#define BENCH_CHECK_MIN_CREATE_SPEEDUP 0.25

struct bench_options {
	unsigned families;        /* BENCH_FAMILY_* */
	unsigned types;           /* BENCH_TYPE_* */
	bool types_given;         /* --type was used (else AF_TIPC DGRAM is left out) */
	unsigned modes;           /* BENCH_MODE_* */
	unsigned tests;           /* BENCH_TEST_* */
	size_t sizes[BENCH_MAX_SIZES]; /* from --size; replaces the defaults */
	size_t size_count;        /* 0: default sizes */
	bool threads;             /* also run with the peer as a thread */
	double duration_s;        /* per implementation and measurement; 0: default */
	unsigned rounds;          /* 0: default */
	unsigned sleep_gap_us;
	unsigned memory_pairs;    /* 0: default */
	bool quick;
	bool check;
	bool verbose;             /* every run's figures on stderr */
	enum bench_output output;
	const char *plot_path;    /* NULL: no plot */
};

/* Fills in the defaults (everything, all types and modes, table output). */
void bench_options_init(struct bench_options *options);

/*
 * Runs the benchmark described by options and writes its report to stdout
 * (progress to stderr).  Returns the process exit status: 0 on success,
 * 1 if a measurement failed or --check found a regression.
 */
int bench_run(const struct bench_options *options);

#endif /* USPAIR_TOOLS_BENCH_H */
