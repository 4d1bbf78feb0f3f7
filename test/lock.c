/*
 * lock: the endpoint locks (src/lock.c).
 *
 *  1. "holder died": a co-holder dies inside a call, holding the sender's
 *     send_lock and the receiver's recv_lock: a thread that exits, a
 *     process that exits and is not reaped yet (a zombie, whose reaper
 *     may be the very process that waits for the lock), one killed by
 *     SIGKILL, one reaped.  The survivors' send and receive then answer as
 *     the kernel's do after the same death (compared with a kernel pair,
 *     where the co-holder just dies); a lock never recovered hangs and the
 *     watchdog fails the program.
 *  2. "lock lines": the peer can write the lock's whole cache line.  With
 *     glibc's robust mutex, pthread_mutex_unlock() stored through links
 *     kept there, at an address and with a value the peer chose.  A
 *     thread scribbles pointers to a canary over every byte of all four
 *     lock lines but the lock words, while another sends and receives:
 *     the canary and every message must stay intact.
 *  3. "exclusion": threads of two processes increment a plain counter in
 *     shared memory under one lock; no increment may be lost, and almost
 *     no wait may last until an owner check (a lost wake-up would only
 *     show as such 20 ms sleeps).
 *  3b. "live holder": an owner that holds a lock for 150 ms while alive
 *     keeps it, though its waiter judges it several times: the main
 *     thread of a one-thread process (the pidfd check), another thread of
 *     a process, an owner marked FOREIGN.  "unprivileged waiter": a waiter
 *     that may not signal the dead owner (tgkill says EPERM) still takes
 *     the lock of its unreaped main thread (root only).
 *  4. "pid namespace": a process whose pid namespace is not its parent's
 *     writes no thread id into a lock word (another namespace's numbers
 *     would be judged wrongly); one in the same namespace writes its own.
 *     Needs unshare(CLONE_NEWPID) (root); skipped with a note otherwise.
 */
#include "t_helpers.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* ---- 1. holder died ---- */

enum death { BY_THREAD_EXIT, BY_EXIT_UNREAPED, BY_SIGKILL, BY_EXIT_REAPED };
static const char *death_name[] = {"thread exits", "process exits, unreaped",
				   "process killed", "process exits, reaped"};

/* What the dying holder does: in a uspair run, take the locks a send on a
 * and a receive on b need, as a call interrupted by death would hold
 * them; in a kernel run, nothing. */
struct holder {
	struct t_ctx *c;
	int ready[2];
};

static void take_locks(struct t_ctx *c)
{
	if (c->kind != T_USPAIR)
		return;
	int a, b;
	struct usp_shared *shm = t_usp_region(c->a, &a);
	if (!shm || !t_usp_region(c->b, &b))
		t_die("no region behind a uspair descriptor");
	usp__lock(&shm->ep[a].send_lock);
	usp__lock(&shm->ep[b].recv_lock);
}

static void *holder_thread(void *arg)
{
	take_locks(arg);
	return NULL; /* exits holding them */
}

static void scenario_holder_died(struct t_ctx *c)
{
	enum death how = *(enum death *)c->user;
	pid_t child = -1;
	int ready[2];
	if (how == BY_THREAD_EXIT) {
		pthread_t t;
		t_thread_start(&t, holder_thread, c);
		t_thread_join(t);
	} else {
		if (pipe(ready) != 0)
			t_die("pipe: %s", strerror(errno));
		child = fork();
		if (child < 0)
			t_die("fork: %s", strerror(errno));
		if (child == 0) {
			take_locks(c);
			if (write(ready[1], "r", 1) != 1)
				_exit(3);
			if (how == BY_SIGKILL)
				for (;;)
					pause();
			_exit(0);
		}
		char r;
		if (read(ready[0], &r, 1) != 1)
			t_die("the holder did not start");
		close(ready[0]);
		close(ready[1]);
		if (how == BY_SIGKILL)
			kill(child, SIGKILL);
		if (how == BY_EXIT_REAPED)
			waitpid(child, NULL, 0);
	}
	double start = t_now();
	t_send(c, c->a, "after", 5, 0);
	t_recv(c, c->b, 64, 0);
	t_send(c, c->b, "back", 4, 0);
	t_recv(c, c->a, 64, 0);
	double took = t_now() - start;
	if (child > 0 && how != BY_EXIT_REAPED)
		waitpid(child, NULL, 0);
	/* the survivor waits at most a few of lock.c's 20 ms checks */
	if (c->kind == T_USPAIR && took > 2.0)
		t_fail("%s %s: the survivors took %.2f s to get the locks", c->scenario,
		       t_type_name(c->type), took);
}

/* ---- 2. lock lines ---- */

static volatile uint64_t canary = 0x5afe5afe5afe5afeull;
static atomic_bool scribbling;

static void *scribbler(void *arg)
{
	struct usp_shared *shm = arg;
	uint64_t bait = (uint64_t)(uintptr_t)&canary;
	while (atomic_load(&scribbling)) {
		for (int i = 0; i < 2; i++) {
			struct usp_lock *locks[2] = {&shm->ep[i].send_lock, &shm->ep[i].recv_lock};
			for (int k = 0; k < 2; k++) {
				/* every 8-byte slot of the line after the word */
				volatile uint64_t *line = (volatile uint64_t *)(void *)locks[k];
				for (size_t j = sizeof(struct usp_lock) / 8; j < USP_CACHELINE / 8; j++)
					line[j] = bait;
			}
		}
	}
	return NULL;
}

static void check_lock_lines(int type)
{
	int sv[2];
	if (usp_socketpair(AF_UNIX, type, 0, sv) != 0) {
		t_fail("lock lines: usp_socketpair: %s", strerror(errno));
		return;
	}
	atomic_store(&scribbling, true);
	pthread_t t;
	t_thread_start(&t, scribbler, t_usp_region(sv[0], NULL));
	char out[100], in[128];
	int bad = 0;
	for (int i = 0; i < 20000 && !bad; i++) {
		size_t len = 1 + (size_t)i % sizeof(out);
		memset(out, 'a' + i % 26, len);
		int from = i & 1;
		bad = usp_send(sv[from], out, len, 0) != (ssize_t)len ||
		      usp_recv(sv[!from], in, sizeof(in), 0) != (ssize_t)len || memcmp(in, out, len);
	}
	atomic_store(&scribbling, false);
	t_thread_join(t);
	if (bad)
		t_fail("lock lines %s: a message was lost or garbled", t_type_name(type));
	if (canary != 0x5afe5afe5afe5afeull)
		t_fail("lock lines %s: the library wrote %#llx into this process's memory at an "
		       "address the peer chose", t_type_name(type), (unsigned long long)canary);
	usp_close(sv[0]);
	usp_close(sv[1]);
}

/* ---- 3. exclusion ---- */

struct counted {
	struct usp_lock lock;
	uint64_t count; /* plain: only the lock orders it */
};

#define EXCL_THREADS 3
#define EXCL_ROUNDS 40000

static void *increment(void *arg)
{
	struct counted *k = arg;
	for (int i = 0; i < EXCL_ROUNDS; i++) {
		usp__lock(&k->lock);
		k->count++;
		usp__unlock(&k->lock);
	}
	return NULL;
}

static void run_incrementers(struct counted *k)
{
	pthread_t t[EXCL_THREADS];
	for (int i = 0; i < EXCL_THREADS; i++)
		t_thread_start(&t[i], increment, k);
	for (int i = 0; i < EXCL_THREADS; i++)
		t_thread_join(t[i]);
}

static void check_exclusion(void)
{
	struct counted *k = mmap(NULL, sizeof(*k), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (k == MAP_FAILED)
		t_die("mmap: %s", strerror(errno));
	usp__lock_init(&k->lock);
	k->count = 0;
	unsigned long checks_before = atomic_load(&usp__lock_checks);
	pid_t child = fork();
	if (child == 0) {
		alarm(60);
		run_incrementers(k);
		_exit(0);
	}
	run_incrementers(k);
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		t_fail("exclusion: the child did not finish");
	uint64_t want = 2ull * EXCL_THREADS * EXCL_ROUNDS;
	unsigned long checks = atomic_load(&usp__lock_checks) - checks_before;
	if (checks > 20)
		t_fail("exclusion: %lu lock waits lasted until an owner check (20 ms): lost "
		       "wake-ups?", checks);
	if (k->count != want)
		t_fail("exclusion: %llu increments counted, %llu made",
		       (unsigned long long)k->count, (unsigned long long)want);
	if (atomic_load(&k->lock.word) != 0)
		t_fail("exclusion: the lock is still held (%#llx)",
		       (unsigned long long)atomic_load(&k->lock.word));
	munmap(k, sizeof(*k));
}

/* ---- 3b. live holder, unprivileged waiter ---- */

struct held {
	struct usp_lock lock;
	_Atomic int state; /* 1: taken, 2: about to release */
};

static void hold_for_a_while(struct held *h)
{
	usp__lock(&h->lock);
	atomic_store(&h->state, 1);
	t_sleep_ms(150);
	atomic_store(&h->state, 2);
	usp__unlock(&h->lock);
}

static void *hold_thread(void *arg)
{
	hold_for_a_while(arg);
	return NULL;
}

static struct held *held_map(void)
{
	struct held *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED)
		t_die("mmap: %s", strerror(errno));
	usp__lock_init(&h->lock);
	atomic_store(&h->state, 0);
	return h;
}

/* The waiter's side: the lock must come only after the owner let go, and
 * after the waiter judged the owner (and found it alive) at least once. */
static void wait_out(struct held *h, const char *what)
{
	while (atomic_load(&h->state) == 0)
		t_sleep_ms(1);
	unsigned long before = atomic_load(&usp__lock_checks);
	usp__lock(&h->lock);
	if (atomic_load(&h->state) != 2)
		t_fail("live holder (%s): the lock was taken from its live owner", what);
	if (atomic_load(&usp__lock_checks) == before)
		t_fail("live holder (%s): the waiter never judged the owner", what);
	usp__unlock(&h->lock);
}

static void *foreign_waiter(void *arg)
{
	struct held *h = arg;
	usp__lock(&h->lock);
	usp__unlock(&h->lock);
	return NULL;
}

static void check_live_holders(void)
{
	for (int threaded = 0; threaded < 2; threaded++) {
		const char *what = threaded ? "another thread" : "one-thread process";
		struct held *h = held_map();
		pid_t child = fork();
		if (child == 0) {
			alarm(20);
			if (threaded) {
				pthread_t t;
				t_thread_start(&t, hold_thread, h);
				t_thread_join(t);
			} else {
				hold_for_a_while(h);
			}
			_exit(0);
		}
		wait_out(h, what);
		waitpid(child, NULL, 0);
		munmap(h, sizeof(*h));
	}
	/* an owner in another pid namespace: never judged gone */
	struct held *h = held_map();
	atomic_store(&h->lock.word, (uint64_t)USP_LOCK_FOREIGN);
	unsigned long before = atomic_load(&usp__lock_checks);
	pthread_t t;
	t_thread_start(&t, foreign_waiter, h);
	t_sleep_ms(150);
	if (atomic_load(&usp__lock_checks) == before)
		t_fail("live holder (foreign): the waiter never looked at the owner");
	uint64_t w = atomic_load(&h->lock.word);
	if ((w & ~(uint64_t)USP_LOCK_WAITERS) != USP_LOCK_FOREIGN)
		t_fail("live holder (foreign): a foreign owner's lock was taken (%#llx)",
		       (unsigned long long)w);
	usp__unlock(&h->lock);
	t_thread_join(t);
	munmap(h, sizeof(*h));
}

static void check_unprivileged_waiter(void)
{
	if (geteuid() != 0) {
		t_note("unprivileged waiter: skipped, needs root to make a waiter of another uid");
		return;
	}
	struct held *h = held_map();
	pid_t holder = fork();
	if (holder == 0) {
		usp__lock(&h->lock);
		atomic_store(&h->state, 1);
		_exit(0); /* holding it; not reaped until the waiter is done */
	}
	pid_t waiter = fork();
	if (waiter == 0) {
		alarm(20);
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(77);
		while (atomic_load(&h->state) == 0)
			t_sleep_ms(1);
		usp__lock(&h->lock);
		_exit(0);
	}
	int st = -1;
	double until = t_now() + 5;
	while (t_now() < until && waitpid(waiter, &st, WNOHANG) == 0)
		t_sleep_ms(10);
	if (st == -1) {
		t_fail("unprivileged waiter: no lock 5 s after its owner exited");
		kill(waiter, SIGKILL);
		waitpid(waiter, NULL, 0);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		t_note("unprivileged waiter: skipped, setuid refused");
	} else if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		t_fail("unprivileged waiter: exit status %#x", st);
	}
	waitpid(holder, NULL, 0);
	munmap(h, sizeof(*h));
}

/* ---- 4. pid namespace ---- */

/* 0 if this process's lock id is its own pid and thread id */
static int id_is_own(void *arg)
{
	(void)arg;
	uint64_t id = usp__lock_id();
	return id == ((uint64_t)(uint32_t)getpid() << 32 | (uint32_t)gettid()) ? 0 : 1;
}

static int id_is_foreign(void *arg)
{
	(void)arg;
	return usp__lock_id() == USP_LOCK_FOREIGN ? 0 : 1;
}

/* the first process in a new pid namespace, and its children too */
static int foreign_with_children(void *arg)
{
	int r = id_is_foreign(arg);
	return r ? r : t_run_in_child(id_is_foreign, NULL) ? 2 : 0;
}

/* a process that enters a new pid namespace for its own children */
static int in_new_pid_namespace(void *arg)
{
	if (unshare(CLONE_NEWPID) != 0)
		return 77;
	return t_run_in_child(foreign_with_children, arg);
}

static void check_pid_namespace(void)
{
	int sv[2]; /* the fork handlers are installed with the first pair */
	if (usp_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		t_die("usp_socketpair: %s", strerror(errno));
	if (id_is_own(NULL) != 0)
		t_fail("pid namespace: the first process's lock id is not its pid and tid");
	if (t_run_in_child(id_is_own, NULL) != 0)
		t_fail("pid namespace: a child in the same namespace does not write its ids");
	int st = t_run_in_child(in_new_pid_namespace, NULL);
	if (st == 77)
		t_note("pid namespace: skipped, unshare(CLONE_NEWPID) refused (not root)");
	else if (st != 0)
		t_fail("pid namespace: a process in a new pid namespace wrote a thread id "
		       "(status %d)", st);
	usp_close(sv[0]);
	usp_close(sv[1]);
}

int main(void)
{
	t_init("lock");
	t_watchdog(240, "lock");
	static enum death deaths[] = {BY_THREAD_EXIT, BY_EXIT_UNREAPED, BY_SIGKILL,
				      BY_EXIT_REAPED};
	for (size_t i = 0; i < sizeof(deaths) / sizeof(deaths[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "holder died: %s", death_name[deaths[i]]);
		t_compare_matrix(name, scenario_holder_died, T_ALL_TYPES, T_BLOCKING,
				 T_ALL_DIRS, &deaths[i]);
	}
	static const int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		check_lock_lines(types[i]);
	check_exclusion();
	check_live_holders();
	check_unprivileged_waiter();
	check_pid_namespace();
	return t_finish();
}
