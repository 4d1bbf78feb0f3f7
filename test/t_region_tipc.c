/*
 * The hostile-peer decoder on AF_TIPC pairs: the ops of a TIPC pair, a
 * model of its two receive queues, and TIPC's rules (the "AF_TIPC rules"
 * T1-T9 at the top of t_region_ops.c, which also has the input format,
 * the driver and the corruption writes shared with AF_UNIX pairs).
 *
 * The model.  Each end's receive queue is a list of messages as tipc.c
 * (and net/tipc/socket.c) queue them: data messages (zero-length ones
 * too: queued, never delivered) and rejections (USP_REC_TIPC_ERR: an
 * error code, the port that rejected the message and at most 1024 bytes
 * of it), with the offset read so far of the head (MSG_EOR reads, STREAM).
 * A receive is predicted by walking that list exactly as tipc_recvstream()
 * or tipc_recvmsg() walk the skb queue, and the call's answer (count or
 * errno, msg_flags, msg_name, TIPC_ERRINFO/TIPC_RETDATA) must be the
 * prediction; the bytes received must be the bytes sent.
 *
 * Where TIPC itself decides by something the model does not follow, the
 * model looks at what happened instead of predicting it:
 *  - RDM/DGRAM queue limits (rcvbuf << importance, by truesize): after a
 *    send, the published tails of the two rings say whether the message
 *    was queued at the peer, came back to the sender (a rejection in its
 *    own queue) or was dropped; the record at the new tail says which.
 *    So a drop is never predicted, but what was queued is checked.
 *  - RDM/DGRAM shutdown() gives every unread returnable message back to
 *    its sender (the peer, or the socket itself), each under the
 *    sender's queue limit: the model counts both queues
 *    (TIPC_SOCK_RECVQ_DEPTH) before and after; if not all came back,
 *    that queue's model is given up.
 *  - A STREAM send's last message of at most 1500 bytes may have been
 *    sent in Nagle mode (after nagle_start one-way messages), in two
 *    buffers: the flag of the record at the peer's new tail says.
 *  - The connection window (STREAM/SEQPACKET EAGAIN) is not modelled: a
 *    send may say EAGAIN whenever the socket is connected.
 * The model holds until the first corruption write or close (every check
 * against it stops there), or, per queue, until it overflows.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tipc.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "t_region_int.h"

#define TT_MAX_USER 66000u   /* TIPC_MAX_USER_MSG_SIZE */
#define TT_MAX_FORWARD 1024u /* what a rejection brings back */
#define TT_QLEN 4096
#define TT_MAX_NAGLE 1500u			/* a Nagle buffer, header included */
#define TT_NAGLE_PIECE (TT_MAX_NAGLE - 24u) /* ... without the header */

enum tt_kind { TM_DATA, TM_ERR };

struct tt_msg {
	uint8_t kind;	/* TM_DATA, TM_ERR */
	bool droppable; /* TM_DATA: its sender's TIPC_DEST_DROPPABLE */
	bool self;	/* TM_DATA: sent by the receiver to itself */
	uint32_t len;	/* TM_DATA: its bytes; TM_ERR: the bytes brought back */
	uint32_t err;	/* TM_ERR: the TIPC error code */
	uint32_t port;	/* the port a receive names (sender, or who rejected it) */
	/* its bytes: STREAM: stream_byte(pat_end, pat + j); else
	 * msg_byte(pat_end, pat, j) (a rejection: the original's) */
	uint8_t pat_end;
	uint64_t pat;
};

struct tt_queue {
	bool ok;      /* the model of this queue is exact */
	uint32_t off; /* bytes of the head message read (head_used) */
	uint64_t first, count;
	struct tt_msg m[TT_QLEN];
};

struct tro_tipc {
	uint32_t port[2], nobody; /* ports (from getsockname), and one of no one */
	bool loose;		  /* an end was closed, or the model lost track */
	bool est[2];		  /* TIPC_ESTABLISHED, else DISCONNECTING */
	bool shut[2];		  /* shutdown(SHUT_RDWR) was called on it */
	bool dest_droppable[2], src_droppable[2];
	uint32_t importance[2], conn_timeout[2];
	uint64_t stream_sent[2]; /* STREAM: bytes sent towards end i */
	uint64_t next_msg;	 /* pattern number of the next message */
	struct tt_queue q[2];	 /* q[i]: the receive queue of end i */
};

static struct tro_tipc tt; /* big: the queue models */

/* ---- model helpers ---- */

static bool conn(const struct tro_state *st)
{
	return st->type == SOCK_STREAM || st->type == SOCK_SEQPACKET;
}

/* The descriptors may answer as their backing AF_UNIX sockets
 * (SOCK_STREAM for STREAM, SOCK_SEQPACKET for the others): a corruption
 * write set kernel_mode, which is what a peer's usp_fallback() does too
 * (docs/DESIGN.md, known difference 16).  A pair that answered EIO does
 * not (usp__lookup: a corrupt pair is never passed through). */
static bool backing(const struct tro_state *st)
{
	return st->kernel_seen && !st->dead;
}

/* Rule 3 of t_region_ops.c for an AF_UNIX socket of the backing type */
static bool backing_errno(const struct tro_state *st, bool recv, int err)
{
	if (recv)
		return err == EAGAIN || err == ECONNRESET;
	return err == EAGAIN || err == EPIPE || err == ECONNRESET ||
	       (st->type != SOCK_STREAM && err == EMSGSIZE);
}

/* Anything the library says about the pair's state may be true: the
 * region was written, or an end was closed (its release changed the
 * state in ways the model does not follow). */
static bool loose(const struct tro_state *st)
{
	return st->corrupted || tt.loose;
}

/* The model of end e's queue says exactly what a receive gets. */
static bool q_known(const struct tro_state *st, int e)
{
	return !loose(st) && tt.q[e].ok;
}

static struct tt_msg *q_at(struct tt_queue *q, uint64_t i)
{
	return &q->m[(q->first + i) % TT_QLEN];
}

static void q_push(struct tt_queue *q, const struct tt_msg *m)
{
	if (q->count == TT_QLEN) {
		q->ok = false;
		return;
	}
	*q_at(q, q->count) = *m;
	q->count++;
}

static void q_pop(struct tt_queue *q)
{
	if (q->count) {
		q->first++;
		q->count--;
	}
	q->off = 0;
}

static void q_clear(struct tt_queue *q)
{
	q->first += q->count;
	q->count = 0;
	q->off = 0;
}

static unsigned char tt_byte(const struct tro_state *st, const struct tt_msg *m, size_t j)
{
	return st->type == SOCK_STREAM ? stream_byte(m->pat_end, m->pat + j)
				       : msg_byte(m->pat_end, m->pat, j);
}

/* The rejection of message m with error err by port `by` (tipc_msg_reverse). */
static struct tt_msg rejection(const struct tt_msg *m, uint32_t err, uint32_t by)
{
	struct tt_msg r = *m;
	r.kind = TM_ERR;
	r.droppable = r.self = false;
	r.len = m->len < TT_MAX_FORWARD ? m->len : TT_MAX_FORWARD;
	r.err = err;
	r.port = by;
	return r;
}

static uint64_t ring_tail(struct tro_state *st, int q)
{
	return atomic_load(&st->shm->ring[q].tail);
}

static void note_eio(struct tro_state *st)
{
	if (!st->corrupted)
		violation(st, "EIO but the region was never written");
	st->dead = true;
	st->stats->eio_pairs++;
}

/* Rule 6 on a dead pair: EIO, or the argument error `arg` (if not 0)
 * that comes before the corruption check.  True when it was dead. */
static bool dead_call(struct tro_state *st, ssize_t r, int err)
{
	if (!st->dead)
		return false;
	if (r >= 0 || err != EIO)
		violation(st, "pair already answered EIO, this call gave %zd (%s)", r,
			  r < 0 ? strerror(err) : "success");
	return true;
}

static const char *state_name(int e)
{
	return tt.est[e] ? "established" : "disconnecting";
}

/* The sizes tro_in_size() picks at its edges for AF_TIPC pairs: 1 KiB
 * flow-control blocks, the 1024 bytes a rejection brings back, Nagle's
 * 1500, the 66000-byte message limit. */
const size_t tro_tipc_size_edges[] = {0,     1,     8,	   999,	   1000,  1023,
				      1024,  1025,  1032,  1500,   1501,  4096,
				      65535, 65999, 66000, 66001, 132000, 132001};
const size_t tro_tipc_n_size_edges = sizeof(tro_tipc_size_edges) / sizeof(tro_tipc_size_edges[0]);

/* ---- sending ---- */

enum tt_dest { D_CONNECTED, D_PEER, D_SELF, D_NOBODY, D_OTHER_NODE };
static const char *const dest_names[] = {"", " to the peer's port", " to its own port",
					 " to a port of no one", " to another node"};

/* The header of the record at position pos of ring q (8-byte aligned:
 * loose() is false wherever these are used, so positions are the
 * library's own). */
static struct usp_rec_hdr ring_hdr(struct tro_state *st, int q, uint64_t pos)
{
	unsigned char *data = (unsigned char *)st->shm + USP_DATA_OFFSET + (size_t)q * USP_RING_BYTES;
	struct usp_rec_hdr h;
	memcpy(&h, data + (pos & USP_RING_MASK & ~(uint64_t)7), sizeof(h));
	return h;
}

static uint64_t rec_end(uint64_t pos, size_t len)
{
	return pos + USP_REC_HDR + ((len + 7) & ~(uint64_t)7);
}

/* What kind of record one send appended to ring q, whose tail went from
 * t0 to end: its own message of len bytes (TM_DATA), a rejection of it
 * (TM_ERR), or -1.  The record is found where the producer put it: at t0,
 * or at the start of the next lap after a WRAP record or an early wrap
 * (src/ring.c).  Reading back from `end` instead would guess: a
 * rejection's payload {err, port} can look like a data header (err 4 and
 * a random port whose low byte is 1 read as "DATA, 4 bytes"). */
static int appended_kind(struct tro_state *st, int q, uint64_t t0, uint64_t end, size_t len)
{
	uint64_t lap = (t0 | USP_RING_MASK) + 1;
	uint64_t start = end > lap ? lap : t0;
	struct usp_rec_hdr h = ring_hdr(st, q, start);
	size_t elen = 8 + (len < TT_MAX_FORWARD ? len : TT_MAX_FORWARD);
	if ((h.kind & 0xff) == USP_REC_DATA && h.len == len && rec_end(start, len) == end)
		return TM_DATA;
	if ((h.kind & 0xff) == USP_REC_TIPC_ERR && h.len == elen && rec_end(start, elen) == end)
		return TM_ERR;
	return -1;
}

static bool is_nagle_data(struct usp_rec_hdr h, size_t len)
{
	return (h.kind & 0xff) == USP_REC_DATA && (h.kind & USP_REC_TIPC_NAGLE) && h.len == len;
}

/* Do the last two records that end ring q at `end` hold a STREAM send's
 * last n bytes as two Nagle buffers, the first of `first` bytes?  Both
 * headers are checked, so that payload bytes cannot pass for one, unless
 * the second starts a lap (a WRAP record may then sit between them). */
static bool nagle_split(struct tro_state *st, int q, uint64_t end, size_t n, size_t first)
{
	size_t second = n - first;
	uint64_t p2 = end - rec_end(0, second);
	uint64_t p1 = p2 - rec_end(0, first);
	if (!is_nagle_data(ring_hdr(st, q, p2), second))
		return false;
	return (p2 & USP_RING_MASK) == 0 || is_nagle_data(ring_hdr(st, q, p1), first);
}

/* The model after an RDM/DGRAM send of message m by end e: where it went
 * is read from the rings' tails (t0: before the send). */
static void model_dgram_sent(struct tro_state *st, int e, enum tt_dest dest, struct tt_msg m,
			     const uint64_t t0[2])
{
	int o = other(e);
	bool to_peer = dest == D_CONNECTED || dest == D_PEER;
	bool grew_o = ring_tail(st, o) != t0[o], grew_e = ring_tail(st, e) != t0[e];
	if (grew_o) {
		if (!to_peer)
			violation(st, "a message%s was queued at the peer", dest_names[dest]);
		if (grew_e)
			violation(st, "a message to the peer wrote into its sender's queue too");
		q_push(&tt.q[o], &m);
		return;
	}
	if (!grew_e)
		return; /* dropped: over the limit of the queue it went to */
	int kind = appended_kind(st, e, t0[e], ring_tail(st, e), m.len);
	if (kind == TM_DATA && dest == D_SELF) {
		m.self = true;
		q_push(&tt.q[e], &m);
		return;
	}
	if (kind != TM_ERR) {
		violation(st, "a message%s left something else in its sender's queue",
			  dest_names[dest]);
		tt.q[e].ok = false;
		return;
	}
	/* rejected (over the destination's limit, or no such port): back */
	if (m.droppable)
		violation(st, "a droppable message%s came back", dest_names[dest]);
	struct tt_msg back = rejection(&m, dest == D_NOBODY ? TIPC_ERR_NO_PORT : TIPC_ERR_OVERLOAD,
				       to_peer ? tt.port[o] : dest == D_SELF ? tt.port[e] : tt.nobody);
	q_push(&tt.q[e], &back);
}

/* Rules T1-T3 for a send of len bytes by end e, and the model after it. */
static void after_send(struct tro_state *st, int e, size_t len, enum tt_dest dest, ssize_t r,
		       int err, const uint64_t t0[2])
{
	int o = other(e);
	/* argument errors come first, corruption or not; an address on
	 * another node too, except that a pair found corrupt may say EIO
	 * first (both are right: the region has no say in either) */
	int arg = 0;
	if (st->type != SOCK_STREAM && len > TT_MAX_USER)
		arg = EMSGSIZE;
	else if (!conn(st) && dest == D_OTHER_NODE)
		arg = EHOSTUNREACH;
	if (arg == EHOSTUNREACH && !backing(st) && r < 0 && err == EIO && st->corrupted) {
		if (!st->dead)
			note_eio(st);
		return;
	}
	if (arg && !backing(st)) {
		if (r >= 0 || err != arg)
			violation(st, "send of %zu bytes%s gave %zd (%s), not %s", len,
				  dest_names[dest], r, r < 0 ? strerror(err) : "success",
				  strerror(arg));
		return;
	}
	if (dead_call(st, r, err))
		return;
	if (r < 0) {
		if (err == EIO) {
			note_eio(st);
			return;
		}
		bool ok;
		if (!conn(st)) /* never waits: no room means dropped or returned;
				* but the default destination (tsk->peer, which
				* connect() changes) may be gone or elsewhere */
			ok = st->corrupted && dest == D_CONNECTED &&
			     (err == EDESTADDRREQ || err == EHOSTUNREACH);
		else if (err == EAGAIN)
			ok = loose(st) || tt.est[e];
		else if (err == EPIPE)
			ok = loose(st) || !tt.est[e];
		else if (err == ENOBUFS) /* only a physically full ring */
			ok = st->corrupted;
		else if (err == ECONNRESET) /* a pending error (SO_ERROR) in the
					     * region: a recvmmsg can leave one */
			ok = st->corrupted;
		else
			ok = false;
		/* the backing socket: AF_UNIX's errnos (EISCONN: an address on
		 * a connected STREAM socket), or still TIPC's, argument errors
		 * included, while its ring holds data */
		if (backing(st) && (backing_errno(st, false, err) || err == arg ||
				    (err == EISCONN && dest != D_CONNECTED &&
				     st->type == SOCK_STREAM)))
			ok = true;
		if (!ok)
			violation(st, "errno %d (%s) is not one this send can give (%s)", err,
				  strerror(err), state_name(e));
		return;
	}
	if (backing(st)) {
		if ((size_t)r > len)
			violation(st, "send of %zu bytes returned %zd", len, r);
		return;
	}
	bool whole = (size_t)r == len;
	if (st->type == SOCK_STREAM && !whole)
		whole = r > 0 && (size_t)r < len && r % TT_MAX_USER == 0; /* whole messages */
	if (!whole) {
		violation(st, "send of %zu bytes returned %zd", len, r);
		return;
	}
	if (conn(st) && !loose(st) && !tt.est[e])
		violation(st, "send on a disconnecting socket returned %zd, not EPIPE", r);
	struct tt_msg m = {.kind = TM_DATA,
			   .droppable = tt.dest_droppable[e],
			   .len = (uint32_t)len,
			   .port = tt.port[e],
			   .pat_end = (uint8_t)o,
			   .pat = tt.next_msg};
	/* A peer that disconnected without a FIN to us (a droppable message
	 * of ours was at its head) takes nothing (tipc_sk_filter_connect()):
	 * the message is dropped if droppable, otherwise its first buffer
	 * comes back, once, and disconnects us. */
	if (conn(st) && !loose(st) && tt.est[e] && !tt.est[o]) {
		if (!m.droppable) {
			if (st->type == SOCK_STREAM)
				m.len = (uint32_t)((size_t)r < TT_MAX_USER ? (size_t)r : TT_MAX_USER);
			struct tt_msg back = rejection(&m, TIPC_ERR_NO_PORT, tt.port[o]);
			q_push(&tt.q[e], &back);
			tt.est[e] = false;
		}
		if (st->type == SOCK_STREAM)
			tt.stream_sent[o] += (size_t)r;
		else
			tt.next_msg++;
		return;
	}
	if (st->type == SOCK_STREAM) {
		/* one message per 66000 bytes, a zero-length send one too (the
		 * receiver skips it); a last one of at most 1500 bytes sent in
		 * Nagle mode (which the model does not follow: the record says)
		 * may take two buffers of 1500 bytes, header included */
		size_t done = 0;
		uint64_t end = ring_tail(st, o);
		do {
			size_t n = (size_t)r - done < TT_MAX_USER ? (size_t)r - done : TT_MAX_USER;
			size_t first = n;
			if (done + n == (size_t)r && n > TT_NAGLE_PIECE && n <= TT_MAX_NAGLE &&
			    !loose(st) && nagle_split(st, o, end, n, TT_NAGLE_PIECE))
				first = TT_NAGLE_PIECE;
			m.len = (uint32_t)first;
			m.pat = tt.stream_sent[o] + done;
			if (!loose(st))
				q_push(&tt.q[o], &m);
			if (first < n) {
				m.len = (uint32_t)(n - first);
				m.pat += first;
				q_push(&tt.q[o], &m);
			}
			done += n;
		} while (done < (size_t)r);
		tt.stream_sent[o] += (size_t)r;
		return;
	}
	tt.next_msg++;
	if (loose(st))
		return;
	if (conn(st))
		q_push(&tt.q[o], &m);
	else
		model_dgram_sent(st, e, dest, m, t0);
}

static void op_send(struct tro_state *st, struct tro_in *in, bool vectored)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	size_t lens[4] = {0};
	int cnt = vectored ? 1 + (b >> 1) % 4 : 1;
	static const enum tt_dest dests[8] = {D_CONNECTED, D_CONNECTED, D_CONNECTED, D_CONNECTED,
					      D_PEER,	   D_SELF,	D_NOBODY,    D_OTHER_NODE};
	enum tt_dest dest = dests[(b >> 3) & 7];
	/* TIPC never raises SIGPIPE: some sends do not ask for it */
	int flags = MSG_DONTWAIT | ((b & 0x40) ? 0 : MSG_NOSIGNAL);
	size_t total = tro_in_lens(st, in, lens, cnt);
	if (e < 0)
		return;
	int o = other(e);
	for (size_t i = 0; i < total; i++)
		tro_sendbuf[i] = st->type == SOCK_STREAM ? stream_byte(o, tt.stream_sent[o] + i)
							 : msg_byte(o, tt.next_msg, i);
	struct sockaddr_tipc a;
	memset(&a, 0, sizeof(a));
	a.family = AF_TIPC;
	a.addrtype = TIPC_SOCKET_ADDR;
	a.addr.id.ref = dest == D_SELF ? tt.port[e] : dest == D_NOBODY ? tt.nobody : tt.port[o];
	a.addr.id.node = dest == D_OTHER_NODE ? 0x1001001 : 0;
	bool named = dest != D_CONNECTED;
	uint64_t t0[2] = {ring_tail(st, 0), ring_tail(st, 1)};
	ssize_t r;
	errno = 0;
	if (vectored) {
		struct iovec iov[4];
		tro_fill_iov(iov, tro_sendbuf, lens, cnt);
		struct msghdr msg = {.msg_name = named ? &a : NULL,
				     .msg_namelen = named ? sizeof(a) : 0,
				     .msg_iov = iov,
				     .msg_iovlen = (size_t)cnt};
		st->op = "sendmsg";
		r = usp_sendmsg(st->sv[e], &msg, flags);
	} else if (named) {
		st->op = "sendto";
		r = usp_sendto(st->sv[e], tro_sendbuf, total, flags, (struct sockaddr *)&a,
			       sizeof(a));
	} else {
		st->op = "send";
		r = usp_send(st->sv[e], tro_sendbuf, total, flags);
	}
	int err = errno;
	st->stats->calls++;
	trace(st, "%s end %d len %zu (%d iov)%s flags %#x = %zd %s", st->op, e, total, cnt,
	      dest_names[dest], (unsigned)flags, r, r < 0 ? strerror(err) : "");
	after_send(st, e, total, dest, r, err, t0);
}

/* ---- receiving ---- */

/* What a receive gets, by the model. */
struct tt_expect {
	ssize_t r;		      /* count, or -errno */
	int msg_flags;		      /* MSG_TRUNC, MSG_EOR */
	const struct tt_msg *errinfo; /* a rejection whose error it reports */
	bool named;		      /* msg_name is filled */
	uint32_t port;		      /* ... with this port */
};

static bool same_bytes(const struct tro_state *st, const unsigned char *buf,
		       const struct tt_msg *m, size_t from, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (buf[j] != tt_byte(st, m, from + j))
			return false;
	return true;
}

/*
 * tipc_recvstream() on the model of end e's queue: the bytes of data
 * messages up to the buffer's size, stopping at a rejection or FIN (which
 * a receive that copied nothing consumes and answers with 0, or with
 * ECONNRESET if it is not a FIN and there is no control buffer), at a
 * partly read message, or when the queue is empty.  A peek stops after
 * the first message with data.  Empty messages are consumed on the way,
 * peeking or not.  commit: apply it to the model and compare the bytes
 * in tro_recvbuf (false at a difference).
 */
static bool walk_stream(struct tro_state *st, int e, size_t cap, int flags, bool ctl_ptr,
			bool commit, struct tt_expect *x)
{
	struct tt_queue *q = &tt.q[e];
	bool peek = flags & MSG_PEEK, same = true;
	uint64_t i = 0, consumed = 0;
	uint32_t off_after = q->off;
	size_t copied = 0;
	ssize_t rc = -EAGAIN;
	memset(x, 0, sizeof(*x));
	while (i < q->count) {
		const struct tt_msg *m = q_at(q, i);
		uint32_t off = i == 0 ? q->off : 0;
		if (m->kind == TM_DATA && m->len == 0) {
			consumed = ++i;
			off_after = 0;
			continue;
		}
		if (!copied) {
			x->named = true;
			x->port = m->port;
			if (m->kind == TM_ERR)
				x->errinfo = m;
		}
		if (m->kind == TM_DATA) {
			size_t n = m->len - off < cap - copied ? m->len - off : cap - copied;
			if (commit && !same_bytes(st, tro_recvbuf + copied, m, off, n))
				same = false;
			copied += n;
			if (off + n < m->len) {
				if (!peek)
					off_after = off + (uint32_t)n;
				break;
			}
		} else {
			rc = m->err != TIPC_CONN_SHUTDOWN && !ctl_ptr ? -ECONNRESET : 0;
			if (copied || rc)
				break;
		}
		if (peek)
			break;
		consumed = ++i;
		off_after = 0;
		if (copied == cap || m->kind == TM_ERR)
			break;
	}
	x->r = copied ? (ssize_t)copied : rc;
	if (commit) {
		while (consumed--)
			q_pop(q);
		q->off = off_after;
		st->stats->data_checked += copied;
	}
	return same;
}

/*
 * tipc_recvmsg() (SEQPACKET, RDM, DGRAM) on the model of end e's queue:
 * past the empty messages (consumed, peeking or not), the first message:
 * its bytes from the offset read so far, at most the buffer's size; a
 * longer one is truncated (MSG_TRUNC) and consumed, or with MSG_EOR left
 * with its offset moved on (MSG_EOR in msg_flags once the end is read); a
 * peek moves nothing, except that it resets the offset like a read
 * without MSG_EOR.  A rejection answers 0 with its error in the control
 * buffer; on SEQPACKET, if it is not a FIN and there is no control
 * buffer, ECONNRESET, leaving it queued.
 */
static bool walk_msg(struct tro_state *st, int e, size_t cap, int flags, bool ctl_ptr,
		     bool commit, struct tt_expect *x)
{
	struct tt_queue *q = &tt.q[e];
	bool peek = flags & MSG_PEEK, eor = flags & MSG_EOR, same = true;
	uint64_t i = 0, consumed = 0;
	memset(x, 0, sizeof(*x));
	while (i < q->count && q_at(q, i)->kind == TM_DATA && q_at(q, i)->len == 0)
		consumed = ++i;
	uint32_t off_after = consumed ? 0 : q->off;
	if (i == q->count) {
		x->r = -EAGAIN;
		goto out;
	}
	const struct tt_msg *m = q_at(q, i);
	bool keep = peek;
	x->named = true;
	x->port = m->port;
	if (m->kind == TM_DATA) {
		uint32_t off = off_after;
		size_t n = m->len - off < cap ? m->len - off : cap;
		if (commit && !same_bytes(st, tro_recvbuf, m, off, n))
			same = false;
		if (off + n < m->len) {
			if (!eor) {
				x->msg_flags |= MSG_TRUNC;
				off_after = 0;
			} else if (!peek) {
				off_after = off + (uint32_t)n;
			}
		} else {
			if (eor)
				x->msg_flags |= MSG_EOR;
			off_after = 0;
		}
		keep |= off_after != 0;
		x->r = (ssize_t)n;
		if (commit)
			st->stats->data_checked += n;
	} else {
		x->errinfo = m;
		x->r = 0;
		if (m->err != TIPC_CONN_SHUTDOWN && conn(st) && !ctl_ptr) {
			x->r = -ECONNRESET;
			keep = true;
		}
	}
	if (!keep)
		consumed = i + 1;
out:
	if (commit) {
		bool head_stays = consumed == i && i < q->count;
		while (consumed--)
			q_pop(q);
		q->off = head_stays ? off_after : 0;
	}
	return same;
}

/* put_cmsg() as net/core/scm.c has it (MSG_CTRUNC; a cut last message) */
static void put_cmsg(unsigned char *ctl, size_t cap, size_t *used, int *flags, int type,
		     const void *data, size_t len)
{
	size_t room = cap - *used;
	if (room < sizeof(struct cmsghdr)) {
		*flags |= MSG_CTRUNC;
		return;
	}
	size_t cmlen = CMSG_LEN(len);
	if (room < cmlen) {
		*flags |= MSG_CTRUNC;
		cmlen = room;
	}
	struct cmsghdr h = {.cmsg_len = cmlen, .cmsg_level = SOL_TIPC, .cmsg_type = type};
	memcpy(ctl + *used, &h, sizeof(h));
	memcpy(ctl + *used + CMSG_LEN(0), data, cmlen - CMSG_LEN(0));
	*used += CMSG_SPACE(len) < room ? CMSG_SPACE(len) : room;
}

/* tipc_sk_anc_data_recv(): what the control buffer gets for a rejection */
static size_t expected_cmsgs(const struct tro_state *st, const struct tt_msg *m, size_t cap,
			     unsigned char *out, int *flags)
{
	size_t used = 0;
	if (!cap || !m)
		return 0;
	uint32_t info[2] = {m->err, m->len};
	put_cmsg(out, cap, &used, flags, TIPC_ERRINFO, info, sizeof(info));
	if (m->len) {
		unsigned char data[TT_MAX_FORWARD];
		for (size_t j = 0; j < m->len; j++)
			data[j] = tt_byte(st, m, j);
		put_cmsg(out, cap, &used, flags, TIPC_RETDATA, data, m->len);
	}
	return used;
}

static const char *result_str(ssize_t r, char *buf, size_t size)
{
	if (r >= 0)
		snprintf(buf, size, "%zd", r);
	else
		snprintf(buf, size, "%s", strerror((int)-r));
	return buf;
}

static void op_recv(struct tro_state *st, struct tro_in *in, bool vectored)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	uint8_t x = vectored ? in8(in) : 0;
	int cnt = vectored ? 1 + (x & 3) : 1;
	bool want_name = vectored ? (x & 0x20) : (b & 0x20);
	size_t lens[4] = {0};
	size_t total = tro_in_lens(st, in, lens, cnt);
	if (e < 0)
		return;
	int flags = MSG_DONTWAIT;
	if (b & 2)
		flags |= MSG_PEEK;
	if (b & 4)
		flags |= MSG_EOR;
	if (b & 8)
		flags |= MSG_WAITALL;
	if (b & 16)
		flags |= MSG_TRUNC; /* TIPC ignores it */
	/* control buffers: none, an empty one, too short for a header, the
	 * TIPC_ERRINFO only, a cut TIPC_RETDATA, room for everything */
	static const size_t ctl_sizes[8] = {0,
					    0,
					    sizeof(struct cmsghdr) - 4,
					    CMSG_SPACE(8),
					    CMSG_SPACE(8) + CMSG_LEN(50),
					    CMSG_SPACE(8) + CMSG_LEN(TT_MAX_FORWARD) - 1,
					    2048,
					    2048};
	static unsigned char ctl[2048];
	int ctl_kind = (x >> 2) & 7;
	bool ctl_ptr = vectored && ctl_kind != 0;
	size_t ctl_len = vectored ? ctl_sizes[ctl_kind] : 0;
	memset(ctl, 0xa5, sizeof(ctl));
	struct sockaddr_storage name;
	memset(&name, 0xa5, sizeof(name));
	socklen_t namelen = sizeof(name);
	ssize_t r;
	int msg_flags = 0;
	size_t controllen = 0;
	errno = 0;
	if (vectored) {
		struct iovec iov[4];
		tro_fill_iov(iov, tro_recvbuf, lens, cnt);
		struct msghdr msg = {.msg_name = want_name ? &name : NULL,
				     .msg_namelen = want_name ? namelen : 0,
				     .msg_iov = iov,
				     .msg_iovlen = (size_t)cnt,
				     .msg_control = ctl_ptr ? ctl : NULL,
				     .msg_controllen = ctl_len};
		st->op = "recvmsg";
		r = usp_recvmsg(st->sv[e], &msg, flags);
		msg_flags = msg.msg_flags;
		controllen = msg.msg_controllen;
		namelen = msg.msg_namelen;
	} else if (want_name) {
		st->op = "recvfrom";
		r = usp_recvfrom(st->sv[e], tro_recvbuf, total, flags, (struct sockaddr *)&name,
				 &namelen);
	} else {
		st->op = "recv";
		r = usp_recv(st->sv[e], tro_recvbuf, total, flags);
	}
	int err = errno;
	st->stats->calls++;
	trace(st, "%s end %d cap %zu flags %#x control %zu = %zd %s msg_flags %#x controllen %zu",
	      st->op, e, total, (unsigned)flags, ctl_len, r, r < 0 ? strerror(err) : "",
	      (unsigned)msg_flags, controllen);

	/* T1 (argument errors first), rule 6, T4 (the errnos a receive can give) */
	if (total == 0 && !backing(st)) {
		if (r >= 0 || err != EINVAL)
			violation(st, "receive into 0 bytes gave %zd (%s), not EINVAL", r,
				  r < 0 ? strerror(err) : "success");
		return;
	}
	if (dead_call(st, r, err))
		return;
	if (r < 0 && err == EIO) {
		note_eio(st);
		return;
	}
	if (r < 0) {
		bool ok = err == EAGAIN || (err == ECONNRESET && conn(st) && loose(st)) ||
			  (err == ENOTCONN && (st->corrupted || tt.shut[e])) ||
			  (backing(st) && (backing_errno(st, true, err) ||
					   (err == EINVAL && total == 0)));
		if (!ok)
			violation(st, "errno %d (%s) is not one this receive can give", err,
				  strerror(err));
	} else {
		/* T5: in range, whatever the region says (the backing
		 * SEQPACKET socket gives a message's length for MSG_TRUNC) */
		if ((size_t)r > (backing(st) && (flags & MSG_TRUNC) ? USP_MAX_SNDBUF : total))
			violation(st, "receive into %zu bytes returned %zd", total, r);
		if (msg_flags & ~(MSG_TRUNC | MSG_EOR | MSG_CTRUNC) ||
		    (st->type == SOCK_STREAM && !backing(st) && (msg_flags & (MSG_TRUNC | MSG_EOR))))
			violation(st, "msg_flags %#x", (unsigned)msg_flags);
		if (controllen > ctl_len)
			violation(st, "msg_controllen %zu of %zu", controllen, ctl_len);
		const struct sockaddr_tipc *a = (const struct sockaddr_tipc *)&name;
		if (want_name && !backing(st) && (namelen != sizeof(*a) || a->family != AF_TIPC ||
				  a->addrtype != TIPC_SOCKET_ADDR || a->addr.id.node != 0))
			violation(st, "msg_name of %u bytes, family %u addrtype %u node %#x",
				  (unsigned)namelen, a->family, a->addrtype, a->addr.id.node);
	}
	if (!q_known(st, e))
		return;

	/* T6: the answer the model predicts, and the bytes that were sent */
	struct tt_expect xp;
	(st->type == SOCK_STREAM ? walk_stream : walk_msg)(st, e, total, flags, ctl_ptr, false, &xp);
	ssize_t got = r < 0 ? -err : r;
	char b1[64], b2[64];
	if (got != xp.r) {
		violation(st, "receive into %zu (flags %#x, control %zu) on %s queue of %llu "
			      "messages gave %s; the model says %s",
			  total, (unsigned)flags, ctl_len, state_name(e),
			  (unsigned long long)tt.q[e].count, result_str(got, b1, sizeof(b1)),
			  result_str(xp.r, b2, sizeof(b2)));
		tt.q[e].ok = false;
		return;
	}
	if (r >= 0) {
		unsigned char want_ctl[2048];
		memset(want_ctl, 0xa5, sizeof(want_ctl)); /* padding is not written */
		int want_flags = xp.msg_flags;
		size_t want_len = expected_cmsgs(st, xp.errinfo, ctl_len, want_ctl, &want_flags);
		size_t diff = 0;
		while (diff < want_len && diff < controllen && ctl[diff] == want_ctl[diff])
			diff++;
		if (vectored && (msg_flags != want_flags || controllen != want_len || diff < want_len))
			violation(st,
				  "msg_flags %#x, %zu control bytes; the model says %#x, %zu (%s; "
				  "first difference at byte %zu)",
				  (unsigned)msg_flags, controllen, (unsigned)want_flags, want_len,
				  xp.errinfo ? "a rejection" : "data", diff);
		const struct sockaddr_tipc *a = (const struct sockaddr_tipc *)&name;
		if (want_name && xp.named && a->addr.id.ref != xp.port)
			violation(st, "msg_name port %#x, the model says %#x", a->addr.id.ref,
				  xp.port);
	}
	if (!(st->type == SOCK_STREAM ? walk_stream : walk_msg)(st, e, total, flags, ctl_ptr, true,
								 &xp))
		violation(st, "received bytes differ from the bytes sent");
}

/* ---- the other calls ---- */

static void op_poll(struct tro_state *st, struct tro_in *in)
{
	unsigned rev, allowed;
	int e = tro_poll(st, in, &rev, &allowed);
	if (e < 0)
		return;
	if (!q_known(st, e))
		return;
	/* T8: tipc_poll() */
	unsigned want = 0, unknown = 0;
	if (tt.shut[e])
		want |= POLLRDHUP | POLLIN | POLLRDNORM | POLLHUP;
	if (!conn(st) || tt.est[e]) {
		if (conn(st))
			unknown = POLLOUT; /* the window: not modelled */
		else
			want |= POLLOUT;
		if (tt.q[e].count)
			want |= POLLIN | POLLRDNORM;
	} else {
		want = POLLIN | POLLRDNORM | POLLHUP;
	}
	want &= allowed;
	if ((rev & ~unknown) != (want & ~unknown))
		violation(st, "poll revents %#x; the model says %#x (%s, %llu queued%s)", rev, want,
			  state_name(e), (unsigned long long)tt.q[e].count,
			  tt.shut[e] ? ", shut down" : "");
}

static void op_ioctl(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	if (e < 0)
		return;
	static const unsigned long reqs[] = {FIONREAD, SIOCOUTQ, SIOCATMARK, SIOCOUTQNSD};
	static const char *const names[] = {"FIONREAD", "SIOCOUTQ", "SIOCATMARK", "SIOCOUTQNSD"};
	int k = (b >> 1) & 3;
	int v = -12345;
	st->op = names[k];
	errno = 0;
	int r = usp_ioctl(st->sv[e], reqs[k], &v);
	int err = errno;
	st->stats->calls++;
	trace(st, "%s end %d = %d %s", st->op, e, r, r ? strerror(err) : "");
	/* T7: the socket layer answers these for TIPC, whatever the region says
	 * (the backing socket answers them) */
	if (!backing(st) && (r != -1 || err != ENOTTY || v != -12345))
		violation(st, "ioctl gave %d (%s) value %d, not ENOTTY", r, r ? strerror(err) : "",
			  v);
	if (backing(st) && r == -1 && err == EIO)
		note_eio(st);
}

static int recvq_depth(struct tro_state *st, int e)
{
	uint32_t v = 0;
	socklen_t len = sizeof(v);
	st->stats->calls++;
	if (usp_getsockopt(st->sv[e], SOL_TIPC, TIPC_SOCK_RECVQ_DEPTH, &v, &len) != 0)
		return -1;
	return (int)v;
}

/* The model after a successful shutdown of end e (__tipc_shutdown()):
 * a partly read head is dropped; STREAM/SEQPACKET disconnect and send the
 * peer, if it is still established, a FIN that brings back the first
 * unread message (none if that is droppable or a rejection: then the peer
 * is not told); RDM/DGRAM give every unread returnable message back to
 * its sender, the peer or e itself (depth0, depth1: the peer's queue
 * before and after; own: e's queue after). */
static void model_shutdown(struct tro_state *st, int e, int depth0, int depth1, int own)
{
	int o = other(e);
	struct tt_queue *qe = &tt.q[e], *qo = &tt.q[o];
	tt.shut[e] = true;
	if (loose(st))
		return;
	if (!qe->ok) {
		tt.loose = true; /* what went back is not known */
		return;
	}
	if (qe->off)
		q_pop(qe);
	if (conn(st)) {
		if (tt.est[e]) {
			tt.est[e] = false;
			struct tt_msg fin = {.kind = TM_ERR, .err = TIPC_CONN_SHUTDOWN,
					     .port = tt.port[e]};
			bool told = tt.est[o];
			if (qe->count && told) {
				const struct tt_msg *h = q_at(qe, 0);
				told = h->kind == TM_DATA && !h->droppable;
				if (told)
					fin = rejection(h, TIPC_CONN_SHUTDOWN, tt.port[e]);
			}
			if (told) {
				q_push(qo, &fin);
				tt.est[o] = false;
			}
		}
		q_clear(qe);
		return;
	}
	/* what may come back, to the peer and to e itself (tsk_rej_rx_queue) */
	int back[2] = {0, 0};
	for (uint64_t i = 0; i < qe->count; i++) {
		const struct tt_msg *m = q_at(qe, i);
		if (m->kind == TM_DATA && !m->droppable)
			back[m->self]++;
	}
	uint64_t n = qe->count;
	q_clear(qe);
	/* (the model's ring must not wrap over the entries it still reads) */
	bool all[2] = {depth1 - depth0 == back[0], own == back[1] && n + own <= TT_QLEN};
	if (depth0 < 0 || depth1 < depth0 || depth1 - depth0 > back[0] || own < 0 || own > back[1])
		violation(st, "after the shutdown, the peer's queue went from %d to %d messages and "
			      "its own holds %d; %d and %d could come back",
			  depth0, depth1, own, back[0], back[1]);
	for (uint64_t i = 0; i < n; i++) {
		/* the cleared entries are still there, past the new head */
		const struct tt_msg *m = &qe->m[(qe->first - n + i) % TT_QLEN];
		if (m->kind != TM_DATA || m->droppable || !all[m->self])
			continue;
		struct tt_msg rj = rejection(m, TIPC_CONN_SHUTDOWN, tt.port[e]);
		q_push(m->self ? qe : qo, &rj);
	}
	/* some were over a queue's limit: which ones, the model does not say */
	if (!all[0])
		qo->ok = false;
	if (!all[1])
		qe->ok = false;
}

static void op_shutdown(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	if (e < 0)
		return;
	static const int hows[8] = {SHUT_RDWR, SHUT_RDWR, SHUT_RD, SHUT_WR,
				    SHUT_RDWR, 7,	  SHUT_RDWR, -1};
	int how = hows[(b >> 1) & 7];
	int o = other(e);
	bool count = how == SHUT_RDWR && !conn(st) && !loose(st) && st->open[o];
	int depth0 = count ? recvq_depth(st, o) : -1;
	if (count && q_known(st, o) && depth0 != (int)tt.q[o].count)
		violation(st, "TIPC_SOCK_RECVQ_DEPTH of end %d is %d; the model says %llu", o,
			  depth0, (unsigned long long)tt.q[o].count);
	st->op = "shutdown";
	errno = 0;
	int r = usp_shutdown(st->sv[e], how);
	int err = errno;
	st->stats->calls++;
	trace(st, "shutdown end %d how %d = %d %s", e, how, r, r ? strerror(err) : "");
	/* T7: tipc_shutdown() */
	if (backing(st)) { /* tipc_shutdown() or unix_shutdown() */
		if (r != 0 && err != EINVAL && err != ENOTCONN && err != EIO)
			violation(st, "shutdown(%d) gave %d (%s)", how, r, strerror(err));
		if (r == -1 && err == EIO)
			note_eio(st);
		tt.shut[e] = true;
		return;
	}
	if (how != SHUT_RDWR) {
		if (r != -1 || err != EINVAL)
			violation(st, "shutdown(%d) gave %d (%s), not EINVAL", how, r,
				  r ? strerror(err) : "");
		return;
	}
	if (dead_call(st, r, err))
		return;
	if (r == -1 && err == EIO) {
		note_eio(st);
		return;
	}
	int want = conn(st) ? 0 : ENOTCONN;
	if (want ? r != -1 || err != want : r != 0) {
		violation(st, "shutdown(SHUT_RDWR) gave %d (%s), not %s", r, r ? strerror(err) : "",
			  want ? strerror(want) : "0");
		return;
	}
	model_shutdown(st, e, depth0, count ? recvq_depth(st, o) : -1,
		       count ? recvq_depth(st, e) : -1);
}

static void op_setsockopt(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	uint32_t raw = in32(in);
	if (e < 0)
		return;
	int level = SOL_TIPC, opt, v, want = 0;
	switch ((b >> 1) & 7) {
	case 0: /* small ones often: queue limits and windows shrink */
		level = SOL_SOCKET;
		opt = SO_RCVBUF;
		v = (int)(raw % ((b & 0x10) ? (4u << 20) : 65536u));
		st->op = "SO_RCVBUF";
		break;
	case 1:
		level = SOL_SOCKET;
		opt = SO_SNDBUF;
		v = (int)(raw % 65536);
		st->op = "SO_SNDBUF";
		break;
	case 2:
		level = SOL_SOCKET;
		opt = SO_PEEK_OFF;
		v = (int)(raw % 70000);
		want = EOPNOTSUPP; /* no set_peek_off in TIPC's ops */
		st->op = "SO_PEEK_OFF";
		break;
	case 3:
		opt = TIPC_IMPORTANCE;
		v = (b & 0x10) ? (int)raw : (int)(raw % 6) - 1;
		want = v > TIPC_CRITICAL_IMPORTANCE ? EINVAL : 0;
		st->op = "TIPC_IMPORTANCE";
		break;
	case 4:
		opt = TIPC_DEST_DROPPABLE;
		v = (b & 0x10) ? (int)raw : (int)(raw & 1);
		st->op = "TIPC_DEST_DROPPABLE";
		break;
	case 5:
		opt = TIPC_SRC_DROPPABLE;
		v = (int)(raw & 1);
		want = st->type == SOCK_STREAM ? ENOPROTOOPT : 0;
		st->op = "TIPC_SRC_DROPPABLE";
		break;
	case 6:
		opt = TIPC_NODELAY;
		v = (int)(raw & 1);
		st->op = "TIPC_NODELAY";
		break;
	default:
		opt = TIPC_CONN_TIMEOUT;
		v = (int)raw;
		st->op = "TIPC_CONN_TIMEOUT";
		break;
	}
	errno = 0;
	int r = usp_setsockopt(st->sv[e], level, opt, &v, sizeof(v));
	int err = errno;
	st->stats->calls++;
	trace(st, "setsockopt %s end %d %d = %d %s", st->op, e, v, r, r ? strerror(err) : "");
	/* T9: options answer as TIPC's, whatever the region says (the
	 * backing socket has no SOL_TIPC options) */
	if (backing(st) && (r == 0 || err == EOPNOTSUPP || err == ENOPROTOOPT || err == want))
		return;
	if (want ? r != -1 || err != want : r != 0) {
		violation(st, "setsockopt gave %d (%s), not %s", r, r ? strerror(err) : "",
			  want ? strerror(want) : "0");
		return;
	}
	if (r != 0)
		return;
	if (opt == TIPC_IMPORTANCE && v >= 0) /* a negative one changes nothing */
		tt.importance[e] = (uint32_t)v;
	else if (opt == TIPC_DEST_DROPPABLE)
		tt.dest_droppable[e] = v != 0;
	else if (opt == TIPC_SRC_DROPPABLE)
		tt.src_droppable[e] = v != 0;
	else if (opt == TIPC_CONN_TIMEOUT)
		tt.conn_timeout[e] = (uint32_t)v & 0xffff;
}

static void op_getsockopt(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	if (e < 0)
		return;
	static const int opts[8] = {TIPC_SOCK_RECVQ_DEPTH, TIPC_SOCK_RECVQ_DEPTH,
				    TIPC_SOCK_RECVQ_USED,  TIPC_IMPORTANCE,
				    TIPC_DEST_DROPPABLE,   TIPC_SRC_DROPPABLE,
				    TIPC_CONN_TIMEOUT,	   TIPC_NODELAY};
	static const char *const names[8] = {
		"TIPC_SOCK_RECVQ_DEPTH", "TIPC_SOCK_RECVQ_DEPTH", "TIPC_SOCK_RECVQ_USED",
		"TIPC_IMPORTANCE",	 "TIPC_DEST_DROPPABLE",	  "TIPC_SRC_DROPPABLE",
		"TIPC_CONN_TIMEOUT",	 "TIPC_NODELAY"};
	int k = (b >> 1) & 7;
	uint32_t v[2] = {0xdeadbeef, 0xdeadbeef};
	socklen_t len = (b & 0x10) ? sizeof(v) : sizeof(v[0]);
	st->op = names[k];
	errno = 0;
	int r = usp_getsockopt(st->sv[e], SOL_TIPC, opts[k], v, &len);
	int err = errno;
	st->stats->calls++;
	trace(st, "getsockopt %s end %d = %d %s value %u", st->op, e, r, r ? strerror(err) : "",
	      v[0]);
	/* T9 (the backing socket has no SOL_TIPC options) */
	if (backing(st) && r != 0 && err == EOPNOTSUPP)
		return;
	if (opts[k] == TIPC_NODELAY) { /* write-only in tipc_getsockopt() */
		if (r != -1 || err != EINVAL)
			violation(st, "getsockopt gave %d (%s), not EINVAL", r,
				  r ? strerror(err) : "");
		return;
	}
	if (r != 0 || len != sizeof(v[0]) || v[1] != 0xdeadbeef) {
		violation(st, "getsockopt gave %d (%s), length %u", r, r ? strerror(err) : "",
			  (unsigned)len);
		return;
	}
	uint32_t want = v[0];
	bool known = !st->corrupted;
	switch (opts[k]) {
	case TIPC_SOCK_RECVQ_DEPTH:
		if ((int)v[0] < 0)
			violation(st, "TIPC_SOCK_RECVQ_DEPTH %d", (int)v[0]);
		known = q_known(st, e);
		want = (uint32_t)tt.q[e].count;
		break;
	case TIPC_SOCK_RECVQ_USED:
		/* truesize of what is queued: not 0 exactly when something is */
		if (v[0] > 4u * USP_MAX_SNDBUF)
			violation(st, "TIPC_SOCK_RECVQ_USED %u", v[0]);
		if (q_known(st, e) && (v[0] != 0) != (tt.q[e].count != 0))
			violation(st, "TIPC_SOCK_RECVQ_USED %u with %llu messages queued", v[0],
				  (unsigned long long)tt.q[e].count);
		return;
	case TIPC_IMPORTANCE:
		want = tt.importance[e];
		break;
	case TIPC_DEST_DROPPABLE:
	case TIPC_SRC_DROPPABLE:
		if (v[0] > 1)
			violation(st, "%s %u", st->op, v[0]);
		want = opts[k] == TIPC_DEST_DROPPABLE ? tt.dest_droppable[e]
						      : tt.src_droppable[e];
		break;
	default:
		want = tt.conn_timeout[e];
		break;
	}
	if (known && v[0] != want)
		violation(st, "%s is %u; the model says %u", st->op, v[0], want);
}

static void op_close(struct tro_state *st, struct tro_in *in)
{
	if (tro_close(st, in) >= 0)
		tt.loose = true; /* tipc_release() rejected its queue: not followed */
}

/* ---- driver ---- */

enum {
	T_SEND,
	T_RECV,
	T_SENDMSG,
	T_RECVMSG,
	T_POLL,
	T_IOCTL,
	T_SHUTDOWN,
	T_SETSOCKOPT,
	T_GETSOCKOPT,
	T_CLOSE,
	T_CORRUPT
};

/* opcode byte -> op; weights by repetition */
static const unsigned char tipc_op_table[32] = {
	T_SEND,	      T_SEND,	    T_SEND,	  T_SEND,    T_SEND,	T_RECV,	   T_RECV,
	T_RECV,	      T_RECV,	    T_RECV,	  T_SENDMSG, T_SENDMSG, T_SENDMSG, T_RECVMSG,
	T_RECVMSG,    T_RECVMSG,    T_RECVMSG,	  T_POLL,    T_POLL,	T_IOCTL,   T_SHUTDOWN,
	T_SETSOCKOPT, T_SETSOCKOPT, T_GETSOCKOPT, T_GETSOCKOPT, T_CLOSE, T_CORRUPT, T_CORRUPT,
	T_CORRUPT,    T_CORRUPT,    T_CORRUPT,	  T_CORRUPT,
};

void tro_tipc_begin(struct tro_state *st)
{
	memset(&tt, 0, offsetof(struct tro_tipc, q));
	for (int e = 0; e < 2; e++) {
		struct sockaddr_tipc a;
		socklen_t len = sizeof(a);
		memset(&a, 0, sizeof(a));
		if (usp_getsockname(st->sv[e], (struct sockaddr *)&a, &len) != 0 ||
		    a.family != AF_TIPC || a.addrtype != TIPC_SOCKET_ADDR)
			violation(st, "getsockname of end %d: family %u addrtype %u", e, a.family,
				  a.addrtype);
		tt.port[e] = a.addr.id.ref;
		tt.est[e] = true;
		tt.dest_droppable[e] = !conn(st); /* tipc_sk_create() */
		tt.src_droppable[e] = st->type == SOCK_DGRAM;
		tt.conn_timeout[e] = 8000;
		tt.q[e].ok = true;
		tt.q[e].off = 0;
		tt.q[e].first = tt.q[e].count = 0;
	}
	if (tt.port[0] == tt.port[1])
		violation(st, "both ends have port %#x", tt.port[0]);
	tt.nobody = tt.port[0] ^ tt.port[1] ^ 0x5a5a5a5a;
	while (tt.nobody == tt.port[0] || tt.nobody == tt.port[1] || tt.nobody == 0)
		tt.nobody++;
	st->tipc = &tt;
}

bool tro_tipc_step(struct tro_state *st, struct tro_in *in, uint8_t code)
{
	switch (tipc_op_table[code % 32]) {
	case T_SEND:
		op_send(st, in, false);
		break;
	case T_SENDMSG:
		op_send(st, in, true);
		break;
	case T_RECV:
		op_recv(st, in, false);
		break;
	case T_RECVMSG:
		op_recv(st, in, true);
		break;
	case T_POLL:
		op_poll(st, in);
		break;
	case T_IOCTL:
		op_ioctl(st, in);
		break;
	case T_SHUTDOWN:
		op_shutdown(st, in);
		break;
	case T_SETSOCKOPT:
		op_setsockopt(st, in);
		break;
	case T_GETSOCKOPT:
		op_getsockopt(st, in);
		break;
	case T_CLOSE:
		op_close(st, in);
		break;
	default:
		return false;
	}
	return true;
}
