/*
 * Shared helpers for the uspair differential tests.
 *
 * A test runs the same scenario twice: once on a kernel socketpair() and
 * once on a usp_socketpair() pair, always through the usp_* calls (which
 * pass kernel descriptors straight through).  Every step is recorded as a
 * line of text in a trace; the two traces must be identical.
 *
 * Exit status of a test program: 0 pass, 1 fail, 77 skip.
 */
#ifndef T_HELPERS_H
#define T_HELPERS_H

#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "uspair.h"

/* ASan and TSan intercept libc calls and dereference their pointer
 * arguments themselves, so deliberately bad pointers crash the interceptor
 * before the kernel can return EFAULT. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZER_INTERCEPTS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZER_INTERCEPTS 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define T_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_THREAD_SANITIZER 1
#endif
#endif

#define T_EXIT_PASS 0
#define T_EXIT_FAIL 1
#define T_EXIT_SKIP 77

#define T_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum t_pair_kind { T_KERNEL, T_USPAIR };

/* Bit masks selecting the variants of t_compare_matrix(). */
#define T_STREAM 1u
#define T_SEQPACKET 2u
#define T_DGRAM 4u
#define T_ALL_TYPES (T_STREAM | T_SEQPACKET | T_DGRAM)
#define T_BLOCKING 1u
#define T_NONBLOCKING 2u
#define T_ALL_MODES (T_BLOCKING | T_NONBLOCKING)
#define T_DIR_0_TO_1 1u
#define T_DIR_1_TO_0 2u
#define T_ALL_DIRS (T_DIR_0_TO_1 | T_DIR_1_TO_0)

struct t_trace {
	char **lines;
	size_t count, capacity;
};

#define T_MAX_NAMED_FDS 16

/* Everything a scenario knows about the run it is part of. */
struct t_ctx {
	const char *scenario;
	enum t_pair_kind kind;
	int type;		/* SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM */
	int nonblock;		/* pair created with SOCK_NONBLOCK */
	int dir;		/* 0: a = sv[0], b = sv[1]; 1: a = sv[1], b = sv[0] */
	int extra_flags;	/* more socketpair() type flags, e.g. SOCK_CLOEXEC */
	int sv[2];
	int a, b;		/* a is the usual sender, b the usual receiver */
	/*
	 * Before a receive that may block (blocking descriptor, no
	 * MSG_DONTWAIT), the traced wrappers poll for POLLIN for up to this
	 * many milliseconds; when nothing is readable they record
	 * "(would block)" instead of calling.  -1 disables the poll.
	 */
	int prepoll_ms;
	void *user;		/* scenario parameter given to t_compare() */
	struct t_trace *trace;
	struct {
		int fd;
		char name[24];
	} fds[T_MAX_NAMED_FDS];	/* descriptors closed automatically at the end */
	int nfds;
};

typedef void (*t_scenario_fn)(struct t_ctx *c);

/* ---- program set-up and result ---- */

/* Call first: installs the SIGPIPE counter and the watchdogs. */
void t_init(const char *test_name);
/* Prints the summary; returns the exit status for main(). */
int t_finish(void);
/* Records a failure that is not a trace mismatch. */
void t_fail(const char *fmt, ...) T_PRINTF(1, 2);
/* Prints the reason and exits 77. */
__attribute__((noreturn)) void t_skip(const char *fmt, ...) T_PRINTF(1, 2);
/* Prints and exits 1 on an error of the test machinery itself. */
__attribute__((noreturn)) void t_die(const char *fmt, ...) T_PRINTF(1, 2);
void t_note(const char *fmt, ...) T_PRINTF(1, 2);
int t_failures(void);

/* Kills the whole program after `seconds` with a message naming `what`. */
void t_watchdog(unsigned seconds, const char *what);

/* ---- pairs ---- */

int t_make_pair(enum t_pair_kind kind, int type_and_flags, int sv[2]);
const char *t_kind_name(enum t_pair_kind kind);
const char *t_type_name(int type);

/* ---- scenarios ---- */

/* Runs fn on a kernel pair and on a uspair pair; 0 if the traces agree.
 * Environment: T_ONLY=text runs only scenarios whose name contains text;
 * T_VERBOSE=1 prints every step of both runs. */
int t_compare(const char *name, t_scenario_fn fn, int type, int nonblock,
	      int dir, void *user);
/* t_compare() over every selected (type, mode, direction); returns mismatches. */
int t_compare_matrix(const char *name, t_scenario_fn fn, unsigned types,
		     unsigned modes, unsigned dirs, void *user);
/* The same, creating the pairs with extra flags (e.g. SOCK_CLOEXEC). */
int t_compare_matrix_flags(const char *name, t_scenario_fn fn, unsigned types,
			   unsigned modes, unsigned dirs, int extra_flags,
			   void *user);
/* The same, in a forked child, so that a crash (e.g. a library writing
 * through a bad pointer) is reported instead of ending the program. */
int t_compare_matrix_isolated(const char *name, t_scenario_fn fn, unsigned types,
			      unsigned modes, unsigned dirs, void *user);

/* ---- trace recording ---- */

void t_trace_init(struct t_trace *t);
void t_trace_free(struct t_trace *t);
void t_trace_add(struct t_trace *t, const char *fmt, ...) T_PRINTF(2, 3);
/* Compares two traces, prints both around the first divergence. */
int t_trace_compare(const struct t_trace *kernel, const struct t_trace *uspair,
		    const char *heading);

/* Records "<desc> = <ret>" or "<desc> = -1 <errno>" for a call made by hand. */
void t_record(struct t_ctx *c, const char *desc, long ret, int err);
/* Makes the call `expr` and records it (errno read after the call). */
#define T_RECORD(c, desc, expr)                                   \
	do {                                                      \
		errno = 0;                                        \
		long t_record_ret_ = (long)(expr);                \
		t_record((c), (desc), t_record_ret_, errno);      \
	} while (0)
/* Adds a free-form line to the scenario's trace. */
void t_log(struct t_ctx *c, const char *fmt, ...) T_PRINTF(2, 3);
/* Gives a descriptor a name for traces and closes it at the end. */
void t_name_fd(struct t_ctx *c, int fd, const char *name);
void t_forget_fd(struct t_ctx *c, int fd);
const char *t_fd_name(const struct t_ctx *c, int fd);

/* ---- formatting ---- */

const char *t_errno_name(int err);
/* "= 3", or "= -1 EAGAIN" (errno taken from err) */
void t_fmt_result(char *out, size_t size, long ret, int err);
void t_fmt_msg_flags(char *out, size_t size, int flags);
void t_fmt_poll_events(char *out, size_t size, int events);
/* Short, exact-enough description of a byte buffer: escaped text when short,
 * otherwise length, head and FNV-1a hash. */
void t_fmt_bytes(char *out, size_t size, const void *buf, size_t len);
uint64_t t_fnv1a(const void *buf, size_t len, uint64_t hash);
#define T_FNV_INIT 0xcbf29ce484222325ull

/* Deterministic test data: byte i of stream `seed` at `offset`. */
void t_fill_pattern(void *buf, size_t len, unsigned seed, size_t offset);

/* ---- traced calls (usp_* on both kinds); each returns what the call did ---- */

ssize_t t_send(struct t_ctx *c, int fd, const void *buf, size_t len, int flags);
/* sends `len` bytes of pattern data `seed` */
ssize_t t_send_pattern(struct t_ctx *c, int fd, size_t len, unsigned seed,
		       int flags);
ssize_t t_write(struct t_ctx *c, int fd, const void *buf, size_t len);
ssize_t t_sendto(struct t_ctx *c, int fd, const void *buf, size_t len, int flags,
		 const struct sockaddr *addr, socklen_t addrlen,
		 const char *addr_desc);
/* gathers `count` pieces of the given lengths of pattern data `seed` */
ssize_t t_writev(struct t_ctx *c, int fd, const size_t *lens, int count,
		 unsigned seed);
ssize_t t_sendmsg(struct t_ctx *c, int fd, const size_t *lens, int count,
		  unsigned seed, int flags);

/* Receives into a buffer of `cap` bytes; the data is kept in c-independent
 * storage returned by t_last_data(). */
ssize_t t_recv(struct t_ctx *c, int fd, size_t cap, int flags);
ssize_t t_read(struct t_ctx *c, int fd, size_t cap);
ssize_t t_recvfrom(struct t_ctx *c, int fd, size_t cap, int flags,
		   socklen_t addr_cap);
ssize_t t_readv(struct t_ctx *c, int fd, const size_t *lens, int count);
/* recvmsg with iovecs of the given lengths, a name buffer of name_cap bytes
 * (0: msg_name NULL) and a control buffer of control_cap bytes. */
ssize_t t_recvmsg(struct t_ctx *c, int fd, const size_t *lens, int count,
		  socklen_t name_cap, size_t control_cap, int flags);
const unsigned char *t_last_data(size_t *len);

int t_shutdown(struct t_ctx *c, int fd, int how);
int t_close(struct t_ctx *c, int fd);
int t_dup(struct t_ctx *c, int fd, const char *new_name);
int t_dup2(struct t_ctx *c, int fd, int newfd, const char *new_name);
/* poll of one descriptor with timeout 0; returns revents (or -1) */
int t_poll1(struct t_ctx *c, int fd, int events);
/* poll of a and b (when open) for IN|OUT|RDHUP|PRI */
void t_poll_both(struct t_ctx *c);
/* ioctl(fd, request, &int); name is used in the trace */
int t_ioctl_int(struct t_ctx *c, int fd, unsigned long request,
		const char *name);
/* FIONREAD and SIOCOUTQ of a and b */
void t_queues(struct t_ctx *c);
int t_getsockopt_int(struct t_ctx *c, int fd, int level, int opt,
		     const char *name);
int t_setsockopt_int(struct t_ctx *c, int fd, int level, int opt, int value,
		     const char *name);
int t_fcntl(struct t_ctx *c, int fd, int cmd, long arg, const char *name);
/* Reads and records SO_ERROR. */
int t_so_error(struct t_ctx *c, int fd);

/* (Re)installs the SIGPIPE counting handler (t_init does it first). */
void t_init_sigpipe_counter(void);
/* Number of SIGPIPEs received by this process so far. */
unsigned long t_sigpipe_count(void);

/* ---- misc ---- */

/* Non-zero in a ThreadSanitizer build. */
int t_thread_sanitizer(void);

double t_now(void);			/* CLOCK_MONOTONIC seconds */
/* For a handler of an ITIMER_REAL timer: past deadline + 2 s (t_now()),
 * stop the timer.  A handler slower than the timer's period runs again at
 * once on its return, and the interrupted loop never sees its deadline.
 * Async-signal-safe; deadline 0 means no run in progress. */
void t_stop_timer_past(double deadline);
void t_sleep_ms(unsigned ms);
int t_count_open_fds(void);
/* Starts a thread with SIGALRM and the step-watchdog signal blocked. */
void t_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/* A thread body for a receive that blocks: usp_recv(fd, buf, cap, 0),
 * its result and errno kept (cap 0: the whole buffer). */
struct t_blocked_recv {
	int fd;
	size_t cap;
	ssize_t r;
	int err;
	char buf[64];
};
void *t_blocked_recv_thread(void *arg);
void t_thread_join(pthread_t thread);
/* uspair only: the shared region behind a uspair descriptor and the side
 * of the pair it is (when side is not NULL); NULL for any other fd. */
struct usp_shared;
struct usp_shared *t_usp_region(int fd, int *side);
/* Runs fn in a forked child, returns its exit status (or 128+signal). */
int t_run_in_child(int (*fn)(void *), void *arg);

/*
 * The step guard: a timer that interrupts (EINTR) a call that blocks for more
 * than T_STEP_GUARD_SECONDS, and kills the program if it still does not
 * return after as long again.  The traced wrappers use it around every call
 * that may block; t_guard_fired() tells whether it interrupted.
 */
#define T_STEP_GUARD_SECONDS 2
void t_guard_arm(const char *what);
void t_guard_disarm(void);
int t_guard_fired(void);

#endif /* T_HELPERS_H */
