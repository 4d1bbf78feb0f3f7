/*
 * Sends deferred from a signal handler (io.c handler_send).
 *
 * A handler that sends on an endpoint whose send_lock its own thread holds
 * (it interrupted a send there) cannot wait for the lock: the holder runs
 * only after the handler returns.  The kernel's socket calls are
 * async-signal-safe, and event loops rely on it: the self-pipe pattern of
 * asyncio, whose signal wakeup writes to the socketpair its own thread
 * writes to from call_soon_threadsafe(), in a loop built on poll().  So the handler's bytes go into a slot here, the
 * handler sets USP_LOCK_DEFERRED in the lock word, and the holder's
 * usp__unlock() sends the thread's slots for that lock, oldest first,
 * before it lets go (usp__send_deferred).
 *
 * Ownership: a slot is claimed by a CAS of the thread's lock id into
 * `owner` (several threads' handlers may claim at once), filled, then
 * marked `filled`; only that thread (the holder, or a handler on it) reads
 * or frees it.  A handler runs on the thread it interrupted, so signal
 * fences order a slot's contents before the bit that announces it.
 *
 * Order: the slots go out while the holder still holds the lock, so a
 * handler that comes later finds the lock either held by its thread (and
 * queues behind the slots, with a higher sequence number) or not held by
 * it, with no slot of its thread left for the lock.  The unlock's CAS from
 * the word without the bit fails if a handler set it meanwhile, and the
 * unlock flushes again (internal.h usp__unlock).  A slot holds a
 * reference on its pair until it has been sent.
 */
#include <string.h>

#include "internal.h"

#define USP_DEFER_SLOTS 16
#define USP_DEFER_MAX 256 /* bytes: a wake-up byte, a small message */

struct deferred_send {
	_Atomic uint64_t owner; /* the thread's lock id; 0: free */
	_Atomic bool filled;
	uint64_t seq;
	struct usp_lock *lock;
	struct usp_sock sock;
	uint32_t len;
	unsigned char data[USP_DEFER_MAX];
};

static struct deferred_send slots[USP_DEFER_SLOTS];
/* this thread's send marks (io.c fast_send, usp__sendmsg) */
USP_TLS struct usp_send_marks usp__tl_send_marks;
static _Atomic uint64_t next_seq;
_Atomic unsigned long usp__deferred_sends;

/* Is this send a handler's that interrupted a send of its own thread
 * holding l?  A mark of l among the thread's says that a call below is
 * taking or holds l (a handler's own sends on other endpoints may be
 * marked above it), and the word being ours says it holds it.  Not a
 * foreign id, which is not unique to a thread; and never from the word
 * alone, which the peer can write. */
bool usp__deferring(struct usp_lock *l, uint64_t self)
{
	bool marked = false;
	unsigned depth = usp__tl_send_marks.depth;
	for (unsigned i = 0; i < depth && i < USP_SEND_MARKS; i++)
		marked |= usp__tl_send_marks.lock[i] == l;
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	return marked && usp__lock_owner(w) == self &&
	       (self & USP_LOCK_TID_MASK) != USP_LOCK_FOREIGN;
}

/* Queue len bytes behind s's send_lock, which our thread holds; len or
 * -EAGAIN (too long, no slot free). */
ssize_t usp__defer_send(struct usp_sock *s, const void *buf, size_t len)
{
	uint64_t self = usp__lock_id();
	if (len > USP_DEFER_MAX)
		return -EAGAIN;
	for (int i = 0; i < USP_DEFER_SLOTS; i++) {
		struct deferred_send *d = &slots[i];
		uint64_t free_word = 0;
		if (atomic_load_explicit(&d->owner, memory_order_relaxed) ||
		    !atomic_compare_exchange_strong_explicit(&d->owner, &free_word, self,
							     memory_order_acquire,
							     memory_order_relaxed))
			continue;
		d->seq = atomic_fetch_add_explicit(&next_seq, 1, memory_order_relaxed);
		d->lock = &s->self->send_lock;
		d->sock = *s;
		/* the slot's own reference (the caller's ends with its call) */
		atomic_fetch_add_explicit(&s->pair->refs, 1, memory_order_relaxed);
		d->len = (uint32_t)len;
		memcpy(d->data, buf, len);
		atomic_store_explicit(&d->filled, true, memory_order_release);
		/* the slot is complete before the bit announces it to the
		 * holder we interrupted (the same thread) */
		atomic_signal_fence(memory_order_seq_cst);
		atomic_fetch_or_explicit(&d->lock->word, USP_LOCK_DEFERRED, memory_order_relaxed);
		atomic_fetch_add_explicit(&usp__deferred_sends, 1, memory_order_relaxed);
		return (ssize_t)len;
	}
	return -EAGAIN;
}

/* Called by the holder of l from usp__unlock(l) when the word has
 * USP_LOCK_DEFERRED: clear the bit, then send this thread's slots for l,
 * oldest first, until none is left (a handler may add one meanwhile; one
 * that does so after our last look sets the bit again). */
void usp__deferred_flush(struct usp_lock *l)
{
	uint64_t self = usp__lock_id();
	atomic_fetch_and_explicit(&l->word, ~(uint64_t)USP_LOCK_DEFERRED, memory_order_relaxed);
	atomic_signal_fence(memory_order_seq_cst);
	for (;;) {
		struct deferred_send *first = NULL;
		for (int i = 0; i < USP_DEFER_SLOTS; i++) {
			struct deferred_send *d = &slots[i];
			if (atomic_load_explicit(&d->owner, memory_order_relaxed) == self &&
			    atomic_load_explicit(&d->filled, memory_order_acquire) &&
			    d->lock == l && (!first || d->seq < first->seq))
				first = d;
		}
		if (!first)
			break;
		usp__send_deferred(&first->sock, first->data, first->len);
		struct usp_pair *pair = first->sock.pair;
		atomic_store_explicit(&first->filled, false, memory_order_relaxed);
		atomic_store_explicit(&first->owner, 0, memory_order_release);
		usp__pair_unref(pair);
	}
}

/* A waiter took l over from `owner`, a thread of ours that died holding
 * it (lock.c): what that thread's handlers queued behind it is dropped, as
 * the kernel drops what a dying thread was sending, and must not go out
 * with a later thread that gets the same id. */
void usp__deferred_drop(struct usp_lock *l, uint64_t owner)
{
	for (int i = 0; i < USP_DEFER_SLOTS; i++) {
		struct deferred_send *d = &slots[i];
		if (atomic_load_explicit(&d->owner, memory_order_acquire) != owner ||
		    !atomic_load_explicit(&d->filled, memory_order_acquire) || d->lock != l)
			continue;
		struct usp_pair *pair = d->sock.pair;
		atomic_store_explicit(&d->filled, false, memory_order_relaxed);
		atomic_store_explicit(&d->owner, 0, memory_order_release);
		usp__pair_unref(pair);
	}
}

/* The child has only the forking thread, which is in no send: every slot
 * is another thread's (or this thread's under its parent id) and is
 * dropped with its reference. */
void usp__deferred_atfork_child(void)
{
	for (int i = 0; i < USP_DEFER_SLOTS; i++) {
		struct deferred_send *d = &slots[i];
		if (!atomic_load_explicit(&d->owner, memory_order_relaxed))
			continue;
		if (atomic_load_explicit(&d->filled, memory_order_relaxed))
			usp__pair_unref(d->sock.pair);
		atomic_store_explicit(&d->filled, false, memory_order_relaxed);
		atomic_store_explicit(&d->owner, 0, memory_order_relaxed);
	}
}
