/*
 * handler_io: a signal handler that writes to one pair (the self-pipe
 * trick: Python's wakeup fd, libuv's signal pipe) while the thread it
 * interrupts is in the middle of send/recv on another pair whose
 * descriptor number shares its slot in uspair's per-thread lookup cache,
 * and while another thread keeps closing and re-creating pairs (every
 * table change invalidates the cache).  For kernel pairs and uspair pairs
 * alike: every byte a handler wrote arrives, and the interrupted stream
 * stays intact and in order.  The churn thread's own handlers interrupt
 * it inside usp_socketpair()/usp_close() (a handler must not take the
 * library's table lock there).
 */
#include "t_helpers.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...) ((cond) ? (void)0 : t_fail(__VA_ARGS__))

/* Under ThreadSanitizer: the handler takes the wake pair's lock while the
 * call it interrupted holds the other pair's; regions (and so lock
 * addresses) are reused from run to run, so the lock graph gains edges
 * between locks of different pairs in both orders, a cycle no thread here
 * can close (only the main thread takes a lock in a handler).  Deadlock
 * detection is off for this program only; races are still reported. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "detect_deadlocks=0";
}

static bool use_kernel;
static int wake_fd = -1;
/* for the monitor: the run in progress, its pairs and its progress */
static const char *_Atomic run_kind = "none";
static atomic_int run_type, run_a[2] = {-1, -1}, run_w[2] = {-1, -1};
static _Atomic long run_rounds;
static _Atomic double run_deadline; /* 0: no run in its timed loop */
/* atomics: handlers run on the main thread and on the churn thread */
static atomic_int handler_writes, handler_errors;
static atomic_int main_tid, churn_tid;
static atomic_bool churn_stop;

static void on_alarm(int sig)
{
	(void)sig;
	int saved = errno;
	t_stop_timer_past(atomic_load(&run_deadline));
	ssize_t r = use_kernel ? write(wake_fd, "s", 1) : usp_write(wake_fd, "s", 1);
	if (r == 1)
		atomic_fetch_add(&handler_writes, 1);
	else if (errno != EAGAIN)
		atomic_fetch_add(&handler_errors, 1);
	errno = saved;
}

/* Another thread changes the table all the time.  SIGALRM goes to the
 * main thread only; the churn thread gets SIGUSR1 from main (the same
 * handler), mostly while it is inside usp_socketpair() or usp_close() with
 * the library's table lock held, and before it ever sent or received: its
 * handler's lookups must neither deadlock on that lock nor on the first
 * use of its cache. */
static void *churn(void *arg)
{
	(void)arg;
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL);
	atomic_store(&churn_tid, (int)gettid());
	while (!atomic_load(&churn_stop)) {
		int sv[2];
		if ((use_kernel ? socketpair : usp_socketpair)(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
			(use_kernel ? close : usp_close)(sv[0]);
			(use_kernel ? close : usp_close)(sv[1]);
		}
	}
	return NULL;
}

static void print_lock_word(const char *name, int fd, bool send)
{
	int side;
	struct usp_shared *shm = t_usp_region(fd, &side);
	if (!shm)
		return;
	struct usp_lock *l = send ? &shm->ep[side].send_lock : &shm->ep[side].recv_lock;
	fprintf(stderr, "  %s %s_lock word %#llx\n", name, send ? "send" : "recv",
		(unsigned long long)atomic_load(&l->word));
}

/* A run that takes 60 s is stuck: say where, with the lock words of its
 * pairs (owner pid << 32 | tid, 0x80000000 = waiters), then fail. */
static void *monitor(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	const char *kind = NULL;
	int type = -1, stuck_s = 0;
	for (;;) {
		t_sleep_ms(1000);
		if (kind != run_kind || type != run_type) {
			kind = run_kind;
			type = run_type;
			stuck_s = 0;
			continue;
		}
		if (++stuck_s < 60)
			continue;
		fprintf(stderr, "FAIL: stuck for 60 s in the %s run of type %d after %ld rounds, "
			"%d handler writes (main %d, churn %d; pid %d)\n", kind, type,
			atomic_load(&run_rounds), atomic_load(&handler_writes),
			atomic_load(&main_tid), atomic_load(&churn_tid), (int)getpid());
		if (strcmp(kind, "uspair") == 0) {
			print_lock_word("a[0]", run_a[0], true);
			print_lock_word("a[1]", run_a[1], false);
			print_lock_word("w[0]", run_w[0], true);
			print_lock_word("w[1]", run_w[1], false);
		}
		_exit(1);
	}
	return NULL;
}


static void run(bool kernel, int type)
{
	const char *kind = kernel ? "kernel" : "uspair";
	int (*mk)(int, int, int, int *) = kernel ? socketpair : usp_socketpair;
	int (*cl)(int) = kernel ? close : usp_close;
	use_kernel = kernel;
	int a[2], w[2], spare[4];
	int nspare = 0;
	CHECK(mk(AF_UNIX, type, 0, a) == 0, "%s: pair a", kind);
	/* give the wake pair a number in a[0]'s cache slot */
	for (;;) {
		CHECK(mk(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, w) == 0, "%s: pair w", kind);
		if ((w[0] & 3) == (a[0] & 3) || nspare == 4)
			break;
		spare[nspare++] = w[0];
		spare[nspare++] = w[1];
	}
	wake_fd = w[0];
	run_a[0] = a[0];
	run_a[1] = a[1];
	run_w[0] = w[0];
	run_w[1] = w[1];
	atomic_store(&run_rounds, 0);
	run_type = type;
	run_kind = kind;
	atomic_store(&handler_writes, 0);
	atomic_store(&handler_errors, 0);
	atomic_store(&churn_stop, false);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, churn, NULL) == 0, "pthread_create");
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	struct itimerval it = {{0, 150}, {0, 150}};
	setitimer(ITIMER_REAL, &it, NULL);

	long received = 0, rounds = 0;
	bool intact = true;
	double end = t_now() + 0.5;
	atomic_store(&run_deadline, end);
	char out[64], in[64], sink[256];
	while (t_now() < end && intact) {
		memset(out, (int)(rounds & 0x7f), sizeof(out));
		ssize_t s = kernel ? send(a[0], out, sizeof(out), 0) : usp_send(a[0], out, sizeof(out), 0);
		size_t got = 0;
		while (s == (ssize_t)sizeof(out) && got < sizeof(in)) {
			ssize_t r = kernel ? recv(a[1], in + got, sizeof(in) - got, 0)
					   : usp_recv(a[1], in + got, sizeof(in) - got, 0);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		intact = s == (ssize_t)sizeof(out) && got == sizeof(in) &&
			 memcmp(in, out, sizeof(in)) == 0;
		ssize_t r = kernel ? read(w[1], sink, sizeof(sink)) : usp_read(w[1], sink, sizeof(sink));
		if (r > 0)
			received += r;
		if (rounds % 16 == 0)
			pthread_kill(t, SIGUSR1);
		rounds++;
		atomic_store_explicit(&run_rounds, rounds, memory_order_relaxed);
	}
	atomic_store(&run_deadline, 0);
	struct itimerval off = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &off, NULL);
	atomic_store(&churn_stop, true);
	pthread_join(t, NULL);
	for (;;) {
		ssize_t r = kernel ? read(w[1], sink, sizeof(sink)) : usp_read(w[1], sink, sizeof(sink));
		if (r <= 0)
			break;
		received += r;
	}
	CHECK(intact, "%s %d: the interrupted stream broke after %ld rounds", kind, type, rounds);
	int writes = atomic_load(&handler_writes), errors = atomic_load(&handler_errors);
	CHECK(errors == 0, "%s %d: %d handler writes failed", kind, type, errors);
	CHECK(received == writes, "%s %d: handlers wrote %d bytes, %ld arrived", kind, type,
	      writes, received);
	CHECK(writes > 0, "%s %d: no signal arrived", kind, type);
	cl(a[0]);
	cl(a[1]);
	cl(w[0]);
	cl(w[1]);
	for (int i = 0; i < nspare; i++)
		cl(spare[i]);
}

int main(void)
{
	t_init("handler_io"); /* its SIGALRM watchdog is replaced by run()'s handler */
	atomic_store(&main_tid, (int)gettid());
	pthread_t mon;
	if (pthread_create(&mon, NULL, monitor, NULL) != 0)
		t_die("pthread_create");
	for (int k = 0; k < 2; k++) {
		run(k == 0, SOCK_STREAM);
		run(k == 0, SOCK_SEQPACKET);
		run(k == 0, SOCK_DGRAM);
	}
	return t_finish();
}
