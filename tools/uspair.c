/*
 * The `uspair` command: `uspair bench`, the side-by-side benchmark of
 * uspair, the kernel's socketpair(2) and pipes (tools/bench.c), and
 * `uspair run`, a program under the drop-in preload (tools/run.c).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "uspair.h"
#include "bench.h"
#include "run.h"

#define EXIT_USAGE 2

static void print_main_usage(FILE *out)
{
	fprintf(out,
		"usage: uspair <command> [options]\n"
		"\n"
		"Commands:\n"
		"  bench       measure uspair against the kernel's socketpair(2) and pipes\n"
		"  run         run a program with its socketpairs on uspair (LD_PRELOAD)\n"
		"  help        show this help\n"
		"\n"
		"Options:\n"
		"  -h, --help  show this help\n"
		"  --version   show the uspair version\n"
		"\n"
		"Run 'uspair bench --help' or 'uspair run --help' for their options.\n");
}

static void print_bench_usage(FILE *out)
{
	fprintf(out,
		"usage: uspair bench [options]\n"
		"\n"
		"Measures uspair, the kernel's socketpair(2) and a pipe pair side by side in one\n"
		"run, taking turns in rounds so that machine noise hits all of them alike, and\n"
		"prints one table (progress goes to stderr):\n"
		"  - round-trip latency (p50/p99/p99.9) between two processes, with a bare\n"
		"    shared-memory ping-pong as the floor;\n"
		"  - one-way throughput (messages/s, GB/s);\n"
		"  - round trips with a sleeping reader (the sender pauses before each ping);\n"
		"  - socketpair()+close() cost, and memory per idle pair.\n"
		"Pipes stand beside AF_UNIX SOCK_STREAM only.  Every received message is verified.\n"
		"AF_TIPC rows measure uspair's AF_TIPC pairs (all but memory) against the\n"
		"kernel's AF_TIPC pair, or, on a kernel without TIPC, its AF_UNIX pair of the same\n"
		"type (SEQPACKET for RDM), marked kernel*; RDM/DGRAM throughput runs with a credit\n"
		"window (TIPC drops what overflows the receiver's queue).\n"
		"\n"
		"Options:\n"
		"  --family F      unix, tipc or all (default all); repeatable or a comma list\n"
		"  --type T        stream, seqpacket, dgram, rdm (AF_TIPC only) or all (default\n"
		"                  all but AF_TIPC dgram); repeatable or a comma list\n"
		"  --size N        message size in bytes, K/M suffixes allowed (4K, 1M); repeatable\n"
		"                  or a comma list; replaces the default sizes (round trips 1,64,4K;\n"
		"                  throughput 64,4K,64K,1M, AF_TIPC 64,4K,64K); the sleeping-reader\n"
		"                  test uses the smallest\n"
		"  --mode M        spin, sleep or all (default all): spin = back-to-back round\n"
		"                  trips, the floor and throughput; sleep = the sleeping reader\n"
		"  --tests LIST    rtt, throughput, create, memory or all (default all)\n"
		"  --threads       also measure with the peer as a thread (default: forked\n"
		"                  process only)\n"
		"  --duration S    seconds each implementation is measured per row, split over\n"
		"                  the rounds (default %.1f; --quick %.2f; --check %.1f; AF_TIPC\n"
		"                  rows %.0f%% of that unless --duration or --check)\n"
		"  --rounds N      rounds (default %u; --quick %u; --check %u)\n"
		"  --sleep-gap US  the sleeping-reader pause in microseconds (default %u)\n"
		"  --pairs N       pairs held open for the memory test (default %u; --quick %u)\n"
		"  --quick         a tiny run (a few seconds), for CI\n"
		"  --check         regression check: quick STREAM measurements; fails unless\n"
		"                  uspair's 1-byte and 4 KiB round trips are at least %.0fx\n"
		"                  faster than the kernel's, its 64 KiB throughput at least %.1fx the kernel's,\n"
		"                  its round trip with a sleeping reader at most %.2fx the\n"
		"                  kernel's and its socketpair()+close() at most %.0fx the\n"
		"                  kernel's cost; and its AF_TIPC 1-byte STREAM round trip at\n"
		"                  least %.0fx faster than the kernel's reference pair (--family\n"
		"                  selects which of these run)\n"
		"                  (a ratio below its bound is measured once more); prints\n"
		"                  PASS/FAIL lines.  A low ratio while other processes use more\n"
		"                  than %.1f CPUs is reported as INCONCLUSIVE (exit 0); a\n"
		"                  broken measurement always fails\n"
		"  --json          write JSON to stdout instead of the table\n"
		"  --csv           write CSV to stdout instead of the table\n"
		"  --plot FILE     also draw FILE (.png or .svg) with gnuplot, if installed\n"
		"  --verbose       every round's figures on stderr (to judge the noise)\n"
		"  -h, --help      show this help\n"
		"\n"
		"Ratios: for times, \"x faster\" = kernel time / uspair time; for throughput,\n"
		"uspair / kernel.\n"
		"\n"
		"Exit status: 0 on success, 1 if a measurement failed (or --check found a\n"
		"regression), 2 on a usage error.\n",
		BENCH_DEFAULT_DURATION_S, BENCH_QUICK_DURATION_S, BENCH_CHECK_DURATION_S,
		BENCH_TIPC_DURATION_SHARE * 100, BENCH_DEFAULT_ROUNDS, BENCH_QUICK_ROUNDS,
		BENCH_CHECK_ROUNDS,
		BENCH_DEFAULT_SLEEP_GAP_US, BENCH_DEFAULT_MEMORY_PAIRS, BENCH_QUICK_MEMORY_PAIRS,
		BENCH_CHECK_MIN_RTT_SPEEDUP, BENCH_CHECK_MIN_THROUGHPUT_RATIO,
		1 / BENCH_CHECK_MIN_SLEEP_SPEEDUP,
		1 / BENCH_CHECK_MIN_CREATE_SPEEDUP, BENCH_CHECK_MIN_TIPC_RTT_SPEEDUP,
		BENCH_CHECK_BUSY_CPUS);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "uspair bench: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'uspair bench --help'.\n");
	return EXIT_USAGE;
}

/* One word of a comma list, looked up in names[]; its bit, or 0. */
struct named_bit {
	const char *name;
	unsigned bit;
};

static const struct named_bit family_names[] = {
	{ "unix", BENCH_FAMILY_UNIX },
	{ "tipc", BENCH_FAMILY_TIPC },
	{ "all", BENCH_FAMILY_ALL },
	{ NULL, 0 },
};

static const struct named_bit type_names[] = {
	{ "stream", BENCH_TYPE_STREAM },
	{ "seqpacket", BENCH_TYPE_SEQPACKET },
	{ "dgram", BENCH_TYPE_DGRAM },
	{ "rdm", BENCH_TYPE_RDM },
	{ "all", BENCH_TYPE_ALL },
	{ NULL, 0 },
};

static const struct named_bit mode_names[] = {
	{ "spin", BENCH_MODE_SPIN },
	{ "sleep", BENCH_MODE_SLEEP },
	{ "all", BENCH_MODE_ALL },
	{ NULL, 0 },
};

static const struct named_bit test_names[] = {
	{ "rtt", BENCH_TEST_RTT },
	{ "throughput", BENCH_TEST_THROUGHPUT },
	{ "create", BENCH_TEST_CREATE },
	{ "memory", BENCH_TEST_MEMORY },
	{ "all", BENCH_TEST_ALL },
	{ NULL, 0 },
};

/* Adds the bits of a comma list to *bits; false on an unknown word. */
static bool parse_named_list(const char *list, const struct named_bit *names, unsigned *bits)
{
	const char *word = list;

	for (;;) {
		size_t len = strcspn(word, ",");
		bool found = false;

		for (const struct named_bit *n = names; n->name; n++) {
			if (strlen(n->name) == len && strncasecmp(word, n->name, len) == 0) {
				*bits |= n->bit;
				found = true;
				break;
			}
		}
		if (!found)
			return false;
		if (word[len] == '\0')
			return true;
		word += len + 1;
	}
}

/* "64", "4K", "4KiB", "1M": bytes; 0 when malformed or out of range. */
static size_t parse_size(const char *text, size_t len)
{
	char buf[64], *end;
	unsigned long long value;
	size_t multiplier = 1;

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return 0;
	errno = 0;
	value = strtoull(buf, &end, 10);
	if (errno != 0)
		return 0;
	if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0)
		multiplier = 1024;
	else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0)
		multiplier = 1024 * 1024;
	else if (*end != '\0' && strcasecmp(end, "b") != 0)
		return 0;
	if (value == 0 || value > BENCH_MAX_MESSAGE_SIZE / multiplier)
		return 0;
	return (size_t)value * multiplier;
}

static bool add_sizes(struct bench_options *o, const char *list)
{
	const char *word = list;

	for (;;) {
		size_t len = strcspn(word, ",");
		size_t size = parse_size(word, len);

		if (size == 0 || o->size_count == BENCH_MAX_SIZES)
			return false;
		o->sizes[o->size_count++] = size;
		if (word[len] == '\0')
			return true;
		word += len + 1;
	}
}

static bool parse_double(const char *text, double min, double max, double *out)
{
	char *end;
	double value;

	errno = 0;
	value = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !isfinite(value) || value < min ||
	    value > max)
		return false;
	*out = value;
	return true;
}

static bool parse_unsigned(const char *text, unsigned long min, unsigned long max,
			   unsigned *out)
{
	char *end;
	unsigned long value;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	value = strtoul(text, &end, 10);
	if (errno != 0 || *end != '\0' || value < min || value > max)
		return false;
	*out = (unsigned)value;
	return true;
}

static bool has_plot_extension(const char *path)
{
	size_t len = strlen(path);

	return len > 4 && (strcasecmp(path + len - 4, ".png") == 0 ||
			   strcasecmp(path + len - 4, ".svg") == 0);
}

enum {
	OPT_FAMILY = 256,
	OPT_TYPE,
	OPT_SIZE,
	OPT_MODE,
	OPT_TESTS,
	OPT_THREADS,
	OPT_DURATION,
	OPT_ROUNDS,
	OPT_SLEEP_GAP,
	OPT_PAIRS,
	OPT_QUICK,
	OPT_CHECK,
	OPT_JSON,
	OPT_CSV,
	OPT_PLOT,
	OPT_VERBOSE,
};

static const struct option bench_long_options[] = {
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "type", required_argument, NULL, OPT_TYPE },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "tests", required_argument, NULL, OPT_TESTS },
	{ "threads", no_argument, NULL, OPT_THREADS },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "sleep-gap", required_argument, NULL, OPT_SLEEP_GAP },
	{ "pairs", required_argument, NULL, OPT_PAIRS },
	{ "quick", no_argument, NULL, OPT_QUICK },
	{ "check", no_argument, NULL, OPT_CHECK },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "csv", no_argument, NULL, OPT_CSV },
	{ "plot", required_argument, NULL, OPT_PLOT },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int command_bench(int argc, char **argv)
{
	struct bench_options options;
	unsigned families = 0, types = 0, modes = 0, tests = 0;
	bool json = false, csv = false;
	int opt;

	bench_options_init(&options);
	opterr = 0; /* our own messages */
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":h", bench_long_options, NULL)) != -1) {
		switch (opt) {
		case OPT_FAMILY:
			if (!parse_named_list(optarg, family_names, &families))
				return usage_error("--family: expected unix, tipc or all, not '%s'",
						   optarg);
			break;
		case OPT_TYPE:
			if (!parse_named_list(optarg, type_names, &types))
				return usage_error("--type: expected stream, seqpacket, dgram, rdm or "
						   "all, not '%s'",
						   optarg);
			break;
		case OPT_SIZE:
			if (!add_sizes(&options, optarg))
				return usage_error("--size: expected sizes from 1 byte to 64M (at most "
						   "16 of them), not '%s'",
						   optarg);
			break;
		case OPT_MODE:
			if (!parse_named_list(optarg, mode_names, &modes))
				return usage_error("--mode: expected spin, sleep or all, not '%s'",
						   optarg);
			break;
		case OPT_TESTS:
			if (!parse_named_list(optarg, test_names, &tests))
				return usage_error("--tests: expected rtt, throughput, create, memory or "
						   "all, not '%s'",
						   optarg);
			break;
		case OPT_THREADS:
			options.threads = true;
			break;
		case OPT_DURATION:
			if (!parse_double(optarg, 0.001, 3600, &options.duration_s))
				return usage_error("--duration: expected seconds from 0.001 to 3600, "
						   "not '%s'",
						   optarg);
			break;
		case OPT_ROUNDS:
			if (!parse_unsigned(optarg, 1, 1000, &options.rounds))
				return usage_error("--rounds: expected 1 to 1000, not '%s'", optarg);
			break;
		case OPT_SLEEP_GAP:
			if (!parse_unsigned(optarg, 1, 1000000, &options.sleep_gap_us))
				return usage_error("--sleep-gap: expected 1 to 1000000 microseconds, "
						   "not '%s'",
						   optarg);
			break;
		case OPT_PAIRS:
			if (!parse_unsigned(optarg, 1, 100000, &options.memory_pairs))
				return usage_error("--pairs: expected 1 to 100000, not '%s'", optarg);
			break;
		case OPT_QUICK:
			options.quick = true;
			break;
		case OPT_CHECK:
			options.check = true;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_CSV:
			csv = true;
			break;
		case OPT_PLOT:
			if (!has_plot_extension(optarg))
				return usage_error("--plot: the file name must end in .png or .svg, "
						   "not '%s'",
						   optarg);
			options.plot_path = optarg;
			break;
		case OPT_VERBOSE:
			options.verbose = true;
			break;
		case 'h':
			print_bench_usage(stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (json && csv)
		return usage_error("%s", "--json and --csv exclude each other");
	if (options.check && (json || csv))
		return usage_error("%s", "--check prints PASS/FAIL lines; it takes no --json or --csv");
	if (families)
		options.families = families;
	if (types) {
		options.types = types;
		options.types_given = true;
	}
	if (modes)
		options.modes = modes;
	if (tests)
		options.tests = tests;
	options.output = json ? BENCH_OUTPUT_JSON : csv ? BENCH_OUTPUT_CSV : BENCH_OUTPUT_TABLE;
	return bench_run(&options);
}

int main(int argc, char **argv)
{
	const char *command = argc > 1 ? argv[1] : NULL;

	if (!command) {
		print_main_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
	    strcmp(command, "help") == 0) {
		if (argc > 2 && strcmp(argv[2], "bench") == 0)
			print_bench_usage(stdout);
		else if (argc > 2 && strcmp(argv[2], "run") == 0)
			print_run_usage(stdout);
		else
			print_main_usage(stdout);
		return 0;
	}
	if (strcmp(command, "--version") == 0) {
		printf("uspair %d.%d\n", USPAIR_VERSION_MAJOR, USPAIR_VERSION_MINOR);
		return 0;
	}
	if (strcmp(command, "bench") == 0)
		return command_bench(argc - 1, argv + 1);
	if (strcmp(command, "run") == 0)
		return command_run(argc - 1, argv + 1);
	fprintf(stderr, "uspair: unknown command '%s'\n", command);
	print_main_usage(stderr);
	return EXIT_USAGE;
}
