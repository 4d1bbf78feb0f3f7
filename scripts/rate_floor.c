/*
 * rate_floor: what one-way 64-byte messages between two processes cost on
 * this machine with nothing but shared memory, and what each piece of a
 * multi-sender-safe queue adds (`make rate-floor`).  The sender writes
 * 64-byte records into a 64 KiB ring and publishes a tail; the receiver
 * copies each one out and publishes its head.  Per message:
 *
 *   bare      nothing (one producer by construction)
 *   xchg      the sender takes an atomic exchange as the lock and a
 *             release store as the unlock: the least a queue several
 *             senders share needs
 *   +fence    that, and a seq_cst fence after the tail (the Dekker fence
 *             a waker needs before it looks for sleepers, W1 in wait.c)
 *   robust    glibc's robust process-shared mutex in place of the
 *             exchange, and the fence: what uspair's send path takes
 *   robust2   that, and the receiver takes its own robust mutex and the
 *             fence per message too, as uspair's receive path does
 *
 * The modes alternate over ROUNDS rounds and the median is printed, with
 * the rate uspair's own one-way SEQPACKET 64 B test gets in the same run
 * and the kernel's socketpair (its first byte checked the same way), and
 * each median as a multiple of the kernel's.
 *   rate_floor [ROUNDS]
 * Every record is checked (its first byte is its sequence number).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uspair.h>

#define MSG 64
#define SLOTS 1024
#define MESSAGES 4000000L
#define MAX_ROUNDS 15

enum mode { BARE, XCHG, FENCE, ROBUST, ROBUST2, USPAIR, KERNEL, N_MODES };
static const char *const mode_names[N_MODES] = {"bare",	   "xchg",   "+fence", "robust",
						"robust2", "uspair", "kernel"};

struct ring {
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic uint32_t lock;
	_Alignas(64) pthread_mutex_t mutex;
	_Alignas(64) pthread_mutex_t recv_mutex;
	/* the receiver found a bad record: the sender stops */
	_Alignas(64) _Atomic int failed;
	_Alignas(64) unsigned char slot[SLOTS][MSG];
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void receive_ring(struct ring *r, enum mode mode)
{
	unsigned char copy[MSG];
	uint64_t head = 0;
	while (head < MESSAGES) {
		uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		for (; head < tail; head++) {
			if (mode == ROBUST2)
				pthread_mutex_lock(&r->recv_mutex);
			memcpy(copy, r->slot[head % SLOTS], MSG);
			atomic_store_explicit(&r->head, head + 1, memory_order_release);
			if (mode == ROBUST2) {
				atomic_thread_fence(memory_order_seq_cst);
				pthread_mutex_unlock(&r->recv_mutex);
			}
			if (copy[0] != (unsigned char)head || copy[MSG - 1] != (unsigned char)head) {
				atomic_store(&r->failed, 1);
				_exit(1);
			}
		}
	}
	_exit(0);
}

static void send_ring(struct ring *r, enum mode mode)
{
	uint64_t seen_head = 0;
	for (uint64_t i = 0; i < MESSAGES; i++) {
		while (i - seen_head >= SLOTS) {
			seen_head = atomic_load_explicit(&r->head, memory_order_acquire);
			if (atomic_load_explicit(&r->failed, memory_order_relaxed))
				return;
		}
		if (mode >= ROBUST)
			pthread_mutex_lock(&r->mutex);
		else if (mode != BARE)
			while (atomic_exchange_explicit(&r->lock, 1, memory_order_acquire))
				;
		memset(r->slot[i % SLOTS], (unsigned char)i, MSG);
		atomic_store_explicit(&r->tail, i + 1, memory_order_release);
		if (mode >= FENCE)
			atomic_thread_fence(memory_order_seq_cst);
		if (mode >= ROBUST)
			pthread_mutex_unlock(&r->mutex);
		else if (mode != BARE)
			atomic_store_explicit(&r->lock, 0, memory_order_release);
	}
}

static double run_ring(enum mode mode)
{
	struct ring *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			      -1, 0);
	if (r == MAP_FAILED)
		return -1;
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&r->mutex, &a);
	pthread_mutex_init(&r->recv_mutex, &a);
	double t0 = now_s();
	pid_t pid = fork();
	if (pid == 0)
		receive_ring(r, mode);
	if (pid < 0)
		return -1;
	send_ring(r, mode);
	int status;
	waitpid(pid, &status, 0);
	double rate = MESSAGES / (now_s() - t0);
	munmap(r, sizeof(*r));
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? rate : -1;
}

/* One-way SEQPACKET messages through a uspair pair, or through the
 * kernel's (an eighth as many: it is about ten times slower). */
static double run_socketpair(bool kernel)
{
	int (*pair_fn)(int, int, int, int *) = kernel ? socketpair : usp_socketpair;
	ssize_t (*send_fn)(int, const void *, size_t, int) = kernel ? send : usp_send;
	ssize_t (*recv_fn)(int, void *, size_t, int) = kernel ? recv : usp_recv;
	int (*close_fn)(int) = kernel ? close : usp_close;
	const long messages = kernel ? MESSAGES / 8 : MESSAGES;
	int sv[2];
	if (pair_fn(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		return -1;
	unsigned char buf[MSG];
	memset(buf, 0, sizeof(buf));
	double t0 = now_s();
	pid_t pid = fork();
	if (pid == 0) {
		close_fn(sv[0]);
		for (long i = 0; i < messages; i++)
			if (recv_fn(sv[1], buf, MSG, 0) != MSG || buf[0] != (unsigned char)i)
				_exit(1);
		_exit(0);
	}
	if (pid < 0)
		return -1;
	close_fn(sv[1]);
	for (long i = 0; i < messages; i++) {
		buf[0] = (unsigned char)i;
		if (send_fn(sv[0], buf, MSG, 0) != MSG)
			break; /* the receiver failed (its end is closed) */
	}
	close_fn(sv[0]); /* a receiver still waiting then sees EOF: exit 1 */
	int status;
	waitpid(pid, &status, 0);
	double rate = (double)messages / (now_s() - t0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? rate : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	if (rounds < 1 || rounds > MAX_ROUNDS)
		rounds = 5;
	double rate[N_MODES][MAX_ROUNDS];
	for (int k = 0; k < rounds; k++) {
		fprintf(stderr, "rate_floor: round %d of %d\n", k + 1, rounds);
		for (int m = 0; m < N_MODES; m++) {
			rate[m][k] = m >= USPAIR ? run_socketpair(m == KERNEL) : run_ring((enum mode)m);
			if (rate[m][k] < 0) {
				fprintf(stderr, "rate_floor: %s failed\n", mode_names[m]);
				return 1;
			}
		}
	}
	printf("one-way %d B messages between two processes, M messages/s, median of %d rounds\n",
	       MSG, rounds);
	for (int m = 0; m < N_MODES; m++)
		qsort(rate[m], (size_t)rounds, sizeof(double), cmp_double);
	double kernel = rate[KERNEL][rounds / 2];
	for (int m = 0; m < N_MODES; m++)
		printf("  %-7s %6.1f  %5.1fx the kernel\n", mode_names[m], rate[m][rounds / 2] / 1e6,
		       rate[m][rounds / 2] / kernel);
	return 0;
}
