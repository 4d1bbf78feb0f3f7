/*
 * AF_TIPC pairs: socketpair(AF_TIPC, type, 0) in user space (issue 7).
 *
 * The kernels uspair runs on usually have no TIPC, so these pairs never ask
 * the kernel for an AF_TIPC socket: the descriptors are an AF_UNIX pair of
 * the backing type (SOCK_STREAM for STREAM, SOCK_SEQPACKET for the others),
 * which gives the descriptor model, liveness and poll wake-ups exactly as
 * for AF_UNIX pairs, and this file answers every call with the semantics of
 * net/tipc/socket.c on a node: one operations table per kind of socket as
 * there (tipc_sendstream/tipc_recvstream for STREAM, tipc_send_packet and
 * tipc_recvmsg for SEQPACKET, __tipc_sendmsg and tipc_recvmsg for RDM and
 * DGRAM), on the same shared-memory rings as AF_UNIX pairs.  The oracle is
 * a real TIPC kernel: test/tipc_transcript compares every step of its
 * transcript, and docs/DESIGN.md lists what is deliberately different.
 *
 * What TIPC does that AF_UNIX does not, and how it is kept here:
 *  - Every socket has a random 32-bit port id (usp_tipc_ep.port); names
 *    are struct sockaddr_tipc with that id, and every receive fills
 *    msg_name with the sender's.
 *  - A pair is connected as tipc_socketpair() leaves it, for every type
 *    (TIPC_ESTABLISHED).  STREAM and SEQPACKET become TIPC_DISCONNECTING
 *    on a shutdown or release of either end; RDM and DGRAM never do.
 *  - Connection flow control counts 1 KiB blocks (struct usp_tipc_ep).
 *  - A socket that shuts down or is released rejects what it has not
 *    read: connected types return the first message to the peer inside
 *    the "FIN" (a USP_REC_TIPC_ERR record: TIPC_ERRINFO and TIPC_RETDATA
 *    on receive) and drop the rest; RDM and DGRAM return each message
 *    whose sender made it returnable (TIPC_DEST_DROPPABLE 0) and drop the
 *    others.  RDM/DGRAM messages beyond the receive queue's limit, or to
 *    a socket that is gone, are rejected the same way.
 *  - Zero-length messages are queued (they make poll() readable) but
 *    never delivered.
 *
 * Locking is that of io.c: a sender holds its endpoint's send_lock while
 * it writes into the peer's queue, a receiver its recv_lock.  A shutdown
 * or release of endpoint X takes X's send_lock, then X's recv_lock (all
 * send_locks before any recv_lock, the order fallback.c documents).  A
 * message returned to its own sender is written under the peer's
 * send_lock (the producer lock of the sender's queue), taken with no other
 * lock held.  The flow-control counters are atomics: snt_unacked is the
 * only one both sides write (the receiver's acknowledgement subtracts).
 * Everything read from the region is untrusted: records are checked by
 * ring.c, and a lying counter can only stall or open the window.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <linux/tipc.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

#define TIPC_MAX_USER 66000u	 /* TIPC_MAX_USER_MSG_SIZE */
#define FLOWCTL_BLK 1024	 /* FLOWCTL_BLK_SZ */
#define RCVBUF_MIN (FLOWCTL_BLK * 512)
#define RCVBUF_DEF (FLOWCTL_BLK * 1024 * 2) /* sysctl_tipc_rmem[1] */
#define ACK_RATE 4		 /* acknowledge at a quarter of the window */
#define SHORT_H 24		 /* header of a connection message */
#define BASIC_H 32		 /* of a direct (RDM/DGRAM) or returned one */
#define MAX_FORWARD 1024	 /* data a rejected message carries back */
#define CONN_TIMEOUT_DEFAULT 8000
#define NAGLE_START_INIT 4
#define NAGLE_START_MAX 1024
#define MAX_NAGLE 1500		 /* tsk_set_nagle() for a node-local peer */
/* the most a queue holds (ring.c early wrap): an RDM/DGRAM queue takes
 * up to 16 MiB of truesize for TIPC_CRITICAL_IMPORTANCE messages (the
 * connection window admits far less), and it is also where a larger
 * SO_RCVBUFFORCE stops (docs/DESIGN.md, known differences) */
#define TIPC_QUEUE_BOUND ((uint32_t)RCVBUF_DEF << TIPC_CRITICAL_IMPORTANCE)
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

static bool conn_type(const struct usp_sock *s)
{
	return s->tipc_type == SOCK_STREAM || s->tipc_type == SOCK_SEQPACKET;
}

static struct usp_tipc_ep *me(struct usp_sock *s)
{
	return &s->self->tipc;
}

static struct usp_tipc_ep *them(struct usp_sock *s)
{
	return &s->peer->tipc;
}

static int blocks(size_t msg_size)
{
	return (int)(msg_size / FLOWCTL_BLK) + 1;
}

static int adv_blocks(int rcvbuf)
{
	return rcvbuf < 0 ? 0 : rcvbuf / FLOWCTL_BLK / 4;
}

static uint32_t ld(_Atomic uint32_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

static int ld32(_Atomic int32_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

static bool established(struct usp_endpoint *ep)
{
	return ld(&ep->tipc.state) == USP_TIPC_ESTABLISHED;
}

/* tsk_conn_cong() */
static bool conn_cong(struct usp_tipc_ep *t)
{
	return ld32(&t->snt_unacked) > ld32(&t->snd_win);
}

/* A random port id, as tipc_sk_insert() draws one.  getrandom() once per
 * thread seeds a splitmix64 sequence that the clock keeps apart in
 * forked processes (a system call per socket would cost a tenth of a
 * socketpair()); the two ends of a pair are made distinct by the caller. */
static uint32_t random_port(void)
{
	static USP_TLS uint64_t state;
	if (!state && getrandom(&state, sizeof(state), GRND_NONBLOCK) != sizeof(state))
		state = (uint64_t)usp__now_ns();
	uint64_t z = (state += 0x9e3779b97f4a7c15ull ^ (uint64_t)usp__now_ns());
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	uint32_t v = (uint32_t)(z ^ (z >> 31));
	return v ? v : 1;
}

/* tipc_sk_create() and tipc_socketpair(): both ends connected to each
 * other, with distinct port ids. */
void usp__tipc_init(struct usp_shared *shm, int tipc_type)
{
	uint32_t port0 = random_port(), port1;
	while ((port1 = random_port()) == port0)
		;
	for (int i = 0; i < 2; i++) {
		struct usp_tipc_ep *t = &shm->ep[i].tipc;
		atomic_init(&t->port, i ? port1 : port0);
		atomic_init(&t->state, USP_TIPC_ESTABLISHED);
		atomic_init(&t->snt_unacked, 0);
		atomic_init(&t->snd_win, adv_blocks(RCVBUF_MIN));
		atomic_init(&t->rcv_unacked, 0);
		atomic_init(&t->rcv_win, adv_blocks(RCVBUF_MIN));
		atomic_init(&t->rcvbuf, RCVBUF_DEF);
		atomic_init(&t->importance, TIPC_LOW_IMPORTANCE);
		bool connectionless = tipc_type == SOCK_RDM || tipc_type == SOCK_DGRAM;
		atomic_init(&t->dest_droppable, connectionless);
		atomic_init(&t->src_droppable, tipc_type == SOCK_DGRAM);
		atomic_init(&t->conn_timeout, CONN_TIMEOUT_DEFAULT);
		atomic_init(&t->nodelay, 0);
		atomic_init(&t->oneway, 0);
		atomic_init(&t->nagle_start, NAGLE_START_INIT);
		atomic_init(&t->dest_family, AF_TIPC);
		atomic_init(&t->dest_addrtype, TIPC_SOCKET_ADDR);
		atomic_init(&t->dest_addr[0], i ? port0 : port1); /* ref */
		atomic_init(&t->dest_addr[1], 0);		    /* node */
		atomic_init(&t->dest_addr[2], 0);
		atomic_init(&t->release_pending, 0);
	}
}

/* The sockaddr_tipc of a port (tipc_getname(), tipc_sk_set_orig_addr()). */
static void port_name(struct sockaddr_tipc *a, uint32_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_TIPC;
	a->addrtype = TIPC_SOCKET_ADDR;
	a->addr.id.ref = port;
	a->addr.id.node = 0; /* a node without an address: tipc_own_addr() */
}

int usp__tipc_getname(struct usp_sock *s, struct sockaddr *addr, socklen_t *addrlen,
		      bool peer)
{
	usp__tipc_settle(s->pair);
	/* peer: only while connected (tipc_getname(peer = 1)) */
	if (peer && !established(s->self))
		return -ENOTCONN;
	struct sockaddr_tipc a;
	port_name(&a, ld(peer ? &them(s)->port : &me(s)->port));
	return usp__put_name(addr, addrlen, &a, sizeof(a));
}

/* ---- the queues -------------------------------------------------------- */

/* truesize of a message of msg_size bytes, header included (skb) */
static uint32_t msg_truesize(size_t msg_size)
{
	return usp__tipc_truesize(msg_size);
}

static size_t hdr_size(const struct usp_sock *s, const struct usp_rec *rec)
{
	if (rec->tipc_err)
		return BASIC_H;
	return conn_type(s) ? SHORT_H : BASIC_H;
}

/* What a record's data is: a message's bytes, or a rejected message's
 * returned bytes behind its error code. */
struct tipc_msg_view {
	const unsigned char *data;
	uint32_t dlen;
	uint32_t err;  /* TIPC error code, 0 for data */
	uint32_t port; /* a rejection: the port that rejected it */
};

/* The head of a USP_REC_TIPC_ERR record's payload */
struct tipc_reject {
	uint32_t err;
	uint32_t port;
};

static int view_of(struct usp_sock *s, const struct usp_rec *rec, struct tipc_msg_view *v)
{
	if (rec->kernel || rec->oob)
		goto corrupt; /* never written into a TIPC pair's ring */
	if (!rec->tipc_err) {
		v->data = rec->data;
		v->dlen = rec->len;
		v->err = 0;
		return 0;
	}
	struct tipc_reject rj;
	if (rec->len < sizeof(rj) || rec->len - sizeof(rj) > MAX_FORWARD)
		goto corrupt;
	memcpy(&rj, rec->data, sizeof(rj));
	if (rj.err == 0 || rj.err > TIPC_CONN_SHUTDOWN)
		goto corrupt;
	v->data = rec->data + sizeof(rj);
	v->dlen = rec->len - (uint32_t)sizeof(rj);
	v->err = rj.err;
	v->port = rj.port;
	return 0;
corrupt:
	usp__pair_corrupt(s->pair);
	return -EIO;
}

/* The record at the head of ring `side`, caller holding that endpoint's
 * recv_lock. */
static int head_record(struct usp_pair *pair, struct usp_shared *shm, int side,
		       struct usp_rec *rec)
{
	struct usp_ring *q = &shm->ring[side];
	unsigned char *data = (unsigned char *)shm + USP_DATA_OFFSET + (size_t)side * USP_RING_BYTES;
	return usp__ring_peek(pair, q, data, atomic_load_explicit(&q->head, memory_order_relaxed),
			      usp__ld_acq(&q->tail) /* C1 */, rec);
}

/* What the producer charged for a record (rec->len is bounded by ring.c;
 * a short rejection record, which only a hostile peer writes, is charged
 * as an empty one: the accounting must never wrap) */
static uint32_t rec_truesize(bool conn, const struct usp_rec *rec)
{
	if (rec->nagle)
		return msg_truesize(MAX_NAGLE);
	if (rec->tipc_err)
		return msg_truesize(BASIC_H + (rec->len >= sizeof(struct tipc_reject)
						       ? rec->len - sizeof(struct tipc_reject)
						       : 0));
	return msg_truesize((conn ? SHORT_H : BASIC_H) + rec->len);
}

/* The head record of ring `side` that a shutdown or release may look
 * into: a message (data in the ring) or a rejection.  Kinds that only
 * AF_UNIX pairs write mark the region corrupt. */
static int head_message(struct usp_pair *pair, struct usp_shared *shm, int side,
			struct usp_rec *rec)
{
	int r = head_record(pair, shm, side, rec);
	if (r == 0 && (rec->kernel || rec->oob)) {
		usp__pair_corrupt(pair);
		return -EIO;
	}
	return r;
}

/*
 * Append a message to the queue of endpoint `to` (ring[to]).  Caller holds
 * the producer lock of that queue, ep[to ^ 1].send_lock.  kind is
 * USP_REC_DATA, with the USP_REC_TIPC_* flags that apply (droppable: the
 * sender's TIPC_DEST_DROPPABLE, kept for a later rejection), or
 * USP_REC_TIPC_ERR with the rejection in rj.  The data comes from the
 * cursor, or from `bytes` when cur is NULL.  -EAGAIN: the ring is
 * physically full.
 */
static int append(struct usp_pair *pair, struct usp_shared *shm, int to, uint32_t kind,
		  const struct tipc_reject *rj, struct usp_iov_cursor *cur,
		  const unsigned char *bytes, size_t dlen, uint32_t truesize)
{
	struct usp_ring *q = &shm->ring[to];
	unsigned char *data = (unsigned char *)shm + USP_DATA_OFFSET + (size_t)to * USP_RING_BYTES;
	size_t len = dlen + (rj ? sizeof(*rj) : 0);
	uint64_t tail;
	unsigned char *payload;
	int r = usp__ring_reserve(pair, q, data, (uint32_t)len, kind, TIPC_QUEUE_BOUND,
				  &shm->ep[to].recv_lock, &tail, &payload);
	if (r < 0)
		return r;
	if (rj) {
		memcpy(payload, rj, sizeof(*rj));
		payload += sizeof(*rj);
	}
	if (cur)
		usp__cursor_copy_out(cur, payload, dlen);
	else if (dlen)
		memcpy(payload, bytes, dlen);
	usp__ring_publish(q, tail, (uint32_t)len, truesize);
	return 0;
}

/* Receive-queue memory of endpoint `side` (sk_rmem_alloc). */
static uint64_t rmem_of(struct usp_pair *pair, struct usp_shared *shm, int side)
{
	return usp__ring_wmem(pair, &shm->ring[side]);
}

/* Would a message of `truesize` fit the queue of endpoint `side` under
 * `limit` (rmem + truesize < limit)?  Caller holds that queue's producer
 * lock: the producer's cached view of the consumer's releases is
 * refreshed only when it says no (usp__ring_has_room), so that a sender
 * does not pull the reader's cache line on every message. */
static bool fits(struct usp_pair *pair, struct usp_shared *shm, int side, uint32_t truesize,
		 uint64_t limit)
{
	return limit > truesize && usp__ring_has_room(pair, &shm->ring[side], limit - truesize);
}

/* rcvbuf_limit() for a message to a connectionless socket */
static uint64_t dgram_limit(struct usp_endpoint *to, uint32_t importance)
{
	int rcvbuf = ld32(&to->tipc.rcvbuf);
	uint64_t limit = rcvbuf < 0 ? 0 : (uint64_t)rcvbuf << (importance & 3);
	return limit > TIPC_QUEUE_BOUND ? TIPC_QUEUE_BOUND : limit;
}

/*
 * tipc_msg_reverse(): a message rejected with error `err` goes back to
 * its sender (endpoint `to`) with at most MAX_FORWARD bytes of its data,
 * unless its sender made it droppable or it is itself a rejection.
 * Caller holds the producer lock of ring[to].  False if it was dropped.
 */
static bool give_back(struct usp_pair *pair, struct usp_shared *shm, int to, uint32_t err,
		      uint32_t by_port, const unsigned char *data, size_t dlen, bool limited)
{
	struct tipc_reject rj = {err, by_port};
	if (dlen > MAX_FORWARD)
		dlen = MAX_FORWARD;
	uint32_t truesize = msg_truesize(BASIC_H + dlen);
	struct usp_endpoint *ep = &shm->ep[to];
	if (atomic_load(&ep->state) == USP_EP_GONE)
		return false; /* no port: the rejection itself is dropped */
	if (limited && !fits(pair, shm, to, truesize,
			     dgram_limit(ep, atomic_load(&ep->tipc.importance))))
		return false;
	return append(pair, shm, to, USP_REC_TIPC_ERR, &rj, NULL, data, dlen, truesize) == 0;
}

/* The head message of ring `side` if it is below `end` (a snapshot of the
 * tail: a peer that keeps sending cannot keep a drain going). */
static int head_before(struct usp_pair *pair, struct usp_shared *shm, int side, uint64_t end,
		       struct usp_rec *rec)
{
	int r = head_message(pair, shm, side, rec);
	if (r == 0 && (int64_t)(end - rec->pos) <= 0)
		return -EAGAIN;
	return r;
}

/*
 * __tipc_shutdown() of endpoint `side` with error `err` (TIPC_CONN_SHUTDOWN
 * for shutdown(), TIPC_ERR_NO_PORT for a release).  Takes both send_locks
 * in side order (both queues' producers stand still: nothing lands in a
 * queue being rejected, and the peer's state cannot change under a
 * sender), then this endpoint's recv_lock; the caller holds no uspair
 * lock.  Returns true when the socket is (now) disconnecting.
 */
static bool reject_queue(struct usp_pair *pair, struct usp_shared *shm, int side,
			 uint32_t err)
{
	struct usp_endpoint *self = &shm->ep[side], *peer = &shm->ep[side ^ 1];
	int tipc_type = pair->tipc_type;
	bool conn = tipc_type == SOCK_STREAM || tipc_type == SOCK_SEQPACKET;
	usp__lock(&shm->ep[0].send_lock);
	usp__lock(&shm->ep[1].send_lock);
	usp__lock(&self->recv_lock);
	struct usp_ring *q = &shm->ring[side];
	uint64_t end = usp__ld_acq(&q->tail);
	struct usp_rec rec;
	bool disconnecting;
	bool told_peer = false;
	uint32_t port = ld(&self->tipc.port);
	/* a partly read message is dropped first (bytes_read) */
	if (head_before(pair, shm, side, end, &rec) == 0 &&
	    atomic_load_explicit(&q->head_used, memory_order_relaxed))
		usp__ring_consume(q, &rec, rec_truesize(conn, &rec));
	if (!conn) {
		/* tsk_rej_rx_queue(): every message back to its sender (the
		 * peer, or this socket itself) if it may go back, queue
		 * limits applying as for any message */
		while (head_before(pair, shm, side, end, &rec) == 0) {
			if (!rec.tipc_err && !rec.droppable)
				give_back(pair, shm, rec.from_self ? side : side ^ 1, err, port,
					  rec.data, rec.len, true);
			usp__ring_consume(q, &rec, rec_truesize(conn, &rec));
		}
		disconnecting = false;
	} else if (ld(&self->tipc.state) == USP_TIPC_ESTABLISHED) {
		atomic_store(&self->tipc.state, USP_TIPC_DISCONNECTING);
		/* The FIN: the first unread message goes back with it, the
		 * rest is dropped; an empty queue sends a bare FIN.  A peer
		 * that is not connected any more takes no FIN
		 * (tipc_sk_filter_connect()), and one that made that first
		 * message droppable gets none. */
		bool peer_connected = atomic_load(&peer->state) != USP_EP_GONE &&
				      ld(&peer->tipc.state) == USP_TIPC_ESTABLISHED;
		if (head_before(pair, shm, side, end, &rec) == 0) {
			if (!rec.tipc_err && !rec.droppable && peer_connected)
				told_peer = give_back(pair, shm, side ^ 1, err, port, rec.data,
						      rec.len, false);
			while (head_before(pair, shm, side, end, &rec) == 0)
				usp__ring_consume(q, &rec, rec_truesize(conn, &rec));
		} else if (peer_connected) {
			struct tipc_reject rj = {err, port};
			told_peer = append(pair, shm, side ^ 1, USP_REC_TIPC_ERR, &rj, NULL, NULL, 0,
					   msg_truesize(BASIC_H)) == 0;
		}
		/* the peer disconnects as the FIN arrives */
		if (told_peer)
			atomic_store(&peer->tipc.state, USP_TIPC_DISCONNECTING);
		disconnecting = true;
	} else {
		while (head_before(pair, shm, side, end, &rec) == 0)
			usp__ring_consume(q, &rec, rec_truesize(conn, &rec));
		disconnecting = true;
	}
	usp__unlock(&self->recv_lock);
	usp__unlock(&shm->ep[1].send_lock);
	usp__unlock(&shm->ep[0].send_lock);
	return disconnecting;
}

/*
 * tipc_release(): every holder of `side` is gone (pair.c
 * usp__endpoint_released, after its state CAS).  Its callers may hold
 * locks (the descriptor table's, another pair's), so the release itself,
 * which takes this pair's locks, is left to usp__tipc_settle, run next by
 * whoever comes without locks: the closer (usp_close), the peer's next
 * call, poll or wait (woken here).
 */
void usp__tipc_released(struct usp_shared *shm, int side)
{
	atomic_store(&shm->ep[side].shutdown, USP_SHUTDOWN_MASK);
	atomic_store(&shm->ep[side].tipc.release_pending, 1);
}

/* Do the releases left pending (usp__tipc_released); usp__tipc_settle
 * (internal.h) calls it when a flag is set.  Caller holds no uspair lock. */
void usp__tipc_settle_pending(struct usp_pair *pair)
{
	struct usp_shared *shm = pair->shm;
	for (int side = 0; side < 2; side++) {
		_Atomic uint32_t *pending = &shm->ep[side].tipc.release_pending;
		if (USP_LIKELY(!atomic_load_explicit(pending, memory_order_relaxed)))
			continue;
		if (!atomic_exchange(pending, 0)) {
			/* another thread is doing it: it holds both send_locks
			 * until done, so taking them waits for the result
			 * (a close or poll after this sees the FIN) */
			usp__lock(&shm->ep[0].send_lock);
			usp__lock(&shm->ep[1].send_lock);
			usp__unlock(&shm->ep[1].send_lock);
			usp__unlock(&shm->ep[0].send_lock);
			continue;
		}
		reject_queue(pair, shm, side, TIPC_ERR_NO_PORT);
		/* both: the peer has a FIN, and a thread of the released end
		 * (closed under it) may wait for the window */
		usp__wake_endpoint(&shm->ep[side ^ 1], -1);
		usp__wake_endpoint(&shm->ep[side], -1);
	}
}

static bool release_pending(struct usp_sock *s)
{
	return atomic_load_explicit(&s->peer->tipc.release_pending, memory_order_relaxed) ||
	       atomic_load_explicit(&s->self->tipc.release_pending, memory_order_relaxed);
}

/* tipc_shutdown() */
int usp__tipc_shutdown(struct usp_sock *s, int how)
{
	if (how != SHUT_RDWR)
		return -EINVAL;
	if (usp__is_corrupt(s))
		return -EIO;
	usp__tipc_settle(s->pair);
	bool disconnecting = reject_queue(s->pair, s->shm, s->side, TIPC_CONN_SHUTDOWN);
	atomic_store(&s->self->shutdown, USP_SHUTDOWN_MASK);
	usp__wake_endpoint(s->peer, s->fd);
	usp__wake_endpoint(s->self, -1);
	return disconnecting ? 0 : -ENOTCONN;
}

/* ---- sending ------------------------------------------------------------ */

static int64_t timeo_of(_Atomic int64_t *t)
{
	int64_t v = atomic_load_explicit(t, memory_order_relaxed);
	return v < 0 ? 0 : v;
}

static bool nonblocking(struct usp_sock *s, int flags)
{
	return (flags & MSG_DONTWAIT) ||
	       atomic_load_explicit(&s->self->nonblock, memory_order_relaxed);
}

/* The condition a connection sender waits for, or anything that ends the
 * wait (tipc_sk_sock_err()). */
static bool conn_send_ready(struct usp_sock *s)
{
	return !conn_cong(me(s)) || !established(s->self) || release_pending(s) ||
	       usp__mmsg_err_pending(s) ||
	       atomic_load_explicit(&s->self->sk_err, memory_order_relaxed) || usp__is_corrupt(s);
}

/* tipc_sk_sock_err(), then the wait of tipc_wait_for_cond().  Called with
 * the send_lock held; returns with it held; 0 means go on. */
static int conn_wait_room(struct usp_sock *s, struct usp_wait *w, bool nonblock)
{
	for (;;) {
		if (usp__is_corrupt(s))
			return -EIO;
		if (established(s->self) && !conn_cong(me(s)))
			return 0;
		/* tipc_sk_sock_err(): a pending error first */
		int err = usp__sock_error(s);
		if (err)
			return err;
		if (!established(s->self))
			return -EPIPE;
		if (nonblock)
			return -EAGAIN;
		usp__unlock(&s->self->send_lock);
		int r = usp__wait(s, w, conn_send_ready, true);
		usp__tipc_settle(s->pair);
		usp__lock(&s->self->send_lock);
		if (r == -EAGAIN && established(s->self) && !conn_cong(me(s)))
			r = 0;
		if (r < 0)
			return r;
	}
}

/*
 * A STREAM message sent in Nagle mode asks for an acknowledgement, which a
 * node-local peer sends as the message arrives (tipc_sk_filter_connect():
 * tipc_sk_build_ack() acknowledges everything it consumed so far), and the
 * sender takes as it returns (tipc_sk_push_backlog(nagle_ack)).  uspair
 * never holds data back, so the sender has accumulated nothing: for TIPC
 * that is a bad Nagle round, which doubles the start and counts one-way
 * messages from zero again.  Caller holds our send_lock.
 */
static void nagle_ack(struct usp_sock *s)
{
	struct usp_tipc_ep *t = me(s), *peer = them(s);
	if (!established(s->peer))
		return;
	int acked = atomic_exchange(&peer->rcv_unacked, 0);
	int win = adv_blocks(ld32(&peer->rcvbuf));
	atomic_store(&peer->rcv_win, win);
	atomic_store(&t->oneway, 0);
	uint32_t start = ld(&t->nagle_start);
	if (start < NAGLE_START_MAX)
		atomic_store(&t->nagle_start, start * 2);
	bool was_cong = conn_cong(t);
	atomic_fetch_sub(&t->snt_unacked, acked);
	atomic_store(&t->snd_win, win);
	/* sk_write_space(): other senders of ours may wait for the window */
	if (was_cong && !conn_cong(t))
		usp__wake(s->self, -1, USP_WAKE_ROOM);
}

static void cursor_skip(struct usp_iov_cursor *cur, size_t n)
{
	unsigned char *piece;
	while (n)
		n -= usp__cursor_next(cur, n, &piece);
}

/*
 * A connection message to a peer that is gone without our having heard
 * (its FIN did not come: it would have carried back a message of ours
 * that we had made droppable).  TIPC rejects the message with
 * TIPC_ERR_NO_PORT; unless it is droppable too, it comes back as the
 * disconnect (tipc_sk_filter_connect()).  Caller holds our send_lock,
 * dropped meanwhile: our queue's producer lock is the peer's send_lock.
 */
static void conn_send_to_nobody(struct usp_sock *s, struct usp_iov_cursor *cur, size_t chunk,
				bool droppable)
{
	unsigned char back[MAX_FORWARD];
	size_t keep = chunk < sizeof(back) ? chunk : sizeof(back);
	usp__cursor_copy_out(cur, back, keep);
	cursor_skip(cur, chunk - keep);
	if (droppable)
		return;
	usp__unlock(&s->self->send_lock);
	usp__lock(&s->peer->send_lock);
	/* only a connected socket takes the rejection in (the first one:
	 * it disconnects); none into a pair that fell back meanwhile */
	if (established(s->self) && !usp__kernel_mode(s) &&
	    give_back(s->pair, s->shm, s->side, TIPC_ERR_NO_PORT, ld(&them(s)->port), back, keep,
		      false))
		atomic_store(&me(s)->state, USP_TIPC_DISCONNECTING);
	usp__unlock(&s->peer->send_lock);
	usp__lock(&s->self->send_lock);
	usp__wake_endpoint(s->self, -1);
}

/*
 * __tipc_sendstream() (SEQPACKET: tipc_send_packet(), one message): as
 * many messages of at most TIPC_MAX_USER bytes as the data needs, each
 * once the window is open; the bytes sent, or the error if none.  No
 * SIGPIPE: TIPC never raises it.  A zero-length send is a message too.
 */
static ssize_t conn_sendmsg(struct usp_sock *s, const struct msghdr *msg, size_t len, int flags)
{
	if (s->tipc_type == SOCK_SEQPACKET && len > TIPC_MAX_USER)
		return -EMSGSIZE;
	usp__check_peer(s, false);
	struct usp_wait w;
	usp__wait_init(&w, timeo_of(&s->self->sndtimeo_us), USP_WAKE_ROOM);
	bool nonblock = nonblocking(s, flags);
	struct usp_iov_cursor cur;
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
	bool droppable = ld(&me(s)->dest_droppable) != 0;
	bool bad_buffer = usp__iov_has_bad(msg->msg_iov, msg->msg_iovlen);
	size_t sent = 0;
	int rc = 0;
	usp__lock(&s->self->send_lock);
	do {
		/* fallen back (an empty pair only, fallback.c): the rest goes
		 * through the descriptor, an AF_UNIX socket now */
		if (usp__kernel_mode(s) && !usp__is_corrupt(s)) {
			rc = -USP_ERAW;
			break;
		}
		rc = conn_wait_room(s, &w, nonblock);
		if (!rc && bad_buffer)
			rc = -EFAULT; /* tipc_msg_build() could not copy */
		/* (again: the fallback may have come while we waited) */
		if (!rc && usp__kernel_mode(s) && !usp__is_corrupt(s))
			rc = -USP_ERAW;
		if (rc)
			break;
		size_t chunk = len - sent < TIPC_MAX_USER ? len - sent : TIPC_MAX_USER;
		/* __tipc_sendstream(): past nagle_start messages one way, a
		 * small one asks for an acknowledgement */
		bool nagle = s->tipc_type == SOCK_STREAM &&
			     atomic_fetch_add(&me(s)->oneway, 1) >= ld(&me(s)->nagle_start) &&
			     !ld(&me(s)->nodelay) && chunk <= MAX_NAGLE;
		uint32_t kind = USP_REC_DATA | (droppable ? USP_REC_TIPC_DROPPABLE : 0) |
				(nagle ? USP_REC_TIPC_NAGLE : 0);
		/* tipc_msg_append(): in Nagle mode the data goes into buffers
		 * of MAX_NAGLE bytes, header included, so a message can take
		 * two; each is a message of its own to the reader */
		size_t piece_max = nagle ? MAX_NAGLE - SHORT_H : chunk;
		size_t done = 0;
		do {
			size_t piece = chunk - done < piece_max ? chunk - done : piece_max;
			/* a peer that is gone, or disconnected without our
			 * hearing (a FIN it did not send), takes nothing:
			 * tipc_sk_filter_connect() rejects it */
			if (USP_UNLIKELY(usp__peer_gone(s) || !established(s->peer))) {
				conn_send_to_nobody(s, &cur, piece, droppable);
			} else {
				rc = append(s->pair, s->shm, s->side ^ 1, kind, NULL, &cur, NULL, piece,
					    msg_truesize(nagle ? MAX_NAGLE : SHORT_H + piece));
				if (rc < 0)
					break;
			}
			atomic_fetch_add(&me(s)->snt_unacked, blocks(SHORT_H + piece));
			done += piece;
		} while (done < chunk);
		if (rc < 0) {
			rc = rc == -EAGAIN ? -ENOBUFS : rc; /* the ring itself is full */
			break;
		}
		if (nagle)
			nagle_ack(s);
		/* the peer has received: its one-way count starts again
		 * (written only when it changes: the line is the peer's) */
		if (atomic_load_explicit(&them(s)->oneway, memory_order_relaxed))
			atomic_store_explicit(&them(s)->oneway, 0, memory_order_relaxed);
		usp__wake_reader(s);
		sent += chunk;
		w.moved_data = true;
	} while (sent < len);
	usp__unlock(&s->self->send_lock);
	return sent ? (ssize_t)sent : rc;
}

static bool sockaddr_sane(const struct sockaddr_tipc *a);

/* Where an RDM/DGRAM message goes: the peer, ourselves, or no one (a
 * port that does not exist here: the message is rejected). */
enum dest { DEST_PEER, DEST_SELF, DEST_NOBODY };

/* tipc_uaddr_valid() and the destination lookup of __tipc_sendmsg() */
static int dgram_dest(struct usp_sock *s, const struct msghdr *msg, enum dest *dest,
		      uint32_t *port)
{
	struct sockaddr_tipc a;
	if (msg->msg_name) {
		if (msg->msg_namelen < sizeof(a))
			return -EINVAL;
		memcpy(&a, msg->msg_name, sizeof(a));
		if (a.family != AF_TIPC)
			return -EINVAL;
	} else {
		/* the connected address (tsk->peer), a copy from the region:
		 * checked below like a user's */
		struct usp_tipc_ep *t = me(s);
		uint32_t family = ld(&t->dest_family);
		if (family == 0)
			return -EDESTADDRREQ; /* connect(AF_UNSPEC) */
		memset(&a, 0, sizeof(a));
		a.family = AF_TIPC;
		uint32_t atype = ld(&t->dest_addrtype);
		a.addrtype = (unsigned char)atype;
		uint32_t words[3];
		for (int i = 0; i < 3; i++)
			words[i] = ld(&t->dest_addr[i]);
		memcpy(&a.addr, words, sizeof(words));
		/* connect() stored only sane addresses */
		if (family != AF_TIPC || atype != a.addrtype || !sockaddr_sane(&a)) {
			usp__pair_corrupt(s->pair);
			return -EIO;
		}
	}
	switch (a.addrtype) {
	case TIPC_SOCKET_ADDR:
		break;
	case TIPC_SERVICE_ADDR:
		return -EHOSTUNREACH; /* no service names are bound */
	case TIPC_SERVICE_RANGE:
		if (a.addr.nameseq.upper < a.addr.nameseq.lower)
			return -EINVAL;
		return -EHOSTUNREACH;
	default:
		return -EINVAL;
	}
	if (a.addr.id.node != 0)
		return -EHOSTUNREACH; /* no other nodes */
	*port = a.addr.id.ref;
	if (a.addr.id.ref == ld(&them(s)->port))
		*dest = DEST_PEER;
	else if (a.addr.id.ref == ld(&me(s)->port))
		*dest = DEST_SELF;
	else
		*dest = DEST_NOBODY;
	return 0;
}

/*
 * __tipc_sendmsg() for RDM and DGRAM: never waits; the message is queued
 * at its destination if the queue's limit allows (rcvbuf_limit(), by the
 * message's importance), otherwise rejected with TIPC_ERR_OVERLOAD; to a
 * port that is gone, rejected with TIPC_ERR_NO_PORT.  A rejected message
 * comes back to us if we sent it returnable, and is dropped otherwise;
 * either way the send succeeded.
 */
static ssize_t dgram_sendmsg(struct usp_sock *s, const struct msghdr *msg, size_t len)
{
	if (len > TIPC_MAX_USER)
		return -EMSGSIZE;
	enum dest dest;
	uint32_t dest_port;
	int r = dgram_dest(s, msg, &dest, &dest_port);
	if (r < 0)
		return r;
	if (usp__is_corrupt(s))
		return -EIO;
	if (usp__iov_has_bad(msg->msg_iov, msg->msg_iovlen))
		return -EFAULT;
	usp__check_peer(s, false);
	struct usp_iov_cursor cur;
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
	bool droppable = ld(&me(s)->dest_droppable) != 0;
	uint32_t kind = USP_REC_DATA | (droppable ? USP_REC_TIPC_DROPPABLE : 0);
	uint32_t importance = ld(&me(s)->importance);
	uint32_t truesize = msg_truesize(BASIC_H + len);
	uint32_t err = dest == DEST_NOBODY ? TIPC_ERR_NO_PORT : 0;
	if (dest == DEST_PEER) {
		usp__lock(&s->self->send_lock);
		if (usp__kernel_mode(s) && !usp__is_corrupt(s)) {
			usp__unlock(&s->self->send_lock);
			return -USP_ERAW; /* see conn_sendmsg */
		}
		if (usp__peer_gone(s))
			err = TIPC_ERR_NO_PORT;
		else if (!fits(s->pair, s->shm, s->side ^ 1, truesize,
			       dgram_limit(s->peer, importance)))
			err = TIPC_ERR_OVERLOAD;
		else if (append(s->pair, s->shm, s->side ^ 1, kind, NULL, &cur, NULL, len,
				truesize) < 0)
			err = TIPC_ERR_OVERLOAD; /* the ring itself is full */
		usp__unlock(&s->self->send_lock);
		if (!err) {
			usp__wake_reader(s);
			return (ssize_t)len;
		}
	}
	/* Into our own queue: a message to ourselves, or a rejection of one
	 * of ours coming back (the producer lock of our queue is the
	 * peer's).  Over the limit, a message to ourselves is rejected
	 * too. */
	if (err && droppable)
		return (ssize_t)len;
	unsigned char back[MAX_FORWARD];
	size_t keep = len < sizeof(back) ? len : sizeof(back);
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen); /* from the start */
	usp__lock(&s->peer->send_lock);
	if (usp__kernel_mode(s) && !usp__is_corrupt(s)) {
		usp__unlock(&s->peer->send_lock);
		return -USP_ERAW; /* fallen back meanwhile: see conn_sendmsg */
	}
	if (!err && !fits(s->pair, s->shm, s->side, truesize, dgram_limit(s->self, importance)))
		err = TIPC_ERR_OVERLOAD;
	if (!err)
		err = append(s->pair, s->shm, s->side, kind | USP_REC_TIPC_SELF, NULL, &cur, NULL,
			     len, truesize) < 0 ? TIPC_ERR_OVERLOAD : 0;
	if (err && !droppable) {
		usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
		usp__cursor_copy_out(&cur, back, keep);
		give_back(s->pair, s->shm, s->side, err, dest_port, back, keep, true);
	}
	usp__unlock(&s->peer->send_lock);
	usp__wake(s->self, -1, USP_WAKE_DATA);
	return (ssize_t)len;
}

ssize_t usp__tipc_sendmsg(struct usp_sock *s, const struct msghdr *msg, size_t len, int flags)
{
	/* a message too long is an argument error, which comes first; a
	 * corrupt pair answers EIO to everything else, whatever else its
	 * region says (kernel_mode, addresses) */
	if (s->tipc_type != SOCK_STREAM && len > TIPC_MAX_USER)
		return -EMSGSIZE;
	if (usp__is_corrupt(s))
		return -EIO;
	usp__tipc_settle(s->pair);
	/* ancillary data means nothing to TIPC: it was copied in and is
	 * ignored, as tipc_sendmsg() never looks at it */
	if (conn_type(s))
		return conn_sendmsg(s, msg, len, flags);
	return dgram_sendmsg(s, msg, len);
}

/* ---- receiving ---------------------------------------------------------- */

static bool recv_ready(struct usp_sock *s)
{
	return !usp__ring_empty(s->rxq) || release_pending(s) || usp__mmsg_err_pending(s) ||
	       atomic_load_explicit(&s->self->sk_err, memory_order_relaxed) ||
	       (atomic_load_explicit(&s->self->shutdown, memory_order_relaxed) & USP_RCV_SHUTDOWN) ||
	       usp__is_corrupt(s);
}

/* tipc_wait_for_rcvmsg(): a record at the head, or an error.  Caller holds
 * the recv_lock (released while waiting). */
static int wait_for_msg(struct usp_sock *s, struct usp_wait *w, bool nonblock,
			struct usp_rec *rec)
{
	int err = usp__sock_error(s); /* tipc_wait_for_rcvmsg() */
	if (err)
		return err;
	bool asked = false;
	for (;;) {
		int r = head_record(s->pair, s->shm, s->side, rec);
		if (r != -EAGAIN)
			return r;
		/* Nothing queued: only now ask the kernel whether the peer is
		 * gone (a non-blocking call each time, as an AF_UNIX receive
		 * does before EAGAIN; a blocking one at most every 40 ms, the
		 * watchdog watches it asleep).  A release found that way is
		 * only marked (usp__endpoint_released takes no lock for a
		 * TIPC pair); settling it queues its FIN and returned
		 * messages here, and takes locks, so ours is let go for it. */
		if (!asked) {
			asked = true;
			usp__check_peer(s, nonblock);
			if (release_pending(s)) {
				usp__unlock(&s->self->recv_lock);
				usp__tipc_settle(s->pair);
				usp__lock(&s->self->recv_lock);
			}
			continue;
		}
		if ((err = usp__sock_error(s))) /* one that came while we waited */
			return err;
		if (usp__kernel_mode(s) && !usp__is_corrupt(s))
			return -USP_ERAW; /* drained and fallen back: the descriptor */
		if (nonblock)
			return -EAGAIN;
		if (atomic_load(&s->self->shutdown) & USP_RCV_SHUTDOWN)
			return -ENOTCONN;
		usp__unlock(&s->self->recv_lock);
		r = usp__wait(s, w, recv_ready, true);
		usp__tipc_settle(s->pair);
		usp__lock(&s->self->recv_lock);
		if (r == -EAGAIN) {
			r = head_record(s->pair, s->shm, s->side, rec);
			return r == 0 ? 0 : r == -EIO ? -EIO : -EAGAIN;
		}
		if (r < 0)
			return r;
	}
}

/* The record at head is consumed: count it for the window and, at a
 * quarter of it, acknowledge (tipc_sk_send_ack() and, at the sender,
 * the CONN_ACK in tipc_sk_conn_proto_rcv()).  Caller holds the
 * recv_lock. */
static void consumed(struct usp_sock *s, const struct usp_rec *rec, size_t hlen)
{
	usp__ring_consume(s->rxq, rec, rec_truesize(conn_type(s), rec));
	if (!conn_type(s))
		return;
	struct usp_tipc_ep *t = me(s);
	/* read-modify-writes: a Nagle sender takes the count too */
	/* (in 64 bits: the counter is in the region, a peer may have made
	 * it anything; the atomic itself wraps) */
	int64_t unacked = (int64_t)atomic_fetch_add(&t->rcv_unacked, blocks(hlen + rec->len)) +
			  blocks(hlen + rec->len);
	if (unacked < ld32(&t->rcv_win) / ACK_RATE || !established(s->self))
		return;
	int32_t acked = atomic_exchange(&t->rcv_unacked, 0);
	int win = adv_blocks(ld32(&t->rcvbuf));
	atomic_store_explicit(&t->rcv_win, win, memory_order_relaxed);
	struct usp_tipc_ep *sender = them(s);
	atomic_fetch_sub(&sender->snt_unacked, acked);
	atomic_store(&sender->snd_win, win);
	usp__wake(s->peer, s->fd, USP_WAKE_ROOM);
}

/* tipc_sk_set_orig_addr(): the sender's name on every receive */
static void set_orig_addr(struct usp_sock *s, struct msghdr *msg, const struct usp_rec *rec,
			  const struct tipc_msg_view *v)
{
	if (!msg->msg_name)
		return;
	struct sockaddr_tipc a;
	port_name(&a, v->err ? v->port : ld(rec->from_self ? &me(s)->port : &them(s)->port));
	memcpy(msg->msg_name, &a, sizeof(a));
	msg->msg_namelen = sizeof(a);
}

/* tipc_sk_anc_data_recv(): a rejected message's error and data */
static void anc_data(struct msghdr *msg, size_t *used, const struct tipc_msg_view *v)
{
	if (!msg->msg_controllen || !v->err)
		return;
	uint32_t info[2] = {v->err, v->dlen};
	usp__put_cmsg(msg, used, SOL_TIPC, TIPC_ERRINFO, info, sizeof(info));
	if (v->dlen)
		usp__put_cmsg(msg, used, SOL_TIPC, TIPC_RETDATA, v->data, v->dlen);
}

/* tipc_recvstream() */
static ssize_t stream_recvmsg(struct usp_sock *s, struct msghdr *msg, size_t len, int flags)
{
	bool peek = flags & MSG_PEEK;
	bool nonblock = nonblocking(s, flags);
	size_t lowat = (size_t)(ld32(&s->self->rcvlowat) > 0 ? ld32(&s->self->rcvlowat) : 1);
	size_t required = (flags & MSG_WAITALL) ? len : lowat < len ? lowat : len;
	struct usp_wait w;
	usp__wait_init(&w, timeo_of(&s->self->rcvtimeo_us), USP_WAKE_DATA);
	struct usp_iov_cursor cur;
	usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
	size_t copied = 0, used = 0;
	int rc = 0;
	usp__lock(&s->self->recv_lock);
	do {
		struct usp_rec rec;
		rc = wait_for_msg(s, &w, nonblock, &rec);
		if (rc)
			break;
		struct tipc_msg_view v;
		if ((rc = view_of(s, &rec, &v)))
			break;
		/* discard any empty non-errored message */
		if (!v.dlen && !v.err) {
			usp__ring_consume(s->rxq, &rec, rec_truesize(true, &rec));
			continue;
		}
		if (!copied) {
			set_orig_addr(s, msg, &rec, &v);
			anc_data(msg, &used, &v);
		}
		if (!v.err) {
			uint32_t offset = atomic_load_explicit(&s->rxq->head_used, memory_order_relaxed);
			if (offset > v.dlen)
				offset = v.dlen; /* untrusted */
			size_t copy = v.dlen - offset < len - copied ? v.dlen - offset : len - copied;
			if (usp__iov_has_bad(msg->msg_iov, msg->msg_iovlen)) {
				rc = -EFAULT; /* skb_copy_datagram_msg(): nothing taken */
				break;
			}
			usp__cursor_copy_in(&cur, v.data + offset, copy);
			copied += copy;
			offset += (uint32_t)copy;
			if (offset < v.dlen) {
				if (!peek)
					atomic_store_explicit(&s->rxq->head_used, offset,
							      memory_order_relaxed);
				break;
			}
		} else {
			rc = 0;
			if (v.err != TIPC_CONN_SHUTDOWN && !msg->msg_control)
				rc = -ECONNRESET;
			if (copied || rc)
				break;
		}
		if (peek)
			break;
		consumed(s, &rec, hdr_size(s, &rec));
		w.moved_data = copied > 0;
		if (copied == len || v.err)
			break;
	} while (!usp__ring_empty(s->rxq) || copied < required);
	usp__unlock(&s->self->recv_lock);
	if (copied || !rc)
		msg->msg_controllen = used;
	return copied ? (ssize_t)copied : rc;
}

/* tipc_recvmsg(): SEQPACKET, RDM and DGRAM */
static ssize_t msg_recvmsg(struct usp_sock *s, struct msghdr *msg, size_t len, int flags)
{
	bool nonblock = nonblocking(s, flags);
	struct usp_wait w;
	usp__wait_init(&w, timeo_of(&s->self->rcvtimeo_us), USP_WAKE_DATA);
	struct usp_rec rec;
	struct tipc_msg_view v;
	size_t used = 0, copy = 0;
	int rc;
	usp__lock(&s->self->recv_lock);
	/* step to the first message with data or an error */
	for (;;) {
		rc = wait_for_msg(s, &w, nonblock, &rec);
		if (!rc)
			rc = view_of(s, &rec, &v);
		if (rc)
			goto out;
		if (v.dlen || v.err)
			break;
		usp__ring_consume(s->rxq, &rec, rec_truesize(conn_type(s), &rec));
	}
	set_orig_addr(s, msg, &rec, &v);
	anc_data(msg, &used, &v);
	_Atomic uint32_t *bytes_read = &s->rxq->head_used;
	if (!v.err) {
		uint32_t offset = atomic_load_explicit(bytes_read, memory_order_relaxed);
		if (offset > v.dlen)
			offset = v.dlen; /* untrusted */
		copy = v.dlen - offset < len ? v.dlen - offset : len;
		if (usp__iov_has_bad(msg->msg_iov, msg->msg_iovlen)) {
			rc = -EFAULT; /* skb_copy_datagram_msg(): nothing taken */
			goto out;
		}
		struct usp_iov_cursor cur;
		usp__cursor_init(&cur, msg->msg_iov, msg->msg_iovlen);
		usp__cursor_copy_in(&cur, v.data + offset, copy);
		if (offset + copy < v.dlen) {
			if (flags & MSG_EOR) {
				if (!(flags & MSG_PEEK))
					atomic_store_explicit(bytes_read, offset + (uint32_t)copy,
							      memory_order_relaxed);
			} else {
				msg->msg_flags |= MSG_TRUNC;
				atomic_store_explicit(bytes_read, 0, memory_order_relaxed);
			}
		} else {
			if (flags & MSG_EOR)
				msg->msg_flags |= MSG_EOR;
			atomic_store_explicit(bytes_read, 0, memory_order_relaxed);
		}
	} else if (v.err != TIPC_CONN_SHUTDOWN && conn_type(s) && !msg->msg_control) {
		rc = -ECONNRESET;
		goto out;
	}
	if ((flags & MSG_PEEK) || atomic_load_explicit(bytes_read, memory_order_relaxed))
		goto out;
	consumed(s, &rec, hdr_size(s, &rec));
out:
	usp__unlock(&s->self->recv_lock);
	if (!rc)
		msg->msg_controllen = used;
	return rc ? rc : (ssize_t)copy;
}

ssize_t usp__tipc_recvmsg(struct usp_sock *s, struct msghdr *msg, size_t len, int flags)
{
	/* "catch invalid receive requests" */
	if (!len)
		return -EINVAL;
	if (usp__is_corrupt(s))
		return -EIO;
	/* A flush of the ring into the backing socket (fallback.c) reads
	 * under a recv_lock it holds.  A TIPC pair falls back only with
	 * empty rings and is never flushed; only a peer that wrote the
	 * region (flush_wanted) gets here: nothing to move. */
	if (s->recv_locked)
		return -EAGAIN;
	usp__tipc_settle(s->pair);
	return s->tipc_type == SOCK_STREAM ? stream_recvmsg(s, msg, len, flags)
					   : msg_recvmsg(s, msg, len, flags);
}

/* ---- poll, options, ioctls -------------------------------------------- */

/* tipc_poll() */
short usp__tipc_poll_mask(struct usp_sock *s, short events)
{
	usp__tipc_settle(s->pair); /* poll holds no lock */
	unsigned mask = 0;
	uint32_t shut = atomic_load(&s->self->shutdown);
	if (shut & USP_RCV_SHUTDOWN)
		mask |= POLLRDHUP | POLLIN | POLLRDNORM;
	if (shut == USP_SHUTDOWN_MASK)
		mask |= POLLHUP;
	if (established(s->self)) {
		if (!conn_cong(me(s)))
			mask |= POLLOUT;
		if (!usp__ring_empty(s->rxq))
			mask |= POLLIN | POLLRDNORM;
	} else {
		mask = POLLIN | POLLRDNORM | POLLHUP;
	}
	if (usp__is_corrupt(s))
		mask = POLLERR | POLLHUP | POLLIN | POLLOUT;
	return (short)(mask & ((unsigned short)events | POLLERR | POLLHUP));
}

/* Messages in our queue (skb_queue_len()), zero-length ones included. */
static int queue_depth(struct usp_sock *s)
{
	usp__lock(&s->self->recv_lock);
	struct usp_ring *q = s->rxq;
	uint64_t pos = atomic_load_explicit(&q->head, memory_order_relaxed);
	uint64_t tail = usp__ld_acq(&q->tail);
	int n = 0;
	struct usp_rec rec;
	while (n < INT_MAX && usp__ring_peek(s->pair, q, s->rxdata, pos, tail, &rec) == 0) {
		n++;
		pos = rec.next;
	}
	usp__unlock(&s->self->recv_lock);
	return n;
}

/* tipc_getsockopt() for SOL_TIPC (and IPPROTO_TCP on STREAM) */
static int tipc_getsockopt(struct usp_sock *s, int level, int optname, void *optval,
			   socklen_t *optlen)
{
	if (level == IPPROTO_TCP && s->tipc_type == SOCK_STREAM) {
		if ((uintptr_t)optlen < 4096)
			return -EFAULT;
		*optlen = 0;
		return 0;
	}
	if (level != SOL_TIPC)
		return -ENOPROTOOPT;
	if ((uintptr_t)optlen < 4096)
		return -EFAULT;
	int len = (int)*optlen;
	struct usp_tipc_ep *t = me(s);
	uint32_t value;
	switch (optname) {
	case TIPC_IMPORTANCE:
		value = ld(&t->importance);
		if (value > TIPC_CRITICAL_IMPORTANCE) /* setsockopt stores no more */
			value = TIPC_CRITICAL_IMPORTANCE;
		break;
	case TIPC_SRC_DROPPABLE:
		value = ld(&t->src_droppable) != 0;
		break;
	case TIPC_DEST_DROPPABLE:
		value = ld(&t->dest_droppable) != 0;
		break;
	case TIPC_CONN_TIMEOUT:
		value = ld(&t->conn_timeout) & 0xffff; /* a u16 in the kernel */
		break;
	case TIPC_NODE_RECVQ_DEPTH:
		value = 0; /* obsolete */
		break;
	case TIPC_SOCK_RECVQ_DEPTH:
		value = (uint32_t)queue_depth(s);
		break;
	case TIPC_SOCK_RECVQ_USED:
		value = (uint32_t)rmem_of(s->pair, s->shm, s->side);
		break;
	case TIPC_GROUP_JOIN:
		value = 0; /* never in a group */
		break;
	default:
		return -EINVAL;
	}
	/* an int against a size_t, as in tipc_getsockopt(): a negative
	 * length passes */
	if ((size_t)len < sizeof(value))
		return -EINVAL;
	if ((uintptr_t)optval < 4096)
		return -EFAULT;
	memcpy(optval, &value, sizeof(value));
	*optlen = sizeof(value);
	return 0;
}

/* tipc_setsockopt() */
static int tipc_setsockopt(struct usp_sock *s, int level, int optname, const void *optval,
			   socklen_t optlen)
{
	if (level == IPPROTO_TCP && s->tipc_type == SOCK_STREAM)
		return 0;
	if (level != SOL_TIPC)
		return -ENOPROTOOPT;
	uint32_t value = 0;
	switch (optname) {
	case TIPC_IMPORTANCE:
	case TIPC_SRC_DROPPABLE:
	case TIPC_DEST_DROPPABLE:
	case TIPC_CONN_TIMEOUT:
	case TIPC_NODELAY:
		if (optlen < sizeof(value))
			return -EINVAL;
		if ((uintptr_t)optval < 4096)
			return -EFAULT;
		memcpy(&value, optval, sizeof(value));
		break;
	case TIPC_GROUP_JOIN:
		if (optlen < sizeof(struct tipc_group_req))
			return -EINVAL;
		if ((uintptr_t)optval < 4096)
			return -EFAULT;
		/* a connected socket cannot publish a name (tipc_sk_publish()):
		 * see docs/DESIGN.md, known differences */
		return -EINVAL;
	case TIPC_MCAST_BROADCAST:
	case TIPC_MCAST_REPLICAST:
	case TIPC_GROUP_LEAVE:
		if (optval || optlen)
			return -EINVAL;
		break;
	default:
		if (optval || optlen)
			return -EINVAL;
		return -EINVAL;
	}
	struct usp_tipc_ep *t = me(s);
	switch (optname) {
	case TIPC_IMPORTANCE:
		if ((int)value > TIPC_CRITICAL_IMPORTANCE)
			return -EINVAL;
		/* tsk_set_importance() takes an int: a negative one passes its
		 * check, and msg_set_importance() then leaves the header as it
		 * was */
		if ((int)value >= 0)
			atomic_store(&t->importance, value);
		return 0;
	case TIPC_SRC_DROPPABLE:
		if (s->tipc_type == SOCK_STREAM)
			return -ENOPROTOOPT;
		atomic_store(&t->src_droppable, value != 0);
		return 0;
	case TIPC_DEST_DROPPABLE:
		atomic_store(&t->dest_droppable, value != 0);
		return 0;
	case TIPC_CONN_TIMEOUT:
		atomic_store(&t->conn_timeout, value & 0xffff); /* a u16 */
		return 0;
	case TIPC_NODELAY:
		atomic_store(&t->nodelay, value != 0);
		return 0;
	case TIPC_GROUP_LEAVE:
		return -EINVAL; /* not in a group (tipc_sk_leave()) */
	default: /* the multicast methods: nothing to send them on */
		return 0;
	}
}

int usp__tipc_getsockopt(struct usp_sock *s, int level, int optname, void *optval,
			 socklen_t *optlen)
{
	usp__tipc_settle(s->pair);
	if (level != SOL_SOCKET)
		return tipc_getsockopt(s, level, optname, optval, optlen);
	/* sock_getsockopt(): the backing socket checks the arguments and
	 * answers the generic options; TIPC's own are overwritten */
	int v;
	switch (optname) {
	case SO_TYPE:
		v = s->tipc_type;
		break;
	case SO_DOMAIN:
		v = AF_TIPC;
		break;
	case SO_PROTOCOL:
		v = 0;
		break;
	case SO_RCVBUF:
		v = ld32(&me(s)->rcvbuf);
		break;
	case SO_ERROR:
		v = -usp__take_mmsg_err(s); /* recvmmsg's; uspair sets no other */
		break;
	case SO_PEEK_OFF:
		return -EOPNOTSUPP; /* no set_peek_off in TIPC's ops */
	case SO_PEERCRED:
	case SO_PEERGROUPS:
	case SO_PEERPIDFD:
		break;
	default:
		return getsockopt(s->fd, level, optname, optval, optlen) < 0 ? -errno : 0;
	}
	if (getsockopt(s->fd, level, optname, optval, optlen) < 0)
		return -errno;
	if (optname == SO_PEERCRED) {
		/* no peer credentials on a TIPC socket: cred_to_ucred(NULL) */
		struct ucred none = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
		memcpy(optval, &none, *optlen < sizeof(none) ? *optlen : sizeof(none));
		return 0;
	}
	if (optname == SO_PEERGROUPS || optname == SO_PEERPIDFD) {
		if (optname == SO_PEERPIDFD && *optlen >= sizeof(int))
			close(*(int *)optval);
		return -ENODATA;
	}
	memcpy(optval, &v, *optlen < sizeof(v) ? *optlen : sizeof(v));
	return 0;
}

/* After the backing socket accepted a SOL_SOCKET option: what TIPC keeps
 * of it (timeouts, SO_RCVLOWAT, SO_RCVBUF, as the kernel stored them). */
static void mirror_socket_option(struct usp_sock *s, int optname)
{
	int v;
	struct timeval tv;
	socklen_t len = sizeof(v);
	switch (optname) {
	case SO_RCVBUF:
	case SO_RCVBUFFORCE:
		if (!getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &v, &len))
			atomic_store(&me(s)->rcvbuf, v);
		break;
	case SO_RCVLOWAT:
		if (!getsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len))
			atomic_store(&s->self->rcvlowat, v);
		break;
	case SO_RCVTIMEO_OLD:
	case SO_RCVTIMEO_NEW:
	case SO_SNDTIMEO_OLD:
	case SO_SNDTIMEO_NEW: {
		bool rcv = optname == SO_RCVTIMEO_OLD || optname == SO_RCVTIMEO_NEW;
		len = sizeof(tv);
		if (!getsockopt(s->fd, SOL_SOCKET, rcv ? SO_RCVTIMEO_OLD : SO_SNDTIMEO_OLD, &tv,
				&len))
			atomic_store(rcv ? &s->self->rcvtimeo_us : &s->self->sndtimeo_us,
				     usp__timeval_us(&tv));
		break;
	}
	}
}

int usp__tipc_setsockopt(struct usp_sock *s, int level, int optname, const void *optval,
			 socklen_t optlen)
{
	if (level != SOL_SOCKET)
		return tipc_setsockopt(s, level, optname, optval, optlen);
	if (optname == SO_PEEK_OFF)
		return -EOPNOTSUPP; /* no set_peek_off in TIPC's ops */
	if (setsockopt(s->fd, level, optname, optval, optlen) < 0)
		return -errno;
	mirror_socket_option(s, optname);
	return 0;
}

/*
 * ioctl(): tipc_ioctl() answers TIPC's own two requests; the socket layer
 * answers ENOTTY for the queue and mark requests that AF_UNIX (the backing
 * socket) would answer.  1: not TIPC's to answer; the file layer answers
 * the rest (FIONBIO, FIOASYNC, FIOCLEX, ...) as for any socket.
 */
int usp__tipc_ioctl(unsigned long request, void *arg)
{
	switch (request) {
	case FIONREAD: /* SIOCINQ */
	case TIOCOUTQ: /* SIOCOUTQ */
	case SIOCATMARK:
	case SIOCOUTQNSD:
		return -ENOTTY;
	case SIOCGETNODEID: {
		/* a node without an address knows only itself, and has no
		 * identity to write */
		struct tipc_sioc_nodeid_req nr;
		if ((uintptr_t)arg < 4096)
			return -EFAULT;
		memcpy(&nr, arg, sizeof(nr));
		return nr.peer != 0 ? -EADDRNOTAVAIL : 0;
	}
	case SIOCGETLINKNAME: /* also AF_UNIX's SIOCUNIXFILE: the first private one */
		if ((uintptr_t)arg < 4096)
			return -EFAULT;
		return -EADDRNOTAVAIL; /* no links */
	default:
		return 1;
	}
}

/* ---- connect, bind, listen ---------------------------------------------- */

/* tipc_sockaddr_is_sane() */
static bool sockaddr_sane(const struct sockaddr_tipc *a)
{
	if (a->family != AF_TIPC)
		return false;
	if (a->addrtype == TIPC_SERVICE_RANGE)
		return a->addr.nameseq.lower <= a->addr.nameseq.upper;
	return a->addrtype == TIPC_SERVICE_ADDR || a->addrtype == TIPC_SOCKET_ADDR;
}

/*
 * tipc_connect() on a pair: STREAM and SEQPACKET are connected already
 * (EISCONN; EINVAL once disconnecting); RDM and DGRAM only remember the
 * address as where sends without one go (AF_UNSPEC forgets it).  addr is
 * the caller's copy (move_addr_to_kernel() done).
 */
int usp__tipc_connect(struct usp_sock *s, const struct sockaddr *addr, socklen_t len)
{
	usp__tipc_settle(s->pair);
	struct sockaddr_tipc a;
	if (len != sizeof(a))
		return -EINVAL;
	memcpy(&a, addr, sizeof(a));
	struct usp_tipc_ep *t = me(s);
	if (a.family == AF_UNSPEC) {
		atomic_store(&t->dest_family, 0);
		return conn_type(s) ? -EINVAL : 0;
	}
	if (!sockaddr_sane(&a))
		return -EINVAL;
	if (!conn_type(s)) {
		uint32_t words[3];
		memcpy(words, &a.addr, sizeof(words));
		atomic_store(&t->dest_addrtype, a.addrtype);
		for (int i = 0; i < 3; i++)
			atomic_store(&t->dest_addr[i], words[i]);
		atomic_store(&t->dest_family, AF_TIPC);
		return 0;
	}
	if (a.addrtype == TIPC_SERVICE_RANGE)
		return -EINVAL;
	return established(s->self) ? -EISCONN : -EINVAL;
}

/* tipc_bind(): a connected socket publishes no name (tipc_sk_publish());
 * unbinding what was never bound succeeds. */
int usp__tipc_bind(struct usp_sock *s, const struct sockaddr *addr, socklen_t len)
{
	if (!len)
		return 0; /* withdraw everything: nothing */
	struct sockaddr_tipc a;
	if (len < sizeof(a))
		return -EINVAL;
	memcpy(&a, addr, sizeof(a));
	if (a.family != AF_TIPC)
		return -EINVAL;
	if (a.addrtype == TIPC_SERVICE_RANGE && a.addr.nameseq.upper < a.addr.nameseq.lower)
		return -EINVAL;
	if (a.addrtype != TIPC_SERVICE_ADDR && a.addrtype != TIPC_SERVICE_RANGE &&
	    a.addrtype != TIPC_SOCKET_ADDR)
		return -EINVAL;
	if (a.addrtype == TIPC_SOCKET_ADDR)
		return -EAFNOSUPPORT;
	if (a.addr.nameseq.type < TIPC_RESERVED_TYPES)
		return -EACCES;
	if (a.scope < 0)
		return 0; /* unbind a name that was never bound */
	return -EINVAL;
}

/* tipc_listen() (a pair is never TIPC_OPEN) or sock_no_listen() */
int usp__tipc_listen(struct usp_sock *s)
{
	return conn_type(s) ? -EINVAL : -EOPNOTSUPP;
}
