/*
 * The endpoint locks (usp_endpoint.send_lock and recv_lock): mutual
 * exclusion between every thread of every process that holds either end
 * of a pair, with recovery when a holder dies inside, and nothing in the
 * shared word that this process would ever follow as a pointer.
 *
 * Why not glibc's robust process-shared mutex (used until 2026-12-06): it
 * links every robust mutex a thread holds into that thread's robust list,
 * and the links live in the mutex, here in memory the peer can write.
 * pthread_mutex_unlock() unlinks by storing through those links: a peer
 * that rewrote them while we held the lock chose an address in our
 * process and a value to store there (test/lock "lock lines").  The kernel
 * also walks the list when the thread exits.  It also cost about 250 of
 * the 965 instructions of a send+recv round.
 *
 * The word (64 bits, on its own cache line in the region):
 *   bits  0-29  owner's thread id; USP_LOCK_FOREIGN when the owner's
 *               numbers cannot be judged here (below); 0 = free
 *   bit  30     USP_LOCK_DEFERRED: a signal handler of the owner's thread
 *               queued sends behind it (deferred.c)
 *   bit  31     USP_LOCK_WAITERS: someone may sleep on it
 *   bits 32-63  owner's process id
 * The futex is the low half (the 32-bit word at its address on a
 * little-endian machine), which holds the thread id and the waiters bit.
 *
 * Ordering: the acquiring CAS is an acquire (L1); the releasing CAS to 0
 * from the word the holder read is a release (U1, pairs with L1), so what
 * one holder wrote is visible to the next.  A CAS rather than an exchange:
 * with USP_LOCK_DEFERRED set, the holder first sends what its handlers
 * deferred, still holding the lock (usp__unlock_slow).
 *
 * Wake protocol (the classic three-state futex mutex): a waiter sets
 * USP_LOCK_WAITERS by CAS before it sleeps, and sleeps only while the low
 * half still holds exactly that value (the kernel compares under its futex
 * lock); the releasing CAS fails if the bit was set since the holder read
 * the word, and a set bit makes the release wake one sleeper.  A woken
 * waiter takes the lock with the bit set, since others may still sleep:
 * at worst one wake too many, never one too few.
 *
 * Liveness: a waiter sleeps at most USP_LOCK_CHECK_NS at a time, and
 * after each USP_LOCK_CHECK_NS of waiting (by the clock, however often
 * signals cut its sleeps) it asks the kernel whether the owner still
 * exists (owner_gone()); if not, it takes the lock over by CAS from the
 * very word it judged.  What the
 * owner was writing is consistent, as before: tail and head are published
 * last, so a holder that died never published half a record.  The ids are
 * numbers in the owner's pid namespace, so a process whose pid namespace
 * differs from its fork parent's (unshare or setns before fork) puts
 * USP_LOCK_FOREIGN instead, and nobody judges numbers from another
 * namespace: such an owner is taken for alive (docs/DESIGN.md, known
 * difference 10).  Regions are shared only by fork descendants of the
 * process that made them, so two processes that write real ids are both
 * in that process's namespace.
 *
 * A hostile peer can write anything into the word: we may then wait (as
 * for any lock it holds), steal, or wake in vain; it never makes us
 * follow a pointer or touch memory outside the word.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define USP_LOCK_CHECK_NS (20 * 1000 * 1000L)
#define USP_LOCK_SPINS 100

USP_TLS uint64_t usp__tl_lock_id;
_Atomic unsigned long usp__lock_checks;
/* st_ino of /proc/self/ns/pid, 0 = not known; written by the first
 * thread and the fork handlers (before any other thread exists) */
static _Atomic uint64_t process_pidns;
static _Atomic bool process_foreign;

static _Atomic uint32_t *futex_half(struct usp_lock *l)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (_Atomic uint32_t *)(void *)&l->word;
#else
	return (_Atomic uint32_t *)(void *)&l->word + 1;
#endif
}

static uint64_t read_pidns(void)
{
	struct stat st;
	int saved_errno = errno; /* fork() must not change it */
	uint64_t ns = stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
	errno = saved_errno;
	return ns;
}

void usp__lock_atfork_prepare(void)
{
	if (!atomic_load_explicit(&process_pidns, memory_order_relaxed))
		atomic_store_explicit(&process_pidns, read_pidns(), memory_order_relaxed);
}

/* The forking thread's id is its parent's: forget it.  A child whose pid
 * namespace is not its parent's writes USP_LOCK_FOREIGN from now on, and
 * so do its children (the flag is inherited).  Without /proc to tell,
 * a parent this child cannot see (getppid() == 0) says the same: a
 * child's namespace is its parent's or one below it. */
void usp__lock_atfork_child(void)
{
	uint64_t parent = atomic_load_explicit(&process_pidns, memory_order_relaxed);
	uint64_t mine = read_pidns();
	if (mine && parent ? mine != parent : getppid() == 0)
		atomic_store_explicit(&process_foreign, true, memory_order_relaxed);
	atomic_store_explicit(&process_pidns, mine, memory_order_relaxed);
	usp__tl_lock_id = 0;
}

uint64_t usp__lock_id_slow(void)
{
	uint64_t id;
	if (atomic_load_explicit(&process_foreign, memory_order_relaxed))
		id = USP_LOCK_FOREIGN;
	else
		id = (uint64_t)(uint32_t)getpid() << 32 | ((uint32_t)gettid() & USP_LOCK_TID_MASK);
	usp__tl_lock_id = id;
	return id;
}

void usp__lock_init(struct usp_lock *l)
{
	atomic_init(&l->word, 0);
}

/* usp__unlock() when the word has a bit set (or changed under its CAS):
 * send what our handlers deferred behind the lock while we still hold it,
 * then let go (U1) and wake a sleeper if the word had the waiters bit. */
void usp__unlock_slow(struct usp_lock *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	for (int tries = 0;; tries++) {
		/* a peer that keeps flipping bits in the word could keep us
		 * here for ever: after a while let go by exchange (U1 too) */
		if (tries >= 64) {
			w = atomic_exchange_explicit(&l->word, 0, memory_order_release);
			break;
		}
		/* never let go of a word with the bit: a handler may have set
		 * it after the flush's last look */
		if (w & USP_LOCK_DEFERRED) {
			usp__deferred_flush(l);
			w = atomic_load_explicit(&l->word, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&l->word, &w, 0,
							  memory_order_release, /* U1 */
							  memory_order_relaxed))
			break;
	}
	if (w & USP_LOCK_WAITERS) {
		int saved_errno = errno;
		syscall(SYS_futex, futex_half(l), FUTEX_WAKE, 1, NULL, NULL, 0);
		errno = saved_errno;
	}
}

/* Has the owner written in `word` exited?  False whenever that cannot be
 * known: a foreign owner or judge, an id of ours (a signal handler that
 * interrupted our own holder waits, as it did with glibc's mutex), a
 * process the kernel will not tell about. */
static bool owner_gone(uint64_t word, uint64_t self)
{
	uint32_t tid = (uint32_t)word & USP_LOCK_TID_MASK;
	uint32_t pid = (uint32_t)(word >> 32);
	if (self == USP_LOCK_FOREIGN || tid == USP_LOCK_FOREIGN || !tid || !pid ||
	    pid > INT_MAX ||
	    usp__lock_owner(word) == self)
		return false;
	/* EPERM: it exists (another user's) */
	if (syscall(SYS_tgkill, (pid_t)pid, (pid_t)tid, 0) == -1 && errno == ESRCH)
		return true;
	if (tid != pid)
		return false;
	/* The main thread of a process that has exited stays findable until
	 * its parent reaps it (which may be the waiter itself, stuck here):
	 * its pidfd, which needs no permission, is readable once the whole
	 * process has exited.  Raw system calls: poll() and close() are
	 * cancellation points, and a lock wait must not be one (the caller
	 * may hold other locks). */
	int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (pfd < 0)
		return errno == ESRCH;
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	struct timespec zero = {0, 0};
	bool exited = syscall(SYS_ppoll, &p, 1, &zero, NULL, 0) == 1 && (p.revents & POLLIN);
	syscall(SYS_close, pfd);
	return exited;
}

/* Sleep on the low half while it equals `low`, at most USP_LOCK_CHECK_NS.
 * A signal ends the sleep early; the handler has run and the caller just
 * looks again (a lock wait is never reported as EINTR). */
static void sleep_on(struct usp_lock *l, uint32_t low)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = USP_LOCK_CHECK_NS};
	syscall(SYS_futex, futex_half(l), FUTEX_WAIT, low, &ts, NULL, 0);
}

void usp__lock_slow(struct usp_lock *l, uint64_t self)
{
	int saved_errno = errno;
	uint64_t w;
	for (int i = 0; i < USP_LOCK_SPINS; i++) {
		usp__cpu_relax();
		w = atomic_load_explicit(&l->word, memory_order_relaxed);
		if (!w && usp__lock_take(l, 0, self))
			goto out;
	}
	/* the owner is judged every USP_LOCK_CHECK_NS of waiting, by the
	 * clock: signals more frequent than that (a profiling timer) end
	 * every sleep early */
	int64_t next_check = usp__now_ns() + USP_LOCK_CHECK_NS;
	for (;;) {
		w = atomic_load_explicit(&l->word, memory_order_relaxed);
		/* free: taken with the bit, since others may sleep */
		if (!w) {
			if (usp__lock_take(l, 0, self | USP_LOCK_WAITERS))
				goto out;
			continue;
		}
		if (!(w & USP_LOCK_WAITERS)) {
			uint64_t expected = w;
			if (!atomic_compare_exchange_strong_explicit(
				    &l->word, &expected, w | USP_LOCK_WAITERS,
				    memory_order_relaxed, memory_order_relaxed))
				continue;
			w |= USP_LOCK_WAITERS;
		}
		sleep_on(l, (uint32_t)w);
		int64_t now = usp__now_ns();
		if (now < next_check)
			continue;
		next_check = now + USP_LOCK_CHECK_NS;
		atomic_fetch_add_explicit(&usp__lock_checks, 1, memory_order_relaxed);
		w = atomic_load_explicit(&l->word, memory_order_relaxed);
		if (!w || !owner_gone(w, self))
			continue;
		/* take it over from the very owner judged gone, and drop what
		 * its handlers had queued behind it (if it was ours) */
		if (usp__lock_take(l, w, self | USP_LOCK_WAITERS)) {
			if (w & USP_LOCK_DEFERRED)
				usp__deferred_drop(l, usp__lock_owner(w));
			goto out;
		}
	}
out:
	errno = saved_errno;
}

bool usp__trylock(struct usp_lock *l)
{
	return usp__lock_take(l, 0, usp__lock_id());
}
