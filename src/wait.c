/*
 * Waiting and waking.
 *
 * A caller that cannot proceed (empty queue, full peer queue) first spins
 * for an adaptive budget re-checking its condition, then sleeps on its
 * endpoint's event_seq futex.  The protocol and its pairing of barriers:
 *
 *   sleeper                               waker
 *   sleepers += 1        (S1, seq_cst)    make the change visible
 *   seq = event_seq                       fence seq_cst            (W1)
 *   re-check condition                    if sleepers: event_seq += 1,
 *   futex_wait(&event_seq, seq)                        futex_wake(all)
 *
 * (The fast path's W1 is the release of its lock: internal.h
 * usp__unlock_full.)  S1 and W1 order the two sides: either the waker
 * sees the sleeper, or the sleeper's re-check sees the change; a bump
 * between the sleeper's read of event_seq and its futex_wait makes the
 * wait return at once.
 *
 * Receivers (waiting for data) and senders (waiting for room in the peer's
 * queue) have a pair of words each: sleepers/event_seq and
 * room_sleepers/room_seq.  A publish wakes only receivers, a consume only
 * senders, other changes both.  With one pair, a reader that consumed a
 * request woke the peer blocked waiting for the answer, which went back to
 * sleep: a whole extra wake-up per round trip for a sleeping peer.
 *
 * Pollers (poll.c) count themselves in `pollers` the same way (seq_cst,
 * pairs with W1), but sleep in the kernel's poll() on the backing socket.
 * A waker that sees pollers and turns token_sent from 0 to 1 sends one
 * token byte through the kernel pair (token_fd is the descriptor whose
 * kernel peer is the endpoint to wake); whoever consumes tokens clears
 * token_sent afterwards (scm.c skip_tokens), so one token at most is on
 * its way and wakers do not pay a send each while it is.
 *
 * A peer that died without releasing its endpoint cannot wake a sleeper;
 * the watchdog thread (watchdog.c) asks the kernel about it every 40 ms,
 * so that such a death is noticed within 100 ms.
 */
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define USP_TICK_NS (40 * 1000 * 1000LL)
#define USP_SPIN_MIN_NS 2000
#define USP_SPIN_MAX_NS 50000
/* usp__spin's wait without looking after quick spins: about one 64-byte
 * message's time at a busy sender on the 2-vCPU machines */
#define USP_SPIN_BLIND_NS 200
#define USP_SPIN_QUICK_POLLS 4

int64_t usp__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t usp__coarse_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* timeout_ns < 0: no timeout. */
static long futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL,
			      .tv_nsec = timeout_ns % 1000000000LL};
	/* Shared (not FUTEX_PRIVATE_FLAG): the word is in a MAP_SHARED region
	 * used by several processes. */
	return syscall(SYS_futex, word, FUTEX_WAIT, val, timeout_ns < 0 ? NULL : &ts,
		       NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * Send one junk byte (a wake token or a DGRAM liveness probe) through kfd
 * into the backing queue of endpoint `to`.  The fallback to the kernel
 * path (pair.c usp__fallback) must know how much junk precedes the user's
 * data in that queue, so junk is sent only inside junk_writers and counted
 * after it is queued:
 *   J1  junk_writers++ (seq_cst), then load kernel_mode;
 *   K1  (the fallback) kernel_mode = 1 (seq_cst), then wait for
 *       junk_writers == 0.
 * Dekker pair: either the writer sees kernel_mode and sends nothing, or
 * the fallback sees the writer and waits until its byte is queued and
 * counted.  Returns 0, -errno of the send, or -USP_ERAW (kernel mode).
 */
int usp__send_junk(struct usp_endpoint *to, int kfd)
{
	int r = 0;
	atomic_fetch_add(&to->junk_writers, 1); /* J1: pairs with K1 */
	if (atomic_load(&to->kernel_mode))
		r = -USP_ERAW;
	else if (send(kfd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		r = -errno;
	else
		atomic_fetch_add(&to->junk_sent, 1);
	atomic_fetch_sub(&to->junk_writers, 1);
	return r;
}

/* Caller issued W1 (internal.h usp__wake, usp__wake_after_mb). */
bool usp__wake_sleepers(struct usp_endpoint *ep, int token_fd, unsigned which)
{
	bool woke = false;
	if ((which & USP_WAKE_DATA) && atomic_load_explicit(&ep->sleepers, memory_order_relaxed)) {
		atomic_fetch_add(&ep->event_seq, 1);
		futex_wake_all(&ep->event_seq);
		int64_t since = atomic_load_explicit(&ep->data_sleep_since_ns, memory_order_relaxed);
		/* unsigned: the word is untrusted, a wild value must not overflow */
		woke = (uint64_t)usp__now_ns() - (uint64_t)since > (uint64_t)USP_SPIN_MAX_NS;
	}
	if ((which & USP_WAKE_ROOM) &&
	    atomic_load_explicit(&ep->room_sleepers, memory_order_relaxed)) {
		atomic_fetch_add(&ep->room_seq, 1);
		futex_wake_all(&ep->room_seq);
	}
	if (token_fd >= 0 && atomic_load_explicit(&ep->pollers, memory_order_relaxed) &&
	    !atomic_load_explicit(&ep->token_sent, memory_order_relaxed) &&
	    !atomic_exchange(&ep->token_sent, 1) && usp__send_junk(ep, token_fd) < 0)
		atomic_store(&ep->token_sent, 0); /* none is on its way */
	return woke;
}

void usp__wait_init(struct usp_wait *w, int64_t timeo_us, unsigned wait_for)
{
	w->wait_for = wait_for;
	w->spun = false;
	w->moved_data = false;
	/* SO_RCVTIMEO/SO_SNDTIMEO can be centuries (and the value comes from
	 * shared memory): cap it at ~73 years so the deadline cannot overflow */
	const int64_t max_us = INT64_MAX / 4000;
	if (timeo_us > max_us)
		timeo_us = max_us;
	w->deadline_ns = timeo_us > 0 ? usp__now_ns() + timeo_us * 1000 : 0;
}


/* What a sleeper cancelled in its futex wait must undo (usp__wait). */
struct wait_cancel {
	struct usp_sock *s;
	_Atomic uint32_t *sleepers;
	bool watched;
};

static void wait_cancelled(void *arg)
{
	struct wait_cancel *wc = arg;
	if (wc->watched)
		usp__watch_end(wc->s);
	atomic_fetch_sub(wc->sleepers, 1);
	usp__put(wc->s);
}

/*
 * The spin phase of a wait: re-check ready(s) for the adaptive budget
 * (doubled when a spin succeeds, halved when it fails).  False at once,
 * without spinning, right after this side's send woke a peer that had
 * been asleep for longer than any spin (woke_peer, left set for
 * usp__wait): the answer then needs an idle peer's wake-up first, and
 * spinning meanwhile only takes CPU from it (a sleeping reader's round
 * trip was 1.5 times slower with the spin on these 2-vCPU machines).  A
 * peer that went to sleep only a moment ago does not count: two busy
 * sides would otherwise settle into waking each other, each skipping its
 * spin because it had just woken the other (4 KiB round trips took 60 us
 * instead of 3).
 *
 * A spin whose predecessor (of this side, waiting for the same thing)
 * was quick first waits USP_SPIN_BLIND_NS without looking.  Quick: the
 * data came within USP_SPIN_QUICK_POLLS looks, or, for a spin that
 * waited blind, at the first look, so that a wait longer than needed
 * ends the blind waits.  That is a reader that caught up with a busy
 * sender: every look pulls the tail's line (and the record's, which
 * recv_ready_past prefetches) away from the sender in the middle of its
 * writes, and the sender's locked release then waits for them to come
 * back.  When the receive path became cheaper than the send path, the
 * reader found the queue empty on a third of its receives instead of a
 * tenth, and the one-way rate of 64-byte messages between processes
 * halved (make rate-floor: 3.2-4.0 M/s instead of 8-10; 7.6-9 with the
 * blind wait).  A reader waiting for an answer (a round trip) waits
 * longer than USP_SPIN_QUICK_POLLS looks for it, so it looks from the
 * start and its round trip is unchanged.  The wait is by the clock, not
 * by a count of pauses, whose length differs between CPUs by ten times.
 */
bool usp__spin(struct usp_sock *s, usp_ready_fn ready, unsigned wait_for)
{
	if (atomic_load_explicit(&s->pair->woke_peer[s->side], memory_order_relaxed))
		return false;
	_Atomic int64_t *budget = &s->pair->spin_ns[s->side];
	_Atomic bool *quick = &s->pair->spin_quick[s->side][wait_for == USP_WAKE_ROOM];
	int64_t limit = atomic_load_explicit(budget, memory_order_relaxed);
	int64_t start = usp__now_ns();
	bool blind = atomic_load_explicit(quick, memory_order_relaxed);
	if (blind)
		while (usp__now_ns() - start < USP_SPIN_BLIND_NS)
			usp__cpu_relax();
	for (unsigned i = 1;; i++) {
		if (ready(s)) {
			if (limit < USP_SPIN_MAX_NS)
				atomic_store_explicit(budget, limit * 2, memory_order_relaxed);
			bool was_quick = blind ? i == 1 : i <= USP_SPIN_QUICK_POLLS;
			if (was_quick != blind)
				atomic_store_explicit(quick, was_quick, memory_order_relaxed);
			return true;
		}
		usp__cpu_relax();
		if ((i & 31) == 0 && usp__now_ns() - start > limit)
			break;
	}
	if (limit > USP_SPIN_MIN_NS)
		atomic_store_explicit(budget, limit / 2, memory_order_relaxed);
	if (blind)
		atomic_store_explicit(quick, false, memory_order_relaxed);
	return false;
}

/*
 * Wait until ready(s) may be true.  liveness: a released peer would make
 * ready(s) true, so have the watchdog ask the kernel about the peer while
 * we sleep.  Returns 0 (re-check), -EAGAIN (the SO_RCVTIMEO/SO_SNDTIMEO
 * deadline passed) or -EINTR (a handler without SA_RESTART ran, or any
 * handler while a socket timeout is set).
 * Called without locks held.
 */
int usp__wait(struct usp_sock *s, struct usp_wait *w, usp_ready_fn ready,
	      bool liveness)
{
	struct usp_endpoint *ep = s->self;
	bool room = w->wait_for == USP_WAKE_ROOM;
	_Atomic uint32_t *sleepers = room ? &ep->room_sleepers : &ep->sleepers;
	_Atomic uint32_t *word = room ? &ep->room_seq : &ep->event_seq;
	_Atomic int64_t *budget = &s->pair->spin_ns[s->side];
	/* fallen back to the kernel path: the caller goes there (the
	 * fallback wakes every sleeper after setting kernel_mode) */
	if (usp__kernel_mode(s))
		return -USP_ERAW;
	/* Just woke the peer from its futex (usp__spin): sleep at once */
	if (!w->spun && atomic_load_explicit(&s->pair->woke_peer[s->side], memory_order_relaxed)) {
		atomic_store_explicit(&s->pair->woke_peer[s->side], false, memory_order_relaxed);
		w->spun = true;
	}
	/* the fast path (io.c) spun already in this call */
	if (s->spun)
		w->spun = true;
	if (!w->spun) {
		w->spun = true;
		if (usp__spin(s, ready, w->wait_for))
			return 0;
	}
	/* the hint first: a waker that sees this sleeper sees its time */
	if (!room)
		atomic_store_explicit(&ep->data_sleep_since_ns, usp__now_ns(),
				      memory_order_relaxed);
	atomic_fetch_add(sleepers, 1); /* S1: pairs with W1 */
	uint32_t seq = atomic_load(word);
	if (usp__kernel_mode(s)) {
		atomic_fetch_sub(sleepers, 1);
		return -USP_ERAW;
	}
	if (ready(s)) {
		atomic_fetch_sub(sleepers, 1);
		return 0;
	}
	/* Without a socket timeout, sleep without a futex timeout: the
	 * kernel then restarts the wait after a handler with SA_RESTART and
	 * fails it with EINTR otherwise, exactly as for a blocking socket
	 * call (ERESTARTSYS).  With SO_RCVTIMEO/SO_SNDTIMEO, a handler always
	 * means EINTR, again as the kernel does.  Liveness comes from the
	 * watchdog thread; if it cannot run, from our own 40 ms ticks. */
	int64_t timeout = -1;
	if (w->deadline_ns) {
		timeout = w->deadline_ns - usp__now_ns();
		if (timeout <= 0) {
			atomic_fetch_sub(sleepers, 1);
			return -EAGAIN;
		}
	}
	bool watched = liveness && usp__watch_begin(s);
	/* A timed futex wait ends with EINTR after any handler, which is what
	 * the kernel does once the call has moved data. */
	if (((liveness && !watched) || w->moved_data) &&
	    (timeout < 0 || timeout > USP_TICK_NS))
		timeout = USP_TICK_NS;
	int64_t slept_from = usp__now_ns();
	usp__stat_add(&usp__stats.sleeps, 1);
	/* A blocking socket call is a cancellation point: the futex wait is
	 * the one place a uspair call blocks, so it is cancellable there
	 * (asynchronously, as glibc's own cancellable syscalls are: around
	 * the system call only).  A cancelled caller never returns, so the
	 * cleanup also drops its lookup's reference on the pair. */
	struct wait_cancel wc = {s, sleepers, watched};
	int old_type;
	long r;
	int err;
	pthread_cleanup_push(wait_cancelled, &wc);
	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old_type);
	r = futex_wait(word, seq, timeout);
	err = r < 0 ? errno : 0;
	pthread_setcanceltype(old_type, NULL);
	pthread_cleanup_pop(0);
	/* Woken soon after giving up: a longer spin would have caught it.
	 * Without this, two sides that both sleep never see a spin succeed
	 * and stay on the slow path for good. */
	if (err == 0 && usp__now_ns() - slept_from < USP_SPIN_MAX_NS) {
		int64_t limit = atomic_load_explicit(budget, memory_order_relaxed);
		if (limit < USP_SPIN_MAX_NS)
			atomic_store_explicit(budget, limit * 2, memory_order_relaxed);
	}
	if (watched)
		usp__watch_end(s);
	atomic_fetch_sub(sleepers, 1);
	if (err == EINTR)
		return -EINTR;
	if (err == ETIMEDOUT) {
		if (liveness && !watched)
			usp__check_peer(s, true);
		if (w->deadline_ns && usp__now_ns() >= w->deadline_ns)
			return ready(s) ? 0 : -EAGAIN;
	}
	return 0;
}
