/*
 * uspair bench: uspair against the kernel's socketpair(2) and a pipe pair.
 *
 * The benchmark is a list of cells.  A cell is one measurement (round-trip
 * latency, throughput, ...) for one socket type, message size and kind of
 * peer, and holds one result per implementation.  The implementations of a
 * cell take turns: each round runs every implementation for duration/rounds
 * seconds, and the order rotates from round to round, so that noise on this
 * small, shared machine hits all of them alike.  Latency samples of all
 * rounds go into one histogram per implementation; throughput adds up
 * messages and seconds.
 *
 * Data moves through usp_* calls for every implementation: uspair passes
 * kernel sockets and pipes through to the kernel.  Every received message
 * is checked (sequence stamps in its first and last byte, the whole payload
 * now and then), so that a broken path cannot pass for a fast one.
 *
 * AF_TIPC rows measure uspair's AF_TIPC pairs (STREAM, SEQPACKET, RDM,
 * DGRAM) against the kernel's AF_TIPC pair of the same type when the
 * running kernel makes one, and otherwise against its AF_UNIX pair of the
 * same type (SEQPACKET for RDM), which the output names as the reference.
 * TIPC's RDM and DGRAM drop what overflows the receiver's queue instead of
 * making the sender wait, so their throughput runs with a credit window:
 * the receiver acknowledges every so many messages and the sender waits
 * while a window's worth is unacknowledged (both implementations alike).
 *
 * Nothing is pinned: with two CPUs the scheduler has to be free to move the
 * two sides apart.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/tipc.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "uspair.h"
#include "bench.h"

/* How often (in messages) the whole payload is compared, not just stamps. */
#define BODY_CHECK_INTERVAL 1024u
/* In between, one byte in every SPOT_CHECK_STRIDE is compared, so that a
 * misplaced piece of a large message shows at little cost. */
#define SPOT_CHECK_STRIDE 4093u
/* Longest warm-up before each measured round. */
#define MAX_WARMUP_S 0.02
/*
 * A throughput run on a channel's first use warms up until this much has
 * passed (or FIRST_WARMUP_MAX_S, at most half the duration): uspair's rings
 * are fresh shared memory, and a steady stream walks through all of it, so
 * the first pass can pay a page fault per page.  Later rounds reuse the
 * channel.
 */
#define FIRST_WARMUP_BYTES (64u << 20)
#define FIRST_WARMUP_MAX_S 0.25
/* Warm-up exchanges of the sleeping-reader measurement. */
#define SLEEP_WARMUP_EXCHANGES 5
/* Spins of the shared-memory floor before it yields the CPU once. */
#define FLOOR_SPINS_BEFORE_YIELD (1u << 16)
/* A run that has not finished this long after its planned end is stuck. */
#define WATCHDOG_GRACE_S 5.0
/* After the first watchdog signal, how long until the benchmark gives up
 * (longer than unblocking and joining a peer takes). */
#define WATCHDOG_HARD_S 10
/* How long a peer may take to finish after it was told to stop. */
#define PEER_JOIN_TIMEOUT_S 3.0
/* Below this ratio uspair is called slower (a few percent is noise). */
#define SLOWER_THAN_KERNEL 0.95
/* Pause before the memory test's first reading. */
#define MEMORY_SETTLE_US 100000u
/* Background load (in CPUs) worth a note. */
#define BUSY_MACHINE_CPUS 0.25
#define MAX_NOTES 32
/*
 * Credit window of an AF_TIPC RDM/DGRAM throughput run: the sender keeps
 * at most half the receiver's SO_RCVBUF in flight, counting each message
 * at more than its truesize (its size plus 512 bytes of headers and skb
 * overhead, rounded up to a power of two, plus 512), at most
 * CREDIT_MAX_WINDOW messages; the receiver acknowledges every quarter
 * window.
 */
#define CREDIT_MAX_WINDOW 256u
#define CREDIT_MESSAGE_OVERHEAD 512u
/* SO_RCVBUF of a TIPC socket (sysctl_tipc_rmem[1]), if it cannot be read */
#define TIPC_DEFAULT_RCVBUF (2u << 20)
#define TEXT_LEN 200

/* ------------------------------------------------------------------------
 * Names
 * --------------------------------------------------------------------- */

enum impl {
	IMPL_KERNEL, /* socketpair(2) */
	IMPL_USPAIR, /* usp_socketpair() */
	IMPL_PIPE,   /* two pipe(2)s, STREAM only */
	IMPL_SHM,    /* bare shared-memory ping-pong, the floor */
	IMPL_COUNT
};

static const char *const impl_names[IMPL_COUNT] = { "kernel", "uspair", "pipe", "shm" };

enum test_kind {
	TEST_FLOOR,      /* cache-line ping-pong through MAP_SHARED memory */
	TEST_RTT,        /* back-to-back round trips */
	TEST_SLEEP,      /* round trips with the reader asleep before each */
	TEST_THROUGHPUT, /* one-way stream of messages */
	TEST_CREATE,     /* socketpair() + two close() */
	TEST_MEMORY,     /* memory per idle pair */
};

static const char *const test_names[] = {
	[TEST_FLOOR] = "floor",
	[TEST_RTT] = "rtt",
	[TEST_SLEEP] = "rtt_sleep",
	[TEST_THROUGHPUT] = "throughput",
	[TEST_CREATE] = "create_close",
	[TEST_MEMORY] = "memory",
};

enum peer_kind { PEER_PROCESS, PEER_THREAD };

static const char *const peer_names[] = { "process", "thread" };

static const char *socktype_name(int socktype)
{
	switch (socktype) {
	case SOCK_STREAM:
		return "stream";
	case SOCK_SEQPACKET:
		return "seqpacket";
	case SOCK_DGRAM:
		return "dgram";
	case SOCK_RDM:
		return "rdm";
	default:
		return "-";
	}
}

static const char *family_name(int family)
{
	return family == AF_TIPC ? "tipc" : family == AF_UNIX ? "unix" : "-";
}

static const char *test_mode_name(enum test_kind test)
{
	switch (test) {
	case TEST_FLOOR:
	case TEST_RTT:
	case TEST_THROUGHPUT:
		return "spin";
	case TEST_SLEEP:
		return "sleep";
	default:
		return "-";
	}
}

static bool test_is_latency(enum test_kind test)
{
	return test == TEST_FLOOR || test == TEST_RTT || test == TEST_SLEEP;
}

static bool test_has_peer(enum test_kind test)
{
	return test_is_latency(test) || test == TEST_THROUGHPUT;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t seconds_to_ns(double seconds)
{
	return (uint64_t)(seconds * 1e9);
}

static void sleep_us(unsigned microseconds)
{
	struct timespec ts = {
		.tv_sec = microseconds / 1000000u,
		.tv_nsec = (long)(microseconds % 1000000u) * 1000,
	};

	/* An interruption only shortens one pause. */
	clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

static void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p) {
		fprintf(stderr, "uspair bench: out of memory (%zu bytes)\n", size);
		exit(1);
	}
	return p;
}

static void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);

	if (!p) {
		fprintf(stderr, "uspair bench: out of memory\n");
		exit(1);
	}
	return p;
}

/* "1B", "64B", "4KiB", "1MiB"; exact bytes when not a whole KiB/MiB. */
static void format_size(char *buf, size_t len, size_t size)
{
	if (size >= (1u << 20) && size % (1u << 20) == 0)
		snprintf(buf, len, "%zuMiB", size >> 20);
	else if (size >= 1024 && size % 1024 == 0)
		snprintf(buf, len, "%zuKiB", size >> 10);
	else
		snprintf(buf, len, "%zuB", size);
}

/* Microseconds from nanoseconds, with as many decimals as make sense. */
static void format_us(char *buf, size_t len, double ns)
{
	double us = ns / 1000.0;

	if (isnan(ns))
		snprintf(buf, len, "-");
	else if (us < 10.0)
		snprintf(buf, len, "%.2f", us);
	else if (us < 1000.0)
		snprintf(buf, len, "%.1f", us);
	else
		snprintf(buf, len, "%.0f", us);
}

/* 1234567 -> "1.23M". */
static void format_count(char *buf, size_t len, double value)
{
	if (isnan(value))
		snprintf(buf, len, "-");
	else if (value >= 1e9)
		snprintf(buf, len, "%.2fG", value / 1e9);
	else if (value >= 1e6)
		snprintf(buf, len, "%.2fM", value / 1e6);
	else if (value >= 1e3)
		snprintf(buf, len, "%.1fk", value / 1e3);
	else
		snprintf(buf, len, "%.0f", value);
}

static void format_ratio(char *buf, size_t len, double ratio)
{
	if (isnan(ratio) || isinf(ratio))
		snprintf(buf, len, "-");
	else if (ratio >= 100.0)
		snprintf(buf, len, "%.0fx", ratio);
	else
		snprintf(buf, len, "%.2fx", ratio);
}

static void format_number(char *buf, size_t len, double value, int decimals)
{
	if (isnan(value))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f", decimals, value);
}

/* ------------------------------------------------------------------------
 * Latency histogram: log-linear buckets, under 0.4% error, fixed size, so
 * recording a sample costs a few instructions and rounds merge by adding.
 * Values below 256 ns are exact; above, each power of two has 128 buckets.
 * --------------------------------------------------------------------- */

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_EXACT (2u * HIST_SUB)
#define HIST_MAX_EXP 40 /* 2^40 ns, about 18 minutes */
#define HIST_BUCKETS (HIST_EXACT + (HIST_MAX_EXP - HIST_SUB_BITS - 1) * HIST_SUB)

struct histogram {
	uint64_t counts[HIST_BUCKETS];
	uint64_t total;
	uint64_t min_ns, max_ns;
	double sum_ns;
};

static unsigned histogram_bucket(uint64_t ns)
{
	unsigned exponent, shift;

	if (ns < HIST_EXACT)
		return (unsigned)ns;
	exponent = 63u - (unsigned)__builtin_clzll(ns);
	if (exponent >= HIST_MAX_EXP)
		return HIST_BUCKETS - 1;
	shift = exponent - HIST_SUB_BITS;
	return HIST_EXACT + (exponent - HIST_SUB_BITS - 1) * HIST_SUB +
	       (unsigned)((ns >> shift) - HIST_SUB);
}

/* The middle of a bucket's range of values. */
static double histogram_bucket_value(unsigned bucket)
{
	unsigned offset, exponent, shift;
	uint64_t lower;

	if (bucket < HIST_EXACT)
		return bucket;
	offset = bucket - HIST_EXACT;
	exponent = offset / HIST_SUB + HIST_SUB_BITS + 1;
	shift = exponent - HIST_SUB_BITS;
	lower = (uint64_t)(offset % HIST_SUB + HIST_SUB) << shift;
	return (double)lower + (double)((uint64_t)1 << shift) / 2.0;
}

static void histogram_merge(struct histogram *into, const struct histogram *from)
{
	if (from->total == 0)
		return;
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		into->counts[b] += from->counts[b];
	if (into->total == 0 || from->min_ns < into->min_ns)
		into->min_ns = from->min_ns;
	if (from->max_ns > into->max_ns)
		into->max_ns = from->max_ns;
	into->total += from->total;
	into->sum_ns += from->sum_ns;
}

static void histogram_add(struct histogram *h, uint64_t ns)
{
	h->counts[histogram_bucket(ns)]++;
	if (h->total == 0 || ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	h->total++;
	h->sum_ns += (double)ns;
}

/* The q-quantile (0 < q <= 1) in nanoseconds; NaN when empty. */
static double histogram_quantile(const struct histogram *h, double q)
{
	uint64_t rank, seen = 0;

	if (!h || h->total == 0)
		return NAN;
	rank = (uint64_t)ceil(q * (double)h->total);
	if (rank < 1)
		rank = 1;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->counts[b];
		if (seen >= rank) {
			double value = histogram_bucket_value(b);

			/* Never report outside what was actually seen. */
			if (value < (double)h->min_ns)
				value = (double)h->min_ns;
			if (value > (double)h->max_ns)
				value = (double)h->max_ns;
			return value;
		}
	}
	return (double)h->max_ns;
}

/* ------------------------------------------------------------------------
 * Results and cells
 * --------------------------------------------------------------------- */

enum result_status {
	RESULT_NOT_RUN,
	RESULT_OK,
	RESULT_UNSUPPORTED, /* e.g. EMSGSIZE: the kernel refuses such a message */
	RESULT_FAILED,      /* an error, a wrong byte, a stuck peer */
};

static const char *const status_names[] = { "not_run", "ok", "unsupported", "failed" };

struct memory_per_pair {
	double rss_kib, pss_kib, virt_kib, slab_kib;
};

struct impl_result {
	enum result_status status;
	char error[TEXT_LEN]; /* why it failed or is unsupported */
	char note[TEXT_LEN];  /* a remark that does not invalidate it */
	struct histogram *latency;
	uint64_t messages; /* throughput: messages; create: pairs */
	double seconds;
	unsigned pairs; /* memory: pairs held */
	struct memory_per_pair idle, used;
	double bulk_rss_kib; /* memory: RSS growth of one pair after BULK_BYTES */
};

struct cell {
	enum test_kind test;
	int family;   /* uspair's pair: AF_UNIX or AF_TIPC */
	int socktype; /* 0 for the floor */
	/* The kernel's pair, the reference: the same family and type, or on a
	 * kernel without TIPC AF_UNIX of the same type (SEQPACKET for RDM). */
	int ref_family, ref_socktype;
	size_t size;  /* message size; memory: pairs */
	enum peer_kind peer;
	double duration_s; /* per implementation, split over the rounds */
	/* Throughput of AF_TIPC RDM/DGRAM: at most credit_window messages
	 * unacknowledged, an acknowledgement every credit_every; 0: none. */
	unsigned credit_window, credit_every;
	unsigned impls; /* bit set of enum impl */
	struct impl_result result[IMPL_COUNT];
};

/* socketpair(AF_TIPC, type) on the running kernel: 0 if it works, else
 * its errno; one per type of tipc_types[]. */
#define TIPC_TYPE_COUNT 4

struct bench {
	const struct bench_options *options;
	double duration_s;
	double tipc_duration_s; /* AF_TIPC rows */
	int kernel_tipc_errno[TIPC_TYPE_COUNT]; /* -1: not asked */
	unsigned rounds;
	unsigned memory_pairs;
	struct cell *cells;
	size_t cell_count, cell_capacity;
	char notes[MAX_NOTES][TEXT_LEN];
	unsigned note_count;
	bool warned_not_uspair;
	struct histogram *run_latency; /* one run's samples, then merged */
	double other_cpus; /* CPUs used on average by other processes */
	double steal_cpus; /* CPUs taken away by the hypervisor */
};

static void result_fail(struct impl_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void result_fail(struct impl_result *r, const char *fmt, ...)
{
	va_list ap;

	if (r->status == RESULT_FAILED)
		return; /* keep the first reason */
	r->status = RESULT_FAILED;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

static void result_unsupported(struct impl_result *r, const char *why)
{
	if (r->status == RESULT_FAILED)
		return;
	r->status = RESULT_UNSUPPORTED;
	snprintf(r->error, sizeof(r->error), "%s", why);
}

static bool result_usable(const struct impl_result *r)
{
	return r->status == RESULT_OK;
}

static void bench_note(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void bench_note(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	if (b->note_count >= MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(b->notes[b->note_count++], TEXT_LEN, fmt, ap);
	va_end(ap);
}

/* "stream", or "tipc stream" for an AF_TIPC cell. */
static void cell_type_text(char *buf, size_t len, const struct cell *c)
{
	snprintf(buf, len, "%s%s", c->family == AF_TIPC ? "tipc " : "", socktype_name(c->socktype));
}

static void cell_label(char *buf, size_t len, const struct cell *c)
{
	char size[32], type[32];

	format_size(size, sizeof(size), c->size);
	cell_type_text(type, sizeof(type), c);
	switch (c->test) {
	case TEST_FLOOR:
		snprintf(buf, len, "floor shm %s", peer_names[c->peer]);
		break;
	case TEST_RTT:
		snprintf(buf, len, "rtt %s %s %s", type, size, peer_names[c->peer]);
		break;
	case TEST_SLEEP:
		snprintf(buf, len, "rtt-sleep %s %s %s", type, size, peer_names[c->peer]);
		break;
	case TEST_THROUGHPUT:
		snprintf(buf, len, "throughput %s %s %s", type, size, peer_names[c->peer]);
		break;
	case TEST_CREATE:
		snprintf(buf, len, "socketpair+close %s", type);
		break;
	case TEST_MEMORY:
		snprintf(buf, len, "memory %s %zu pairs", type, c->size);
		break;
	}
}

/* The kernel's reference pair is not of uspair's family (AF_UNIX for
 * AF_TIPC on a kernel without TIPC). */
static bool cell_reference_differs(const struct cell *c)
{
	return c->ref_family != c->family || c->ref_socktype != c->socktype;
}

/* The implementation column: "kernel*" marks a reference of another family. */
static const char *impl_label(const struct cell *c, unsigned impl)
{
	if (impl == IMPL_KERNEL && cell_reference_differs(c))
		return "kernel*";
	return impl_names[impl];
}

/* Figures of one result, NaN when it has none. */
static double result_latency(const struct impl_result *r, double q)
{
	return result_usable(r) ? histogram_quantile(r->latency, q) : NAN;
}

static double result_messages_per_s(const struct impl_result *r)
{
	if (!result_usable(r) || r->seconds <= 0)
		return NAN;
	return (double)r->messages / r->seconds;
}

static double result_ns_per_pair(const struct impl_result *r)
{
	if (!result_usable(r) || r->messages == 0)
		return NAN;
	return r->seconds * 1e9 / (double)r->messages;
}

/* Kernel time over uspair time: how many times faster uspair is. */
static double cell_latency_speedup(const struct cell *c, double q)
{
	return result_latency(&c->result[IMPL_KERNEL], q) /
	       result_latency(&c->result[IMPL_USPAIR], q);
}

/* uspair throughput over the kernel's. */
static double cell_throughput_ratio(const struct cell *c)
{
	return result_messages_per_s(&c->result[IMPL_USPAIR]) /
	       result_messages_per_s(&c->result[IMPL_KERNEL]);
}

static double cell_create_speedup(const struct cell *c)
{
	return result_ns_per_pair(&c->result[IMPL_KERNEL]) /
	       result_ns_per_pair(&c->result[IMPL_USPAIR]);
}

/* What an idle pair costs in all: its share of user memory plus kernel slab. */
static double memory_total_kib(const struct impl_result *r)
{
	if (!result_usable(r))
		return NAN;
	return r->idle.pss_kib + r->idle.slab_kib;
}

static double cell_memory_ratio(const struct cell *c)
{
	return memory_total_kib(&c->result[IMPL_USPAIR]) /
	       memory_total_kib(&c->result[IMPL_KERNEL]);
}

/* ------------------------------------------------------------------------
 * State shared with the peer.  It lives in MAP_SHARED memory made before
 * any fork, so a forked peer and a peer thread use it alike.
 * --------------------------------------------------------------------- */

#define FLOOR_STOP UINT64_MAX

struct shared_control {
	/* The floor's ping-pong word, alone on its cache line. */
	_Alignas(64) _Atomic uint64_t floor_word;
	/* Stop protocol: the measuring side sets stop; a sender answers with
	 * final_seq and sender_done, then one last message (seq final_seq). */
	_Alignas(64) atomic_int stop;
	atomic_int sender_done;
	_Atomic uint64_t final_seq;
	_Alignas(64) atomic_int peer_failed;
	atomic_int peer_finished; /* the peer has returned from its work */
	char peer_error[TEXT_LEN + 8]; /* "peer: " and a why[] */
};

static struct shared_control *control;

static void control_reset(void)
{
	atomic_store(&control->floor_word, 0);
	atomic_store(&control->stop, 0);
	atomic_store(&control->sender_done, 0);
	atomic_store(&control->final_seq, 0);
	atomic_store(&control->peer_failed, 0);
	atomic_store(&control->peer_finished, 0);
	control->peer_error[0] = '\0';
}

static void peer_fail(const char *why)
{
	if (atomic_exchange(&control->peer_failed, 1) == 0)
		snprintf(control->peer_error, sizeof(control->peer_error), "peer: %s", why);
}

/* ------------------------------------------------------------------------
 * Watchdog.  A lost wake-up in the library would leave the benchmark
 * blocked for ever, so every run is timed: the first SIGALRM (no
 * SA_RESTART) interrupts a blocking call and the run ends as failed; if
 * that does not help, the second one ends the program.
 * --------------------------------------------------------------------- */

static volatile sig_atomic_t watchdog_fired;
static volatile pid_t watchdog_peer_pid;
static char watchdog_label[TEXT_LEN];

static void watchdog_handler(int signo)
{
	static const char prefix[] = "\nuspair bench: stuck in ";
	static const char suffix[] = "; giving up\n";

	(void)signo;
	if (!watchdog_fired) {
		watchdog_fired = 1;
		return;
	}
	if (watchdog_peer_pid > 0)
		kill(watchdog_peer_pid, SIGKILL);
	if (write(STDERR_FILENO, prefix, sizeof(prefix) - 1) < 0 ||
	    write(STDERR_FILENO, watchdog_label, strlen(watchdog_label)) < 0 ||
	    write(STDERR_FILENO, suffix, sizeof(suffix) - 1) < 0) {
		/* nothing more can be done */
	}
	_exit(3);
}

static void watchdog_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watchdog_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR */
	sigaction(SIGALRM, &sa, NULL);
}

static void watchdog_arm(double seconds, const char *label)
{
	struct itimerval timer;

	memset(&timer, 0, sizeof(timer));
	watchdog_fired = 0;
	snprintf(watchdog_label, sizeof(watchdog_label), "%s", label);
	timer.it_value.tv_sec = (time_t)seconds;
	timer.it_value.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
	if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0)
		timer.it_value.tv_usec = 1;
	timer.it_interval.tv_sec = WATCHDOG_HARD_S;
	setitimer(ITIMER_REAL, &timer, NULL);
}

static void watchdog_disarm(void)
{
	struct itimerval timer;

	memset(&timer, 0, sizeof(timer));
	setitimer(ITIMER_REAL, &timer, NULL);
}

/* ------------------------------------------------------------------------
 * Channels: the two descriptors each side uses.  For a socket pair both
 * are one socket; for pipes they are the ends of two pipes.
 * --------------------------------------------------------------------- */

struct channel {
	int parent_rx, parent_tx; /* the measuring side */
	int peer_rx, peer_tx;     /* the echoing or sending side */
	int fds[4];
	int fd_count;
};

/* Makes a socket pair of the given implementation for a cell: uspair's of
 * the cell's family and type, the kernel's reference; -errno on failure. */
static int open_pair(const struct cell *c, enum impl impl, int sv[2])
{
	int rc;

	if (impl == IMPL_USPAIR)
		rc = usp_socketpair(c->family, c->socktype, 0, sv);
	else
		rc = socketpair(c->ref_family, c->ref_socktype, 0, sv);
	return rc == 0 ? 0 : -errno;
}

static int channel_open(struct channel *ch, enum impl impl, const struct cell *c)
{
	int sv[2], to_peer[2], to_parent[2];
	int rc;

	memset(ch, 0, sizeof(*ch));
	if (impl == IMPL_KERNEL || impl == IMPL_USPAIR) {
		rc = open_pair(c, impl, sv);
		if (rc != 0)
			return rc;
		ch->parent_rx = ch->parent_tx = sv[0];
		ch->peer_rx = ch->peer_tx = sv[1];
		ch->fds[0] = sv[0];
		ch->fds[1] = sv[1];
		ch->fd_count = 2;
		return 0;
	}
	if (impl != IMPL_PIPE)
		return -EINVAL;
	if (pipe(to_peer) != 0)
		return -errno;
	if (pipe(to_parent) != 0) {
		rc = -errno;
		usp_close(to_peer[0]);
		usp_close(to_peer[1]);
		return rc;
	}
	ch->parent_tx = to_peer[1];
	ch->peer_rx = to_peer[0];
	ch->peer_tx = to_parent[1];
	ch->parent_rx = to_parent[0];
	memcpy(ch->fds, to_peer, sizeof(to_peer));
	memcpy(ch->fds + 2, to_parent, sizeof(to_parent));
	ch->fd_count = 4;
	return 0;
}

static void channel_close(struct channel *ch)
{
	for (int i = 0; i < ch->fd_count; i++)
		if (ch->fds[i] >= 0)
			usp_close(ch->fds[i]);
	ch->fd_count = 0;
}

/* Closes one side's descriptors (a forked peer drops the parent's). */
static void channel_close_side(const struct channel *ch, bool parent_side)
{
	int rx = parent_side ? ch->parent_rx : ch->peer_rx;
	int tx = parent_side ? ch->parent_tx : ch->peer_tx;

	usp_close(rx);
	if (tx != rx)
		usp_close(tx);
}

/* Wakes a peer blocked on a channel that is out of step, for good: shuts a
 * socket down, or closes the parent's ends of the pipes. */
static void channel_break(struct channel *ch)
{
	if (ch->parent_rx == ch->parent_tx) {
		usp_shutdown(ch->parent_tx, SHUT_RDWR);
		return;
	}
	for (int i = 0; i < ch->fd_count; i++) {
		if (ch->fds[i] == ch->parent_rx || ch->fds[i] == ch->parent_tx) {
			usp_close(ch->fds[i]);
			ch->fds[i] = -1;
		}
	}
}

/* ------------------------------------------------------------------------
 * Messages.  Each carries its sequence number as stamps in its first and
 * last byte; the rest is a fixed pattern.  Before a receive the stamps are
 * poisoned, so a receive that returns without writing cannot pass.
 * --------------------------------------------------------------------- */

enum io_result {
	IO_OK = 0,
	IO_FAILED = -1,
	IO_TOO_LARGE = -2, /* EMSGSIZE */
};

static uint8_t stamp_first(uint64_t seq)
{
	return (uint8_t)(seq * 157u + 1u);
}

static uint8_t stamp_last(uint64_t seq)
{
	return (uint8_t)((seq >> 8) * 59u + seq * 3u + 0xa5u);
}

static void fill_pattern(uint8_t *buf, size_t size)
{
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 7u + (i >> 8) * 13u + 0x3cu);
}

static void stamp_message(uint8_t *buf, size_t size, uint64_t seq)
{
	buf[0] = stamp_first(seq);
	if (size > 1)
		buf[size - 1] = stamp_last(seq);
}

static void poison_message(uint8_t *buf, size_t size, uint64_t seq)
{
	buf[0] = (uint8_t)~stamp_first(seq);
	if (size > 1)
		buf[size - 1] = (uint8_t)~stamp_last(seq);
}

static bool report_wrong_byte(const uint8_t *got, const uint8_t *pattern, uint64_t seq,
			      size_t at, char *why, size_t why_len)
{
	snprintf(why, why_len, "message %" PRIu64 ": byte %zu is 0x%02x, expected 0x%02x", seq, at,
		 got[at], pattern[at]);
	return false;
}

static bool verify_message(const uint8_t *got, const uint8_t *pattern, size_t size,
			   uint64_t seq, char *why, size_t why_len)
{
	if (got[0] != stamp_first(seq)) {
		snprintf(why, why_len, "message %" PRIu64 ": first byte 0x%02x, expected 0x%02x",
			 seq, got[0], stamp_first(seq));
		return false;
	}
	if (size > 1 && got[size - 1] != stamp_last(seq)) {
		snprintf(why, why_len, "message %" PRIu64 ": last byte 0x%02x, expected 0x%02x",
			 seq, got[size - 1], stamp_last(seq));
		return false;
	}
	if (size <= 2)
		return true;
	if (seq % BODY_CHECK_INTERVAL == 0) {
		if (memcmp(got + 1, pattern + 1, size - 2) == 0)
			return true;
		for (size_t at = 1; at < size - 1; at++)
			if (got[at] != pattern[at])
				return report_wrong_byte(got, pattern, seq, at, why, why_len);
	}
	for (size_t at = 1 + seq % SPOT_CHECK_STRIDE; at < size - 1; at += SPOT_CHECK_STRIDE)
		if (got[at] != pattern[at])
			return report_wrong_byte(got, pattern, seq, at, why, why_len);
	return true;
}

/* errno after an interrupted call: retry, unless the watchdog fired. */
static bool interrupted_retry(char *why, size_t why_len)
{
	if (!watchdog_fired)
		return true;
	snprintf(why, why_len, "timed out: blocked for more than %.0f s after the run's end",
		 WATCHDOG_GRACE_S);
	return false;
}

static int send_message(int fd, const uint8_t *buf, size_t size, bool stream, char *why,
			size_t why_len)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = usp_write(fd, buf + done, size - done);

		if (n < 0) {
			if (errno == EINTR && interrupted_retry(why, why_len))
				continue;
			if (errno == EINTR)
				return IO_FAILED;
			snprintf(why, why_len, "write: %s", strerror(errno));
			return errno == EMSGSIZE ? IO_TOO_LARGE : IO_FAILED;
		}
		if (!stream && (size_t)n != size) {
			snprintf(why, why_len, "write sent %zd of %zu bytes of a message", n, size);
			return IO_FAILED;
		}
		if (n == 0) {
			snprintf(why, why_len, "write returned 0");
			return IO_FAILED;
		}
		done += (size_t)n;
	}
	return IO_OK;
}

/*
 * Receives one message of size bytes into buf (size + 1 bytes long: for
 * datagrams one byte more is asked for, so a message that is too long shows).
 */
static int receive_message(int fd, uint8_t *buf, size_t size, bool stream, char *why,
			   size_t why_len)
{
	size_t done = 0;

	for (;;) {
		size_t want = stream ? size - done : size + 1;
		ssize_t n = usp_read(fd, buf + done, want);

		if (n < 0) {
			if (errno == EINTR && interrupted_retry(why, why_len))
				continue;
			if (errno != EINTR)
				snprintf(why, why_len, "read: %s", strerror(errno));
			return IO_FAILED;
		}
		if (n == 0) {
			snprintf(why, why_len, "read: unexpected end of file after %zu of %zu bytes",
				 done, size);
			return IO_FAILED;
		}
		if (!stream) {
			if ((size_t)n != size) {
				snprintf(why, why_len, "read a %zd-byte message, expected %zu bytes",
					 n, size);
				return IO_FAILED;
			}
			return IO_OK;
		}
		done += (size_t)n;
		if (done == size)
			return IO_OK;
	}
}

/* ------------------------------------------------------------------------
 * The peer: the other end of a two-party measurement, a forked process or
 * a thread.
 * --------------------------------------------------------------------- */

struct peer_job {
	enum test_kind test;
	bool stream;
	size_t size;
	int rx_fd, tx_fd;
	/* Throughput: the sender keeps at most this many messages
	 * unacknowledged (AF_TIPC RDM/DGRAM); 0: no acknowledgements. */
	unsigned credit_window;
	/* A forked peer closes the parent's ends first and its own at the
	 * end, as a program would; NULL for the floor. */
	const struct channel *channel;
};

/* Round trips: send back every message until told to stop. */
static void peer_echo(const struct peer_job *job)
{
	uint8_t *buf = xmalloc(job->size + 1);
	char why[TEXT_LEN];

	for (;;) {
		ssize_t n;

		if (job->stream) {
			if (receive_message(job->rx_fd, buf, job->size, true, why, sizeof(why)) != IO_OK) {
				peer_fail(why);
				break;
			}
			n = (ssize_t)job->size;
		} else {
			/* The stop message of a datagram run is one byte long. */
			n = usp_read(job->rx_fd, buf, job->size + 1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				snprintf(why, sizeof(why), "read: %s", strerror(errno));
				peer_fail(why);
				break;
			}
		}
		if (atomic_load_explicit(&control->stop, memory_order_acquire))
			break;
		if ((size_t)n != job->size) {
			snprintf(why, sizeof(why), "read a %zd-byte message, expected %zu bytes", n,
				 job->size);
			peer_fail(why);
			break;
		}
		if (send_message(job->tx_fd, buf, job->size, job->stream, why, sizeof(why)) != IO_OK) {
			peer_fail(why);
			break;
		}
	}
	free(buf);
}

/*
 * A credit window (job->credit_window): before message seq, wait for
 * acknowledgements (the count of messages received, a uint64_t) until
 * fewer than the window are unacknowledged.  Anything else that arrives is
 * a failure: a message of ours coming back rejected (RDM: the receiver's
 * queue overflowed after all), or, once the run is being torn down after a
 * failure, the one-byte wake-up (false with why[] empty).
 */
static bool peer_wait_credit(const struct peer_job *job, uint64_t seq, uint64_t *acked,
			     char *why, size_t why_len)
{
	while (seq - *acked >= job->credit_window) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(64)];
		} cmsg_buf;
		uint64_t ack = 0;
		struct iovec iov = { .iov_base = &ack, .iov_len = sizeof(ack) };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cmsg_buf.buf,
			.msg_controllen = sizeof(cmsg_buf.buf),
		};
		ssize_t n = usp_recvmsg(job->rx_fd, &msg, 0);

		if (n < 0) {
			if (errno == EINTR && interrupted_retry(why, why_len))
				continue;
			if (errno != EINTR)
				snprintf(why, why_len, "reading an acknowledgement: %s",
					 strerror(errno));
			return false;
		}
		if (msg.msg_controllen > 0) {
			const struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
			bool errinfo = cm && cm->cmsg_level == SOL_TIPC &&
				       cm->cmsg_type == TIPC_ERRINFO;

			snprintf(why, why_len,
				 "before message %" PRIu64 " (%" PRIu64 " acknowledged) a %zd-byte "
				 "message with %s came back%s",
				 seq, *acked, n, errinfo ? "TIPC_ERRINFO" : "ancillary data",
				 errinfo ? ": rejected, the receiver's queue overflowed" : "");
			return false;
		}
		if (n != (ssize_t)sizeof(ack) &&
		    atomic_load_explicit(&control->stop, memory_order_acquire)) {
			why[0] = '\0'; /* the wake-up of unblock_peer() */
			return false;
		}
		if (n != (ssize_t)sizeof(ack) || ack > seq || ack < *acked) {
			snprintf(why, why_len,
				 "waiting for an acknowledgement before message %" PRIu64 ": got %zd "
				 "bytes (count %" PRIu64 ", %" PRIu64 " acknowledged before)",
				 seq, n, ack, *acked);
			return false;
		}
		*acked = ack;
	}
	return true;
}

/* Acknowledgements left over from an earlier round on this channel. */
static void peer_drain_credit(const struct peer_job *job)
{
	uint64_t ack;

	while (usp_recv(job->rx_fd, &ack, sizeof(ack), MSG_DONTWAIT) >= 0 || errno == EINTR)
		;
}

/* Throughput: send numbered messages until told to stop, then the marker. */
static void peer_send(const struct peer_job *job)
{
	uint8_t *buf = xmalloc(job->size + 1);
	char why[TEXT_LEN];
	uint64_t seq = 0, acked = 0;

	fill_pattern(buf, job->size);
	if (job->credit_window)
		peer_drain_credit(job);
	while (!atomic_load_explicit(&control->stop, memory_order_relaxed)) {
		if (job->credit_window && !peer_wait_credit(job, seq, &acked, why, sizeof(why)))
			goto failed;
		stamp_message(buf, job->size, seq);
		if (send_message(job->tx_fd, buf, job->size, job->stream, why, sizeof(why)) != IO_OK)
			goto failed;
		seq++;
	}
	atomic_store_explicit(&control->final_seq, seq, memory_order_relaxed);
	atomic_store_explicit(&control->sender_done, 1, memory_order_release);
	if (job->credit_window && !peer_wait_credit(job, seq, &acked, why, sizeof(why)))
		goto failed;
	stamp_message(buf, job->size, seq);
	if (send_message(job->tx_fd, buf, job->size, job->stream, why, sizeof(why)) != IO_OK)
		goto failed;
	free(buf);
	return;
failed:
	if (why[0])
		peer_fail(why);
	free(buf);
}

/* The floor: answer 2k+1 with 2k+2 in one shared word. */
static void peer_floor(void)
{
	uint64_t expect = 1;

	for (;;) {
		unsigned spins = 0;
		uint64_t value;

		while ((value = atomic_load_explicit(&control->floor_word, memory_order_acquire)) !=
		       expect) {
			if (value == FLOOR_STOP)
				return;
			cpu_relax();
			if (++spins == FLOOR_SPINS_BEFORE_YIELD) {
				spins = 0;
				sched_yield();
			}
		}
		atomic_store_explicit(&control->floor_word, expect + 1, memory_order_release);
		expect += 2;
	}
}

static void peer_main(const struct peer_job *job)
{
	switch (job->test) {
	case TEST_FLOOR:
		peer_floor();
		break;
	case TEST_RTT:
	case TEST_SLEEP:
		peer_echo(job);
		break;
	case TEST_THROUGHPUT:
		peer_send(job);
		break;
	default:
		break;
	}
	atomic_store_explicit(&control->peer_finished, 1, memory_order_release);
}

struct peer {
	enum peer_kind kind;
	pid_t pid;
	pthread_t thread;
	bool started;
};

static void *peer_thread_main(void *arg)
{
	peer_main(arg);
	return NULL;
}

static int peer_start(struct peer *peer, enum peer_kind kind, struct peer_job *job)
{
	peer->kind = kind;
	peer->started = false;
	if (kind == PEER_PROCESS) {
		pid_t parent = getpid();
		pid_t pid;

		fflush(NULL);
		pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0);
			signal(SIGALRM, SIG_DFL);
			if (job->channel)
				channel_close_side(job->channel, true);
			peer_main(job);
			if (job->channel)
				channel_close_side(job->channel, false);
			_exit(0);
		}
		peer->pid = pid;
		watchdog_peer_pid = pid;
	} else {
		sigset_t block, old;
		int rc;

		/* The watchdog must interrupt the measuring thread, not the peer. */
		sigemptyset(&block);
		sigaddset(&block, SIGALRM);
		pthread_sigmask(SIG_BLOCK, &block, &old);
		rc = pthread_create(&peer->thread, NULL, peer_thread_main, job);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0)
			return -rc;
	}
	peer->started = true;
	return 0;
}

/* Waits for the peer to end; false with why[] if it failed or was killed. */
static bool peer_join(struct peer *peer, const char *label, char *why, size_t why_len)
{
	uint64_t deadline = now_ns() + seconds_to_ns(PEER_JOIN_TIMEOUT_S);

	if (!peer->started)
		return true;
	peer->started = false;
	if (peer->kind == PEER_PROCESS) {
		int status = 0;

		for (;;) {
			pid_t r = waitpid(peer->pid, &status, WNOHANG);

			if (r == peer->pid)
				break;
			if (r < 0 && errno != EINTR) {
				snprintf(why, why_len, "waitpid: %s", strerror(errno));
				watchdog_peer_pid = 0;
				return false;
			}
			if (now_ns() >= deadline) {
				kill(peer->pid, SIGKILL);
				while (waitpid(peer->pid, &status, 0) < 0 && errno == EINTR)
					;
				watchdog_peer_pid = 0;
				snprintf(why, why_len,
					 "peer process still busy %.0f s after it was told to stop; killed",
					 PEER_JOIN_TIMEOUT_S);
				return false;
			}
			sleep_us(1000);
		}
		watchdog_peer_pid = 0;
		if (WIFSIGNALED(status)) {
			snprintf(why, why_len, "peer process killed by signal %d (%s)",
				 WTERMSIG(status), strsignal(WTERMSIG(status)));
			return false;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			snprintf(why, why_len, "peer process exited with status %d",
				 WEXITSTATUS(status));
			return false;
		}
		return true;
	}
	for (;;) {
		struct timespec until;
		int rc;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)PEER_JOIN_TIMEOUT_S;
		rc = pthread_timedjoin_np(peer->thread, NULL, &until);
		if (rc == 0)
			return true;
		if (rc == EINTR)
			continue;
		/* A thread cannot be killed safely: it may hold the library's
		 * locks.  Nothing after this could be trusted. */
		fprintf(stderr,
			"uspair bench: %s: peer thread still busy %.0f s after it was told to stop%s%s; "
			"cannot continue\n",
			label, PEER_JOIN_TIMEOUT_S, rc == ETIMEDOUT ? "" : ": ",
			rc == ETIMEDOUT ? "" : strerror(rc));
		exit(1);
	}
}

/* ------------------------------------------------------------------------
 * One run: one implementation of one cell for one round.
 * --------------------------------------------------------------------- */

struct run {
	struct bench *bench;
	struct cell *cell;
	enum impl impl;
	struct impl_result *result;
	struct histogram *latency; /* this run's samples */
	struct channel *channel;   /* two-party tests: kept open across rounds */
	bool first_use;            /* the channel has not carried a run yet */
	double measure_s; /* measured time, after the warm-up */
	double warmup_s;
	double first_warmup_s; /* longest warm-up of a throughput run on first use */
	char label[TEXT_LEN];
};

static bool run_is_stream(const struct run *run)
{
	return run->impl == IMPL_PIPE || run->cell->socktype == SOCK_STREAM;
}

/* After a run with a peer: collect what the peer had to say. */
static void run_finish_peer(struct run *run, struct peer *peer)
{
	char why[TEXT_LEN];

	if (!peer_join(peer, run->label, why, sizeof(why)))
		result_fail(run->result, "%s", why);
	if (atomic_load(&control->peer_failed))
		result_fail(run->result, "%s", control->peer_error);
}

static bool start_peer_or_fail(struct run *run, struct peer *peer, struct peer_job *job)
{
	int rc = peer_start(peer, run->cell->peer, job);

	if (rc != 0) {
		result_fail(run->result, "starting the peer: %s", strerror(-rc));
		return false;
	}
	return true;
}

struct exchange {
	int tx, rx;
	size_t size;
	bool stream;
	uint8_t *out, *in;
	const uint8_t *pattern;
	char why[TEXT_LEN];
};

static bool exchange_once(struct exchange *x, uint64_t seq)
{
	stamp_message(x->out, x->size, seq);
	poison_message(x->in, x->size, seq);
	if (send_message(x->tx, x->out, x->size, x->stream, x->why, sizeof(x->why)) != IO_OK)
		return false;
	if (receive_message(x->rx, x->in, x->size, x->stream, x->why, sizeof(x->why)) != IO_OK)
		return false;
	return verify_message(x->in, x->pattern, x->size, seq, x->why, sizeof(x->why));
}

/*
 * After a failure the channel may be out of step and the peer blocked in a
 * read or a write.  Stream-like channels are broken (EOF and EPIPE for the
 * peer); a datagram peer gets a one-byte wake-up and is drained until it
 * has finished, for two seconds at most.
 */
#define UNBLOCK_TIMEOUT_S 2.0

static void unblock_peer(struct channel *ch, size_t size, bool datagrams)
{
	const uint64_t deadline = now_ns() + seconds_to_ns(UNBLOCK_TIMEOUT_S);
	uint8_t *scratch;
	uint8_t wake = 0;

	atomic_store(&control->stop, 1);
	if (!datagrams) {
		channel_break(ch);
		return;
	}
	usp_send(ch->parent_tx, &wake, 1, MSG_DONTWAIT);
	scratch = xmalloc(size + 1);
	while (!atomic_load(&control->peer_finished) && now_ns() < deadline) {
		struct pollfd pfd = { .fd = ch->parent_rx, .events = POLLIN };

		if (usp_poll(&pfd, 1, 10) > 0 && usp_read(ch->parent_rx, scratch, size + 1) < 0 &&
		    errno != EINTR)
			break;
	}
	free(scratch);
}

/* Round trips (TEST_RTT, TEST_SLEEP): the peer echoes each message. */
static void run_round_trips(struct run *run, struct channel *ch)
{
	const size_t size = run->cell->size;
	const bool sleeping = run->cell->test == TEST_SLEEP;
	const unsigned gap_us = run->bench->options->sleep_gap_us;
	struct histogram *hist = run->latency;
	struct peer_job job = {
		.test = run->cell->test,
		.stream = run_is_stream(run),
		.size = size,
		.rx_fd = ch->peer_rx,
		.tx_fd = ch->peer_tx,
		.channel = ch,
	};
	struct exchange x = {
		.tx = ch->parent_tx,
		.rx = ch->parent_rx,
		.size = size,
		.stream = job.stream,
		.out = xmalloc(size + 1),
		.in = xmalloc(size + 1),
	};
	uint8_t *pattern = xmalloc(size + 1);
	struct peer peer;
	uint64_t seq = 0;
	bool ok = true;

	fill_pattern(x.out, size);
	fill_pattern(pattern, size);
	x.pattern = pattern;
	control_reset();
	if (!start_peer_or_fail(run, &peer, &job))
		goto out;

	if (sleeping) {
		for (int i = 0; ok && i < SLEEP_WARMUP_EXCHANGES; i++) {
			sleep_us(gap_us);
			ok = exchange_once(&x, seq++);
		}
	} else {
		uint64_t warm_end = now_ns() + seconds_to_ns(run->warmup_s);

		while (ok && now_ns() < warm_end)
			ok = exchange_once(&x, seq++);
	}

	if (ok && sleeping) {
		uint64_t end = now_ns() + seconds_to_ns(run->measure_s);

		for (;;) {
			uint64_t start, finish;

			sleep_us(gap_us);
			start = now_ns();
			ok = exchange_once(&x, seq++);
			finish = now_ns();
			if (!ok)
				break;
			histogram_add(hist, finish - start);
			if (finish >= end)
				break;
		}
	} else if (ok) {
		/* One clock read per round trip: each sample runs from the end of
		 * the previous round trip to the end of this one. */
		uint64_t previous = now_ns();
		uint64_t end = previous + seconds_to_ns(run->measure_s);

		for (;;) {
			uint64_t finish;

			ok = exchange_once(&x, seq++);
			finish = now_ns();
			if (!ok)
				break;
			histogram_add(hist, finish - previous);
			previous = finish;
			if (finish >= end)
				break;
		}
	}
	if (ok) {
		/* Stop the echo: a stream needs a whole message, a datagram peer
		 * takes any (one byte, in case whole ones are refused). */
		atomic_store_explicit(&control->stop, 1, memory_order_release);
		stamp_message(x.out, size, seq);
		send_message(x.tx, x.out, job.stream ? size : 1, job.stream, x.why, sizeof(x.why));
	} else {
		result_fail(run->result, "%s", x.why);
		unblock_peer(ch, size, !job.stream);
	}
	run_finish_peer(run, &peer);
out:
	free(x.out);
	free(x.in);
	free(pattern);
}

/* Acknowledges the first count messages (a credit window's receiver). */
static bool send_credit(int fd, uint64_t count, char *why, size_t why_len)
{
	for (;;) {
		ssize_t n = usp_send(fd, &count, sizeof(count), 0);

		if (n == (ssize_t)sizeof(count))
			return true;
		if (n < 0 && errno == EINTR && interrupted_retry(why, why_len))
			continue;
		if (n >= 0)
			snprintf(why, why_len, "acknowledgement: sent %zd of %zu bytes", n,
				 sizeof(count));
		else if (errno != EINTR)
			snprintf(why, why_len, "sending an acknowledgement: %s", strerror(errno));
		return false;
	}
}

/* One-way throughput: the peer sends, this side receives and counts;
 * with a credit window it acknowledges every credit_every messages. */
static void run_throughput(struct run *run, struct channel *ch)
{
	const size_t size = run->cell->size;
	const unsigned ack_every = run->cell->credit_every;
	struct peer_job job = {
		.test = TEST_THROUGHPUT,
		.stream = run_is_stream(run),
		.size = size,
		.rx_fd = ch->peer_rx,
		.tx_fd = ch->peer_tx,
		.credit_window = run->cell->credit_window,
		.channel = ch,
	};
	struct exchange x = {
		.rx = ch->parent_rx,
		.size = size,
		.stream = job.stream,
		.in = xmalloc(size + 1),
	};
	uint8_t *pattern = xmalloc(size + 1);
	/* Read the clock about every 16 KiB received. */
	const uint64_t clock_every = size >= 16384 ? 1 : 16384 / size;
	const uint64_t measure_ns = seconds_to_ns(run->measure_s);
	const uint64_t warm_bytes = run->first_use ? FIRST_WARMUP_BYTES : 0;
	uint64_t warm_end, warm_limit, start = 0, stop = 0, first_counted = 0, counted = 0;
	bool counting = false, stopping = false;
	struct peer peer;

	fill_pattern(pattern, size);
	x.pattern = pattern;
	control_reset();
	if (!start_peer_or_fail(run, &peer, &job))
		goto out;

	warm_end = now_ns() + seconds_to_ns(run->warmup_s);
	warm_limit = warm_end + seconds_to_ns(run->first_warmup_s);
	for (uint64_t seq = 0;; seq++) {
		bool delivered;

		poison_message(x.in, size, seq);
		delivered =
			receive_message(x.rx, x.in, size, x.stream, x.why, sizeof(x.why)) == IO_OK &&
			verify_message(x.in, pattern, size, seq, x.why, sizeof(x.why));
		if (!delivered || (ack_every && (seq + 1) % ack_every == 0 &&
				   !send_credit(ch->parent_tx, seq + 1, x.why, sizeof(x.why)))) {
			/* A TIPC RDM/DGRAM receiver that sees the wrong message, or
			 * none while the sender waits for credit, has most likely
			 * lost some. */
			result_fail(run->result, "%s%s", x.why,
				    !delivered && ack_every ? " (messages lost?)" : "");
			unblock_peer(ch, size, !job.stream);
			break;
		}
		if (stopping) {
			/* Message final_seq comes after sender_done was set. */
			if (atomic_load_explicit(&control->sender_done, memory_order_acquire) &&
			    seq == atomic_load_explicit(&control->final_seq, memory_order_relaxed))
				break;
			continue;
		}
		if (seq % clock_every == 0) {
			uint64_t t = now_ns();

			if (!counting && t >= warm_end &&
			    (seq * size >= warm_bytes || t >= warm_limit)) {
				counting = true;
				start = t;
				first_counted = seq;
			} else if (counting && t - start >= measure_ns) {
				stop = t;
				counted = seq - first_counted;
				stopping = true;
				atomic_store_explicit(&control->stop, 1, memory_order_relaxed);
			}
		}
	}
	run_finish_peer(run, &peer);
	if (run->result->status != RESULT_FAILED) {
		run->result->messages += counted;
		run->result->seconds += (double)(stop - start) / 1e9;
	}
out:
	free(x.in);
	free(pattern);
}

/*
 * Datagram-like types refuse messages above their buffer (EMSGSIZE).  Find
 * out before starting a peer, by sending one message to the peer's end
 * without blocking and reading it back there.  True if the run may go on.
 */
static bool probe_message_size(struct run *run, const struct channel *ch)
{
	const size_t size = run->cell->size;
	uint8_t *out = xmalloc(size + 1), *in = xmalloc(size + 1);
	char why[TEXT_LEN];
	bool ok = false;
	ssize_t n;

	fill_pattern(out, size);
	fill_pattern(in, size);
	stamp_message(out, size, 0);
	poison_message(in, size, 0);
	n = usp_send(ch->parent_tx, out, size, MSG_DONTWAIT);
	if (n < 0 && errno == EMSGSIZE) {
		result_unsupported(run->result, "EMSGSIZE: message too long for this socket type");
	} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		ok = true; /* no room without blocking; the run will tell */
	} else if (n < 0) {
		result_fail(run->result, "probe send: %s", strerror(errno));
	} else if ((size_t)n != size) {
		result_fail(run->result, "probe send sent %zd of %zu bytes", n, size);
	} else {
		n = usp_recv(ch->peer_rx, in, size + 1, MSG_DONTWAIT);
		if (n < 0)
			result_fail(run->result, "probe receive: %s", strerror(errno));
		else if ((size_t)n != size)
			result_fail(run->result, "probe received %zd bytes, expected %zu", n, size);
		else if (!verify_message(in, out, size, 0, why, sizeof(why)))
			result_fail(run->result, "probe: %s", why);
		else
			ok = true;
	}
	free(out);
	free(in);
	return ok;
}

static void note_if_not_uspair(struct run *run, int fd)
{
	if (run->impl != IMPL_USPAIR || usp_is_uspair(fd) || run->bench->warned_not_uspair)
		return;
	run->bench->warned_not_uspair = true;
	bench_note(run->bench,
		   "usp_is_uspair() does not recognise descriptors from usp_socketpair(): "
		   "the \"uspair\" figures may be the kernel's");
}

/*
 * Channels of one cell, one per implementation, opened on first use and
 * kept across the rounds (each round forks or starts a new peer on it).
 */
struct cell_channels {
	struct channel channel[IMPL_COUNT];
	bool open[IMPL_COUNT];
	bool used[IMPL_COUNT];
};

static void cell_channels_close(struct cell_channels *channels, enum impl impl)
{
	if (channels->open[impl])
		channel_close(&channels->channel[impl]);
	channels->open[impl] = false;
}

/* Opens the run's channel if needed; false if the run cannot go on. */
static bool run_open_channel(struct run *run, struct cell_channels *channels)
{
	struct channel *ch = &channels->channel[run->impl];
	int rc;

	run->channel = ch;
	run->first_use = !channels->used[run->impl];
	if (channels->open[run->impl])
		return true;
	rc = channel_open(ch, run->impl, run->cell);
	if (rc != 0) {
		if (rc == -EPROTONOSUPPORT || rc == -ESOCKTNOSUPPORT || rc == -EOPNOTSUPP ||
		    rc == -EAFNOSUPPORT)
			result_unsupported(run->result, strerror(-rc));
		else
			result_fail(run->result, "creating the pair: %s", strerror(-rc));
		return false;
	}
	channels->open[run->impl] = true;
	note_if_not_uspair(run, ch->parent_rx);
	if (!run_is_stream(run) && !probe_message_size(run, ch)) {
		cell_channels_close(channels, run->impl);
		return false;
	}
	return true;
}

static void run_two_party(struct run *run, struct cell_channels *channels)
{
	if (!run_open_channel(run, channels))
		return;
	if (run->cell->test == TEST_THROUGHPUT)
		run_throughput(run, run->channel);
	else
		run_round_trips(run, run->channel);
	channels->used[run->impl] = true;
	/* After a failure the channel's state is unknown: no more rounds. */
	if (run->result->status == RESULT_FAILED)
		cell_channels_close(channels, run->impl);
}

static bool floor_ping(uint64_t seq)
{
	const uint64_t request = 2 * seq + 1;
	unsigned spins = 0;

	atomic_store_explicit(&control->floor_word, request, memory_order_release);
	while (atomic_load_explicit(&control->floor_word, memory_order_acquire) != request + 1) {
		cpu_relax();
		if (++spins == FLOOR_SPINS_BEFORE_YIELD) {
			spins = 0;
			if (watchdog_fired)
				return false;
			sched_yield();
		}
	}
	return true;
}

/* The floor: the same round trip as TEST_RTT through one shared word. */
static void run_floor(struct run *run)
{
	struct histogram *hist = run->latency;
	struct peer_job job = { .test = TEST_FLOOR };
	struct peer peer;
	uint64_t seq = 0, warm_end, previous, end;
	bool ok = true;

	control_reset();
	if (!start_peer_or_fail(run, &peer, &job))
		return;
	warm_end = now_ns() + seconds_to_ns(run->warmup_s);
	while (ok && now_ns() < warm_end)
		ok = floor_ping(seq++);
	previous = now_ns();
	end = previous + seconds_to_ns(run->measure_s);
	while (ok) {
		uint64_t finish;

		ok = floor_ping(seq++);
		finish = now_ns();
		if (!ok)
			break;
		histogram_add(hist, finish - previous);
		previous = finish;
		if (finish >= end)
			break;
	}
	if (!ok)
		result_fail(run->result, "timed out waiting for the peer's answer");
	atomic_store_explicit(&control->floor_word, FLOOR_STOP, memory_order_release);
	run_finish_peer(run, &peer);
}

/* One byte each way through a fresh pair: the pair works. */
static bool pair_carries_bytes(int sv[2], uint8_t seq, char *why, size_t why_len)
{
	uint8_t out = (uint8_t)(seq ^ 0x5a), in = (uint8_t)~out;

	for (int side = 0; side < 2; side++) {
		if (usp_write(sv[side], &out, 1) != 1) {
			snprintf(why, why_len, "write on a fresh pair: %s", strerror(errno));
			return false;
		}
		if (usp_read(sv[1 - side], &in, 1) != 1) {
			snprintf(why, why_len, "read on a fresh pair: %s", strerror(errno));
			return false;
		}
		if (in != out) {
			snprintf(why, why_len, "a fresh pair delivered 0x%02x for 0x%02x", in, out);
			return false;
		}
		out = (uint8_t)(out + 1);
		in = (uint8_t)~out;
	}
	return true;
}

static bool close_pair(int sv[2], char *why, size_t why_len)
{
	bool ok = true;

	for (int i = 0; i < 2; i++) {
		if (usp_close(sv[i]) != 0 && ok) {
			snprintf(why, why_len, "close: %s", strerror(errno));
			ok = false;
		}
	}
	return ok;
}

/* socketpair() + close() of both ends, in a loop. */
static void run_create_close(struct run *run)
{
	const unsigned batch = 32;
	char why[TEXT_LEN];
	uint64_t count = 0, start, finish, warm_end;
	int sv[2];
	int rc;

	rc = open_pair(run->cell, run->impl, sv);
	if (rc != 0) {
		result_fail(run->result, "socketpair: %s", strerror(-rc));
		return;
	}
	note_if_not_uspair(run, sv[0]);
	if (!pair_carries_bytes(sv, 0, why, sizeof(why))) {
		result_fail(run->result, "%s", why);
		close_pair(sv, why, sizeof(why));
		return;
	}
	if (!close_pair(sv, why, sizeof(why))) {
		result_fail(run->result, "%s", why);
		return;
	}

	warm_end = now_ns() + seconds_to_ns(run->warmup_s);
	start = now_ns();
	for (bool warming = true;;) {
		for (unsigned i = 0; i < batch; i++) {
			rc = open_pair(run->cell, run->impl, sv);
			if (rc != 0) {
				result_fail(run->result, "socketpair: %s", strerror(-rc));
				return;
			}
			if (!close_pair(sv, why, sizeof(why))) {
				result_fail(run->result, "%s", why);
				return;
			}
		}
		finish = now_ns();
		if (warming) {
			if (finish >= warm_end) {
				warming = false;
				start = finish;
			}
			continue;
		}
		count += batch;
		if (finish - start >= seconds_to_ns(run->measure_s))
			break;
	}
	run->result->messages += count;
	run->result->seconds += (double)(finish - start) / 1e9;
}

/* ------------------------------------------------------------------------
 * Memory per idle pair
 * --------------------------------------------------------------------- */

struct memory_snapshot {
	double rss_kib, pss_kib, virt_kib, slab_kib;
};

/* The value in kB of the line that starts with key, or NaN. */
static double read_kib_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	size_t key_len = strlen(key);
	char line[256];
	double value = NAN;

	if (!f)
		return NAN;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, key_len) == 0) {
			value = strtod(line + key_len, NULL);
			break;
		}
	}
	fclose(f);
	return value;
}

static void memory_snapshot_take(struct memory_snapshot *s)
{
	s->rss_kib = read_kib_field("/proc/self/smaps_rollup", "Rss:");
	s->pss_kib = read_kib_field("/proc/self/smaps_rollup", "Pss:");
	if (isnan(s->rss_kib))
		s->rss_kib = read_kib_field("/proc/self/status", "VmRSS:");
	s->virt_kib = read_kib_field("/proc/self/status", "VmSize:");
	s->slab_kib = read_kib_field("/proc/meminfo", "Slab:");
}

static void memory_per_pair(struct memory_per_pair *out, const struct memory_snapshot *before,
			    const struct memory_snapshot *after, unsigned pairs)
{
	out->rss_kib = (after->rss_kib - before->rss_kib) / pairs;
	out->pss_kib = (after->pss_kib - before->pss_kib) / pairs;
	out->virt_kib = (after->virt_kib - before->virt_kib) / pairs;
	out->slab_kib = (after->slab_kib - before->slab_kib) / pairs;
}

/*
 * RSS growth of one pair that has carried BULK_BYTES one way: a kernel
 * socket frees its buffers as they are read; shared memory stays resident
 * once touched.  The peer is a thread, so its touches count in this
 * process's RSS; the first messages warm up both sides' buffers and stacks.
 */
#define BULK_BYTES (64u << 20)
#define BULK_MESSAGE (64u << 10)
#define BULK_WARMUP_MESSAGES 4

static bool measure_bulk_rss(struct run *run, double *rss_kib, char *why, size_t why_len)
{
	struct channel ch;
	struct peer peer;
	struct peer_job job = {
		.test = TEST_THROUGHPUT,
		.stream = run->cell->socktype == SOCK_STREAM,
		.size = BULK_MESSAGE,
	};
	uint8_t *in = xmalloc(BULK_MESSAGE + 1), *pattern = xmalloc(BULK_MESSAGE + 1);
	struct memory_snapshot before, after;
	bool stopping = false, ok = true;
	int rc = channel_open(&ch, run->impl, run->cell);

	if (rc != 0) {
		snprintf(why, why_len, "socketpair: %s", strerror(-rc));
		free(in);
		free(pattern);
		return false;
	}
	fill_pattern(pattern, BULK_MESSAGE);
	job.rx_fd = ch.peer_rx;
	job.tx_fd = ch.peer_tx;
	control_reset();
	rc = peer_start(&peer, PEER_THREAD, &job);
	if (rc != 0) {
		snprintf(why, why_len, "starting the writer thread: %s", strerror(-rc));
		ok = false;
	}
	for (uint64_t seq = 0; ok; seq++) {
		poison_message(in, BULK_MESSAGE, seq);
		if (receive_message(ch.parent_rx, in, BULK_MESSAGE, job.stream, why, why_len) != IO_OK ||
		    !verify_message(in, pattern, BULK_MESSAGE, seq, why, why_len)) {
			ok = false;
			break;
		}
		if (stopping) {
			if (atomic_load_explicit(&control->sender_done, memory_order_acquire) &&
			    seq == atomic_load_explicit(&control->final_seq, memory_order_relaxed))
				break;
			continue;
		}
		if (seq + 1 == BULK_WARMUP_MESSAGES)
			memory_snapshot_take(&before);
		if ((seq + 1) * BULK_MESSAGE >= BULK_BYTES) {
			memory_snapshot_take(&after);
			stopping = true;
			atomic_store(&control->stop, 1);
		}
	}
	if (!ok && peer.started)
		unblock_peer(&ch, BULK_MESSAGE, !job.stream);
	if (peer.started && !peer_join(&peer, run->label, why, why_len))
		ok = false;
	if (ok && atomic_load(&control->peer_failed)) {
		snprintf(why, why_len, "%.180s", control->peer_error);
		ok = false;
	}
	channel_close(&ch);
	free(in);
	free(pattern);
	if (ok)
		*rss_kib = after.rss_kib - before.rss_kib;
	return ok;
}

/* Create many pairs, read the process's memory; then use each once and
 * read it again. */
static void run_memory(struct run *run)
{
	const unsigned wanted = (unsigned)run->cell->size;
	int (*pairs)[2] = xcalloc(wanted, sizeof(*pairs));
	struct memory_snapshot before, idle, used;
	char why[TEXT_LEN];
	unsigned created = 0;
	int rc = 0;
	int sv[2];

	/* The library's one-time set-up is not a pair's cost. */
	rc = open_pair(run->cell, run->impl, sv);
	if (rc != 0) {
		result_fail(run->result, "socketpair: %s", strerror(-rc));
		free(pairs);
		return;
	}
	note_if_not_uspair(run, sv[0]);
	close_pair(sv, why, sizeof(why));

	/* Sockets closed by earlier tests go back to the slab a little later
	 * (RCU); let that settle so that the kernel's figure means something. */
	sleep_us(MEMORY_SETTLE_US);
	memory_snapshot_take(&before);
	while (created < wanted) {
		rc = open_pair(run->cell, run->impl, pairs[created]);
		if (rc != 0)
			break;
		created++;
	}
	memory_snapshot_take(&idle);
	if (created == 0) {
		result_fail(run->result, "socketpair: %s", strerror(-rc));
		free(pairs);
		return;
	}
	if (created < wanted)
		snprintf(run->result->note, sizeof(run->result->note),
			 "only %u of %u pairs could be made: %s", created, wanted, strerror(-rc));
	for (unsigned i = 0; i < created; i++) {
		if (!pair_carries_bytes(pairs[i], (uint8_t)i, why, sizeof(why))) {
			result_fail(run->result, "pair %u: %s", i, why);
			break;
		}
	}
	memory_snapshot_take(&used);
	for (unsigned i = 0; i < created; i++)
		close_pair(pairs[i], why, sizeof(why));
	free(pairs);

	run->result->pairs = created;
	memory_per_pair(&run->result->idle, &before, &idle, created);
	memory_per_pair(&run->result->used, &before, &used, created);
	run->result->bulk_rss_kib = NAN;
	if (run->result->status != RESULT_FAILED &&
	    !measure_bulk_rss(run, &run->result->bulk_rss_kib, why, sizeof(why)))
		result_fail(run->result, "one pair carrying %u MiB: %s", BULK_BYTES >> 20, why);
}

/* ------------------------------------------------------------------------
 * Background load: how much CPU time other processes (and the hypervisor)
 * took during the run.  On two CPUs, anything else running shows in the
 * figures, spinning ones most.
 * --------------------------------------------------------------------- */

struct cpu_usage {
	double busy_s;  /* all CPUs, everybody */
	double steal_s; /* hypervisor steal */
	double own_s;   /* this process, its threads and its reaped children */
	uint64_t wall_ns;
};

static void cpu_usage_take(struct cpu_usage *u)
{
	unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
			   softirq = 0, steal = 0;
	double tick = (double)sysconf(_SC_CLK_TCK);
	struct rusage self, children;
	FILE *f = fopen("/proc/stat", "r");

	memset(u, 0, sizeof(*u));
	u->wall_ns = now_ns();
	if (f) {
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
			   &idle, &iowait, &irq, &softirq, &steal) < 4)
			user = nice = system = irq = softirq = steal = 0;
		fclose(f);
	}
	u->busy_s = (double)(user + nice + system + irq + softirq) / tick;
	u->steal_s = (double)steal / tick;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	u->own_s = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec +
			    children.ru_utime.tv_sec + children.ru_stime.tv_sec) +
		   (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec +
			    children.ru_utime.tv_usec + children.ru_stime.tv_usec) / 1e6;
}

static void note_background_load(struct bench *b, const struct cpu_usage *start)
{
	struct cpu_usage end;
	double wall_s;

	cpu_usage_take(&end);
	wall_s = (double)(end.wall_ns - start->wall_ns) / 1e9;
	if (wall_s <= 0)
		return;
	b->other_cpus = ((end.busy_s - start->busy_s) - (end.own_s - start->own_s)) / wall_s;
	if (b->other_cpus < 0)
		b->other_cpus = 0;
	b->steal_cpus = (end.steal_s - start->steal_s) / wall_s;
	if (b->other_cpus >= BUSY_MACHINE_CPUS)
		bench_note(b,
			   "other processes used %.2f CPUs on average during the run: the figures "
			   "are noisy, and spinning ones (uspair, the floor) suffer most",
			   b->other_cpus);
	if (b->steal_cpus >= BUSY_MACHINE_CPUS)
		bench_note(b, "the hypervisor took %.2f CPUs on average (steal time)", b->steal_cpus);
}

/* Enough descriptors for the memory test (each pair takes two). */
static void raise_descriptor_limit(unsigned pairs)
{
	struct rlimit limit;
	rlim_t wanted = (rlim_t)pairs * 2 + 256;

	if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted)
		return;
	limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > wanted
				 ? wanted
				 : limit.rlim_max;
	setrlimit(RLIMIT_NOFILE, &limit);
}

/* ------------------------------------------------------------------------
 * Plan and execution
 * --------------------------------------------------------------------- */

static const int socktypes[] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM };
static const unsigned socktype_bits[] = { BENCH_TYPE_STREAM, BENCH_TYPE_SEQPACKET,
					  BENCH_TYPE_DGRAM };
#define SOCKTYPE_COUNT (sizeof(socktypes) / sizeof(socktypes[0]))

/* AF_TIPC: the order of bench.kernel_tipc_errno[] */
static const int tipc_types[TIPC_TYPE_COUNT] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_RDM,
						  SOCK_DGRAM };
static const unsigned tipc_type_bits[TIPC_TYPE_COUNT] = { BENCH_TYPE_STREAM, BENCH_TYPE_SEQPACKET,
							  BENCH_TYPE_RDM, BENCH_TYPE_DGRAM };

static const size_t default_rtt_sizes[] = { 1, 64, 4096 };
static const size_t default_throughput_sizes[] = { 64, 4096, 65536, 1u << 20 };
/* AF_TIPC: no 1 MiB (a TIPC message holds at most 66000 bytes) */
static const size_t default_tipc_throughput_sizes[] = { 64, 4096, 65536 };

static int tipc_type_index(int socktype)
{
	for (int i = 0; i < TIPC_TYPE_COUNT; i++)
		if (tipc_types[i] == socktype)
			return i;
	return 0;
}

/*
 * The kernel's pair an AF_TIPC cell is measured against: its AF_TIPC pair
 * of the same type if socketpair(AF_TIPC) works on this kernel (asked once
 * per type), otherwise its AF_UNIX pair of the same type, SEQPACKET for
 * RDM (reliable messages, as RDM's are on one node).
 */
static void plan_reference(struct bench *b, struct cell *c)
{
	int *err = &b->kernel_tipc_errno[tipc_type_index(c->socktype)];

	c->ref_family = c->family;
	c->ref_socktype = c->socktype;
	if (c->family != AF_TIPC)
		return;
	if (*err < 0) {
		int sv[2];

		if (socketpair(AF_TIPC, c->socktype, 0, sv) == 0) {
			*err = 0;
			close(sv[0]);
			close(sv[1]);
		} else {
			*err = errno;
		}
	}
	if (*err != 0) {
		c->ref_family = AF_UNIX;
		c->ref_socktype = c->socktype == SOCK_RDM ? SOCK_SEQPACKET : c->socktype;
	}
}

/* The power of two at or above n. */
static size_t round_up_pow2(size_t n)
{
	size_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/*
 * The credit window of an AF_TIPC RDM/DGRAM throughput cell, from the
 * SO_RCVBUF of uspair's TIPC socket of that type (the kernel's TIPC socket
 * has the same default): half of it in messages counted at more than their
 * truesize, so that the queue never overflows.
 */
static void plan_credit(struct cell *c)
{
	size_t per_message =
		round_up_pow2(c->size + CREDIT_MESSAGE_OVERHEAD) + CREDIT_MESSAGE_OVERHEAD;
	int rcvbuf = 0, sv[2];
	socklen_t len = sizeof(rcvbuf);
	size_t window;

	if (usp_socketpair(AF_TIPC, c->socktype, 0, sv) == 0) {
		if (usp_getsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) != 0)
			rcvbuf = 0;
		usp_close(sv[0]);
		usp_close(sv[1]);
	}
	if (rcvbuf <= 0)
		rcvbuf = TIPC_DEFAULT_RCVBUF;
	window = (size_t)rcvbuf / 2 / per_message;
	if (window < 1)
		window = 1;
	if (window > CREDIT_MAX_WINDOW)
		window = CREDIT_MAX_WINDOW;
	c->credit_window = (unsigned)window;
	c->credit_every = c->credit_window / 4 ? c->credit_window / 4 : 1;
}

static struct cell *plan_add(struct bench *b, enum test_kind test, int family, int socktype,
			     size_t size, enum peer_kind peer)
{
	struct cell *c;

	if (b->cell_count == b->cell_capacity) {
		b->cell_capacity = b->cell_capacity ? 2 * b->cell_capacity : 32;
		b->cells = realloc(b->cells, b->cell_capacity * sizeof(*b->cells));
		if (!b->cells) {
			fprintf(stderr, "uspair bench: out of memory\n");
			exit(1);
		}
	}
	c = &b->cells[b->cell_count++];
	memset(c, 0, sizeof(*c));
	c->test = test;
	c->family = family;
	c->socktype = socktype;
	c->size = size;
	c->peer = peer;
	c->duration_s = family == AF_TIPC ? b->tipc_duration_s : b->duration_s;
	plan_reference(b, c);
	if (family == AF_TIPC && test == TEST_THROUGHPUT &&
	    (socktype == SOCK_RDM || socktype == SOCK_DGRAM))
		plan_credit(c);
	if (test == TEST_FLOOR) {
		c->impls = 1u << IMPL_SHM;
	} else {
		c->impls = 1u << IMPL_KERNEL | 1u << IMPL_USPAIR;
		/* A pipe is a byte stream: it stands beside AF_UNIX STREAM only. */
		if (test_has_peer(test) && family == AF_UNIX && socktype == SOCK_STREAM &&
		    !b->options->check)
			c->impls |= 1u << IMPL_PIPE;
	}
	return c;
}

static void plan_sizes(const struct bench *b, const size_t *defaults, size_t default_count,
		       const size_t **sizes, size_t *count)
{
	if (b->options->size_count > 0) {
		*sizes = b->options->sizes;
		*count = b->options->size_count;
	} else {
		*sizes = defaults;
		*count = default_count;
	}
}

/* The types of one family to measure, in the order of their rows. */
struct plan_family {
	int family;
	const int *types;
	const unsigned *bits;
	size_t count;
	const size_t *tput_sizes;
	size_t tput_count;
};

/* Rows of one test for each selected type of a family, size by size. */
static void plan_types(struct bench *b, const struct plan_family *f, enum test_kind test,
		       const size_t *sizes, size_t size_count, enum peer_kind peer)
{
	for (size_t t = 0; t < f->count; t++)
		if (b->options->types & f->bits[t])
			for (size_t s = 0; s < size_count; s++)
				plan_add(b, test, f->family, f->types[t], sizes[s], peer);
}

static void plan_build(struct bench *b)
{
	static const size_t no_size = 0;
	const struct bench_options *o = b->options;
	const size_t *rtt_sizes;
	size_t rtt_count, smallest, family_count = 0;
	enum peer_kind peers[2] = { PEER_PROCESS, PEER_THREAD };
	size_t peer_count = o->threads ? 2 : 1;
	struct plan_family families[2];

	plan_sizes(b, default_rtt_sizes, sizeof(default_rtt_sizes) / sizeof(size_t), &rtt_sizes,
		   &rtt_count);
	smallest = rtt_sizes[0];
	for (size_t i = 1; i < rtt_count; i++)
		if (rtt_sizes[i] < smallest)
			smallest = rtt_sizes[i];
	if (o->families & BENCH_FAMILY_UNIX) {
		struct plan_family *f = &families[family_count++];

		f->family = AF_UNIX;
		f->types = socktypes;
		f->bits = socktype_bits;
		f->count = SOCKTYPE_COUNT;
		plan_sizes(b, default_throughput_sizes,
			   sizeof(default_throughput_sizes) / sizeof(size_t), &f->tput_sizes,
			   &f->tput_count);
	}
	if (o->families & BENCH_FAMILY_TIPC) {
		struct plan_family *f = &families[family_count++];

		f->family = AF_TIPC;
		f->types = tipc_types;
		f->bits = tipc_type_bits;
		/* TIPC DGRAM (last) only when asked for: it is RDM with other
		 * defaults, and the default run must stay within a minute */
		f->count = o->types_given ? TIPC_TYPE_COUNT : TIPC_TYPE_COUNT - 1;
		plan_sizes(b, default_tipc_throughput_sizes,
			   sizeof(default_tipc_throughput_sizes) / sizeof(size_t), &f->tput_sizes,
			   &f->tput_count);
	}

	if (o->check) {
		if (o->families & BENCH_FAMILY_UNIX) {
			for (size_t p = 0; p < peer_count; p++) {
				plan_add(b, TEST_RTT, AF_UNIX, SOCK_STREAM, 1, peers[p]);
				/* two busy sides once settled into waking each
				 * other at this size (60 us round trips instead
				 * of 3) */
				plan_add(b, TEST_RTT, AF_UNIX, SOCK_STREAM, 4096, peers[p]);
				plan_add(b, TEST_THROUGHPUT, AF_UNIX, SOCK_STREAM, 65536, peers[p]);
			}
			plan_add(b, TEST_SLEEP, AF_UNIX, SOCK_STREAM, 1, PEER_PROCESS);
			plan_add(b, TEST_CREATE, AF_UNIX, SOCK_STREAM, 0, PEER_PROCESS);
		}
		/* TIPC's hot path: flow control, acknowledgements, Nagle */
		if (o->families & BENCH_FAMILY_TIPC)
			plan_add(b, TEST_RTT, AF_TIPC, SOCK_STREAM, 1, PEER_PROCESS);
		return;
	}

	for (size_t p = 0; p < peer_count; p++) {
		if ((o->modes & BENCH_MODE_SPIN) && (o->tests & BENCH_TEST_RTT)) {
			size_t floor_cell = b->cell_count;

			plan_add(b, TEST_FLOOR, AF_UNIX, 0, sizeof(uint64_t), peers[p]);
			for (size_t f = 0; f < family_count; f++)
				plan_types(b, &families[f], TEST_RTT, rtt_sizes, rtt_count,
					   peers[p]);
			/* the floor stands beside round trips only (none: --type rdm
			 * --family unix) */
			if (b->cell_count == floor_cell + 1)
				b->cell_count = floor_cell;
		}
		if ((o->modes & BENCH_MODE_SPIN) && (o->tests & BENCH_TEST_THROUGHPUT))
			for (size_t f = 0; f < family_count; f++)
				plan_types(b, &families[f], TEST_THROUGHPUT, families[f].tput_sizes,
					   families[f].tput_count, peers[p]);
		if ((o->modes & BENCH_MODE_SLEEP) && (o->tests & BENCH_TEST_RTT))
			for (size_t f = 0; f < family_count; f++)
				plan_types(b, &families[f], TEST_SLEEP, &smallest, 1, peers[p]);
	}
	/* Memory (AF_UNIX) before socketpair+close: the latter leaves the
	 * kernel freeing thousands of sockets for a while after. */
	if (o->families & BENCH_FAMILY_UNIX)
		for (size_t t = 0; t < SOCKTYPE_COUNT; t++)
			if ((o->types & socktype_bits[t]) && (o->tests & BENCH_TEST_MEMORY))
				plan_add(b, TEST_MEMORY, AF_UNIX, socktypes[t], b->memory_pairs,
					 PEER_PROCESS);
	if (o->tests & BENCH_TEST_CREATE)
		for (size_t f = 0; f < family_count; f++)
			plan_types(b, &families[f], TEST_CREATE, &no_size, 1, PEER_PROCESS);
}

/* --verbose: what one run measured, on stderr. */
static void print_run_figures(const struct run *run, uint64_t messages, double seconds)
{
	const struct impl_result *r = run->result;
	char a[32], b[32], c[32];

	if (r->status == RESULT_FAILED || r->status == RESULT_UNSUPPORTED) {
		fprintf(stderr, "    %-6s %s: %s\n", impl_names[run->impl], status_names[r->status],
			r->error);
		return;
	}
	switch (run->cell->test) {
	case TEST_FLOOR:
	case TEST_RTT:
	case TEST_SLEEP:
		format_us(a, sizeof(a), histogram_quantile(run->latency, 0.50));
		format_us(b, sizeof(b), histogram_quantile(run->latency, 0.99));
		format_us(c, sizeof(c), histogram_quantile(run->latency, 0.999));
		fprintf(stderr, "    %-6s p50 %s  p99 %s  p99.9 %s us  (%" PRIu64 " samples)\n",
			impl_names[run->impl], a, b, c, run->latency->total);
		break;
	case TEST_THROUGHPUT:
		format_count(a, sizeof(a), (double)messages / seconds);
		fprintf(stderr, "    %-6s %s msgs/s  %.3f GB/s  (%.3f s)\n", impl_names[run->impl], a,
			(double)messages * (double)run->cell->size / seconds / 1e9, seconds);
		break;
	case TEST_CREATE:
		fprintf(stderr, "    %-6s %.0f ns per pair\n", impl_names[run->impl],
			seconds * 1e9 / (double)messages);
		break;
	case TEST_MEMORY:
		fprintf(stderr, "    %-6s %u pairs\n", impl_names[run->impl], r->pairs);
		break;
	}
}

static void run_once(struct bench *b, struct cell *c, enum impl impl, double round_s,
		     struct cell_channels *channels)
{
	struct impl_result *result = &c->result[impl];
	const uint64_t messages_before = result->messages;
	const double seconds_before = result->seconds;
	struct run run = {
		.bench = b,
		.cell = c,
		.impl = impl,
		.result = result,
		.latency = b->run_latency,
		.measure_s = round_s,
		.warmup_s = fmin(MAX_WARMUP_S, round_s / 4),
		.first_warmup_s = fmin(FIRST_WARMUP_MAX_S, c->duration_s / 2),
	};
	double planned_s = run.warmup_s + round_s;

	cell_label(run.label, sizeof(run.label), c);
	snprintf(run.label + strlen(run.label), sizeof(run.label) - strlen(run.label), " (%s)",
		 impl_names[impl]);
	if (c->test == TEST_THROUGHPUT)
		planned_s += run.first_warmup_s;
	if (c->test == TEST_SLEEP)
		planned_s += SLEEP_WARMUP_EXCHANGES * b->options->sleep_gap_us * 2e-6;
	if (c->test == TEST_MEMORY)
		planned_s = 30.0;
	watchdog_arm(planned_s + WATCHDOG_GRACE_S, run.label);
	switch (c->test) {
	case TEST_FLOOR:
		run_floor(&run);
		break;
	case TEST_RTT:
	case TEST_SLEEP:
	case TEST_THROUGHPUT:
		run_two_party(&run, channels);
		break;
	case TEST_CREATE:
		run_create_close(&run);
		break;
	case TEST_MEMORY:
		run_memory(&run);
		break;
	}
	watchdog_disarm();
	if (result->status == RESULT_NOT_RUN)
		result->status = RESULT_OK;
	if (result->latency)
		histogram_merge(result->latency, run.latency);
	if (b->options->verbose)
		print_run_figures(&run, result->messages - messages_before,
				  result->seconds - seconds_before);
	memset(run.latency, 0, sizeof(*run.latency));
}

static void cell_reset(struct cell *c)
{
	for (unsigned i = 0; i < IMPL_COUNT; i++) {
		struct histogram *latency = c->result[i].latency;

		memset(&c->result[i], 0, sizeof(c->result[i]));
		if (latency) {
			memset(latency, 0, sizeof(*latency));
			c->result[i].latency = latency;
		}
	}
}

static void run_cell(struct bench *b, struct cell *c)
{
	enum impl order[IMPL_COUNT];
	unsigned count = 0, rounds = b->rounds;
	double round_s = c->duration_s / rounds;
	struct cell_channels channels;

	for (unsigned i = 0; i < IMPL_COUNT; i++) {
		if (!(c->impls & 1u << i))
			continue;
		order[count++] = (enum impl)i;
		if (test_is_latency(c->test) && !c->result[i].latency)
			c->result[i].latency = xcalloc(1, sizeof(struct histogram));
	}
	if (c->test == TEST_MEMORY)
		rounds = 1; /* a snapshot, not a rate */
	if (c->test == TEST_CREATE)
		round_s /= 2; /* a quick loop; half the time is plenty */
	memset(&channels, 0, sizeof(channels));

	for (unsigned round = 0; round < rounds; round++) {
		for (unsigned k = 0; k < count; k++) {
			enum impl impl = order[(k + round) % count];
			enum result_status status = c->result[impl].status;

			if (status == RESULT_FAILED || status == RESULT_UNSUPPORTED)
				continue;
			run_once(b, c, impl, round_s, &channels);
		}
	}
	for (unsigned i = 0; i < IMPL_COUNT; i++)
		cell_channels_close(&channels, (enum impl)i);
}

/* ------------------------------------------------------------------------
 * Table
 * --------------------------------------------------------------------- */

static bool bench_has_tipc(const struct bench *b)
{
	for (size_t i = 0; i < b->cell_count; i++)
		if (b->cells[i].family == AF_TIPC)
			return true;
	return false;
}

/*
 * What the AF_TIPC rows were measured against: the kernel's AF_TIPC pair,
 * or its AF_UNIX pair when socketpair(AF_TIPC) fails here (and why); type
 * by type if the kernel answered differently for different types.
 */
static void tipc_reference_text(const struct bench *b, char *buf, size_t len)
{
	int asked = 0, unix_count = 0, first_err = 0;
	bool same_err = true;
	size_t used;

	for (int i = 0; i < TIPC_TYPE_COUNT; i++) {
		int err = b->kernel_tipc_errno[i];

		if (err < 0)
			continue;
		asked++;
		if (err == 0)
			continue;
		if (unix_count++ == 0)
			first_err = err;
		else if (err != first_err)
			same_err = false;
	}
	if (unix_count == 0) {
		snprintf(buf, len, "the kernel's AF_TIPC pair of the same type");
		return;
	}
	if (unix_count == asked && same_err) {
		snprintf(buf, len,
			 "the kernel's AF_UNIX pair of the same type, SEQPACKET for RDM (no TIPC in "
			 "this kernel: socketpair(AF_TIPC): %s)",
			 strerror(first_err));
		return;
	}
	used = (size_t)snprintf(buf, len, "the kernel's pair, per type:");
	for (int i = 0; i < TIPC_TYPE_COUNT && used < len; i++) {
		int err = b->kernel_tipc_errno[i];

		if (err < 0)
			continue;
		used += (size_t)snprintf(buf + used, len - used, " %s AF_%s%s%s%s;",
					 socktype_name(tipc_types[i]), err ? "UNIX (" : "TIPC",
					 err ? "socketpair(AF_TIPC): " : "", err ? strerror(err) : "",
					 err ? ")" : "");
	}
}

static bool tipc_reference_differs(const struct bench *b)
{
	for (size_t i = 0; i < b->cell_count; i++)
		if (cell_reference_differs(&b->cells[i]))
			return true;
	return false;
}

static void print_system_header(const struct bench *b, FILE *out)
{
	struct utsname uts;

	if (uname(&uts) != 0)
		snprintf(uts.release, sizeof(uts.release), "?");
	fprintf(out,
		"uspair bench (uspair %d.%d): Linux %s, %ld CPUs; other processes used %.2f CPUs "
		"during the run, steal %.2f\n",
		USPAIR_VERSION_MAJOR, USPAIR_VERSION_MINOR, uts.release,
		sysconf(_SC_NPROCESSORS_ONLN), b->other_cpus, b->steal_cpus);
	fprintf(out,
		"%u round%s; every implementation measured %.2f s per row (%.3f s per round, "
		"after a warm-up); peers: %s\n",
		b->rounds, b->rounds == 1 ? "" : "s", b->duration_s, b->duration_s / b->rounds,
		b->options->threads ? "process and thread" : "process");
	if (bench_has_tipc(b)) {
		char reference[TEXT_LEN];

		tipc_reference_text(b, reference, sizeof(reference));
		fprintf(out, "AF_TIPC rows: %.3g s per row; kernel reference%s: %s\n",
			b->tipc_duration_s, tipc_reference_differs(b) ? " (kernel*)" : "",
			reference);
	}
}

static const char *status_text(const struct impl_result *r)
{
	switch (r->status) {
	case RESULT_UNSUPPORTED:
		return "n/a";
	case RESULT_FAILED:
		return "FAILED";
	case RESULT_NOT_RUN:
		return "not run";
	default:
		return "";
	}
}

/* "family type size peer" columns, shown on the first row of a cell only. */
static void print_cell_key(FILE *out, const struct cell *c, bool first)
{
	char size[32];

	if (!first) {
		fprintf(out, "%-6s %-9s %6s %-7s ", "", "", "", "");
		return;
	}
	if (c->test == TEST_FLOOR)
		snprintf(size, sizeof(size), "8B");
	else
		format_size(size, sizeof(size), c->size);
	fprintf(out, "%-6s %-9s %6s %-7s ", c->test == TEST_FLOOR ? "" : family_name(c->family),
		c->test == TEST_FLOOR ? "shm-floor" : socktype_name(c->socktype), size,
		peer_names[c->peer]);
}

/* Under a section with kernel* rows: what they are. */
static void print_reference_footnote(const struct bench *b, FILE *out, enum test_kind test)
{
	char reference[TEXT_LEN];

	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];

		if (c->test == test && cell_reference_differs(c)) {
			tipc_reference_text(b, reference, sizeof(reference));
			fprintf(out, "kernel* (tipc rows): %s\n", reference);
			return;
		}
	}
}

static void print_error_suffix(FILE *out, const struct impl_result *r)
{
	if (r->status == RESULT_FAILED || r->status == RESULT_UNSUPPORTED)
		fprintf(out, "  %s: %s", status_text(r), r->error);
}

static void print_latency_section(const struct bench *b, FILE *out, bool sleeping)
{
	bool any = false;

	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];
		bool first = true;

		if (sleeping ? c->test != TEST_SLEEP : (c->test != TEST_RTT && c->test != TEST_FLOOR))
			continue;
		if (!any) {
			if (sleeping)
				fprintf(out,
					"\nROUND-TRIP LATENCY, SLEEPING READER (us; the sender pauses %u us "
					"before each ping)\n",
					b->options->sleep_gap_us);
			else
				fprintf(out, "\nROUND-TRIP LATENCY, BACK TO BACK (us; shm-floor = two "
					     "sides spinning on one shared atomic)\n");
			fprintf(out, "%-6s %-9s %6s %-7s %-9s %9s %9s", "family", "type", "size",
				"peer", "impl", "p50", "p99");
			if (!sleeping)
				fprintf(out, " %9s", "p99.9");
			fprintf(out, " %10s\n", "samples");
			any = true;
		}
		for (unsigned impl = 0; impl < IMPL_COUNT; impl++) {
			const struct impl_result *r = &c->result[impl];
			char p50[32], p99[32], p999[32];

			if (!(c->impls & 1u << impl))
				continue;
			print_cell_key(out, c, first);
			first = false;
			format_us(p50, sizeof(p50), result_latency(r, 0.50));
			format_us(p99, sizeof(p99), result_latency(r, 0.99));
			format_us(p999, sizeof(p999), result_latency(r, 0.999));
			fprintf(out, "%-9s %9s %9s", impl_label(c, impl), p50, p99);
			if (!sleeping)
				fprintf(out, " %9s", p999);
			fprintf(out, " %10" PRIu64, r->latency ? r->latency->total : 0);
			print_error_suffix(out, r);
			fputc('\n', out);
		}
		if (c->impls & 1u << IMPL_USPAIR) {
			char r50[32], r99[32], r999[32];
			double speedup = cell_latency_speedup(c, 0.50);

			format_ratio(r50, sizeof(r50), speedup);
			format_ratio(r99, sizeof(r99), cell_latency_speedup(c, 0.99));
			format_ratio(r999, sizeof(r999), cell_latency_speedup(c, 0.999));
			print_cell_key(out, c, false);
			fprintf(out, "%-9s %9s %9s", "x faster", r50, r99);
			if (!sleeping)
				fprintf(out, " %9s", r999);
			fprintf(out, "%s\n", speedup < SLOWER_THAN_KERNEL ? "  (uspair slower)" : "");
		}
	}
	if (any)
		print_reference_footnote(b, out, sleeping ? TEST_SLEEP : TEST_RTT);
}

/* Under the throughput section: the credit windows of TIPC RDM/DGRAM. */
static void print_credit_footnote(const struct bench *b, FILE *out)
{
	bool any = false;

	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];
		char size[32];

		if (c->test != TEST_THROUGHPUT || !c->credit_window)
			continue;
		if (!any)
			fprintf(out, "tipc rdm/dgram (they drop what overflows the receiver's "
				     "queue): the receiver acknowledges every N\nmessages, the "
				     "sender waits while W are unacknowledged, both implementations "
				     "alike:");
		format_size(size, sizeof(size), c->size);
		fprintf(out, "%s %s %s W=%u N=%u", any ? "," : "", socktype_name(c->socktype), size,
			c->credit_window, c->credit_every);
		any = true;
	}
	if (any)
		fputc('\n', out);
}

static void print_throughput_section(const struct bench *b, FILE *out)
{
	bool any = false;

	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];
		bool first = true;
		char ratio[32];
		double r;

		if (c->test != TEST_THROUGHPUT)
			continue;
		if (!any) {
			fprintf(out, "\nONE-WAY THROUGHPUT (GB = 10^9 bytes; \"x kernel\" = uspair / "
				     "kernel)\n");
			fprintf(out, "%-6s %-9s %6s %-7s %-9s %9s %9s\n", "family", "type", "size",
				"peer", "impl", "msgs/s", "GB/s");
			any = true;
		}
		for (unsigned impl = 0; impl < IMPL_COUNT; impl++) {
			const struct impl_result *res = &c->result[impl];
			double rate = result_messages_per_s(res);
			char msgs[32], gbs[32];

			if (!(c->impls & 1u << impl))
				continue;
			print_cell_key(out, c, first);
			first = false;
			format_count(msgs, sizeof(msgs), rate);
			format_number(gbs, sizeof(gbs), rate * (double)c->size / 1e9, 3);
			fprintf(out, "%-9s %9s %9s", impl_label(c, impl), msgs, gbs);
			print_error_suffix(out, res);
			fputc('\n', out);
		}
		r = cell_throughput_ratio(c);
		format_ratio(ratio, sizeof(ratio), r);
		print_cell_key(out, c, false);
		fprintf(out, "%-9s %9s %9s%s\n", "x kernel", ratio, ratio,
			r < SLOWER_THAN_KERNEL ? "  (uspair slower)" : "");
	}
	if (!any)
		return;
	print_reference_footnote(b, out, TEST_THROUGHPUT);
	print_credit_footnote(b, out);
}

static void print_create_section(const struct bench *b, FILE *out)
{
	bool any = false;

	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];
		char ratio[32];
		double r;

		if (c->test != TEST_CREATE)
			continue;
		if (!any) {
			fprintf(out, "\nSOCKETPAIR() + CLOSE() OF BOTH ENDS (ns per pair; \"x faster\" = "
				     "kernel / uspair)\n");
			fprintf(out, "%-6s %-9s %-9s %9s %9s\n", "family", "type", "impl",
				"ns/pair", "pairs/s");
			any = true;
		}
		for (unsigned impl = 0; impl < IMPL_COUNT; impl++) {
			const struct impl_result *res = &c->result[impl];
			double ns = result_ns_per_pair(res);
			char nsbuf[32], rate[32];

			if (!(c->impls & 1u << impl))
				continue;
			format_number(nsbuf, sizeof(nsbuf), ns, 0);
			format_count(rate, sizeof(rate), 1e9 / ns);
			fprintf(out, "%-6s %-9s %-9s %9s %9s",
				impl == IMPL_KERNEL ? family_name(c->family) : "",
				impl == IMPL_KERNEL ? socktype_name(c->socktype) : "",
				impl_label(c, impl), nsbuf, rate);
			print_error_suffix(out, res);
			fputc('\n', out);
		}
		r = cell_create_speedup(c);
		format_ratio(ratio, sizeof(ratio), r);
		fprintf(out, "%-6s %-9s %-9s %9s%s\n", "", "", "x faster", ratio,
			r < SLOWER_THAN_KERNEL ? "  (uspair slower)" : "");
	}
	if (any)
		print_reference_footnote(b, out, TEST_CREATE);
}

static void print_memory_section(const struct bench *b, FILE *out)
{
	bool any = false;

	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];
		char ratio[32];

		if (c->test != TEST_MEMORY)
			continue;
		if (!any) {
			fprintf(out,
				"\nMEMORY PER PAIR, AF_UNIX (KiB per pair, %zu pairs held open; used = "
				"after one byte each way;\nslab = kernel slab from /proc/meminfo, "
				"system-wide, approximate; bulk RSS = growth of one pair\nthat carried "
				"%u MiB one way)\n",
				c->size, BULK_BYTES >> 20);
			fprintf(out, "%-9s %-9s %6s | %8s %8s %10s %8s | %8s %8s | %11s\n", "type",
				"impl", "pairs", "idle RSS", "PSS", "virtual", "slab", "used RSS", "PSS",
				"bulk RSS");
			any = true;
		}
		for (unsigned impl = 0; impl < IMPL_COUNT; impl++) {
			const struct impl_result *res = &c->result[impl];
			const bool ok = result_usable(res);
			char rss[32], pss[32], virt[32], slab[32], urss[32], upss[32], bulk[32];

			if (!(c->impls & 1u << impl))
				continue;
			format_number(rss, sizeof(rss), ok ? res->idle.rss_kib : NAN, 1);
			format_number(pss, sizeof(pss), ok ? res->idle.pss_kib : NAN, 1);
			format_number(virt, sizeof(virt), ok ? res->idle.virt_kib : NAN, 0);
			format_number(slab, sizeof(slab), ok ? res->idle.slab_kib : NAN, 1);
			format_number(urss, sizeof(urss), ok ? res->used.rss_kib : NAN, 1);
			format_number(upss, sizeof(upss), ok ? res->used.pss_kib : NAN, 1);
			format_number(bulk, sizeof(bulk), ok ? res->bulk_rss_kib : NAN, 0);
			fprintf(out, "%-9s %-9s %6u | %8s %8s %10s %8s | %8s %8s | %11s",
				impl == IMPL_KERNEL ? socktype_name(c->socktype) : "", impl_names[impl],
				res->pairs, rss, pss, virt, slab, urss, upss, bulk);
			print_error_suffix(out, res);
			if (res->note[0])
				fprintf(out, "  (%s)", res->note);
			fputc('\n', out);
		}
		format_ratio(ratio, sizeof(ratio), cell_memory_ratio(c));
		fprintf(out, "%-9s %-9s %6s   idle PSS + slab: uspair = %s the kernel's\n", "",
			"x kernel", "", ratio);
	}
}

/* Things worth a second look, after the numbers. */
static void collect_findings(struct bench *b)
{
	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];
		char label[TEXT_LEN];
		double r = NAN;

		cell_label(label, sizeof(label), c);
		for (unsigned impl = 0; impl < IMPL_COUNT; impl++) {
			const struct impl_result *res = &c->result[impl];

			if (res->status == RESULT_FAILED)
				bench_note(b, "%s: %s FAILED: %s", label, impl_names[impl], res->error);
		}
		if (test_is_latency(c->test) && c->test != TEST_FLOOR)
			r = cell_latency_speedup(c, 0.50);
		else if (c->test == TEST_THROUGHPUT)
			r = cell_throughput_ratio(c);
		else if (c->test == TEST_CREATE)
			r = cell_create_speedup(c);
		if (!isnan(r) && r < SLOWER_THAN_KERNEL)
			bench_note(b, "%s: uspair is slower than the kernel (%.2fx)", label, r);
	}
}

static void print_table(const struct bench *b, FILE *out)
{
	print_system_header(b, out);
	print_latency_section(b, out, false);
	print_throughput_section(b, out);
	print_latency_section(b, out, true);
	print_create_section(b, out);
	print_memory_section(b, out);
	if (b->note_count) {
		fprintf(out, "\nNOTES\n");
		for (unsigned i = 0; i < b->note_count; i++)
			fprintf(out, "- %s\n", b->notes[i]);
	}
}

/* ------------------------------------------------------------------------
 * JSON and CSV
 * --------------------------------------------------------------------- */

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void json_number(FILE *out, const char *key, double value)
{
	fprintf(out, ", \"%s\": ", key);
	if (isnan(value) || isinf(value))
		fputs("null", out);
	else
		fprintf(out, "%.6g", value);
}

static void print_json(const struct bench *b, FILE *out)
{
	struct utsname uts;
	bool first = true;

	if (uname(&uts) != 0)
		snprintf(uts.release, sizeof(uts.release), "?");
	fprintf(out, "{\n  \"tool\": \"uspair bench\", \"uspair_version\": \"%d.%d\",\n",
		USPAIR_VERSION_MAJOR, USPAIR_VERSION_MINOR);
	fprintf(out, "  \"system\": {\"kernel\": ");
	json_string(out, uts.release);
	fprintf(out, ", \"cpus\": %ld", sysconf(_SC_NPROCESSORS_ONLN));
	json_number(out, "other_processes_cpus", b->other_cpus);
	json_number(out, "steal_cpus", b->steal_cpus);
	fprintf(out, "},\n");
	fprintf(out,
		"  \"config\": {\"rounds\": %u, \"duration_s\": %g, \"tipc_duration_s\": %g, "
		"\"sleep_gap_us\": %u, \"memory_pairs\": %u, \"threads\": %s, \"quick\": %s},\n",
		b->rounds, b->duration_s, b->tipc_duration_s, b->options->sleep_gap_us,
		b->memory_pairs, b->options->threads ? "true" : "false",
		b->options->quick ? "true" : "false");
	if (bench_has_tipc(b)) {
		char reference[TEXT_LEN];
		bool any = false;

		/* "kernel_tipc": {"stream": "ok", "rdm": "Address family not supported..."} */
		fprintf(out, "  \"kernel_tipc\": {");
		for (int i = 0; i < TIPC_TYPE_COUNT; i++) {
			int err = b->kernel_tipc_errno[i];

			if (err < 0)
				continue;
			fprintf(out, "%s\"%s\": ", any ? ", " : "", socktype_name(tipc_types[i]));
			json_string(out, err ? strerror(err) : "ok");
			any = true;
		}
		tipc_reference_text(b, reference, sizeof(reference));
		fprintf(out, "},\n  \"tipc_reference\": ");
		json_string(out, reference);
		fprintf(out, ",\n");
	}
	fprintf(out, "  \"results\": [");
	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];

		for (unsigned impl = 0; impl < IMPL_COUNT; impl++) {
			const struct impl_result *r = &c->result[impl];
			const bool uspair = impl == IMPL_USPAIR;

			if (!(c->impls & 1u << impl))
				continue;
			fprintf(out,
				"%s\n    {\"test\": \"%s\", \"mode\": \"%s\", \"family\": \"%s\", "
				"\"type\": \"%s\"",
				first ? "" : ",", test_names[c->test], test_mode_name(c->test),
				c->test == TEST_FLOOR ? "shm" : family_name(c->family),
				c->test == TEST_FLOOR ? "shm" : socktype_name(c->socktype));
			first = false;
			/* the kernel's pair, and what uspair's ratio is against */
			if (impl == IMPL_KERNEL || impl == IMPL_USPAIR)
				fprintf(out, ", \"ref_family\": \"%s\", \"ref_type\": \"%s\"",
					family_name(c->ref_family), socktype_name(c->ref_socktype));
			if (c->test == TEST_MEMORY)
				fprintf(out, ", \"pairs\": %u", r->pairs);
			else if (c->test != TEST_CREATE)
				fprintf(out, ", \"size\": %zu", c->size);
			if (test_has_peer(c->test))
				fprintf(out, ", \"peer\": \"%s\"", peer_names[c->peer]);
			fprintf(out, ", \"impl\": \"%s\", \"status\": \"%s\"", impl_names[impl],
				status_names[r->status]);
			if (r->error[0]) {
				fprintf(out, ", \"error\": ");
				json_string(out, r->error);
			}
			if (r->note[0]) {
				fprintf(out, ", \"note\": ");
				json_string(out, r->note);
			}
			switch (c->test) {
			case TEST_FLOOR:
			case TEST_RTT:
			case TEST_SLEEP: {
				const struct histogram *h = r->latency;
				const bool have = h && h->total && result_usable(r);

				fprintf(out, ", \"samples\": %" PRIu64, h ? h->total : 0);
				json_number(out, "p50_us", result_latency(r, 0.50) / 1e3);
				json_number(out, "p99_us", result_latency(r, 0.99) / 1e3);
				json_number(out, "p999_us", result_latency(r, 0.999) / 1e3);
				json_number(out, "min_us", have ? (double)h->min_ns / 1e3 : NAN);
				json_number(out, "mean_us",
					    have ? h->sum_ns / (double)h->total / 1e3 : NAN);
				json_number(out, "max_us", have ? (double)h->max_ns / 1e3 : NAN);
				if (uspair) {
					json_number(out, "speedup_p50", cell_latency_speedup(c, 0.50));
					json_number(out, "speedup_p99", cell_latency_speedup(c, 0.99));
					json_number(out, "speedup_p999", cell_latency_speedup(c, 0.999));
				}
				break;
			}
			case TEST_THROUGHPUT: {
				double rate = result_messages_per_s(r);

				if (c->credit_window)
					fprintf(out, ", \"credit_window\": %u, \"credit_every\": %u",
						c->credit_window, c->credit_every);
				fprintf(out, ", \"messages\": %" PRIu64, r->messages);
				json_number(out, "seconds", r->seconds);
				json_number(out, "msgs_per_s", rate);
				json_number(out, "gb_per_s", rate * (double)c->size / 1e9);
				if (uspair)
					json_number(out, "ratio_vs_kernel", cell_throughput_ratio(c));
				break;
			}
			case TEST_CREATE:
				fprintf(out, ", \"pairs_made\": %" PRIu64, r->messages);
				json_number(out, "ns_per_pair", result_ns_per_pair(r));
				if (uspair)
					json_number(out, "speedup", cell_create_speedup(c));
				break;
			case TEST_MEMORY: {
				const bool ok = result_usable(r);

				json_number(out, "rss_kib_per_pair", ok ? r->idle.rss_kib : NAN);
				json_number(out, "pss_kib_per_pair", ok ? r->idle.pss_kib : NAN);
				json_number(out, "virt_kib_per_pair", ok ? r->idle.virt_kib : NAN);
				json_number(out, "slab_kib_per_pair", ok ? r->idle.slab_kib : NAN);
				json_number(out, "used_rss_kib_per_pair", ok ? r->used.rss_kib : NAN);
				json_number(out, "used_pss_kib_per_pair", ok ? r->used.pss_kib : NAN);
				json_number(out, "bulk_rss_kib_one_pair", ok ? r->bulk_rss_kib : NAN);
				if (uspair)
					json_number(out, "ratio_vs_kernel", cell_memory_ratio(c));
				break;
			}
			}
			fputc('}', out);
		}
	}
	fprintf(out, "\n  ],\n  \"notes\": [");
	for (unsigned i = 0; i < b->note_count; i++) {
		fprintf(out, "%s\n    ", i ? "," : "");
		json_string(out, b->notes[i]);
	}
	fprintf(out, "%s]\n}\n", b->note_count ? "\n  " : "");
}

static void csv_number(FILE *out, double value)
{
	fputc(',', out);
	if (!isnan(value) && !isinf(value))
		fprintf(out, "%.6g", value);
}

/* A CSV field: quoted, with quotes doubled. */
static void csv_text(FILE *out, const char *s)
{
	fputs(",\"", out);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static void print_csv(const struct bench *b, FILE *out)
{
	fputs("test,mode,family,type,size,peer,impl,ref_family,ref_type,status,samples,p50_us,"
	      "p99_us,p999_us,mean_us,msgs_per_s,gb_per_s,ns_per_pair,pairs,rss_kib_per_pair,"
	      "pss_kib_per_pair,virt_kib_per_pair,slab_kib_per_pair,bulk_rss_kib,speedup_vs_kernel,"
	      "ratio_vs_kernel,error\n",
	      out);
	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];

		for (unsigned impl = 0; impl < IMPL_COUNT; impl++) {
			const struct impl_result *r = &c->result[impl];
			const bool uspair = impl == IMPL_USPAIR, ok = result_usable(r);
			const bool latency = test_is_latency(c->test);
			const struct histogram *h = r->latency;
			double rate = c->test == TEST_THROUGHPUT ? result_messages_per_s(r) : NAN;
			double speedup = NAN, ratio = NAN;

			if (!(c->impls & 1u << impl))
				continue;
			if (uspair && latency)
				speedup = cell_latency_speedup(c, 0.50);
			else if (uspair && c->test == TEST_CREATE)
				speedup = cell_create_speedup(c);
			else if (uspair && c->test == TEST_THROUGHPUT)
				ratio = cell_throughput_ratio(c);
			else if (uspair && c->test == TEST_MEMORY)
				ratio = cell_memory_ratio(c);
			fprintf(out, "%s,%s,%s,%s,", test_names[c->test], test_mode_name(c->test),
				c->test == TEST_FLOOR ? "shm" : family_name(c->family),
				c->test == TEST_FLOOR ? "shm" : socktype_name(c->socktype));
			if (c->test != TEST_CREATE && c->test != TEST_MEMORY)
				fprintf(out, "%zu", c->size);
			fprintf(out, ",%s,%s,", test_has_peer(c->test) ? peer_names[c->peer] : "",
				impl_names[impl]);
			if (impl == IMPL_KERNEL || impl == IMPL_USPAIR)
				fprintf(out, "%s,%s", family_name(c->ref_family),
					socktype_name(c->ref_socktype));
			else
				fputc(',', out);
			fprintf(out, ",%s,", status_names[r->status]);
			if (latency)
				fprintf(out, "%" PRIu64, h ? h->total : 0);
			csv_number(out, latency ? result_latency(r, 0.50) / 1e3 : NAN);
			csv_number(out, latency ? result_latency(r, 0.99) / 1e3 : NAN);
			csv_number(out, latency ? result_latency(r, 0.999) / 1e3 : NAN);
			csv_number(out, latency && ok && h && h->total
						? h->sum_ns / (double)h->total / 1e3
						: NAN);
			csv_number(out, rate);
			csv_number(out, rate * (double)c->size / 1e9);
			csv_number(out, c->test == TEST_CREATE ? result_ns_per_pair(r) : NAN);
			csv_number(out, c->test == TEST_MEMORY ? (double)r->pairs : NAN);
			csv_number(out, c->test == TEST_MEMORY && ok ? r->idle.rss_kib : NAN);
			csv_number(out, c->test == TEST_MEMORY && ok ? r->idle.pss_kib : NAN);
			csv_number(out, c->test == TEST_MEMORY && ok ? r->idle.virt_kib : NAN);
			csv_number(out, c->test == TEST_MEMORY && ok ? r->idle.slab_kib : NAN);
			csv_number(out, c->test == TEST_MEMORY && ok ? r->bulk_rss_kib : NAN);
			csv_number(out, speedup);
			csv_number(out, ratio);
			csv_text(out, r->error);
			fputc('\n', out);
		}
	}
}

/* ------------------------------------------------------------------------
 * Plot (gnuplot)
 * --------------------------------------------------------------------- */

static bool program_in_path(const char *name)
{
	const char *path = getenv("PATH");
	char candidate[PATH_MAX];

	if (!path || !*path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t len = colon ? (size_t)(colon - path) : strlen(path);

		if (len == 0)
			snprintf(candidate, sizeof(candidate), "./%s", name);
		else
			snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)len, path, name);
		if (access(candidate, X_OK) == 0)
			return true;
		path += len;
		if (*path == ':')
			path++;
	}
	return false;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* A gnuplot single-quoted string (a quote inside is doubled). */
static void gnuplot_quoted(FILE *out, const char *s)
{
	fputc('\'', out);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', out);
		fputc(*s, out);
	}
	fputc('\'', out);
}

static void plot_value(FILE *out, double value)
{
	if (isnan(value) || isinf(value) || value <= 0)
		fputs(" -", out);
	else
		fprintf(out, " %.6g", value);
}

/* One data block: rows of "label kernel uspair pipe" for one kind of cell. */
static size_t plot_block(const struct bench *b, FILE *out, const char *name, enum test_kind test)
{
	size_t rows = 0;

	fprintf(out, "$%s << EOD\n", name);
	for (size_t i = 0; i < b->cell_count; i++) {
		const struct cell *c = &b->cells[i];
		char size[32];

		if (c->test != test)
			continue;
		format_size(size, sizeof(size), c->size);
		fprintf(out, "\"%s%s %s%s\"", c->family == AF_TIPC ? "tipc " : "",
			socktype_name(c->socktype), size, c->peer == PEER_THREAD ? " thr" : "");
		for (unsigned impl = IMPL_KERNEL; impl <= IMPL_PIPE; impl++) {
			const struct impl_result *r = &c->result[impl];
			double value = NAN;

			if (c->impls & 1u << impl) {
				if (test == TEST_THROUGHPUT)
					value = result_messages_per_s(r) * (double)c->size / 1e9;
				else
					value = result_latency(r, 0.50) / 1e3;
			}
			plot_value(out, value);
		}
		fputc('\n', out);
		rows++;
	}
	fprintf(out, "EOD\n");
	return rows;
}

static void plot_panel(FILE *out, const char *block, const char *title, const char *ylabel,
		       bool log_scale)
{
	fprintf(out, "set title '%s'\nset ylabel '%s'\n", title, ylabel);
	fprintf(out, log_scale ? "set logscale y\n" : "unset logscale y\n");
	fprintf(out,
		"plot $%s using 2:xtic(1) title 'kernel' lc rgb '#4472c4', "
		"'' using 3 title 'uspair' lc rgb '#ed7d31', "
		"'' using 4 title 'pipe' lc rgb '#a5a5a5'\n",
		block);
}

static void write_plot(const struct bench *b, const char *path)
{
	size_t rtt_rows, tput_rows, sleep_rows, panels;
	FILE *gp;
	int status;

	if (!program_in_path("gnuplot")) {
		fprintf(stderr, "uspair bench: gnuplot is not installed; no plot written to %s\n",
			path);
		return;
	}
	if (!ends_with(path, ".png") && !ends_with(path, ".svg")) {
		fprintf(stderr, "uspair bench: --plot wants a .png or .svg file; not %s\n", path);
		return;
	}
	gp = popen("gnuplot", "w");
	if (!gp) {
		fprintf(stderr, "uspair bench: cannot run gnuplot: %s\n", strerror(errno));
		return;
	}
	rtt_rows = plot_block(b, gp, "rtt", TEST_RTT);
	tput_rows = plot_block(b, gp, "tput", TEST_THROUGHPUT);
	sleep_rows = plot_block(b, gp, "sleep", TEST_SLEEP);
	panels = (rtt_rows > 0) + (tput_rows > 0) + (sleep_rows > 0);
	if (panels == 0)
		panels = 1;
	if (ends_with(path, ".svg"))
		fprintf(gp, "set terminal svg size 1100,%zu dynamic font 'sans,10'\n", 330 * panels);
	else
		fprintf(gp, "set terminal pngcairo size 1100,%zu font 'sans,9'\n", 330 * panels);
	fputs("set output ", gp);
	gnuplot_quoted(gp, path);
	fputs("\nset datafile missing '-'\n"
	      "set style data histograms\nset style histogram clustered gap 1\n"
	      "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
	      "set grid ytics\nset key top left\nset xtics rotate by 30 right scale 0\n"
	      "set yrange [0:*]\n",
	      gp);
	fprintf(gp, "set multiplot layout %zu,1 title 'uspair bench: uspair vs kernel socketpair "
		    "vs pipe'\n",
		panels);
	if (rtt_rows) {
		fputs("set yrange [*:*]\n", gp);
		plot_panel(gp, "rtt", "Round trip, back to back (p50, lower is better)",
			   "microseconds", true);
	}
	if (tput_rows) {
		fputs("set yrange [0:*]\n", gp);
		plot_panel(gp, "tput", "One-way throughput (higher is better)", "GB/s", false);
	}
	if (sleep_rows) {
		fputs("set yrange [*:*]\n", gp);
		plot_panel(gp, "sleep", "Round trip, sleeping reader (p50, lower is better)",
			   "microseconds", true);
	}
	fputs("unset multiplot\n", gp);
	status = pclose(gp);
	if (status != 0)
		fprintf(stderr, "uspair bench: gnuplot failed (status %d); plot %s may be incomplete\n",
			status, path);
	else
		fprintf(stderr, "uspair bench: plot written to %s\n", path);
}

/* ------------------------------------------------------------------------
 * --check
 * --------------------------------------------------------------------- */

/* Judges one cell of the check plan; prints PASS/FAIL; true when it passed. */
static bool check_cell(const struct cell *c, bool print, bool final)
{
	char label[TEXT_LEN];
	const struct impl_result *k = &c->result[IMPL_KERNEL], *u = &c->result[IMPL_USPAIR];
	bool pass;

	cell_label(label, sizeof(label), c);
	if (!result_usable(k) || !result_usable(u)) {
		const struct impl_result *bad = result_usable(k) ? u : k;

		if (print)
			printf("FAIL %s: %s measurement %s: %s\n", label,
			       bad == k ? "kernel" : "uspair", status_names[bad->status], bad->error);
		return false;
	}
	if (c->test == TEST_RTT || c->test == TEST_SLEEP) {
		double speedup = cell_latency_speedup(c, 0.50);
		double bound = c->test == TEST_SLEEP	? BENCH_CHECK_MIN_SLEEP_SPEEDUP
			       : c->family == AF_TIPC ? BENCH_CHECK_MIN_TIPC_RTT_SPEEDUP
						      : BENCH_CHECK_MIN_RTT_SPEEDUP;
		char kus[32], uus[32], kernel[80] = "the kernel";

		pass = speedup >= bound;
		format_us(kus, sizeof(kus), result_latency(k, 0.50));
		format_us(uus, sizeof(uus), result_latency(u, 0.50));
		if (c->family == AF_TIPC)
			snprintf(kernel, sizeof(kernel), "the kernel's AF_%s %s pair%s",
				 c->ref_family == AF_TIPC ? "TIPC" : "UNIX",
				 socktype_name(c->ref_socktype),
				 cell_reference_differs(c) ? " (no TIPC in this kernel)" : "");
		if (print && (pass || final))
			printf("%s %s: uspair %.2fx faster than %s (p50 %s us vs %s us; "
			       "need >= %.1fx)\n",
			       pass ? "PASS" : "FAIL", label, speedup, kernel, uus, kus, bound);
	} else if (c->test == TEST_CREATE) {
		double speedup = cell_create_speedup(c);

		pass = speedup >= BENCH_CHECK_MIN_CREATE_SPEEDUP;
		if (print && (pass || final))
			printf("%s %s: uspair's socketpair()+close() at %.2fx the kernel's cost "
			       "(%.0f vs %.0f ns; need <= %.1fx)\n",
			       pass ? "PASS" : "FAIL", label, 1 / speedup,
			       result_ns_per_pair(u), result_ns_per_pair(k),
			       1 / BENCH_CHECK_MIN_CREATE_SPEEDUP);
	} else {
		double ratio = cell_throughput_ratio(c);
		double kgb = result_messages_per_s(k) * (double)c->size / 1e9;
		double ugb = result_messages_per_s(u) * (double)c->size / 1e9;

		pass = ratio >= BENCH_CHECK_MIN_THROUGHPUT_RATIO;
		if (print && (pass || final))
			printf("%s %s: uspair at %.2fx the kernel's throughput (%.2f vs %.2f GB/s; "
			       "need >= %.1fx)\n",
			       pass ? "PASS" : "FAIL", label, ratio, ugb, kgb,
			       BENCH_CHECK_MIN_THROUGHPUT_RATIO);
	}
	return pass;
}

/* Outcome of --check. */
enum check_outcome {
	CHECK_PASS,
	CHECK_BELOW_BOUND, /* every measurement worked, a ratio was too low */
	CHECK_BROKEN,      /* a measurement failed: an error or a wrong byte */
};

static enum check_outcome run_check(struct bench *b)
{
	enum check_outcome outcome = CHECK_PASS;

	for (size_t i = 0; i < b->cell_count; i++) {
		struct cell *c = &b->cells[i];
		char label[TEXT_LEN];
		bool measured;

		cell_label(label, sizeof(label), c);
		fprintf(stderr, "[%zu/%zu] %s ...\n", i + 1, b->cell_count, label);
		run_cell(b, c);
		measured = result_usable(&c->result[IMPL_KERNEL]) &&
			   result_usable(&c->result[IMPL_USPAIR]);
		/* One bad ratio on a noisy machine gets a second measurement; a
		 * failed measurement does not. */
		if (measured && !check_cell(c, false, false)) {
			fprintf(stderr, "[%zu/%zu] %s: below the bound, measuring again ...\n", i + 1,
				b->cell_count, label);
			cell_reset(c);
			run_cell(b, c);
		}
		if (!check_cell(c, true, true)) {
			measured = result_usable(&c->result[IMPL_KERNEL]) &&
				   result_usable(&c->result[IMPL_USPAIR]);
			if (!measured)
				outcome = CHECK_BROKEN;
			else if (outcome == CHECK_PASS)
				outcome = CHECK_BELOW_BOUND;
		}
		fflush(stdout);
	}
	return outcome;
}

/* ------------------------------------------------------------------------
 * Entry points
 * --------------------------------------------------------------------- */

void bench_options_init(struct bench_options *options)
{
	memset(options, 0, sizeof(*options));
	options->families = BENCH_FAMILY_ALL;
	options->types = BENCH_TYPE_ALL;
	options->modes = BENCH_MODE_ALL;
	options->tests = BENCH_TEST_ALL;
	options->sleep_gap_us = BENCH_DEFAULT_SLEEP_GAP_US;
	options->output = BENCH_OUTPUT_TABLE;
}

static void bench_free(struct bench *b)
{
	for (size_t i = 0; i < b->cell_count; i++)
		for (unsigned impl = 0; impl < IMPL_COUNT; impl++)
			free(b->cells[i].result[impl].latency);
	free(b->cells);
	free(b->run_latency);
}

int bench_run(const struct bench_options *options)
{
	struct bench b;
	struct cpu_usage usage_at_start;
	int status = 0;

	memset(&b, 0, sizeof(b));
	b.options = options;
	b.duration_s = options->duration_s > 0	  ? options->duration_s
		       : options->check		  ? BENCH_CHECK_DURATION_S
		       : options->quick		  ? BENCH_QUICK_DURATION_S
						  : BENCH_DEFAULT_DURATION_S;
	b.rounds = options->rounds > 0 ? options->rounds
		   : options->check    ? BENCH_CHECK_ROUNDS
		   : options->quick    ? BENCH_QUICK_ROUNDS
				       : BENCH_DEFAULT_ROUNDS;
	/* one TIPC row in --check: as long as the others */
	b.tipc_duration_s = options->duration_s > 0 || options->check
				    ? b.duration_s
				    : b.duration_s * BENCH_TIPC_DURATION_SHARE;
	for (int i = 0; i < TIPC_TYPE_COUNT; i++)
		b.kernel_tipc_errno[i] = -1;
	b.memory_pairs = options->memory_pairs > 0 ? options->memory_pairs
			 : options->quick	   ? BENCH_QUICK_MEMORY_PAIRS
						   : BENCH_DEFAULT_MEMORY_PAIRS;

	control = mmap(NULL, sizeof(*control), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (control == MAP_FAILED) {
		fprintf(stderr, "uspair bench: mmap: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	watchdog_install();
	raise_descriptor_limit(b.memory_pairs);
	b.run_latency = xcalloc(1, sizeof(*b.run_latency));
	plan_build(&b);
	if (b.cell_count == 0) {
		fprintf(stderr, "uspair bench: nothing to measure with these options\n");
		munmap(control, sizeof(*control));
		return 1;
	}

	cpu_usage_take(&usage_at_start);
	if (options->check) {
		enum check_outcome outcome = run_check(&b);

		note_background_load(&b, &usage_at_start);
		for (unsigned i = 0; i < b.note_count; i++)
			printf("note: %s\n", b.notes[i]);
		/* A shared 2-CPU machine that is busy elsewhere cannot show a
		 * spinning transport's speed: a low ratio there is inconclusive.
		 * A broken measurement fails whatever the load. */
		if (outcome == CHECK_BELOW_BOUND && b.other_cpus > BENCH_CHECK_BUSY_CPUS) {
			printf("check: INCONCLUSIVE (other processes used %.2f CPUs; "
			       "the bound is checked on a quiet machine)\n",
			       b.other_cpus);
			status = 0;
		} else {
			status = outcome == CHECK_PASS ? 0 : 1;
			printf("check: %s\n", status == 0 ? "PASS" : "FAIL");
		}
	} else {
		for (size_t i = 0; i < b.cell_count; i++) {
			char label[TEXT_LEN];

			cell_label(label, sizeof(label), &b.cells[i]);
			fprintf(stderr, "[%zu/%zu] %s ...\n", i + 1, b.cell_count, label);
			run_cell(&b, &b.cells[i]);
			for (unsigned impl = 0; impl < IMPL_COUNT; impl++)
				if (b.cells[i].result[impl].status == RESULT_FAILED) {
					fprintf(stderr, "[%zu/%zu] %s: %s FAILED: %s\n", i + 1,
						b.cell_count, label, impl_names[impl],
						b.cells[i].result[impl].error);
					status = 1;
				}
		}
		note_background_load(&b, &usage_at_start);
		collect_findings(&b);
		if (options->output == BENCH_OUTPUT_JSON)
			print_json(&b, stdout);
		else if (options->output == BENCH_OUTPUT_CSV)
			print_csv(&b, stdout);
		else
			print_table(&b, stdout);
	}
	if (options->plot_path)
		write_plot(&b, options->plot_path);
	fflush(stdout);
	bench_free(&b);
	munmap(control, sizeof(*control));
	return status;
}
