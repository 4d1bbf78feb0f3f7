/*
 * Sending and receiving: one function per socket type and direction, as
 * net/unix/af_unix.c has (unix_stream_sendmsg, unix_dgram_sendmsg, ...),
 * chosen by usp__sendmsg/usp__recvmsg.  SEQPACKET shares the DGRAM code
 * where the kernel does.
 *
 * Locking: a sender holds its endpoint's send_lock while it writes into the
 * peer's queue; a receiver holds its endpoint's recv_lock while it reads
 * its own queue.  Neither lock is held while waiting.  The only state
 * written by both sides is in struct usp_endpoint, through atomics.
 *
 * Error precedence follows the kernel functions named in each comment;
 * test/ compares every path with a kernel socketpair.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#ifndef UIO_MAXIOV
#define UIO_MAXIOV 1024
#endif

/* ---- iovec slices (the cursor is in internal.h) ------------------- */

/* The next n bytes of the cursor as an iovec array behind an optional
 * prefix entry, advancing the cursor (for a kernel record, scm.c). */
struct iov_slice {
	struct iovec small[8];
	struct iovec *iov;
	size_t cnt;
};

static int cursor_slice(struct usp_iov_cursor *c, size_t n, struct iov_slice *sl,
			void *prefix, size_t prefix_len)
{
	size_t need = c->cnt - c->idx + 1;
	sl->iov = need <= 8 ? sl->small : malloc(need * sizeof(struct iovec));
	if (!sl->iov)
		return -ENOMEM;
	sl->cnt = 0;
	if (prefix_len)
		sl->iov[sl->cnt++] = (struct iovec){prefix, prefix_len};
	while (n) {
		unsigned char *p;
		size_t k = usp__cursor_next(c, n, &p);
		sl->iov[sl->cnt++] = (struct iovec){p, k};
		n -= k;
	}
	return 0;
}

static void slice_free(struct iov_slice *sl)
{
	if (sl->iov != sl->small)
		free(sl->iov);
}

/*
 * Pointers that cannot be mapped (below the kernel's mmap_min_addr, NULL
 * included) fail with EFAULT where the kernel would fault on them.  Other
 * bad pointers are not checked: that would take a system call per copy
 * (docs/DESIGN.md, "Known differences").
 */
static bool bad_ptr(const void *p)
{
	return usp__bad_ptr(p);
}

static bool iov_has_bad(const struct iovec *iov, size_t cnt)
{
	return usp__iov_has_bad(iov, cnt);
}

/* Total length, as import_iovec() computes it (MAX_RW_COUNT cap). */
static ssize_t iov_total(const struct iovec *iov, size_t cnt)
{
	size_t total = 0;
	const size_t max_rw = INT_MAX & ~(size_t)4095;
	for (size_t i = 0; i < cnt; i++) {
		if ((ssize_t)iov[i].iov_len < 0)
			return -EINVAL;
		if (iov[i].iov_len > max_rw - total)
			return (ssize_t)max_rw; /* the kernel truncates */
		total += iov[i].iov_len;
	}
	return (ssize_t)total;
}

/* ---- shared helpers ---------------------------------------------------- */

static bool sock_nonblock(struct usp_sock *s, int flags)
{
	return (flags & MSG_DONTWAIT) ||
	       atomic_load_explicit(&s->self->nonblock, memory_order_relaxed);
}

/* sock_error(): read and clear the pending error.  The word is in shared
 * memory: anything but the one error uspair sets there (ECONNRESET, on
 * AF_UNIX STREAM and SEQPACKET, see usp__endpoint_released) is corruption,
 * and must not become a return value (a negative one would pass for a byte
 * count).  Also tipc.c's. */
int usp__sock_error(struct usp_sock *s)
{
	int local = usp__take_mmsg_err(s); /* recvmmsg's, this process only */
	if (local)
		return local;
	if (USP_LIKELY(!atomic_load_explicit(&s->self->sk_err, memory_order_relaxed)))
		return 0;
	int err = atomic_exchange(&s->self->sk_err, 0);
	if (!err)
		return 0;
	if (!usp__sk_err_valid(s, err)) {
		usp__pair_corrupt(s->pair);
		return -EIO;
	}
	return -err;
}

static uint32_t shutdown_bits(struct usp_endpoint *ep)
{
	return atomic_load_explicit(&ep->shutdown, memory_order_acquire);
}

static bool pair_corrupt(struct usp_sock *s)
{
	return usp__is_corrupt(s);
}

/* What endpoint ep's ring admits (its SO_SNDBUF) */
static int endpoint_sndbuf(struct usp_endpoint *ep)
{
	int v = atomic_load_explicit(&ep->sndbuf, memory_order_relaxed);
	/* untrusted: keep it in range.  The kernel never gives less than
	 * SOCK_MIN_SNDBUF (4608 on x86_64); below USP_MIN_SANE_SNDBUF, the
	 * datagram bound `sndbuf - 32` would wrap and admit any length. */
	if (v < USP_MIN_SANE_SNDBUF || v > (int)USP_MAX_SNDBUF)
		v = (int)USP_MAX_SNDBUF;
	return v;
}

static int sndbuf_of(struct usp_sock *s)
{
	return endpoint_sndbuf(s->self);
}

/* Our charge in the peer's queue (sk_wmem_alloc); zero once the peer is
 * gone, since the kernel purges a released socket's queue. */
static uint64_t tx_wmem(struct usp_sock *s)
{
	if (usp__peer_gone(s))
		return 0;
	return usp__ring_wmem(s->pair, s->txq);
}

/* A blocked sender may go on: there is room (sock_alloc_send_pskb()
 * admits an skb while the charge is below SO_SNDBUF), or something
 * changed that makes the send fail.  A spinning sender goes on at the
 * first room; a sleeping one is woken only once the socket is writable
 * again (wake_room), as unix_write_space() wakes writers. */
static bool send_ready(struct usp_sock *s)
{
	return tx_wmem(s) < (uint64_t)sndbuf_of(s) || usp__peer_gone(s) ||
	       (shutdown_bits(s->self) & USP_SEND_SHUTDOWN) ||
	       (shutdown_bits(s->peer) & USP_RCV_SHUTDOWN) ||
	       atomic_load_explicit(&s->self->sk_err, memory_order_relaxed) ||
	       usp__mmsg_err_pending(s) || pair_corrupt(s);
}

/* A receive that found nothing at the end of the queue (a peek whose
 * offset walked past every queued record, or an empty queue) waits for
 * more to come, as unix_stream_data_wait() and
 * __skb_wait_for_more_packets() wait for the last skb to change: the
 * caller sets s->wait_tail to the tail it walked to.  recv_ready() alone
 * would say "ready" at once while records it cannot return are queued. */
static bool recv_ready_past(struct usp_sock *s)
{
	/* Ask for the line the next record goes to on every check, so that
	 * its transfer to this core overlaps the tail's instead of following
	 * it once the tail moved (about 5% off a one-byte round trip between
	 * processes, alternating runs).  A hint only: the offset is masked
	 * into the ring, a prefetch never faults, and it reads nothing. */
	__builtin_prefetch(s->rxdata + (s->wait_tail & USP_RING_MASK), 0, 3);
	return usp__ld_acq(&s->rxq->tail) != s->wait_tail ||
	       (shutdown_bits(s->self) & USP_RCV_SHUTDOWN) ||
	       atomic_load_explicit(&s->self->sk_err, memory_order_relaxed) ||
	       usp__mmsg_err_pending(s) || pair_corrupt(s);
}

/* SO_PEEK_OFF (sk_peek_offset and its _fwd/_bwd helpers); caller holds
 * the recv_lock. */
static size_t peek_skip(struct usp_sock *s, int flags)
{
	if (!(flags & MSG_PEEK))
		return 0;
	int32_t off = atomic_load_explicit(&s->self->peek_off, memory_order_relaxed);
	return off > 0 ? (size_t)off : 0;
}

static void peek_off_move(struct usp_sock *s, int64_t delta)
{
	int32_t off = atomic_load_explicit(&s->self->peek_off, memory_order_relaxed);
	if (off < 0)
		return;
	int64_t v = off + delta;
	atomic_store_explicit(&s->self->peek_off,
			      (int32_t)(v < 0 ? 0 : v > INT32_MAX ? INT32_MAX : v),
			      memory_order_relaxed);
}

/* What sock_alloc_send_pskb() checks before buffer space, in its order:
 * a pending error, then our own SEND_SHUTDOWN (and uspair's corruption). */
static int send_alloc_error(struct usp_sock *s)
{
	if (pair_corrupt(s))
		return -EIO;
	int err = usp__sock_error(s);
	if (err)
		return err;
	if (shutdown_bits(s->self) & USP_SEND_SHUTDOWN)
		return -EPIPE;
	return 0;
}

/* Publish a record (P1: pairs with C1 in the receiver) and wake the peer. */
static void publish(struct usp_sock *s, uint64_t tail, uint32_t len,
		    uint32_t truesize)
{
	usp__ring_publish(s->txq, tail, len, truesize);
	usp__wake_reader(s);
}

/*
 * The producer's tail for a reader at pos, caller holding our recv_lock.
 * The tail is re-read (C1, acquire: pairs with P1) only once the readers
 * of this process have caught up with the value they last read; until
 * then the records below it are known complete (the acquire that read it
 * and the recv_lock order them before us), and a reader that is behind
 * does not pull the producer's cache line, which the producer writes on
 * every send, on every call.  A reader that reaches the cached value reads
 * the tail again, so no call returns less than one that read it would.
 * Another process's readers may have moved head past our value: re-read.
 */
static inline __attribute__((always_inline)) uint64_t rx_tail(struct usp_sock *s, uint64_t pos)
{
	_Atomic uint64_t *seen = &s->pair->seen[s->side].tail;
	uint64_t t = atomic_load_explicit(seen, memory_order_relaxed);
	if ((int64_t)(t - pos) <= 0) {
		t = usp__ld_acq(&s->rxq->tail); /* C1 */
		atomic_store_explicit(seen, t, memory_order_relaxed);
		/* on the tail's line; for wake_room's lower bound */
		atomic_store_explicit(&s->pair->seen[s->side].charged,
				      atomic_load_explicit(&s->rxq->charged, memory_order_relaxed),
				      memory_order_relaxed);
	}
	return t;
}

/* After a consume: wake the peer's sleeping senders (and pollers) only
 * once it is writable again, as unix_write_space() does: waking them at
 * every consume made the two sides of a full queue trade one message per
 * wake-up.  A sleeper's last check before its futex wait asks only for
 * room (send_ready), which writable implies, so no wake-up is lost; like
 * the kernel's writer, it then sleeps on while the reader keeps the
 * queue above a quarter.  (wake_room below first rules out consumes
 * that cannot have made the queue writable.)  The caller issued W1: a
 * fence (wake_room) or the release of its recv_lock (fast_recv). */
static void wake_room_after_mb(struct usp_sock *s)
{
	struct usp_endpoint *sender = s->peer;
	if (USP_LIKELY(!atomic_load_explicit(&sender->room_sleepers, memory_order_relaxed) &&
		       !atomic_load_explicit(&sender->pollers, memory_order_relaxed)))
		return;
	if (usp__wmem_writable(usp__ring_wmem(s->pair, s->rxq), endpoint_sndbuf(sender)))
		usp__wake_sleepers(sender, s->fd, USP_WAKE_ROOM);
}

/*
 * A consume that cannot have made the queue writable wakes nobody, so it
 * needs neither the W1 fence nor the sleeper counts.  It knows without
 * pulling the producer's line: `charged` only grows, and its value as
 * this process's readers last read it with the tail (rx_tail, under the
 * recv_lock, after C1, so it covers every record below that tail) is a
 * lower bound of the charge now; if even that bound minus what has been
 * released is above a quarter of SO_SNDBUF, the queue is not writable.
 * In a queue kept full by a faster sender that is most consumes (the
 * rest, and a queue drained to empty as in a ping-pong, take the fence).
 * A bound of 0, or one that went below `released` (readers of another
 * process moved past our tail: the difference wraps), proves nothing,
 * and the full check runs (`low - 1 < USP_MAX_SNDBUF` is false for
 * both).  A larger SO_SNDBUF wakes the senders itself, after passing
 * through our recv_lock so that what a skipping consume released is
 * visible to them (sockopt.c).  Caller holds our recv_lock.
 */
static inline __attribute__((always_inline)) bool room_maybe_writable(struct usp_sock *s)
{
	uint64_t low = atomic_load_explicit(&s->pair->seen[s->side].charged, memory_order_relaxed) -
		       atomic_load_explicit(&s->rxq->released, memory_order_relaxed);
	return !(low - 1 < USP_MAX_SNDBUF && !usp__wmem_writable(low, endpoint_sndbuf(s->peer)));
}

static inline __attribute__((always_inline)) void wake_room(struct usp_sock *s)
{
	if (room_maybe_writable(s)) {
		atomic_thread_fence(memory_order_seq_cst); /* W1: pairs with S1 */
		wake_room_after_mb(s);
	}
}

/* Consume the record at head (C2: pairs with P2 in the sender) and say
 * whether senders may need waking (room_maybe_writable); the caller then
 * issues W1 and calls wake_room_after_mb().  Caller holds our recv_lock. */
static inline __attribute__((always_inline)) bool consume_wake_later(struct usp_sock *s,
								     const struct usp_rec *rec,
								     uint32_t truesize)
{
	usp__ring_consume(s->rxq, rec, truesize);
	return room_maybe_writable(s);
}

/* Consume the record at head (C2: pairs with P2 in the sender). */
static inline __attribute__((always_inline)) void consume(struct usp_sock *s, const struct usp_rec *rec,
		    uint32_t truesize)
{
	usp__ring_consume(s->rxq, rec, truesize);
	wake_room(s);
}

static int64_t timeo_of(_Atomic int64_t *t)
{
	int64_t v = atomic_load_explicit(t, memory_order_relaxed);
	return v < 0 ? 0 : v;
}

/* Wait outside the lock; returns 0 to retry or an error to return. */
static int wait_unlocked(struct usp_sock *s, struct usp_lock *lock,
			 struct usp_wait *w, usp_ready_fn ready, bool liveness)
{
	usp__unlock(lock);
	int r = usp__wait(s, w, ready, liveness);
	usp__lock(lock);
	return r;
}

static int pipe_error(int flags, bool raise_sigpipe)
{
	if (raise_sigpipe && !(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	return -EPIPE;
}

/* ---- SOCK_STREAM: unix_stream_sendmsg / unix_stream_read_generic ------- */

static bool pass_any(struct usp_sock *s)
{
	return atomic_load_explicit(&s->self->pass_flags, memory_order_relaxed) ||
	       atomic_load_explicit(&s->peer->pass_flags, memory_order_relaxed);
}

/*
 * Send the kernel part of a record (scm.c) for the next `chunk` bytes of
 * the cursor.  Caller holds the send_lock and has reserved the ring
 * record; on success it must publish it.
 */
static ssize_t send_kernel_part(struct usp_sock *s, struct usp_iov_cursor *cur,
				size_t chunk, const void *control,
				size_t controllen, int flags)
{
	struct iov_slice sl;
	int r = cursor_slice(cur, chunk, &sl, NULL, 0);
	if (r < 0)
		return r;
	ssize_t n = usp__kernel_send(s, sl.iov, sl.cnt, control, controllen, flags);
	slice_free(&sl);
	return n;
}

/*
 * queue_oob(): the out-of-band byte is a record of its own, and the
 * receiver's current one (usp_endpoint.oob_pos; an older unread one stays
 * in the queue as an ordinary byte).  Record and oob_pos are published
 * together under the receiver's recv_lock, as the kernel does both under
 * the queue's lock, so a reader never sees one without the other (lock
 * order: our send_lock, then the peer's recv_lock, as early_wrap()).
 * Caller holds our send_lock.  No SIGURG (docs/DESIGN.md).
 */
static ssize_t queue_oob(struct usp_sock *s, struct usp_iov_cursor *cur, bool bad_user,
			 bool nonblock, struct usp_wait *w)
{
	for (;;) {
		/* the fallback (fallback.c) holds every send_lock while it
		 * sets kernel_mode: from here on the ring is not ours */
		if (usp__kernel_mode(s))
			return -USP_ERAW;
		ssize_t err = send_alloc_error(s);
		if (err)
			return err;
		int sndbuf = sndbuf_of(s);
		uint64_t tail;
		unsigned char *payload;
		int r = -EAGAIN;
		if (usp__peer_gone(s) || usp__ring_has_room(s->pair, s->txq, (uint64_t)sndbuf))
			r = usp__ring_reserve(s->pair, s->txq, s->txdata, 1, USP_REC_OOB,
					      (uint64_t)sndbuf, &s->peer->recv_lock, &tail,
					      &payload);
		if (r == -EIO)
			return r;
		if (r == -EAGAIN && usp__peer_gone(s))
			return -EPIPE; /* as in stream_sendmsg */
		if (r == -EAGAIN) {
			if (nonblock)
				return -EAGAIN;
			r = wait_unlocked(s, &s->self->send_lock, w, send_ready, true);
			if (r)
				return r;
			continue;
		}
		if (bad_user)
			return -EFAULT;
		if (usp__peer_gone(s) || (shutdown_bits(s->peer) & USP_RCV_SHUTDOWN))
			return -EPIPE; /* queue_oob() sends no SIGPIPE */
		memset(payload, 0, USP_OOB_SPAN);
		usp__cursor_copy_out(cur, payload, 1);
		usp__lock(&s->peer->recv_lock);
		publish(s, tail, 1, usp__stream_truesize(1));
		atomic_store(&s->peer->oob_pos, tail - (USP_REC_HDR + USP_OOB_SPAN) + 1);
		usp__unlock(&s->peer->recv_lock);
		return 0;
	}
}

static ssize_t stream_sendmsg(struct usp_sock *s, const struct msghdr *msg,
			      size_t len, int flags,
			      const struct usp_scm_send *scm)
{
	/* MSG_OOB: the last byte goes out of band (queue_oob()) */
	bool oob = flags & MSG_OOB;
	if (oob && len == 0)
		return -EOPNOTSUPP;
	/* Linux would attach the descriptors to the out-of-band skb itself;
	 * uspair's out-of-band record cannot carry them: refuse, never drop
	 * them silently (docs/DESIGN.md, known difference 3) */
	if (oob && len == 1 && (scm->nfds || scm->creds))
		return -EOPNOTSUPP;
	if (msg->msg_namelen)
		return -EISCONN;
	/* a corrupt pair answers EIO to everything but argument errors */
	if (pair_corrupt(s))
		return -EIO;
	/* a peer found dead here shuts us down first: EPIPE and SIGPIPE, as
	 * unix_stream_sendmsg() checks SEND_SHUTDOWN before the pending
	 * ECONNRESET (and as fast_send, which asks before anything) */
	usp__check_peer(s, false);
	if (shutdown_bits(s->self) & USP_SEND_SHUTDOWN)
		return pipe_error(flags, true);
	if (oob)
		len--;

	struct usp_iov_cursor cur;
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
	struct usp_wait w;
	usp__wait_init(&w, timeo_of(&s->self->sndtimeo_us), USP_WAKE_ROOM);
	bool nonblock = sock_nonblock(s, flags);
	bool bad_user = iov_has_bad(msg->msg_iov, msg->msg_iovlen);
	/* explicit credentials go with every skb, descriptors with the first
	 * (unix_scm_to_skb()) */
	unsigned char creds_ctl[CMSG_SPACE(sizeof(struct ucred))];
	size_t creds_len = 0;
	if (USP_UNLIKELY(scm->creds))
		usp__scm_creds_only(scm, creds_ctl, &creds_len);
	bool holding = false;
	size_t sent = 0;
	ssize_t err = 0;

	usp__lock(&s->self->send_lock);
	while (sent < len) {
		/* fallen back to the kernel path (as in queue_oob) */
		if (usp__kernel_mode(s)) {
			err = -USP_ERAW;
			break;
		}
		/* EPIPE here without SIGPIPE: not the pipe_err path */
		if ((err = send_alloc_error(s)))
			break;
		int sndbuf = sndbuf_of(s);
		bool with_control = sent == 0 && (scm->nfds || scm->creds);
		bool via_kernel = with_control || scm->creds || pass_any(s);
		/* a kernel part is one skb: mark byte plus payload (scm.c) */
		size_t chunk = via_kernel ? usp__stream_chunk(len - sent + 1, sndbuf) - 1
					  : usp__stream_chunk(len - sent, sndbuf);
		/* SO_SNDBUF comes from shared memory: a peer that wrote a tiny
		 * one must not make a chunk empty (or, less the mark, huge) */
		if (chunk == 0 || chunk > len - sent)
			chunk = 1;
		uint64_t tail;
		unsigned char *payload;
		int r = -EAGAIN;
		if (usp__peer_gone(s) || usp__ring_has_room(s->pair, s->txq, (uint64_t)sndbuf))
			r = usp__ring_reserve(s->pair, s->txq, s->txdata, (uint32_t)chunk,
					      via_kernel ? USP_REC_KERNEL : USP_REC_DATA,
					      (uint64_t)sndbuf, &s->peer->recv_lock,
					      &tail, &payload);
		if (r == -EIO) {
			err = r;
			break;
		}
		if (r == -EAGAIN && usp__peer_gone(s)) {
			/* Linux purges a dead peer's queue, so room is never
			 * what its sender waits for; no room here means the
			 * peer wrote our indices before it went */
			err = pipe_error(flags, sent == 0);
			break;
		}
		if (r == -EAGAIN) {
			if (nonblock) {
				usp__check_peer(s, true);
				if (usp__peer_gone(s))
					continue;
				err = -EAGAIN;
				break;
			}
			w.moved_data = sent > 0;
			r = wait_unlocked(s, &s->self->send_lock, &w, send_ready, true);
			if (r) {
				err = r;
				break;
			}
			continue;
		}
		if (bad_user) {
			err = -EFAULT;
			break;
		}
		/* unix_stream_sendmsg checks the peer after filling the skb;
		 * a kernel part, once sent, must be published, so check first */
		if (usp__peer_gone(s) ||
		    (shutdown_bits(s->peer) & USP_RCV_SHUTDOWN)) {
			err = pipe_error(flags, sent == 0);
			break;
		}
		if (via_kernel) {
			if (with_control && !holding) {
				usp__scm_hold_endpoints(msg, +1);
				holding = true;
			}
			struct usp_iov_cursor before = cur;
			ssize_t n = send_kernel_part(s, &cur, chunk,
						     with_control ? msg->msg_control : creds_ctl,
						     with_control ? msg->msg_controllen : creds_len,
						     flags);
			if (n < 0) {
				cur = before;
				if (n == -EAGAIN && !nonblock) {
					/* the backing socket's own buffer is full
					 * of wake tokens: let the peer drain them */
					usp__unlock(&s->self->send_lock);
					struct pollfd p = {.fd = s->fd, .events = POLLOUT};
					poll(&p, 1, 40);
					usp__lock(&s->self->send_lock);
					continue;
				}
				err = n == -EPIPE ? pipe_error(flags, sent == 0) : n;
				break;
			}
			if (with_control)
				holding = false; /* the message carries them now */
			struct usp_kernel_meta meta = {
				(with_control && scm->nfds ? USP_KMETA_FDS : 0) | USP_KMETA_CREDS, 0};
			memcpy(payload, &meta, sizeof(meta));
		} else {
			usp__cursor_copy_out(&cur, payload, chunk);
		}
		publish(s, tail, (uint32_t)chunk, usp__stream_truesize(chunk));
		sent += chunk;
	}
	if (oob && !err && sent == len) {
		err = queue_oob(s, &cur, bad_user, nonblock, &w);
		if (!err)
			sent++;
	}
	usp__unlock(&s->self->send_lock);
	if (holding)
		usp__scm_hold_endpoints(msg, -1);
	return sent ? (ssize_t)sent : err;
}

/*
 * Receive `size` payload bytes of the kernel record at the head of our
 * backing queue into the cursor, after `skip` bytes only peeked past
 * (SO_PEEK_OFF), preceded by its mark byte when `mark` (the record's first
 * read); ancillary data goes to scm (scm.c).  For DGRAM and SEQPACKET the
 * rest of the message is dropped.  Returns the payload bytes received past
 * skip, or -errno (-EAGAIN: the queue is empty).  Caller holds recv_lock.
 */
static ssize_t read_kernel_part(struct usp_sock *s, struct usp_iov_cursor *cur, bool mark,
				size_t skip, size_t size, int flags,
				struct usp_scm_recv *scm)
{
	void *skipbuf = NULL;
	if (skip && !(skipbuf = malloc(skip)))
		return -ENOMEM;
	struct iov_slice sl;
	int r = cursor_slice(cur, size, &sl, skipbuf, skip);
	if (r < 0) {
		free(skipbuf);
		return r;
	}
	ssize_t n = usp__kernel_recv(s, sl.iov, sl.cnt, skip + size, mark, flags, scm);
	slice_free(&sl);
	free(skipbuf);
	return n < 0 ? n : n - (ssize_t)skip;
}

/* STREAM: a published kernel record's part must be there. */
static ssize_t stream_read_kernel(struct usp_sock *s, struct usp_iov_cursor *cur,
				  bool mark, size_t skip, size_t chunk,
				  int flags, struct usp_scm_recv *scm)
{
	ssize_t n = read_kernel_part(s, cur, mark, skip, chunk, flags, scm);
	if (n == -EAGAIN) {
		usp__pair_corrupt(s->pair); /* published, so it was sent */
		return -EIO;
	}
	return n;
}

/* Remove the record at head without counting its bytes as read: what the
 * kernel does with an unread out-of-band skb a normal read skips, and
 * with one already read with MSG_OOB (FIONREAD follows the kernel's
 * inq_len, which these do not lower).  Caller holds the recv_lock. */
static void drop_oob(struct usp_sock *s, const struct usp_rec *rec)
{
	struct usp_ring *q = s->rxq;
	atomic_store_explicit(&q->head_used, 0, memory_order_relaxed);
	atomic_store_explicit(&q->released,
			      atomic_load_explicit(&q->released, memory_order_relaxed) +
				      usp__stream_truesize(1),
			      memory_order_release);
	atomic_store_explicit(&q->head, rec->next, memory_order_release); /* C2 */
	wake_room(s);
}

/*
 * recv(MSG_OOB) on STREAM (unix_stream_recv_urg()): the current
 * out-of-band byte, EINVAL if there is none or SO_OOBINLINE is set.  The
 * record stays queued with length 0 until a normal read passes it.
 * Returns 1 even into an empty buffer, as Linux does.
 */
static ssize_t stream_recv_oob(struct usp_sock *s, struct msghdr *msg, size_t len,
			       int flags)
{
	ssize_t err = 1;
	usp__lock(&s->self->recv_lock);
	uint64_t cur = atomic_load(&s->self->oob_pos);
	if (atomic_load_explicit(&s->self->oobinline, memory_order_relaxed) || !cur) {
		err = -EINVAL;
		goto out;
	}
	uint64_t head = atomic_load_explicit(&s->rxq->head, memory_order_relaxed);
	uint64_t tail = usp__ld_acq(&s->rxq->tail); /* C1 */
	struct usp_rec rec;
	if (pair_corrupt(s) || cur - 1 - head >= tail - head ||
	    usp__ring_peek(s->pair, s->rxq, s->rxdata, cur - 1, tail, &rec) != 0 || !rec.oob) {
		usp__pair_corrupt(s->pair);
		err = -EIO;
		goto out;
	}
	bool peek = flags & MSG_PEEK;
	if (!peek)
		atomic_compare_exchange_strong(&s->self->oob_pos, &cur, 0);
	size_t chunk = len ? 1 : 0;
	if (chunk && iov_has_bad(msg->msg_iov, msg->msg_iovlen)) {
		err = -EFAULT;
		chunk = 0;
	} else if (chunk) {
		struct usp_iov_cursor c;
		usp__cursor_init(&c, msg->msg_iov, msg->msg_iovlen);
		usp__cursor_copy_in(&c, rec.data, 1);
	}
	if (!peek) {
		/* consumed += 1 and inq_len - 1 even into an empty buffer */
		__atomic_store_n((unsigned char *)rec.data + 1, 1, __ATOMIC_RELAXED);
		atomic_store_explicit(&s->rxq->bytes_out,
				      atomic_load_explicit(&s->rxq->bytes_out, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	}
	if (err > 0) {
		msg->msg_namelen = 0;
		msg->msg_controllen = 0;
		msg->msg_flags = (flags & MSG_CMSG_CLOEXEC) | MSG_OOB;
	}
out:
	usp__unlock(&s->self->recv_lock);
	return err;
}

/* After the fallback: the rest of a STREAM read, from the backing socket,
 * once the ring is drained and the junk in front eaten.  Called without
 * the recv_lock (which other lookups of the end take, usp__passthrough):
 * the wait may be long.  `need` of the `room`
 * bytes are still owed to the read's target (MSG_WAITALL, SO_RCVLOWAT):
 * a blocking read waits for exactly those, then takes what else is queued
 * without waiting, as one kernel read would.  Returns the bytes received
 * (errors are left for the next call, which goes to the descriptor). */
static size_t stream_kernel_tail(struct usp_sock *s, struct usp_iov_cursor *cur,
				 size_t room, size_t need, bool nonblock)
{
	struct iov_slice sl;
	if (cursor_slice(cur, room, &sl, NULL, 0) < 0)
		return 0;
	struct msghdr m = {.msg_iov = sl.iov, .msg_iovlen = sl.cnt};
	size_t got = 0;
	if (need && !nonblock) {
		/* the slice cut to `need` bytes: entries 0..i, the last one
		 * shortened (restored below) */
		size_t i = 0, sum = 0;
		while (sum + sl.iov[i].iov_len < need)
			sum += sl.iov[i++].iov_len;
		size_t full = sl.iov[i].iov_len;
		sl.iov[i].iov_len = need - sum;
		m.msg_iovlen = i + 1;
		ssize_t n = recvmsg(s->fd, &m, MSG_WAITALL);
		sl.iov[i].iov_len = full;
		if (n < (ssize_t)need) {
			got = n > 0 ? (size_t)n : 0;
			goto out;
		}
		got = need;
		/* past the bytes received */
		sl.iov[i].iov_base = (unsigned char *)sl.iov[i].iov_base + (need - sum);
		sl.iov[i].iov_len -= need - sum;
		m.msg_iov = sl.iov + i;
		m.msg_iovlen = sl.cnt - i;
	}
	if (got < room) {
		ssize_t n = recvmsg(s->fd, &m, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
	}
out:
	slice_free(&sl);
	return got;
}

static ssize_t stream_recvmsg(struct usp_sock *s, struct msghdr *msg,
			      size_t len, int flags)
{
	if (flags & MSG_OOB)
		return stream_recv_oob(s, msg, len, flags);

	struct usp_iov_cursor cur;
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
	bool peek = flags & MSG_PEEK;
	bool nonblock = sock_nonblock(s, flags);
	bool bad_user = iov_has_bad(msg->msg_iov, msg->msg_iovlen);
	size_t target;
	if (flags & MSG_WAITALL)
		target = len;
	else {
		int lowat = atomic_load_explicit(&s->self->rcvlowat, memory_order_relaxed);
		target = lowat > 0 && (size_t)lowat < len ? (size_t)lowat : len;
	}
	if (!target)
		target = 1;
	struct usp_wait w;
	usp__wait_init(&w, timeo_of(&s->self->rcvtimeo_us), USP_WAKE_DATA);
	size_t copied = 0;
	ssize_t err = 0;
	/* ancillary data (scm.c): with SO_PASSCRED, a read never glues data
	 * of different credentials (unix_skb_scm_eq()); plain ring records
	 * have none.  A read ends after a record that carried descriptors. */
	struct usp_scm_recv scm;
	usp__scm_init(&scm);
	uint32_t pass = atomic_load_explicit(&s->self->pass_flags, memory_order_relaxed);
	bool passcred = pass & (USP_PASS_CRED | USP_PASS_PIDFD); /* unix_may_passcred() */
	bool have_writer = false;
	struct usp_scm_writer writer = {false, {0, 0, 0}, 0};
	bool kernel_passed = false; /* a peek went past a kernel record */
	/* A peek goes on past a full buffer, with chunks of 0 bytes, to the
	 * first record with descriptors (or of another writer), as the peek
	 * branch of unix_stream_read_generic() does: it takes those
	 * descriptors.  `visited`: it has looked at a record. */
	bool visited = false;

	bool kernel_tail = false; /* go on into the backing socket (unlocked) */
	if (!s->recv_locked)
		usp__lock(&s->self->recv_lock);
	uint64_t pos = atomic_load_explicit(&s->rxq->head, memory_order_relaxed);
	bool first = true;
	size_t skip = peek_skip(s, flags);
	/* the record was reached by the peek offset's walk, which Linux
	 * does after manage_oob(): no out-of-band handling there */
	bool skipped_to = false;
	do {
again:
		if (pair_corrupt(s)) {
			err = -EIO;
			break;
		}
		/* records below tail are complete (rx_tail: C1) */
		uint64_t tail = rx_tail(s, pos);
		struct usp_rec rec;
		int r = usp__ring_peek(s->pair, s->rxq, s->rxdata, pos, tail, &rec);
		if (r == -EIO) {
			err = r;
			break;
		}
		if (r == -EAGAIN) {
			/* fallen back to the kernel path and the ring is
			 * drained: the rest is in the backing socket, and so
			 * are its end of file and errors */
			if (usp__kernel_mode(s) && !(peek && (copied || visited))) {
				/* a read that got the ring's last bytes goes on
				 * into the backing socket, as one kernel read
				 * would (not with ancillary data: docs) */
				if (copied && !peek && copied < len && !msg->msg_controllen &&
				    !passcred && !s->recv_locked)
					kernel_tail = usp__eat_junk(s) == 0;
				if (!copied)
					err = -USP_ERAW;
				break;
			}
			if (copied >= target || (peek && (copied || visited)))
				break;
			/* POSIX 1003.1g order: pending error, then EOF */
			if ((err = usp__sock_error(s)))
				break;
			if (shutdown_bits(s->self) & USP_RCV_SHUTDOWN)
				break;
			if (nonblock) {
				/* EAGAIN or EOF: only the kernel knows */
				usp__check_peer(s, true);
				if (shutdown_bits(s->self) & USP_RCV_SHUTDOWN)
					continue;
				err = -EAGAIN;
				break;
			}
			w.moved_data = copied > 0;
			s->wait_tail = tail;
			r = wait_unlocked(s, &s->self->recv_lock, &w, recv_ready_past, true);
			if (r) {
				err = r;
				break;
			}
			/* unix_stream_read_generic() starts over from the head,
			 * with the whole peek offset */
			pos = atomic_load_explicit(&s->rxq->head, memory_order_relaxed);
			first = true;
			skip = peek_skip(s, flags);
			skipped_to = false;
			kernel_passed = false;
			continue;
		}
		/* the first record may be partly consumed already */
		uint32_t used = 0;
		bool marked = false; /* its mark byte was read already */
		if (first) {
			used = atomic_load_explicit(&s->rxq->head_used, memory_order_relaxed);
			marked = atomic_load_explicit(&s->rxq->head_marked, memory_order_relaxed);
		}
		uint32_t consumed = used;
		first = false;
		if (used && used >= rec.len) {
			usp__pair_corrupt(s->pair);
			err = -EIO;
			break;
		}
		/* manage_oob(): the out-of-band record, where a read meets it
		 * first (not on the peek offset's walk, which Linux does after
		 * manage_oob(), so a skipped byte is not counted in the offset) */
		if (USP_UNLIKELY(rec.oob) && !skipped_to) {
			uint64_t oob_cur = atomic_load(&s->self->oob_pos);
			bool current = oob_cur == rec.pos + 1;
			if (rec.oob_consumed) {
				if (copied && (!oob_cur || current))
					break;
				if (!peek)
					drop_oob(s, &rec);
				pos = rec.next;
				first = !peek;
				goto again;
			}
			if (current) {
				if (copied)
					break;
				bool inline_oob = atomic_load_explicit(&s->self->oobinline,
								       memory_order_relaxed);
				if (!peek)
					atomic_compare_exchange_strong(&s->self->oob_pos, &oob_cur, 0);
				if (!inline_oob) {
					if (!peek)
						drop_oob(s, &rec);
					pos = rec.next;
					first = !peek;
					goto again;
				}
			}
		}
		size_t avail = rec.oob_consumed ? 0 : rec.len - used;
		if (skip >= avail) {
			/* the peek offset is past this record; as the kernel's
			 * skip loop, look at the next one even when len is 0 */
			skip -= avail;
			kernel_passed |= rec.kernel;
			pos = rec.next;
			skipped_to = true;
			goto again;
		}
		if (rec.kernel && kernel_passed)
			break; /* its kernel part is not at the head: see DESIGN.md */
		if (passcred) {
			struct usp_scm_writer wr = {false, {0, 0, 0}, 0};
			if (rec.kernel && usp__kernel_peek_writer(s, &wr) < 0) {
				usp__pair_corrupt(s->pair);
				err = -EIO;
				break;
			}
			if (!have_writer) {
				have_writer = true;
				writer = wr;
			} else if (!usp__same_writer(&wr, &writer)) {
				break; /* never glue data of different writers */
			}
		}
		used += (uint32_t)skip;
		avail -= skip;
		size_t chunk = avail < len - copied ? avail : len - copied;
		if (chunk && bad_user) {
			err = -EFAULT; /* nothing consumed, as in the kernel */
			break;
		}
		if (rec.kernel) {
			ssize_t n = stream_read_kernel(s, &cur, consumed == 0 && !marked, skip,
						       chunk, flags, &scm);
			if (n < 0) {
				err = n;
				break;
			}
		} else {
			usp__cursor_copy_in(&cur, rec.data + used, chunk);
		}
		skip = 0;
		skipped_to = false;
		copied += chunk;
		visited = true;
		bool had_fds = scm.nfds > 0;
		if (peek) {
			peek_off_move(s, (int64_t)chunk);
			kernel_passed |= rec.kernel;
			pos = rec.next;
			if (had_fds)
				break;
			continue;
		}
		peek_off_move(s, -(int64_t)chunk);
		if (used + chunk < rec.len) {
			atomic_store_explicit(&s->rxq->head_used, used + (uint32_t)chunk,
					      memory_order_relaxed);
			/* a read of length 0 still takes the kernel record's
			 * ancillary data, as unix_stream_read_generic() detaches
			 * the descriptors of an skb it copied 0 bytes from; its
			 * mark byte is gone from the backing socket now */
			if (rec.kernel)
				atomic_store_explicit(&s->rxq->head_marked, 1,
						      memory_order_relaxed);
			break;
		}
		consume(s, &rec, usp__stream_truesize(rec.len));
		pos = rec.next;
		if (had_fds)
			break;
	} while (copied < len || peek);
	if (!s->recv_locked)
		usp__unlock(&s->self->recv_lock);
	if (kernel_tail)
		copied += stream_kernel_tail(s, &cur, len - copied,
					     copied < target ? target - copied : 0, nonblock);
	msg->msg_namelen = 0;
	msg->msg_flags = flags & MSG_CMSG_CLOEXEC;
	if (passcred && !visited && !err) {
		/* end of file: the kernel still reports its zeroed cookie (a
		 * read of length 0 that found a record reports that record's) */
		scm.has_creds = true;
		scm.creds = (struct ucred){0, 0, 0};
	}
	if ((copied || !err) && (passcred || scm.nfds || scm.extra_len)) {
		usp__scm_deliver(s, msg, &scm, flags);
	} else {
		if (err && (pass & USP_PASS_CRED)) {
			/* unix_stream_read_generic() gives its cookie to
			 * scm_recv_unix() even when the read fails (EAGAIN, a
			 * pending error, a signal): the credentials land in
			 * the caller's control buffer, its lengths and flags
			 * are not written back (recvmsg_user) */
			struct ucred c = {0, 0, 0};
			if (have_writer)
				c = writer.has_creds ? writer.creds : usp__no_creds();
			usp__scm_put_creds(msg, &c);
		}
		usp__scm_discard(&scm);
		msg->msg_controllen = 0;
	}
	return copied ? (ssize_t)copied : err;
}

/* ---- SOCK_DGRAM and SOCK_SEQPACKET: unix_dgram_sendmsg / recvmsg ------- */

/* unix_dgram_disconnected(): a DGRAM socket that finds its peer dead
 * drops the peer and, with it, every message still in its own receive
 * queue.  Caller holds our send_lock (lock order: send_lock, recv_lock). */
static void dgram_disconnect(struct usp_sock *s)
{
	usp__lock(&s->self->recv_lock);
	struct usp_ring *q = s->rxq;
	atomic_store(&q->head_used, 0);
	atomic_store(&q->head_marked, 0);
	atomic_store(&q->bytes_out, atomic_load(&q->bytes_in));
	atomic_store(&q->released, atomic_load(&q->charged));
	atomic_store_explicit(&q->head, atomic_load(&q->tail), memory_order_release);
	usp__kernel_purge(s); /* and the kernel parts of kernel records */
	atomic_store(&s->self->dgram_state, USP_DGRAM_REFUSED);
	usp__unlock(&s->self->recv_lock);
}

/* unix_dgram_sendmsg() autobinds a sender that asks for credentials
 * (SO_PASSCRED, SO_PASSPIDFD) before it looks for the peer (so even when
 * it then says ENOTCONN) or at the length: its receivers see its name from then on (unix_copy_addr), for
 * messages already queued too.  The backing socket is bound the same way
 * (bind with only the family autobinds), and receivers are told to ask
 * for the name. */
static void dgram_autobind(struct usp_sock *s)
{
	if (atomic_load_explicit(&s->self->maybe_named, memory_order_relaxed) ||
	    !(atomic_load_explicit(&s->self->pass_flags, memory_order_relaxed) &
	      (USP_PASS_CRED | USP_PASS_PIDFD)))
		return;
	int saved = errno;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	bind(s->fd, (struct sockaddr *)&a, sizeof(sa_family_t)); /* EINVAL if bound */
	errno = saved;
	atomic_store_explicit(&s->self->maybe_named, 1, memory_order_relaxed);
}

static ssize_t dgram_sendmsg(struct usp_sock *s, const struct msghdr *msg,
			     size_t len, int flags, const struct usp_scm_send *scm)
{
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	if (s->type == SOCK_DGRAM) {
		if (msg->msg_namelen) {
			/* An explicit destination is another socket; the
			 * backing kernel socket delivers it there. */
			ssize_t r = sendmsg(s->fd, msg, flags);
			return r < 0 ? -errno : r;
		}
		usp__check_peer(s, false);
	}
	/* a corrupt pair answers EIO to everything but argument errors */
	if (pair_corrupt(s))
		return -EIO;
	dgram_autobind(s);
	if (len > (size_t)sndbuf_of(s) - 32)
		return -EMSGSIZE;

	struct usp_iov_cursor cur;
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
	struct usp_wait w;
	usp__wait_init(&w, timeo_of(&s->self->sndtimeo_us), USP_WAKE_ROOM);
	bool nonblock = sock_nonblock(s, flags);
	ssize_t err;

	usp__lock(&s->self->send_lock);
	for (;;) {
		/* fallen back to the kernel path (as in queue_oob) */
		if (usp__kernel_mode(s)) {
			err = -USP_ERAW;
			goto out;
		}
		if ((err = send_alloc_error(s)))
			goto out;
		/* Linux 6.x looks up the peer after allocating the skb (the
		 * dead peer's queue is purged, so allocation succeeds).  A
		 * released SEQPACKET peer shut us down above; a DGRAM sender
		 * learns it here, once, then is unconnected. */
		if (usp__peer_gone(s)) {
			/* SEQPACKET: the release is about to shut us down (it
			 * marks the peer gone first, then sets our shutdown
			 * bits); unix_dgram_sendmsg says EPIPE in that race */
			if (s->type == SOCK_SEQPACKET) {
				err = -EPIPE;
				goto out;
			}
			if (atomic_load(&s->self->dgram_state) != USP_DGRAM_CONNECTED) {
				err = -ENOTCONN;
				goto out;
			}
			dgram_disconnect(s);
			err = -ECONNREFUSED;
			goto out;
		}
		int r = -EAGAIN;
		uint64_t tail;
		unsigned char *payload;
		bool via_kernel = usp__scm_via_kernel(s, scm);
		if (usp__ring_has_room(s->pair, s->txq, (uint64_t)sndbuf_of(s)))
			r = usp__ring_reserve(s->pair, s->txq, s->txdata, (uint32_t)len,
					      via_kernel ? USP_REC_KERNEL : USP_REC_DATA,
					      (uint64_t)sndbuf_of(s), &s->peer->recv_lock,
					      &tail, &payload);
		if (r == 0 && iov_has_bad(msg->msg_iov, msg->msg_iovlen)) {
			err = -EFAULT;
			goto out;
		}
		if (r == 0) {
			if (shutdown_bits(s->peer) & USP_RCV_SHUTDOWN) {
				err = -EPIPE;
				goto out;
			}
			if (via_kernel) {
				/* sent, it must be published (scm.c) */
				usp__scm_hold_endpoints(msg, +1);
				ssize_t n = send_kernel_part(s, &cur, len, msg->msg_control,
							     msg->msg_controllen, flags);
				if (n == -EAGAIN && !nonblock) {
					usp__scm_hold_endpoints(msg, -1);
					usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
					usp__unlock(&s->self->send_lock);
					struct pollfd p = {.fd = s->fd, .events = POLLOUT};
					poll(&p, 1, 40);
					usp__lock(&s->self->send_lock);
					continue;
				}
				if (n < 0) {
					usp__scm_hold_endpoints(msg, -1);
					err = n;
					goto out;
				}
				struct usp_kernel_meta meta = {
					(scm->nfds ? USP_KMETA_FDS : 0) | USP_KMETA_CREDS, 0};
				memcpy(payload, &meta, sizeof(meta));
			} else {
				usp__cursor_copy_out(&cur, payload, len);
			}
			publish(s, tail, (uint32_t)len, usp__dgram_truesize(len));
			err = (ssize_t)len;
			goto out;
		}
		if (r == -EIO) {
			err = r;
			goto out;
		}
		if (nonblock) {
			usp__check_peer(s, true);
			if (usp__peer_gone(s))
				continue;
			err = -EAGAIN;
			goto out;
		}
		r = wait_unlocked(s, &s->self->send_lock, &w, send_ready, true);
		if (r) {
			err = r;
			goto out;
		}
	}
out:
	usp__unlock(&s->self->send_lock);
	return err;
}


static ssize_t dgram_recvmsg(struct usp_sock *s, struct msghdr *msg,
			     size_t len, int flags)
{
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	bool nonblock = sock_nonblock(s, flags);
	struct usp_wait w;
	usp__wait_init(&w, timeo_of(&s->self->rcvtimeo_us), USP_WAKE_DATA);
	struct usp_rec rec;
	size_t skip = 0;
	ssize_t err;
	struct usp_scm_recv scm;
	usp__scm_init(&scm);
	bool kernel_skipped = false;

	if (!s->recv_locked)
		usp__lock(&s->self->recv_lock);
again:
	for (;;) {
		if (pair_corrupt(s)) {
			err = -EIO;
			goto out;
		}
		/* __skb_try_recv_datagram(): the pending error comes first */
		if ((err = usp__sock_error(s)))
			goto out;
		uint64_t pos = atomic_load_explicit(&s->rxq->head, memory_order_relaxed);
		/* a walk to a peek offset needs the whole queue */
		uint64_t tail = (flags & MSG_PEEK) ? usp__ld_acq(&s->rxq->tail) /* C1 */
						   : rx_tail(s, pos);
		/* __skb_try_recv_from_queue(): a peek offset skips whole
		 * messages, then starts inside the one it lands in.  One
		 * load: the field is the peer's to write too, and a skip and
		 * a peek_at_off from two different values would leave skip
		 * past the message (a copy from beyond it). */
		int32_t off = (flags & MSG_PEEK) ? atomic_load_explicit(&s->self->peek_off,
									memory_order_relaxed)
						 : -1;
		skip = off > 0 ? (size_t)off : 0;
		/* a peek at an offset (SO_PEEK_OFF set, even to 0) also skips
		 * an empty message an earlier peek returned (skb->peeked) */
		bool peek_at_off = off >= 0;
		kernel_skipped = false;
		int r;
		while ((r = usp__ring_peek(s->pair, s->rxq, s->rxdata, pos, tail, &rec)) == 0 &&
		       peek_at_off && skip >= rec.len && (skip || rec.peeked)) {
			skip -= rec.len;
			kernel_skipped |= rec.kernel;
			pos = rec.next;
		}
		if (r == 0 && rec.kernel && kernel_skipped) {
			/* its kernel part is not at the head: DESIGN.md */
			err = -EAGAIN;
			goto out;
		}
		if (r == 0)
			break;
		if (r == -EIO) {
			err = r;
			goto out;
		}
		/* fallen back, ring drained: the backing socket has the rest */
		if (usp__kernel_mode(s)) {
			err = -USP_ERAW;
			goto out;
		}
		bool rcv_shut = shutdown_bits(s->self) & USP_RCV_SHUTDOWN;
		if (!rcv_shut && s->type == SOCK_SEQPACKET && nonblock) {
			usp__check_peer(s, true);
			rcv_shut = shutdown_bits(s->self) & USP_RCV_SHUTDOWN;
			if (rcv_shut)
				continue; /* the release may have set an error */
		}
		if (nonblock) {
			/* EOF on a shut-down non-blocking SEQPACKET socket;
			 * a DGRAM socket says EAGAIN */
			err = rcv_shut && s->type == SOCK_SEQPACKET ? 0 : -EAGAIN;
			msg->msg_controllen = 0;
			goto out;
		}
		if (rcv_shut) {
			err = 0;
			msg->msg_controllen = 0; /* end of file: no control data */
			goto out;
		}
		s->wait_tail = tail; /* the walk reached it: wait for more */
		r = wait_unlocked(s, &s->self->recv_lock, &w, recv_ready_past,
				  s->type == SOCK_SEQPACKET);
		if (r) {
			err = r;
			goto out;
		}
	}
	if (USP_UNLIKELY(skip > rec.len)) { /* not after the walk above */
		usp__pair_corrupt(s->pair);
		err = -EIO;
		goto out;
	}
	if ((flags & MSG_PEEK) && rec.len == 0 && !rec.peeked)
		usp__ring_mark_peeked(s->rxdata, &rec);
	size_t size = rec.len - skip;
	msg->msg_flags = flags & MSG_CMSG_CLOEXEC;
	if (size > len) {
		size = len;
		msg->msg_flags |= MSG_TRUNC;
	}
	struct usp_iov_cursor cur;
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
	bool bad_user = size && iov_has_bad(msg->msg_iov, msg->msg_iovlen);
	if (rec.kernel) {
		ssize_t n = read_kernel_part(s, &cur, true, skip, bad_user ? 0 : size, flags, &scm);
		if (n == -EAGAIN && usp__peer_gone(s) && s->type == SOCK_DGRAM) {
			/* A probe of the dead peer (usp__check_peer) made the
			 * kernel purge our backing queue: the message is lost
			 * (DESIGN.md, known differences). */
			consume(s, &rec, usp__dgram_truesize(rec.len));
			goto again;
		}
		if (n < 0) {
			if (n == -EAGAIN)
				usp__pair_corrupt(s->pair);
			err = n == -EAGAIN ? -EIO : n;
			goto out;
		}
	}
	if (bad_user) {
		/* unix_dgram_recvmsg() has dequeued the message already */
		usp__scm_discard(&scm);
		if (!(flags & MSG_PEEK)) {
			consume(s, &rec, usp__dgram_truesize(rec.len));
			peek_off_move(s, -(int64_t)rec.len);
		}
		err = -EFAULT;
		goto out;
	}
	if (!rec.kernel)
		usp__cursor_copy_in(&cur, rec.data + skip, size);
	if (flags & MSG_PEEK) {
		peek_off_move(s, (int64_t)size);
	} else {
		consume(s, &rec, usp__dgram_truesize(rec.len));
		peek_off_move(s, -(int64_t)rec.len);
	}
	msg->msg_namelen = 0;
	if (msg->msg_name &&
	    atomic_load_explicit(&s->peer->maybe_named, memory_order_relaxed)) {
		/* unix_copy_addr(): the sender's name, if it has one */
		socklen_t alen = sizeof(struct sockaddr_un);
		if (getpeername(s->fd, msg->msg_name, &alen) == 0 &&
		    alen > sizeof(sa_family_t))
			msg->msg_namelen = alen;
	}
	if (rec.kernel || scm.extra_len ||
	    (atomic_load_explicit(&s->self->pass_flags, memory_order_relaxed) &
	     (USP_PASS_CRED | USP_PASS_PIDFD)))
		usp__scm_deliver(s, msg, &scm, flags);
	else
		msg->msg_controllen = 0;
	err = (flags & MSG_TRUNC) ? (ssize_t)(rec.len - skip) : (ssize_t)size;
out:
	if (!s->recv_locked)
		usp__unlock(&s->self->recv_lock);
	return err;
}

/* ---- dispatch -------------------------------------------------------- */

ssize_t usp__sendmsg(struct usp_sock *s, const struct msghdr *msg_in, int flags)
{
	/* __copy_msghdr(): a name length that is negative as an int */
	if (msg_in->msg_name && (int)msg_in->msg_namelen < 0)
		return -EINVAL;
	if (msg_in->msg_iovlen > UIO_MAXIOV)
		return -EMSGSIZE;
	if (msg_in->msg_iovlen && bad_ptr(msg_in->msg_iov))
		return -EFAULT;
	/* copy_msghdr_from_user(): no name means no name length, and a
	 * longer one is cut to a sockaddr_storage */
	struct msghdr fixed = *msg_in;
	if (!fixed.msg_name)
		fixed.msg_namelen = 0;
	if (fixed.msg_namelen > sizeof(struct sockaddr_storage))
		fixed.msg_namelen = sizeof(struct sockaddr_storage);
	const struct msghdr *msg = &fixed;
	ssize_t len = iov_total(msg->msg_iov, msg->msg_iovlen);
	if (len < 0)
		return len;
	/* ____sys_sendmsg() copies the control buffer in, then the
	 * protocol's scm_send() checks it before anything else */
	if (msg->msg_controllen > INT_MAX)
		return -ENOBUFS;
	if (msg->msg_controllen && bad_ptr(msg->msg_control))
		return -EFAULT;
	if (s->tipc_type)
		return usp__tipc_sendmsg(s, msg, (size_t)len, flags);
	if (s->type == SOCK_SEQPACKET) {
		/* unix_seqpacket_sendmsg(): a pending error comes first, even
		 * before unix_dgram_sendmsg() looks at the control buffer (a
		 * corrupt pair answers EIO to everything but argument errors) */
		if (pair_corrupt(s))
			return -EIO;
		ssize_t e = usp__sock_error(s);
		if (e)
			return e;
	}
	struct usp_scm_send scm = {.nfds = 0, .creds = false};
	if (USP_UNLIKELY(msg->msg_control && msg->msg_controllen >= sizeof(struct cmsghdr))) {
		int r = usp__scm_check(msg, &scm);
		if (r < 0)
			return r;
	}
	/* the send_lock this call takes and holds at times: a handler's fast
	 * send on it queues behind us while we hold it (see fast_send) */
	bool marked = usp__send_mark(&s->self->send_lock);
	ssize_t r = s->type == SOCK_STREAM ? stream_sendmsg(s, msg, (size_t)len, flags, &scm)
					   : dgram_sendmsg(s, msg, (size_t)len, flags, &scm);
	usp__send_unmark(marked);
	if (r == -USP_ERAW)
		usp__serve_flush(s); /* the caller sends through the kernel next */
	usp__stat_add(&usp__stats.fast_bytes, r);
	return r;
}

ssize_t usp__recvmsg(struct usp_sock *s, struct msghdr *msg, int flags)
{
	if (msg->msg_iovlen > UIO_MAXIOV)
		return -EMSGSIZE;
	if (msg->msg_iovlen && bad_ptr(msg->msg_iov))
		return -EFAULT;
	ssize_t len = iov_total(msg->msg_iov, msg->msg_iovlen);
	if (len < 0)
		return len;
	if (s->tipc_type) {
		ssize_t t = usp__tipc_recvmsg(s, msg, (size_t)len, flags);
		/* fallen back under us: the junk in front goes first */
		if (t == -USP_ERAW && !s->recv_locked)
			usp__passthrough(s);
		return t;
	}
	ssize_t r;
	size_t controllen = msg->msg_controllen;
	int msg_flags = msg->msg_flags;
	for (int tries = 0; tries < 1000; tries++) { /* bounded: a lying region */
		msg->msg_controllen = controllen; /* as the caller gave it */
		msg->msg_flags = msg_flags;
		r = s->type == SOCK_STREAM ? stream_recvmsg(s, msg, (size_t)len, flags)
					   : dgram_recvmsg(s, msg, (size_t)len, flags);
		/* The ring is drained after the fallback and the caller will
		 * read the descriptor: the junk in front of the user's data
		 * goes first (a sleeper woken by the fallback gets here before
		 * any lookup has done it).  False: another reader is in the
		 * middle of the ring's last record; read the ring again. */
		if (r != -USP_ERAW || s->recv_locked || usp__passthrough(s) || (flags & MSG_PEEK))
			break; /* (a peek past the ring's data asks the kernel) */
	}
	usp__stat_add(&usp__stats.fast_bytes, r);
	return r;
}

/* ---- fast paths -------------------------------------------------------
 *
 * send(2)/write(2) and recv(2)/read(2) of one buffer, on a socket in the
 * plain state, take a short path: no msghdr, no cursor, no ancillary data
 * checks.  It is an abbreviation, not another implementation: it takes the
 * same locks, reserves, publishes and consumes with the same functions, and
 * does only what the general path would do in that state.  Whenever
 * anything is unusual (flags, a pending error, shutdown, SO_PASS*, the
 * fallback, corruption, no room, a record that is not plain data, a STREAM
 * read that would go on into the next record), it returns -USP_SLOW before
 * changing anything, and the caller runs the general path from scratch.
 */
#define USP_SLOW 4097 /* internal answer: take the general path */

/* Nothing about this socket or its peer that the general path would act
 * on; checked under the lock the path takes. */
static bool plain_state(struct usp_sock *s)
{
	struct usp_endpoint *self = s->self, *peer = s->peer;
	uint32_t unusual = USP_ACCESS_ONCE_U32(&self->kernel_mode) |
			   (uint32_t)atomic_load_explicit(&self->sk_err, memory_order_relaxed) |
			   shutdown_bits(self) | shutdown_bits(peer) |
			   USP_ACCESS_ONCE_U32(&self->pass_flags) |
			   USP_ACCESS_ONCE_U32(&peer->pass_flags);
	return !unusual && !usp__mmsg_err_pending(s) && !usp__is_corrupt(s);
}

/*
 * A send from a signal handler that interrupted its own thread while that
 * thread held this endpoint's send_lock.  Waiting for the lock would wait
 * for ourselves, so the bytes go into a deferred slot (deferred.c) and the
 * holder's unlock sends them, after whatever the interrupted call queued:
 * as if the handler had run just after that call, which is one of the
 * orders the kernel can give.  This reads the shared state only; the
 * holder may be anywhere in its send.  The answer is decided now: the
 * charge must be below SO_SNDBUF, as sock_alloc_send_pskb() asks (a
 * blocking send waits for the reader to make room, polling: the futex
 * wait takes process-local locks).  A send that cannot be queued (an
 * endpoint in any but the plain state, a peer gone, more than 256 bytes,
 * every slot taken) fails with EAGAIN instead of waiting for itself
 * (docs/DESIGN.md, known differences).
 */
static __attribute__((noinline, cold)) ssize_t handler_send(struct usp_sock *s, const void *buf,
							 size_t len, int flags)
{
	for (;;) {
		if (!plain_state(s) || usp__peer_gone(s))
			return -EAGAIN;
		if (tx_wmem(s) < (uint64_t)sndbuf_of(s))
			return usp__defer_send(s, buf, len);
		if (sock_nonblock(s, flags))
			return -EAGAIN;
		struct timespec pause = {0, 50 * 1000};
		nanosleep(&pause, NULL);
	}
}

/* deferred.c: a deferred send goes out, from its thread's unlock of the
 * send_lock it was queued behind, before the lock is let go (the caller
 * holds it), so after what that holder queued.  Its room was checked when
 * the handler made it and the handler has its answer, so nothing fails
 * now: the charge may pass SO_SNDBUF by these bytes (as the kernel's does
 * by an skb), shutdown bits set since then do not stop it, and a peer gone
 * since then discards it as the kernel's release would.  After a fallback
 * it goes through the kernel. */
void usp__send_deferred(struct usp_sock *s, const void *buf, uint32_t len)
{
	if (usp__kernel_mode(s)) {
		send(s->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		return;
	}
	uint64_t tail;
	unsigned char *payload;
	if (!usp__peer_gone(s) && !pair_corrupt(s) &&
	    usp__ring_reserve(s->pair, s->txq, s->txdata, len, USP_REC_DATA,
			      (uint64_t)sndbuf_of(s), &s->peer->recv_lock, &tail, &payload) == 0) {
		memcpy(payload, buf, len);
		publish(s, tail, len,
			s->type == SOCK_STREAM ? usp__stream_truesize(len) : usp__dgram_truesize(len));
	}
}

static ssize_t fast_send(struct usp_sock *s, const void *buf, size_t len, int flags)
{
	if ((flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL)) || len == 0 || bad_ptr(buf) || s->tipc_type)
		return -USP_SLOW;
	int sndbuf = sndbuf_of(s);
	uint32_t truesize;
	if (s->type == SOCK_STREAM) {
		if (usp__stream_chunk(len, sndbuf) != len)
			return -USP_SLOW; /* more than one skb */
		truesize = usp__stream_truesize(len);
	} else {
		if (len > (size_t)sndbuf - 32 ||
		    (s->type == SOCK_DGRAM &&
		     USP_ACCESS_ONCE_U32(&s->self->dgram_state) != USP_DGRAM_CONNECTED))
			return -USP_SLOW;
		truesize = usp__dgram_truesize(len);
	}
	/* where the general path asks the kernel about the peer (STREAM and
	 * DGRAM before the lock, SEQPACKET never) */
	if (s->type != SOCK_SEQPACKET)
		usp__check_peer(s, false);
	/* While this call holds the lock, a send of a handler that interrupts
	 * it on the same endpoint queues behind it (deferred.c): the mark
	 * says which lock this call is taking or holds, from before it is
	 * taken until after it is let go.  A word that only says "ours"
	 * proves nothing: the peer can write it. */
	struct usp_lock *lock = &s->self->send_lock;
	uint64_t me = usp__lock_id();
	if (USP_UNLIKELY(usp__tl_send_marks.depth) && usp__deferring(lock, me))
		return handler_send(s, buf, len, flags);
	bool marked = usp__send_mark(lock);
	if (USP_UNLIKELY(!usp__lock_take(lock, 0, me)))
		usp__lock_slow(lock, me);
	ssize_t r = -USP_SLOW;
	uint64_t tail;
	unsigned char *payload;
	if (plain_state(s) && !usp__peer_gone(s) &&
	    usp__ring_has_room(s->pair, s->txq, (uint64_t)sndbuf) &&
	    usp__ring_reserve_data(s->pair, s->txq, s->txdata, (uint32_t)len, (uint64_t)sndbuf,
				   &s->peer->recv_lock, &tail, &payload) == 0) {
		memcpy(payload, buf, len);
		usp__ring_publish(s->txq, tail, (uint32_t)len, truesize);
		r = (ssize_t)len;
	}
	/* The release is W1 too: the wake below needs a full barrier
	 * between the tail and the sleeper counts, and the releasing CAS
	 * is one (a fence under the lock cost a second locked instruction
	 * per message).  Waking after the release is waking a moment
	 * later; the protocol does not ask for the lock. */
	if (r > 0)
		usp__unlock_full(lock);
	else
		usp__unlock(lock);
	usp__send_unmark(marked);
	if (r > 0) {
		usp__wake_reader_after_mb(s);
		usp__stat_add(&usp__stats.fast_bytes, r);
	}
	return r;
}

/* A receive from the record at the head; an empty queue is waited for
 * by one unlocked spin (recv_ready_past), the rest by the general path. */
static ssize_t fast_recv(struct usp_sock *s, void *buf, size_t len, int flags)
{
	struct usp_endpoint *self = s->self;
	if ((flags & ~MSG_DONTWAIT) || len == 0 || bad_ptr(buf) || s->tipc_type ||
	    atomic_load_explicit(&self->peek_off, memory_order_relaxed) >= 0)
		return -USP_SLOW;
	bool stream = s->type == SOCK_STREAM;
	/* STREAM: SO_RCVLOWAT and out-of-band data change what a read takes */
	if (stream && (atomic_load_explicit(&self->rcvlowat, memory_order_relaxed) > 1 ||
		       atomic_load_explicit(&self->oob_pos, memory_order_relaxed)))
		return -USP_SLOW;
	struct usp_rec rec;
	for (;;) {
		usp__lock(&self->recv_lock);
		uint64_t pos = atomic_load_explicit(&s->rxq->head, memory_order_relaxed);
		uint64_t tail = rx_tail(s, pos); /* C1 */
		int r = plain_state(s) ? usp__ring_peek_data(s->pair, s->rxq, s->rxdata, pos,
							     tail, &rec)
				       : -EIO;
		if (r == 0)
			break;
		usp__unlock(&self->recv_lock);
		/* empty: a blocking call spins here once, unlocked, as the
		 * general path's wait would; then the general path sleeps */
		if (r != -EAGAIN || s->spun || sock_nonblock(s, flags))
			return -USP_SLOW;
		s->wait_tail = tail;
		s->spun = true;
		if (!usp__spin(s, recv_ready_past, USP_WAKE_DATA))
			return -USP_SLOW;
	}
	size_t chunk;
	bool wake = false;
	if (rec.kernel || rec.oob)
		goto slow;
	if (stream) {
		uint32_t used = atomic_load_explicit(&s->rxq->head_used, memory_order_relaxed);
		if (used >= rec.len || atomic_load_explicit(&s->rxq->head_marked, memory_order_relaxed))
			goto slow;
		size_t avail = rec.len - used;
		chunk = avail < len ? avail : len;
		/* a read with room left goes on into the next record */
		if (chunk < len && rx_tail(s, rec.next) != rec.next)
			goto slow;
		memcpy(buf, rec.data + used, chunk);
		if (used + chunk < rec.len) {
			atomic_store_explicit(&s->rxq->head_used, used + (uint32_t)chunk,
					      memory_order_relaxed);
		} else {
			wake = consume_wake_later(s, &rec, usp__stream_truesize(rec.len));
		}
	} else {
		chunk = rec.len < len ? rec.len : len; /* the rest is dropped */
		memcpy(buf, rec.data, chunk);
		wake = consume_wake_later(s, &rec, usp__dgram_truesize(rec.len));
	}
	/* the release is the wake's W1 (as in fast_send) */
	if (wake) {
		usp__unlock_full(&self->recv_lock);
		wake_room_after_mb(s);
	} else {
		usp__unlock(&self->recv_lock);
	}
	usp__stat_add(&usp__stats.fast_bytes, (ssize_t)chunk);
	return (ssize_t)chunk;
slow:
	usp__unlock(&self->recv_lock);
	return -USP_SLOW;
}

/* ---- public calls ---------------------------------------------------- */

/* A call done on the descriptor itself: for USPAIR_STATS, bytes that a
 * fallen-back uspair pair moved through the kernel. */
static inline ssize_t raw_done(int fd, ssize_t r)
{
	if (USP_UNLIKELY(usp__stats_on) && r > 0 && usp_is_uspair(fd))
		usp__stat_add(&usp__stats.fallback_bytes, r);
	return r;
}

/* MSG_CMSG_COMPAT (bit 31) is the kernel's own; __sys_sendmsg() and
 * __sys_recvmsg() refuse it from a native caller before anything else. */
#define USP_MSG_CMSG_COMPAT ((int)0x80000000u)

ssize_t usp_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct usp_sock s;
	if (flags & USP_MSG_CMSG_COMPAT) {
		errno = EINVAL;
		return -1;
	}
	if (!usp__lookup(fd, &s))
		return raw_done(fd, sendmsg(fd, msg, flags));
	ssize_t r = bad_ptr(msg) ? -EFAULT : usp__sendmsg(&s, msg, flags);
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, sendmsg(fd, msg, flags));
	return usp__ret_errno(r);
}

/* ____sys_recvmsg(): the caller's msghdr is written only on success, and
 * msg_namelen only when msg_name is set. */
static ssize_t recvmsg_user(struct usp_sock *s, struct msghdr *msg, int flags)
{
	if (bad_ptr(msg))
		return -EFAULT;
	/* __copy_msghdr(): a name length that is negative as an int */
	if (msg->msg_name && (int)msg->msg_namelen < 0)
		return -EINVAL;
	struct msghdr m = *msg;
	struct sockaddr_storage kaddr; /* the kernel's own copy of the name */
	m.msg_name = msg->msg_name ? &kaddr : NULL;
	m.msg_flags = flags & MSG_CMSG_CLOEXEC;
	m.msg_namelen = 0;
	ssize_t r = usp__recvmsg(s, &m, flags);
	if (r >= 0) {
		if (msg->msg_name) {
			/* move_addr_to_user(): as much as fits, the whole length */
			socklen_t cap = msg->msg_namelen;
			if (m.msg_namelen)
				memcpy(msg->msg_name, &kaddr,
				       cap < m.msg_namelen ? cap : m.msg_namelen);
			msg->msg_namelen = m.msg_namelen;
		}
		msg->msg_controllen = m.msg_controllen;
		msg->msg_flags = m.msg_flags;
	}
	return r;
}

ssize_t usp_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct usp_sock s;
	if (flags & USP_MSG_CMSG_COMPAT) {
		errno = EINVAL;
		return -1;
	}
	if (!usp__lookup(fd, &s))
		return raw_done(fd, recvmsg(fd, msg, flags));
	ssize_t r = recvmsg_user(&s, msg, flags);
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, recvmsg(fd, msg, flags));
	return usp__ret_errno(r);
}

/* __sys_sendmmsg(): one sendmsg per entry until one fails or sends only
 * part; an error is returned only if nothing was sent. */
int usp_sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags)
{
	struct usp_sock s;
	/* __sys_sendmmsg(forbid_cmsg_compat): before anything else */
	if (flags & USP_MSG_CMSG_COMPAT) {
		errno = EINVAL;
		return -1;
	}
	if (!usp__lookup(fd, &s))
		return sendmmsg(fd, msgvec, vlen, flags);
	if (vlen > UIO_MAXIOV)
		vlen = UIO_MAXIOV;
	unsigned int sent = 0;
	ssize_t r = 0;
	while (sent < vlen) {
		struct mmsghdr *m = &msgvec[sent];
		if (bad_ptr(m)) {
			r = -EFAULT;
			break;
		}
		r = usp__sendmsg(&s, &m->msg_hdr, flags);
		if (r < 0)
			break;
		m->msg_len = (unsigned int)r;
		sent++;
		size_t want = 0;
		for (size_t i = 0; i < m->msg_hdr.msg_iovlen; i++)
			want += m->msg_hdr.msg_iov[i].iov_len;
		if ((size_t)r < want)
			break;
	}
	usp__put(&s);
	if (r == -USP_ERAW) {
		if (!sent)
			return sendmmsg(fd, msgvec, vlen, flags);
		r = 0;
	}
	if (sent || r >= 0)
		return (int)sent;
	errno = (int)-r;
	return -1;
}

/* do_recvmmsg(): a pending error first; one recvmsg per entry;
 * MSG_WAITFORONE makes the rest non-blocking; the timeout is looked at
 * only between messages; an error after some messages is kept as the
 * socket's pending error for the next call. */
int usp_recvmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
		 struct timespec *timeout)
{
	struct usp_sock s;
	/* the recvmmsg system call refuses it before the timeout's check */
	if (flags & USP_MSG_CMSG_COMPAT) {
		errno = EINVAL;
		return -1;
	}
	if (!usp__lookup(fd, &s))
		return recvmmsg(fd, msgvec, vlen, flags, timeout);
	int64_t end = 0;
	if (timeout) {
		if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
		    timeout->tv_nsec >= 1000000000L) {
			usp__put(&s);
			errno = EINVAL;
			return -1;
		}
		end = usp__now_ns() + (int64_t)timeout->tv_sec * 1000000000LL + timeout->tv_nsec;
	}
	/* __sys_recvmmsg(): a pending error first, unless MSG_ERRQUEUE */
	ssize_t r = (flags & MSG_ERRQUEUE) ? 0 : usp__sock_error(&s);
	unsigned int got = 0;
	usp__scm_defer_begin();
	while (r == 0 && got < vlen) {
		struct mmsghdr *m = &msgvec[got];
		if (bad_ptr(m)) {
			r = -EFAULT;
			break;
		}
		r = recvmsg_user(&s, &m->msg_hdr, flags & ~MSG_WAITFORONE);
		if (r < 0)
			break;
		m->msg_len = (unsigned int)r;
		r = 0;
		got++;
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
		if (timeout) {
			int64_t left = end - usp__now_ns();
			if (left < 0)
				left = 0;
			timeout->tv_sec = left / 1000000000LL;
			timeout->tv_nsec = left % 1000000000LL;
			if (left == 0)
				break;
		}
		/* out-of-band data: return right away */
		if (m->msg_hdr.msg_flags & MSG_OOB)
			break;
	}
	if (r == -USP_ERAW && got)
		r = 0; /* the rest on the next call, from the backing socket */
	if (got && r < 0 && r != -EAGAIN && r != -USP_ERAW)
		atomic_store(&s.pair->mmsg_err[s.side], (int)-r);
	usp__scm_defer_end(); /* as the kernel's fput() at the return */
	usp__put(&s);
	if (r == -USP_ERAW)
		return recvmmsg(fd, msgvec, vlen, flags, timeout);
	if (got || r >= 0)
		return (int)got;
	errno = (int)-r;
	return -1;
}

ssize_t usp_send(int fd, const void *buf, size_t len, int flags)
{
	struct usp_sock s;
	if (!usp__lookup_cached(fd, &s))
		return raw_done(fd, send(fd, buf, len, flags));
	ssize_t r = fast_send(&s, buf, len, flags);
	if (r == -USP_SLOW) {
		struct iovec iov = {(void *)buf, len};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		r = usp__sendmsg(&s, &msg, flags);
	}
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, send(fd, buf, len, flags));
	return usp__ret_errno(r);
}

ssize_t usp_recv(int fd, void *buf, size_t len, int flags)
{
	struct usp_sock s;
	if (!usp__lookup_cached(fd, &s))
		return raw_done(fd, recv(fd, buf, len, flags));
	ssize_t r = fast_recv(&s, buf, len, flags);
	if (r == -USP_SLOW) {
		struct iovec iov = {buf, len};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		r = usp__recvmsg(&s, &msg, flags);
	}
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, recv(fd, buf, len, flags));
	return usp__ret_errno(r);
}

ssize_t usp_sendto(int fd, const void *buf, size_t len, int flags,
		   const struct sockaddr *dest_addr, socklen_t addrlen)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return raw_done(fd, sendto(fd, buf, len, flags, dest_addr, addrlen));
	/* move_addr_to_kernel(): checked before the protocol sees it */
	if (dest_addr && addrlen > sizeof(struct sockaddr_storage)) {
		usp__put(&s);
		errno = EINVAL;
		return -1;
	}
	struct iovec iov = {(void *)buf, len};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_name = (void *)dest_addr,
			     .msg_namelen = dest_addr ? addrlen : 0};
	ssize_t r = usp__sendmsg(&s, &msg, flags);
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, sendto(fd, buf, len, flags, dest_addr, addrlen));
	return usp__ret_errno(r);
}

ssize_t usp_recvfrom(int fd, void *buf, size_t len, int flags,
		     struct sockaddr *src_addr, socklen_t *addrlen)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return raw_done(fd, recvfrom(fd, buf, len, flags, src_addr, addrlen));
	struct iovec iov = {buf, len};
	struct sockaddr_storage kaddr;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_name = src_addr ? &kaddr : NULL};
	ssize_t r = usp__recvmsg(&s, &msg, flags);
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, recvfrom(fd, buf, len, flags, src_addr, addrlen));
	/* move_addr_to_user(), after the data was taken: the length
	 * pointer must be valid and its value not negative; as much of the
	 * sender's name as fits, and its whole length (0 for an unnamed
	 * sender) */
	if (r >= 0 && src_addr) {
		if (bad_ptr(addrlen)) {
			r = -EFAULT;
		} else if ((int)*addrlen < 0) {
			r = -EINVAL;
		} else {
			if (msg.msg_namelen)
				memcpy(src_addr, &kaddr,
				       *addrlen < msg.msg_namelen ? *addrlen : msg.msg_namelen);
			*addrlen = msg.msg_namelen;
		}
	}
	return usp__ret_errno(r);
}

ssize_t usp_write(int fd, const void *buf, size_t count)
{
	struct usp_sock s;
	if (!usp__lookup_cached(fd, &s))
		return raw_done(fd, write(fd, buf, count));
	ssize_t r = fast_send(&s, buf, count, 0);
	if (r == -USP_SLOW) {
		struct iovec iov = {(void *)buf, count};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		r = usp__sendmsg(&s, &msg, 0);
	}
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, write(fd, buf, count));
	return usp__ret_errno(r);
}

ssize_t usp_read(int fd, void *buf, size_t count)
{
	struct usp_sock s;
	if (!usp__lookup_cached(fd, &s))
		return raw_done(fd, read(fd, buf, count));
	ssize_t r = 0;
	/* sock_read_iter(): a zero-length read returns 0 without looking */
	if (count && (r = fast_recv(&s, buf, count, 0)) == -USP_SLOW) {
		struct iovec iov = {buf, count};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		r = usp__recvmsg(&s, &msg, 0);
	}
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, read(fd, buf, count));
	return usp__ret_errno(r);
}

/* readv/writev: the checks of do_readv/do_writev, then a recvmsg or
 * sendmsg without flags.  vfs_readv/vfs_writev do not pass a request with
 * nothing to move to the socket, so writev queues no empty record (where
 * write(fd, p, 0) does). */
static ssize_t vectored_io(struct usp_sock *s, const struct iovec *iov,
			   int iovcnt, bool write)
{
	if (iovcnt > 0 && bad_ptr(iov))
		return -EFAULT;
	if (iovcnt < 0 || iovcnt > UIO_MAXIOV)
		return -EINVAL;
	ssize_t r = iov_total(iov, (size_t)iovcnt);
	if (r <= 0)
		return r;
	struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
	return write ? usp__sendmsg(s, &msg, 0) : usp__recvmsg(s, &msg, 0);
}

ssize_t usp_writev(int fd, const struct iovec *iov, int iovcnt)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return raw_done(fd, writev(fd, iov, iovcnt));
	ssize_t r = vectored_io(&s, iov, iovcnt, true);
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, writev(fd, iov, iovcnt));
	return usp__ret_errno(r);
}

ssize_t usp_readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return raw_done(fd, readv(fd, iov, iovcnt));
	ssize_t r = vectored_io(&s, iov, iovcnt, false);
	usp__put(&s);
	if (r == -USP_ERAW)
		return raw_done(fd, readv(fd, iov, iovcnt));
	return usp__ret_errno(r);
}
