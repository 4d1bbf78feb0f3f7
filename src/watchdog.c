/*
 * The liveness watchdog: one helper thread per process, started the first
 * time a thread of that process goes to sleep on a uspair endpoint.
 *
 * Why a thread: a sleeper waits in FUTEX_WAIT without a timeout, because
 * only that gives the kernel's exact signal semantics for a blocking
 * socket call (restarted after a handler with SA_RESTART, EINTR without).
 * But a peer that dies without releasing its endpoint (SIGKILL, _exit)
 * cannot wake it.  The watchdog asks the kernel about the peer of every
 * endpoint that has a sleeper in this process, every USP_WATCH_NS, and a
 * release it discovers wakes the sleepers (usp__endpoint_released).
 *
 * Second job: moving a ring into the kernel for a descendant that is about
 * to exec (fallback.c).  A process that makes pairs starts its watchdog
 * with its first pair and gets a service word in a MAP_SHARED page of its
 * own (at the latest when it forks), which every child forked later
 * shares; the parked watchdog waits on it with a shared futex.  A
 * descendant that needs a flush bumps the word of each ancestor it
 * inherited (usp__request_flush), and each ancestor's watchdog serves the
 * endpoints it holds whose other end asked (usp__serve_all_flushes).  The
 * page holds one counter and nothing is read from it but its change, so
 * a descendant that scribbles on it only causes wasted scans.
 *
 * Locking: watch_lock protects the slot array.  A registered slot holds a
 * reference on its pair, so the region stays mapped while it is watched.
 * The thread blocks every signal.  After fork the child has no watchdog;
 * the atfork child handler forgets the parent's, and the child's first
 * sleep starts a new one.
 */
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define USP_WATCH_NS (40 * 1000 * 1000L)

struct watch_slot {
	struct usp_pair *pair; /* NULL: free */
	int side;
	int fd;
	int sleepers;
};

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;

/* The service word: bumped (then FUTEX_WAKE, shared) by a new sleeper of
 * this process and by a descendant that wants a flush; the parked
 * watchdog waits on it.  own_service is this process's (NULL until it
 * forks or first sleeps); ancestors[] are the ones inherited from the
 * processes that forked this one, nearest first. */
struct usp_service {
	_Atomic uint32_t seq;
};
#define USP_MAX_ANCESTORS 8
static struct usp_service *own_service;
static struct usp_service *ancestors[USP_MAX_ANCESTORS];
static int n_ancestors;

static struct usp_service *service_create(void)
{
	void *p = mmap(NULL, sizeof(struct usp_service), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void service_bump(struct usp_service *sv)
{
	atomic_fetch_add(&sv->seq, 1);
	syscall(SYS_futex, &sv->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
static struct watch_slot *slots;
static size_t n_slots;
static size_t n_active;
static bool watchdog_running; /* in this process; reset in a fork child
			       * (read without the lock by usp__watch_ensure) */

static void check_slot(struct watch_slot *w)
{
	struct usp_sock s;
	/* the descriptor may have been closed and its number reused */
	if (!usp__lookup_entry(w->fd, &s))
		return;
	if (s.pair == w->pair && s.side == w->side)
		usp__check_peer(&s, true);
	usp__put(&s);
}

/*
 * The thread ticks every USP_WATCH_NS while anyone sleeps and for
 * USP_WATCH_IDLE_TICKS more after the last sleeper left, then parks on
 * watch_cond.  A new sleeper signals it only when it is parked: a process
 * whose threads go to sleep and wake thousands of times a second (a
 * sleeping reader) would otherwise pay a thread wake-up, a context switch
 * on a small machine, for every sleep.  A sleeper registered while the
 * thread ticks is checked at the next tick, within USP_WATCH_NS.
 */
#define USP_WATCH_IDLE_TICKS 25
static bool watchdog_parked;

static void *watchdog_main(void *arg)
{
	(void)arg;
	unsigned idle = 0;
	/* one pass at the start: a request may have come before the thread */
	uint32_t seen = atomic_load(&own_service->seq) - 1;
	pthread_mutex_lock(&watch_lock);
	for (;;) {
		if (n_active == 0 && idle >= USP_WATCH_IDLE_TICKS) {
			watchdog_parked = true;
			while (n_active == 0 && atomic_load(&own_service->seq) == seen) {
				pthread_mutex_unlock(&watch_lock);
				syscall(SYS_futex, &own_service->seq, FUTEX_WAIT, seen, NULL, NULL, 0);
				pthread_mutex_lock(&watch_lock);
			}
			watchdog_parked = false;
		}
		uint32_t now_seq = atomic_load(&own_service->seq);
		if (now_seq != seen) {
			seen = now_seq;
			pthread_mutex_unlock(&watch_lock);
			usp__serve_all_flushes();
			pthread_mutex_lock(&watch_lock);
		}
		if (n_active) {
			idle = 0;
			for (size_t i = 0; i < n_slots; i++)
				if (slots[i].pair)
					check_slot(&slots[i]);
		} else {
			idle++;
		}
		pthread_mutex_unlock(&watch_lock);
		struct timespec tick = {0, USP_WATCH_NS};
		nanosleep(&tick, NULL);
		pthread_mutex_lock(&watch_lock);
	}
	return NULL;
}

/* Caller holds watch_lock. */
static void start_watchdog(void)
{
	if (watchdog_running)
		return;
	if (!own_service && !(own_service = service_create()))
		return;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* inherited by the thread */
	pthread_t th;
	if (pthread_create(&th, &attr, watchdog_main, NULL) == 0)
		__atomic_store_n(&watchdog_running, true, __ATOMIC_RELAXED);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
}

/* Register a sleeper on s; returns false if the watchdog cannot run (the
 * caller then sleeps with a timeout and checks the peer itself). */
bool usp__watch_begin(struct usp_sock *s)
{
	pthread_mutex_lock(&watch_lock);
	start_watchdog();
	bool ok = watchdog_running;
	struct watch_slot *free_slot = NULL;
	for (size_t i = 0; ok && i < n_slots; i++) {
		if (slots[i].pair == s->pair && slots[i].side == s->side &&
		    slots[i].fd == s->fd) {
			slots[i].sleepers++;
			pthread_mutex_unlock(&watch_lock);
			return true;
		}
		if (!slots[i].pair && !free_slot)
			free_slot = &slots[i];
	}
	if (ok && !free_slot) {
		size_t n = n_slots ? n_slots * 2 : 8;
		struct watch_slot *grown = realloc(slots, n * sizeof(*grown));
		if (grown) {
			for (size_t i = n_slots; i < n; i++)
				grown[i].pair = NULL;
			free_slot = &grown[n_slots];
			slots = grown;
			n_slots = n;
		}
	}
	if (ok && free_slot) {
		atomic_fetch_add(&s->pair->refs, 1);
		*free_slot = (struct watch_slot){s->pair, s->side, s->fd, 1};
		if (n_active++ == 0 && watchdog_parked)
			service_bump(own_service);
	}
	pthread_mutex_unlock(&watch_lock);
	return ok && free_slot;
}

void usp__watch_end(struct usp_sock *s)
{
	struct usp_pair *drop = NULL;
	pthread_mutex_lock(&watch_lock);
	for (size_t i = 0; i < n_slots; i++) {
		struct watch_slot *w = &slots[i];
		if (w->pair == s->pair && w->side == s->side && w->fd == s->fd) {
			if (--w->sleepers == 0) {
				drop = w->pair;
				w->pair = NULL;
				n_active--;
			}
			break;
		}
	}
	pthread_mutex_unlock(&watch_lock);
	if (drop)
		usp__pair_unref(drop);
}

/* In the child after fork: the parent's watchdog thread does not exist
 * here, and the slots describe the parent's sleepers. */
void usp__watch_atfork_child(void)
{
	pthread_mutex_init(&watch_lock, NULL);
	/* the parent's service word is now an ancestor's */
	if (own_service) {
		if (n_ancestors == USP_MAX_ANCESTORS)
			n_ancestors--;
		for (int i = n_ancestors; i > 0; i--)
			ancestors[i] = ancestors[i - 1];
		ancestors[0] = own_service;
		n_ancestors++;
		own_service = NULL;
	}
	for (size_t i = 0; i < n_slots; i++) {
		if (slots[i].pair)
			usp__pair_unref(slots[i].pair);
		slots[i].pair = NULL;
	}
	n_active = 0;
	watchdog_running = false;
	watchdog_parked = false;
}

/* Before fork (table_mutex held): the page the child will share. */
void usp__watch_atfork_prepare(void)
{
	pthread_mutex_lock(&watch_lock);
	if (!own_service)
		own_service = service_create();
	pthread_mutex_unlock(&watch_lock);
}

/* A process that makes pairs runs its watchdog from the first one on, so
 * that it can answer its future children's requests even while all its
 * own threads are blocked elsewhere (waitpid).  Not started from the fork
 * handlers: a thread created inside fork() confuses ThreadSanitizer's
 * view of the locks the handlers hold. */
void usp__watch_ensure(void)
{
	if (__atomic_load_n(&watchdog_running, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&watch_lock);
	start_watchdog();
	pthread_mutex_unlock(&watch_lock);
}

bool usp__have_ancestors(void)
{
	return n_ancestors > 0;
}

void usp__request_flush(void)
{
	for (int i = 0; i < n_ancestors; i++)
		service_bump(ancestors[i]);
}
