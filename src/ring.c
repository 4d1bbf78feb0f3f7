/*
 * The record ring of one receive queue.
 *
 * Positions (head, tail) are 64-bit byte counters that only grow; a
 * position's offset in the data area is pos & USP_RING_MASK.  A record is
 * an 8-byte header {len, kind} followed by len payload bytes padded to 8,
 * and never straddles the end of the area: when it would, the producer
 * writes a WRAP header and continues at the next multiple of the ring size.
 * When the ring is empty past the first USP_RING_HOT_BYTES, the producer
 * starts the next lap early (early_wrap) so that few pages stay in use.
 *
 * Everything read here may have been written by a hostile peer, so every
 * header is copied out once, then checked against the ring bounds and the
 * published tail; a bad one marks the pair corrupt (-EIO).
 *
 * Locking: usp__ring_peek runs under the consumer's recv_lock (or, for
 * poll and FIONREAD, without it, reading only); usp__ring_reserve runs
 * under the producer's send_lock.  See struct usp_ring for the ordering.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

static uint32_t rec_span(uint32_t len, uint32_t kind)
{
	if (kind == USP_REC_KERNEL) /* the payload is in the kernel queue */
		return USP_REC_HDR + (uint32_t)sizeof(struct usp_kernel_meta);
	if (kind == USP_REC_OOB)
		return USP_REC_HDR + USP_OOB_SPAN;
	return USP_REC_HDR + ((len + 7u) & ~7u);
}

/* Lock-free emptiness test (poll, spinning).  tail - head <= 0 counts as
 * empty: see early_wrap(). */
bool usp__ring_empty(struct usp_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
	return (int64_t)(t - h) <= 0;
}

/* Mark a record peeked (USP_REC_PEEKED).  Caller holds the consumer's
 * recv_lock; rec came from usp__ring_peek, so its header is in bounds. */
void usp__ring_mark_peeked(unsigned char *data, const struct usp_rec *rec)
{
	uint32_t *kind = (uint32_t *)(data + (rec->pos & USP_RING_MASK) +
				      offsetof(struct usp_rec_hdr, kind));
	__atomic_fetch_or(kind, USP_REC_PEEKED, __ATOMIC_RELAXED);
}

int usp__ring_peek(struct usp_pair *pair, struct usp_ring *r,
		   unsigned char *data, uint64_t pos, uint64_t tail,
		   struct usp_rec *rec)
{
	for (int wraps = 0; wraps < 2; wraps++) {
		if (pos == tail)
			return -EAGAIN;
		uint64_t off = pos & USP_RING_MASK;
		if (tail - pos > USP_RING_BYTES || (off & 7) || (tail & 7) ||
		    tail - pos < USP_REC_HDR)
			goto corrupt;
		struct usp_rec_hdr h;
		memcpy(&h, data + off, sizeof(h));
		bool peeked = h.kind & USP_REC_PEEKED;
		uint32_t tipc_flags = h.kind & USP_REC_TIPC_FLAGS;
		h.kind &= ~(USP_REC_PEEKED | USP_REC_TIPC_FLAGS);
		if (h.kind == USP_REC_WRAP) {
			pos += USP_RING_BYTES - off;
			continue;
		}
		if ((h.kind != USP_REC_DATA && h.kind != USP_REC_KERNEL &&
		     h.kind != USP_REC_OOB && h.kind != USP_REC_TIPC_ERR) ||
		    h.len > USP_MAX_SNDBUF || (h.kind == USP_REC_OOB && h.len != 1))
			goto corrupt;
		uint32_t span = rec_span(h.len, h.kind);
		if (off + span > USP_RING_BYTES || span > tail - pos)
			goto corrupt;
		rec->pos = pos;
		rec->next = pos + span;
		rec->len = h.len;
		rec->data = data + off + USP_REC_HDR;
		rec->kernel = h.kind == USP_REC_KERNEL;
		rec->oob = h.kind == USP_REC_OOB;
		rec->tipc_err = h.kind == USP_REC_TIPC_ERR;
		rec->droppable = tipc_flags & USP_REC_TIPC_DROPPABLE;
		rec->from_self = tipc_flags & USP_REC_TIPC_SELF;
		rec->nagle = tipc_flags & USP_REC_TIPC_NAGLE;
		rec->oob_consumed = rec->oob && __atomic_load_n(rec->data + 1, __ATOMIC_RELAXED);
		rec->peeked = peeked;
		if (USP_UNLIKELY(rec->kernel)) {
			memcpy(&rec->meta, rec->data, sizeof(rec->meta));
			rec->data = NULL;
		}
		return 0;
	}
corrupt:
	usp__pair_corrupt(pair);
	return -EIO;
}

/*
 * Reserve room for a record of len bytes and the given kind at the
 * producer's tail.  On success *tail is the position after the record (to
 * be published with a release store once the payload is written) and
 * *payload points at where the payload goes (for USP_REC_KERNEL, where the
 * struct usp_kernel_meta goes); the header is already written.  -EAGAIN:
 * the ring is physically full (the caller waits as for a full send
 * buffer).
 */
/*
 * Early wrap: when the ring is empty and the write offset is past the hot
 * area, move both positions to the start of the next lap, so that steady
 * traffic keeps reusing the same pages.  Runs under the producer's
 * send_lock and, taken with trylock, the consumer's recv_lock, so no
 * consumer is inside the ring.  head is stored before tail: lock-free
 * readers (poll, FIONREAD) treat tail - head <= 0 as empty, so no
 * intermediate state looks readable.
 */
static void early_wrap(struct usp_ring *r, struct usp_lock *consumer_lock,
		       uint64_t t)
{
	if (!usp__trylock(consumer_lock))
		return; /* a consumer is busy: wrap another time */
	uint64_t h = usp__ld_acq(&r->head);
	if (h == t) {
		uint64_t lap = (t | USP_RING_MASK) + 1;
		atomic_store_explicit(&r->head, lap, memory_order_release);
		atomic_store_explicit(&r->seen_head, lap, memory_order_relaxed);
		atomic_store_explicit(&r->tail, lap, memory_order_release);
	}
	usp__unlock(consumer_lock);
}

int usp__ring_reserve(struct usp_pair *pair, struct usp_ring *r,
		      unsigned char *data, uint32_t len, uint32_t kind,
		      uint64_t sndbuf, struct usp_lock *consumer_lock,
		      uint64_t *tail, unsigned char **payload)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&r->seen_head, memory_order_relaxed);
	uint32_t span = rec_span(len, kind);
	uint64_t off = t & USP_RING_MASK;
	/* tail is the peer's to write too: an unaligned one would put the
	 * WRAP header below up to 7 bytes past the ring (past the region for
	 * the second ring) */
	if (USP_UNLIKELY(t & 7)) {
		usp__pair_corrupt(pair);
		return -EIO;
	}
	/* Each time the write offset crosses a USP_RING_HOT_BYTES boundary past
	 * the first, see whether the lap can start again at offset 0, so that
	 * the pages in use stay few (a cache line of the consumer's is read
	 * once per 64 KiB, not per record). */
	if (off > USP_RING_HOT_BYTES &&
	    off / USP_RING_HOT_BYTES != (off + span) / USP_RING_HOT_BYTES) {
		h = usp__ld_acq(&r->head); /* P2 */
		atomic_store_explicit(&r->seen_head, h, memory_order_relaxed);
		if (h == t) {
			/* empty: move both positions, no space lost */
			early_wrap(r, consumer_lock, t);
			t = atomic_load_explicit(&r->tail, memory_order_relaxed);
			h = atomic_load_explicit(&r->seen_head, memory_order_relaxed);
		} else if (t - h <= USP_RING_BYTES &&
			   t + (USP_RING_BYTES - off) - h + 2 * sndbuf + USP_RING_HOT_BYTES <=
				   USP_RING_BYTES) {
			/* Data in flight but the start of the ring is long
			 * free: a WRAP record.  The skipped space counts as
			 * used until the reader passes it, and what is left is
			 * still more than the send buffer can ever queue. */
			struct usp_rec_hdr w = {0, USP_REC_WRAP};
			memcpy(data + off, &w, sizeof(w));
			t += USP_RING_BYTES - off;
		}
		off = t & USP_RING_MASK;
	}
	for (bool fresh = false;; fresh = true) {
		/* t is read again after an early wrap */
		if (t - h > USP_RING_BYTES || (t & 7)) {
			usp__pair_corrupt(pair);
			return -EIO;
		}
		uint64_t skip = off + span > USP_RING_BYTES ? USP_RING_BYTES - off : 0;
		if (t + skip + span - h <= USP_RING_BYTES) {
			if (skip) {
				struct usp_rec_hdr w = {0, USP_REC_WRAP};
				memcpy(data + off, &w, sizeof(w));
				t += skip;
				off = 0;
			}
			break;
		}
		if (fresh)
			return -EAGAIN;
		/* P2: pairs with C2; the space below head is free */
		h = usp__ld_acq(&r->head);
		atomic_store_explicit(&r->seen_head, h, memory_order_relaxed);
	}
	struct usp_rec_hdr hdr = {len, kind};
	memcpy(data + off, &hdr, sizeof(hdr));
	*payload = data + off + USP_REC_HDR;
	*tail = t + span;
	return 0;
}

/* The sender's view of its charge, refreshed from the consumer only when
 * the cached view says the buffer is full (caller holds the send_lock). */
bool usp__ring_has_room(struct usp_pair *pair, struct usp_ring *r,
			uint64_t sndbuf)
{
	uint64_t charged = atomic_load_explicit(&r->charged, memory_order_relaxed);
	uint64_t seen = atomic_load_explicit(&r->seen_released, memory_order_relaxed);
	if (charged - seen < sndbuf)
		return true;
	seen = usp__ld_acq(&r->released); /* P2 */
	atomic_store_explicit(&r->seen_released, seen, memory_order_relaxed);
	if (charged - seen > 4ull * USP_MAX_SNDBUF) {
		usp__pair_corrupt(pair);
		return false;
	}
	return charged - seen < sndbuf;
}

uint64_t usp__ring_wmem(struct usp_pair *pair, struct usp_ring *r)
{
	/* Callers may hold neither lock: other readers can move `released`
	 * (and senders `charged`) between the two loads, and a reader
	 * stopped between them long enough sees a difference no honest
	 * pair has.  Only a difference with `released` unchanged across the
	 * load of `charged` (a consistent pair) is corruption. */
	uint64_t released = usp__ld_acq(&r->released);
	for (int tries = 0; tries < 16; tries++) {
		uint64_t charged = usp__ld_acq(&r->charged);
		uint64_t wmem = charged - released;
		if (wmem <= 4ull * USP_MAX_SNDBUF)
			return wmem;
		uint64_t again = usp__ld_acq(&r->released);
		if (again == released)
			break;
		released = again;
	}
	usp__pair_corrupt(pair);
	return 0;
}
