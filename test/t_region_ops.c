/*
 * Hostile-peer operation decoder: see t_region_ops.h.  This file has the
 * input format, the AF_UNIX ops and rules, the corruption writes and the
 * driver; t_region_tipc.c the AF_TIPC ops, their model and rules
 * (t_region_int.h is what the two share).
 *
 * Input format (every byte string is valid; reads past the end give 0):
 *   byte 0        b & 0x20 clear: an AF_UNIX pair, type = b % 3 (STREAM,
 *                 SEQPACKET, DGRAM);
 *                 b & 0x20 set: an AF_TIPC pair, type = b & 3 (STREAM,
 *                 SEQPACKET, RDM, DGRAM);
 *                 b & 4: create the pair with SOCK_NONBLOCK (every call
 *                 passes MSG_DONTWAIT anyway)
 *   then ops      one opcode byte each, then its argument bytes; at most
 *                 TRO_MAX_OPS ops
 * Format change (AF_TIPC pairs): bit 0x20 of byte 0 was unused before; it
 * is clear in every AF_UNIX seed of fuzz/corpus/region_fuzz, which decode
 * exactly as before (AF_UNIX pairs keep their op table, field list and
 * values; what an AF_TIPC pair adds is in tables of its own).  An old
 * input with that bit set now makes an AF_TIPC pair.
 *
 * AF_UNIX ops: send, recv, sendmsg, recvmsg (sizes, MSG_PEEK/MSG_TRUNC/
 * MSG_WAITALL, one to four iovecs), poll(0), FIONREAD, SIOCOUTQ, shutdown,
 * setsockopt SO_SNDBUF/SO_RCVBUF/SO_PEEK_OFF, close of one end, and
 * corruption writes into the region: any field of the header, the
 * endpoints and the rings (named in `fields_unix` below) set to a value
 * derived from its own or another field's value, the header {len, kind}
 * of the n-th record from a queue's head, raw bytes of the control
 * structures, raw bytes of ring data near the head.
 *
 * AF_TIPC ops (t_region_tipc.c): send and sendmsg (to the connected peer,
 * or to an explicit address: the peer's port, the sender's own port, a
 * port of no one, another node; sometimes without MSG_NOSIGNAL), recv,
 * recvfrom and recvmsg (MSG_PEEK/MSG_EOR/MSG_WAITALL/MSG_TRUNC, one to
 * four iovecs, no control buffer or one of several sizes, with or
 * without msg_name), poll(0), FIONREAD/SIOCOUTQ/SIOCATMARK/SIOCOUTQNSD,
 * shutdown (SHUT_RDWR mostly, other hows), setsockopt SO_RCVBUF/
 * SO_SNDBUF/SO_PEEK_OFF and SOL_TIPC TIPC_IMPORTANCE/TIPC_DEST_DROPPABLE/
 * TIPC_SRC_DROPPABLE/TIPC_NODELAY/TIPC_CONN_TIMEOUT, getsockopt
 * TIPC_SOCK_RECVQ_DEPTH/TIPC_SOCK_RECVQ_USED and the options, close of
 * one end; and the same corruption writes, which on an AF_TIPC pair also
 * reach struct usp_tipc_ep of each endpoint (port, state, flow-control
 * counters and windows, rcvbuf, importance, droppable flags, Nagle
 * counters, connected address, pending release), the header's tipc_type
 * and head_marked (`fields_tipc`), write record kinds TIPC rings hold or
 * must refuse (USP_REC_TIPC_ERR, USP_REC_KERNEL, USP_REC_OOB, the
 * USP_REC_TIPC_* and USP_REC_PEEKED flag bits), and the {err, port} head
 * of a rejection's payload.
 *
 * Not written: the two lock words of each endpoint (the rest of their
 * lines is).  A peer that scribbles over a lock word can make the other
 * end wait for the lock, for good if the word names a live process, which
 * is known difference 10 in docs/DESIGN.md; a fuzzer that wrote them
 * would find only that hang (test/lock "lock lines" writes the rest of
 * the lines while the locks are in use).
 *
 * The rules, checked after every call.  "Corrupted" means this input has
 * written into the region (the library may not have noticed); "dead"
 * means some call on this pair has failed with EIO.
 *  1. No sanitizer report, no crash, no hang (every call is non-blocking:
 *     MSG_DONTWAIT, poll timeout 0; libFuzzer's -timeout or the test's
 *     alarm catches a hang).
 *  2. Never EIO before the region was corrupted: legitimate traffic must
 *     never look corrupt.
 *  3. A call that fails gives EIO (only once corrupted) or an errno that
 *     the same call can give on a Linux AF_UNIX socketpair of that type
 *     with these arguments in *some* state (`legit_errno`): a corrupted
 *     index may make the library believe any legitimate state (peer
 *     closed, queue full, shut down), but it must never make up an errno
 *     the kernel could not give, e.g. a garbage SO_ERROR value.  Since the
 *     arguments are always valid (good buffers, no MSG_OOB, no control
 *     data), argument errors are never legitimate, and state-dependent
 *     ones are: STREAM send EAGAIN EPIPE ECONNRESET; SEQPACKET send also
 *     EMSGSIZE; DGRAM send EAGAIN EPIPE EMSGSIZE ECONNREFUSED ENOTCONN
 *     (never ECONNRESET: Linux sets it on STREAM and SEQPACKET peers only);
 *     receive EAGAIN, and ECONNRESET except on DGRAM.  shutdown and
 *     setsockopt must succeed, ioctl must succeed with a value in
 *     [0, 4 * USP_MAX_SNDBUF].
 *  4. Successful results are in range: a send returns at most its length
 *     (SEQPACKET/DGRAM exactly it), a receive at most its buffer (with
 *     MSG_TRUNC on SEQPACKET/DGRAM at most USP_MAX_SNDBUF), poll returns
 *     0 or 1 with revents within the events asked plus POLLERR|POLLHUP.
 *  5. Before corruption and before any close, received data is what was
 *     sent: every non-peeking STREAM receive returns the next bytes of the
 *     sender's stream; every non-peeking SEQPACKET/DGRAM receive returns
 *     the next message (length, content, MSG_TRUNC).
 *  6. Once dead, every later send/recv/sendmsg/recvmsg on either end fails
 *     with EIO and poll on either end reports POLLERR|POLLHUP.
 *  7. No SIGPIPE (every send passes MSG_NOSIGNAL), and closing both ends
 *     succeeds.
 *  8. Closing both ends unmaps the region (no reference is leaked).
 *
 * AF_TIPC rules (t_region_tipc.c; from src/tipc.c, net/tipc/socket.c and
 * docs/DESIGN.md "AF_TIPC pairs").  Rules 1, 2, 4 (ranges), 6 and 8 hold
 * as above, with argument errors coming before EIO as in tipc.c.  Rule 3
 * becomes T1-T9: an answer must be one TIPC can give on a pair in some
 * state; where the state is known (before corruption and before any
 * close) it must be the one TIPC gives in that state.
 *  T1. Argument errors first, dead pair or not: a SEQPACKET/RDM/DGRAM send
 *      over 66000 bytes EMSGSIZE, a receive into 0 bytes EINVAL; an
 *      RDM/DGRAM send to another node EHOSTUNREACH (or EIO once
 *      corrupted).
 *  T2. STREAM/SEQPACKET send: EAGAIN (the window) only while established,
 *      EPIPE only once disconnecting (after a shutdown of either end),
 *      ENOBUFS (a full ring) and ECONNRESET (a pending error, which a
 *      recvmmsg can leave) only once corrupted.  RDM/DGRAM send never
 *      fails (a message over the queue limit or to a port of no one is
 *      dropped or comes back), except, once corrupted, EDESTADDRREQ and
 *      EHOSTUNREACH for one without an address (the default destination
 *      lives in the region, and connect() can make those).  No SIGPIPE
 *      ever, although some sends leave out MSG_NOSIGNAL.
 *  T3. A send returns its length (STREAM: or whole 66000-byte messages of
 *      it), and fails with EPIPE on a disconnecting socket.
 *  T4. Receive: EAGAIN; ECONNRESET only on STREAM/SEQPACKET (a rejection
 *      that is not a FIN, read without a control buffer, or a pending
 *      error) and only after a close (a peer release) or corruption;
 *      ENOTCONN only after its own shutdown or corruption.
 *  T5. A receive returns at most its buffer; msg_flags within MSG_TRUNC,
 *      MSG_EOR, MSG_CTRUNC (STREAM: MSG_CTRUNC only); msg_controllen at
 *      most the buffer; msg_name a TIPC socket address on node 0.
 *  T6. Rule 5, by the model of each receive queue (t_region_tipc.c):
 *      messages in order, zero-length ones never delivered, rejections
 *      (a FIN to a peer still established, messages back from a full
 *      queue, a port of no one or an RDM/DGRAM shutdown, which returns
 *      the messages a socket sent itself to itself) with their error
 *      code, port and returned data;
 *      each receive's count or errno, MSG_TRUNC/MSG_EOR/MSG_CTRUNC,
 *      sender port in msg_name, TIPC_ERRINFO/TIPC_RETDATA bytes and data
 *      bytes (peeks too) are what the model predicts.  RDM/DGRAM queue
 *      limits are observed (the rings' tails after a send), not predicted.
 *  T7. ioctl FIONREAD/SIOCOUTQ/SIOCATMARK/SIOCOUTQNSD: ENOTTY.  shutdown:
 *      EINVAL unless SHUT_RDWR; then 0 on STREAM/SEQPACKET and ENOTCONN
 *      on RDM/DGRAM (EIO once dead).
 *  T8. poll as tipc_poll() on the model's state (POLLOUT of a connected
 *      STREAM/SEQPACKET socket, the window, excepted).
 *  T9. Options answer as TIPC's whatever the region says: setsockopt
 *      TIPC_IMPORTANCE above 3 EINVAL, TIPC_SRC_DROPPABLE on STREAM
 *      ENOPROTOOPT, SO_PEEK_OFF EOPNOTSUPP, the rest 0; getsockopt 0 with
 *      4 bytes (TIPC_NODELAY: EINVAL), TIPC_SOCK_RECVQ_DEPTH the model's
 *      count, TIPC_SOCK_RECVQ_USED not 0 exactly when something is queued
 *      and at most 4 * USP_MAX_SNDBUF, the options as set (before
 *      corruption; after it, TIPC_IMPORTANCE and TIPC_CONN_TIMEOUT are the
 *      region's words, unchecked).
 * A corruption write that sets an endpoint's kernel_mode makes the pair
 * what a peer's usp_fallback() makes it (known difference 16): from then
 * on, until the pair answers EIO, TIPC's answers or those of an AF_UNIX
 * pair of the backing type (SOCK_STREAM for STREAM, SOCK_SEQPACKET for the
 * others) are both accepted, SIGPIPE included.
 */
#include "t_region_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "t_region_int.h"

/* A size: mostly small, sometimes one of the family's edges (page and
 * record boundaries; for AF_TIPC its limits: t_region_tipc.c), rarely
 * large. */
static size_t tro_in_size(struct tro_state *st, struct tro_in *in)
{
	uint8_t cls = in8(in);
	uint16_t v = in16(in);
	switch (cls & 7) {
	case 0:
	case 1:
	case 2:
		return v & 63;
	case 3:
		return v & 1023;
	case 4:
		return v & 8191;
	case 5:
		return st->size_edges[v % st->n_size_edges];
	case 6:
		return v;
	default:
		return ((size_t)v << 2) % TRO_BUF;
	}
}

size_t tro_in_lens(struct tro_state *st, struct tro_in *in, size_t *lens, int cnt)
{
	size_t total = 0;
	for (int i = 0; i < cnt; i++) {
		lens[i] = tro_in_size(st, in);
		if (total + lens[i] > TRO_BUF)
			lens[i] = TRO_BUF - total;
		total += lens[i];
	}
	return total;
}

void tro_fill_iov(struct iovec *iov, unsigned char *buf, const size_t *lens, int cnt)
{
	size_t off = 0;
	for (int i = 0; i < cnt; i++) {
		iov[i].iov_base = buf + off;
		iov[i].iov_len = lens[i];
		off += lens[i];
	}
}

/* ---- per-run state (struct tro_state: t_region_int.h) ---- */

unsigned char tro_sendbuf[TRO_BUF], tro_recvbuf[TRO_BUF];
static atomic_ulong tro_sigpipes;

static void tro_count_sigpipe(int sig)
{
	(void)sig;
	atomic_fetch_add(&tro_sigpipes, 1);
}

static const char *tro_type_name(const struct tro_state *st)
{
	switch (st->type) {
	case SOCK_STREAM:
		return st->tipc ? "TIPC STREAM" : "STREAM";
	case SOCK_SEQPACKET:
		return st->tipc ? "TIPC SEQPACKET" : "SEQPACKET";
	case SOCK_RDM:
		return "TIPC RDM";
	default:
		return st->tipc ? "TIPC DGRAM" : "DGRAM";
	}
}

void tro_violation(struct tro_state *st, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "region_ops VIOLATION (%s, step %d, %s, corrupted=%d dead=%d): ",
		tro_type_name(st), st->step, st->op ? st->op : "?", st->corrupted, st->dead);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	st->violations++;
}

void tro_trace(struct tro_state *st, const char *fmt, ...)
{
	if (!st->verbose)
		return;
	va_list ap;
	fprintf(stderr, "  [%d] ", st->step);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the rules ---- */

enum call_kind { C_SEND, C_RECV };

static bool legit_errno(const struct tro_state *st, enum call_kind k, int err)
{
	if (k == C_RECV)
		return err == EAGAIN || (err == ECONNRESET && st->type != SOCK_DGRAM);
	switch (st->type) {
	case SOCK_STREAM:
		return err == EAGAIN || err == EPIPE || err == ECONNRESET;
	case SOCK_SEQPACKET:
		return err == EAGAIN || err == EPIPE || err == ECONNRESET || err == EMSGSIZE;
	default:
		return err == EAGAIN || err == EPIPE || err == EMSGSIZE ||
		       err == ECONNREFUSED || err == ENOTCONN;
	}
}

/* Rules 2, 3 and 6 for a data call that returned r (errno err). */
static void check_data_call(struct tro_state *st, enum call_kind k, ssize_t r, int err)
{
	if (st->dead) {
		if (r >= 0 || err != EIO)
			violation(st, "pair already answered EIO, this call gave %zd (%s)", r,
				  r < 0 ? strerror(err) : "success");
		return;
	}
	if (r >= 0)
		return;
	if (err == EIO) {
		if (!st->corrupted)
			violation(st, "EIO but the region was never written");
		st->dead = true;
		st->stats->eio_pairs++;
		return;
	}
	if (!legit_errno(st, k, err))
		violation(st, "errno %d (%s) is not one this call can give", err, strerror(err));
	/* the kernel drops a DGRAM socket's own queue when it learns that its
	 * peer is gone (unix_dgram_disconnected) */
	if (err == ECONNREFUSED)
		st->model_ok = false;
}

void tro_check_poll_dead(struct tro_state *st)
{
	for (int e = 0; e < 2; e++) {
		if (!st->open[e])
			continue;
		struct pollfd p = {.fd = st->sv[e], .events = POLLIN | POLLOUT};
		int r = usp_poll(&p, 1, 0);
		st->stats->calls++;
		if (r != 1 || (p.revents & (POLLERR | POLLHUP)) != (POLLERR | POLLHUP))
			violation(st, "after EIO, poll of end %d gave %d revents %#x", e, r,
				  (unsigned)p.revents);
	}
}

/* ---- data calls ---- */

/* Fill `len` bytes of what end e sends next (to the other end). */
static void fill_send(struct tro_state *st, int e, size_t len)
{
	struct tro_dir *d = &st->to[other(e)];
	if (st->type == SOCK_STREAM) {
		for (size_t i = 0; i < len; i++)
			tro_sendbuf[i] = stream_byte(other(e), d->sent + i);
	} else {
		uint64_t k = d->msg_first + d->msg_count;
		for (size_t i = 0; i < len; i++)
			tro_sendbuf[i] = msg_byte(other(e), k, i);
	}
}

static void note_sent(struct tro_state *st, int e, size_t len, ssize_t r)
{
	struct tro_dir *d = &st->to[other(e)];
	if (r < 0)
		return;
	if ((size_t)r > len || (st->type != SOCK_STREAM && (size_t)r != len)) {
		violation(st, "send of %zu returned %zd", len, r);
		return;
	}
	if (st->type == SOCK_STREAM) {
		d->sent += (size_t)r;
		return;
	}
	if (d->msg_count == TRO_MAX_MSGS) {
		st->model_ok = false;
		return;
	}
	d->msg_len[(d->msg_first + d->msg_count) % TRO_MAX_MSGS] = (uint32_t)len;
	d->msg_count++;
}

/* Rule 4 and 5 for a receive on end e that returned r into tro_recvbuf. */
static void note_received(struct tro_state *st, int e, size_t cap, int flags, ssize_t r,
			  int msg_flags, bool have_msg_flags)
{
	if (r < 0)
		return;
	bool truncating = (flags & MSG_TRUNC) && st->type != SOCK_STREAM;
	if ((size_t)r > (truncating ? USP_MAX_SNDBUF : cap)) {
		violation(st, "receive into %zu bytes returned %zd", cap, r);
		return;
	}
	/* MSG_CTRUNC: the peer may have switched on our SO_PASSCRED or
	 * SO_PASSPIDFD (usp_endpoint.pass_flags), a state Linux can be in */
	if (have_msg_flags && (msg_flags & ~(MSG_TRUNC | MSG_CTRUNC)))
		violation(st, "msg_flags %#x", (unsigned)msg_flags);
	if (!st->model_ok || st->corrupted || (flags & MSG_PEEK))
		return;
	struct tro_dir *d = &st->to[e];
	size_t got = (size_t)r < cap ? (size_t)r : cap;
	if (st->type == SOCK_STREAM) {
		if (d->received + (uint64_t)r > d->sent) {
			violation(st, "received %zd bytes, only %llu unread were sent", r,
				  (unsigned long long)(d->sent - d->received));
			return;
		}
		for (size_t i = 0; i < got; i++)
			if (tro_recvbuf[i] != stream_byte(e, d->received + i)) {
				violation(st, "stream byte %llu differs",
					  (unsigned long long)(d->received + i));
				break;
			}
		d->received += (uint64_t)r;
		st->stats->data_checked += got;
		return;
	}
	if (r == 0 && d->msg_count == 0)
		return; /* SEQPACKET end of file */
	if (d->msg_count == 0) {
		violation(st, "received a %zd-byte message, none was sent", r);
		return;
	}
	uint64_t k = d->msg_first;
	size_t len = d->msg_len[k % TRO_MAX_MSGS];
	d->msg_first++;
	d->msg_count--;
	size_t want = truncating ? len : len < cap ? len : cap;
	if ((size_t)r != want) {
		violation(st, "message %llu of %zu bytes: received %zd into %zu (flags %#x)",
			  (unsigned long long)k, len, r, cap, (unsigned)flags);
		return;
	}
	if (have_msg_flags && !!(msg_flags & MSG_TRUNC) != (len > cap))
		violation(st, "message %llu of %zu bytes into %zu: msg_flags %#x",
			  (unsigned long long)k, len, cap, (unsigned)msg_flags);
	size_t n = len < cap ? len : cap;
	for (size_t i = 0; i < n; i++)
		if (tro_recvbuf[i] != msg_byte(e, k, i)) {
			violation(st, "message %llu byte %zu differs", (unsigned long long)k, i);
			break;
		}
	st->stats->data_checked += n;
}

static int send_flags(uint8_t b)
{
	(void)b;
	return MSG_DONTWAIT | MSG_NOSIGNAL;
}

static int recv_flags(uint8_t b)
{
	int f = MSG_DONTWAIT;
	if (b & 2)
		f |= MSG_PEEK;
	if (b & 4)
		f |= MSG_TRUNC;
	if (b & 8)
		f |= MSG_WAITALL;
	return f;
}

static void op_send(struct tro_state *st, struct tro_in *in, bool vectored)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	size_t lens[4] = {0};
	int cnt = vectored ? 1 + (b >> 1) % 4 : 1;
	size_t total = tro_in_lens(st, in, lens, cnt);
	if (e < 0)
		return;
	fill_send(st, e, total);
	int flags = send_flags(b);
	ssize_t r;
	errno = 0;
	if (vectored) {
		struct iovec iov[4];
		tro_fill_iov(iov, tro_sendbuf, lens, cnt);
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
		st->op = "sendmsg";
		r = usp_sendmsg(st->sv[e], &msg, flags);
	} else {
		st->op = "send";
		r = usp_send(st->sv[e], tro_sendbuf, total, flags);
	}
	int err = errno;
	st->stats->calls++;
	trace(st, "%s end %d len %zu (%d iov) = %zd %s", st->op, e, total, cnt, r,
	      r < 0 ? strerror(err) : "");
	check_data_call(st, C_SEND, r, err);
	if (!st->dead)
		note_sent(st, e, total, r);
}

static void op_recv(struct tro_state *st, struct tro_in *in, bool vectored)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	size_t lens[4] = {0};
	int cnt = vectored ? 1 + (b >> 4) % 4 : 1;
	size_t total = tro_in_lens(st, in, lens, cnt);
	if (e < 0)
		return;
	int flags = recv_flags(b);
	ssize_t r;
	int msg_flags = 0;
	errno = 0;
	if (vectored) {
		struct iovec iov[4];
		tro_fill_iov(iov, tro_recvbuf, lens, cnt);
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
		st->op = "recvmsg";
		r = usp_recvmsg(st->sv[e], &msg, flags);
		msg_flags = msg.msg_flags;
	} else {
		st->op = "recv";
		r = usp_recv(st->sv[e], tro_recvbuf, total, flags);
	}
	int err = errno;
	st->stats->calls++;
	trace(st, "%s end %d cap %zu flags %#x = %zd %s", st->op, e, total, (unsigned)flags, r,
	      r < 0 ? strerror(err) : "");
	check_data_call(st, C_RECV, r, err);
	if (!st->dead)
		note_received(st, e, total, flags, r, msg_flags, vectored);
}

/* A poll(0) of a picked end, checked against the rules every family has
 * (rule 4, rule 6); the end is returned (-1: none picked) with revents and
 * what it may hold (the events asked for, POLLERR and POLLHUP). */
int tro_poll(struct tro_state *st, struct tro_in *in, unsigned *revents, unsigned *allowed_out)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	if (e < 0)
		return -1;
	static const short evs[] = {POLLIN, POLLOUT, POLLIN | POLLOUT,
				    POLLIN | POLLOUT | POLLRDHUP | POLLPRI, 0};
	struct pollfd p = {.fd = st->sv[e], .events = evs[(b >> 1) % 5]};
	st->op = "poll";
	int r = usp_poll(&p, 1, 0);
	st->stats->calls++;
	trace(st, "poll end %d events %#x = %d revents %#x", e, (unsigned)p.events, r,
	      (unsigned)p.revents);
	unsigned allowed = (unsigned short)p.events | POLLERR | POLLHUP;
	unsigned rev = (unsigned short)p.revents;
	if (r < 0 || r > 1 || (r == 1) != (rev != 0) || (rev & ~allowed))
		violation(st, "poll gave %d revents %#x for events %#x", r, rev, (unsigned)p.events);
	if (st->dead && (rev & (POLLERR | POLLHUP)) != (POLLERR | POLLHUP))
		violation(st, "after EIO, poll revents %#x", rev);
	*revents = rev;
	*allowed_out = allowed;
	return e;
}

static void op_poll(struct tro_state *st, struct tro_in *in)
{
	unsigned rev, allowed;
	tro_poll(st, in, &rev, &allowed);
}

static void op_ioctl(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	if (e < 0)
		return;
	unsigned long req = (b & 2) ? SIOCOUTQ : FIONREAD;
	int v = -12345;
	st->op = (b & 2) ? "SIOCOUTQ" : "FIONREAD";
	errno = 0;
	int r = usp_ioctl(st->sv[e], req, &v);
	int err = errno;
	st->stats->calls++;
	trace(st, "%s end %d = %d value %d", st->op, e, r, v);
	if (r != 0 || v < 0 || (uint64_t)v > 4ull * USP_MAX_SNDBUF)
		violation(st, "ioctl gave %d (%s) value %d", r, r ? strerror(err) : "", v);
}

static void op_shutdown(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	if (e < 0)
		return;
	int how = (b >> 1) % 3;
	st->op = "shutdown";
	errno = 0;
	int r = usp_shutdown(st->sv[e], how);
	int err = errno;
	st->stats->calls++;
	trace(st, "shutdown end %d how %d = %d", e, how, r);
	if (r != 0)
		violation(st, "shutdown gave %d (%s)", r, strerror(err));
}

static void op_setsockopt(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	uint32_t raw = in32(in);
	if (e < 0)
		return;
	int opt, v;
	switch ((b >> 1) % 3) {
	case 0:
		opt = SO_SNDBUF;
		v = (b & 8) ? (int)(raw % (16u << 20)) : (int)(raw % 65536);
		st->op = "SO_SNDBUF";
		break;
	case 1:
		opt = SO_RCVBUF;
		v = (int)(raw % (4u << 20));
		st->op = "SO_RCVBUF";
		break;
	default:
		opt = SO_PEEK_OFF;
		v = (b & 8) ? -1 : (int)(raw % 70000);
		st->op = "SO_PEEK_OFF";
		break;
	}
	errno = 0;
	int r = usp_setsockopt(st->sv[e], SOL_SOCKET, opt, &v, sizeof(v));
	int err = errno;
	st->stats->calls++;
	trace(st, "setsockopt %s end %d %d = %d", st->op, e, v, r);
	if (r != 0)
		violation(st, "setsockopt gave %d (%s)", r, strerror(err));
	if (opt == SO_PEEK_OFF)
		st->peek_off_on[e] = v >= 0;
}

int tro_close(struct tro_state *st, struct tro_in *in)
{
	uint8_t b = in8(in);
	int e = pick_end(st, b);
	/* keep one end: the rules are about answers */
	if (e < 0 || !st->open[other(e)])
		return -1;
	st->op = "close";
	int r = usp_close(st->sv[e]);
	st->stats->calls++;
	trace(st, "close end %d = %d", e, r);
	if (r != 0)
		violation(st, "close gave %d (%s)", r, strerror(errno));
	st->open[e] = false;
	st->model_ok = false; /* the closed end's queue is gone */
	return e;
}

/* ---- corruption ---- */

#define F_SHM(f, n) {n, offsetof(struct usp_shared, f), sizeof(((struct usp_shared *)0)->f)}
#define F_EP(i, f) F_SHM(ep[i].f, "ep" #i "." #f)
#define F_RING(i, f) F_SHM(ring[i].f, "ring" #i "." #f)
#define F_EP_ALL(i)                                                                  \
	F_EP(i, event_seq), F_EP(i, sleepers), F_EP(i, room_seq),                  \
		F_EP(i, room_sleepers), F_EP(i, data_sleep_since_ns), F_EP(i, pollers), \
		F_EP(i, token_sent), F_EP(i, state), F_EP(i, shutdown),              \
		F_EP(i, sk_err), F_EP(i, dgram_state),                               \
		F_EP(i, reset_on_release), F_EP(i, nonblock), F_EP(i, sndbuf),       \
		F_EP(i, rcvbuf), F_EP(i, rcvlowat), F_EP(i, peek_off),               \
		F_EP(i, rcvtimeo_us), F_EP(i, sndtimeo_us), F_EP(i, holders),       \
		F_EP(i, kernel_mode), F_EP(i, kernel_synced), F_EP(i, flush_wanted), F_EP(i, junk_sent),    \
		F_EP(i, junk_eaten)
#define F_RING_ALL(i)                                                                 \
	F_RING(i, tail), F_RING(i, charged), F_RING(i, bytes_in), F_RING(i, seen_head), \
		F_RING(i, seen_released), F_RING(i, head), F_RING(i, released),         \
		F_RING(i, bytes_out), F_RING(i, head_used)

#define F_TIPC(i, f) F_SHM(ep[i].tipc.f, "ep" #i ".tipc." #f)
#define F_TIPC_ALL(i)                                                                 \
	F_TIPC(i, port), F_TIPC(i, state), F_TIPC(i, snt_unacked), F_TIPC(i, snd_win),  \
		F_TIPC(i, rcv_unacked), F_TIPC(i, rcv_win), F_TIPC(i, rcvbuf),         \
		F_TIPC(i, importance), F_TIPC(i, src_droppable),                      \
		F_TIPC(i, dest_droppable), F_TIPC(i, conn_timeout), F_TIPC(i, nodelay), \
		F_TIPC(i, oneway), F_TIPC(i, nagle_start), F_TIPC(i, dest_family),    \
		F_TIPC(i, dest_addrtype), F_TIPC(i, dest_addr[0]),                    \
		F_TIPC(i, dest_addr[1]), F_TIPC(i, dest_addr[2]),                     \
		F_TIPC(i, release_pending)
#define F_UNIX_ALL                                                            \
	F_RING_ALL(0), F_RING_ALL(1), F_EP_ALL(0), F_EP_ALL(1), F_SHM(magic, "magic"), \
		F_SHM(type, "type"), F_SHM(corrupt, "corrupt")

/* AF_UNIX pairs: this list and its order are part of the input format */
static const struct tro_field fields_unix[] = {F_UNIX_ALL};
/* AF_TIPC pairs: the same, then TIPC's endpoint state and type word */
static const struct tro_field fields_tipc[] = {
	F_UNIX_ALL,
	F_TIPC_ALL(0),
	F_TIPC_ALL(1),
	F_SHM(tipc_type, "tipc_type"),
	F_RING(0, head_marked),
	F_RING(1, head_marked),
};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t field_get(struct tro_state *st, const struct tro_field *f)
{
	unsigned char *p = (unsigned char *)st->shm + f->off;
	if (f->size == 8)
		return atomic_load((_Atomic uint64_t *)p);
	return atomic_load((_Atomic uint32_t *)p);
}

static void field_set(struct tro_state *st, const struct tro_field *f, uint64_t v)
{
	unsigned char *p = (unsigned char *)st->shm + f->off;
	if (f->size == 8)
		atomic_store((_Atomic uint64_t *)p, v);
	else
		atomic_store((_Atomic uint32_t *)p, (uint32_t)v);
}

#define INTERESTING_UNIX                                                                  \
	0, 1, 2, 3, 7, 8, 9, 16, 32, 64, 4096, 65536, 0x7fffffff, 0x80000000u, 0xffffffffu, \
		0xfffffff8u, UINT64_MAX, UINT64_MAX - 7, 1ull << 63, USP_RING_BYTES,         \
		USP_RING_BYTES - 8, USP_RING_BYTES + 8, 2ull * USP_RING_BYTES, USP_MAX_SNDBUF, \
		USP_MAX_SNDBUF + 1, 4ull * USP_MAX_SNDBUF, 4ull * USP_MAX_SNDBUF + 1,          \
		USP_RING_HOT_BYTES, USP_RING_HOT_BYTES + 8, ECONNRESET, EPIPE, EIO, 12345

/* AF_UNIX pairs: this list and its order are part of the input format */
static const uint64_t interesting_unix[] = {INTERESTING_UNIX};
/* sizes around pages, records and the default send buffers */
static const size_t size_edges_unix[] = {0,    1,     7,     8,	    9,	    4096,  4095,
					 4097, 16384, 65536, 65535, 212960, 212992};
/* AF_TIPC pairs: the same, then values TIPC's state and records hold:
 * states, error codes, windows (blocks), message limits, importances */
static const uint64_t interesting_tipc[] = {
	INTERESTING_UNIX,
	4, 5, 6, 128, 512, 1024, 1025, 1032, 1500, 66000, 66001, 0x7ffffffe, 0xfffffffeu,
	(uint64_t)INT32_MIN, 2u << 20, 16u << 20, (16u << 20) + 1, 0x100, 0x200, 0x400, 0x800,
};

static uint64_t derive_value(struct tro_state *st, struct tro_in *in, uint64_t cur)
{
	uint8_t mode = in8(in);
	switch (mode % 8) {
	case 0:
		return cur + (uint64_t)(int64_t)(int8_t)in8(in);
	case 1:
		return cur + 8 * (uint64_t)(int64_t)(int8_t)in8(in);
	case 2:
		return cur + (uint64_t)(int64_t)(int8_t)in8(in) * USP_RING_BYTES;
	case 3:
		return in64(in);
	case 4:
		return st->interesting[in8(in) % st->n_interesting];
	case 5: {
		/* another field's value, nudged: e.g. tail = head + 8 */
		const struct tro_field *f = &st->fields[in8(in) % st->n_fields];
		return field_get(st, f) + 8 * (uint64_t)(int64_t)(int8_t)in8(in);
	}
	case 6:
		return cur ^ (1ull << (in8(in) % 64));
	default:
		return cur + (uint64_t)(int64_t)(int16_t)in16(in);
	}
}

static unsigned char *ring_data(struct tro_state *st, int q)
{
	return (unsigned char *)st->shm + USP_DATA_OFFSET + (size_t)q * USP_RING_BYTES;
}

static bool in_lock(size_t off)
{
	for (int i = 0; i < 2; i++) {
		size_t s = offsetof(struct usp_shared, ep[i].send_lock);
		size_t r = offsetof(struct usp_shared, ep[i].recv_lock);
		if ((off >= s && off < s + sizeof(struct usp_lock)) ||
		    (off >= r && off < r + sizeof(struct usp_lock)))
			return true;
	}
	return false;
}

/* AF_TIPC: a record kind from those a TIPC ring holds or must refuse,
 * with the flag bits that apply to them */
static uint32_t tipc_kind(uint8_t b)
{
	static const uint32_t base[] = {USP_REC_DATA, USP_REC_TIPC_ERR, USP_REC_WRAP,
					USP_REC_KERNEL, USP_REC_OOB, USP_REC_DATA,
					USP_REC_TIPC_ERR, 6};
	static const uint32_t flags[] = {0,
					 USP_REC_TIPC_DROPPABLE,
					 USP_REC_TIPC_SELF,
					 USP_REC_TIPC_NAGLE,
					 USP_REC_PEEKED,
					 USP_REC_TIPC_DROPPABLE | USP_REC_TIPC_SELF,
					 USP_REC_TIPC_FLAGS | USP_REC_PEEKED,
					 0x1000};
	return base[b & 7] | flags[(b >> 3) & 7];
}

static void corrupt_err_head(struct tro_state *st, struct tro_in *in, unsigned char *p)
{
	uint8_t how = in8(in);
	uint32_t v[2];
	memcpy(v, p, sizeof(v));
	uint32_t old_err = v[0], old_port = v[1];
	if (how & 1) /* the TIPC error code: valid ones are 1..5 */
		v[0] = (how & 2) ? (uint32_t)in8(in) % 8 : (uint32_t)derive_value(st, in, v[0]);
	if (how & 4) { /* the rejecting port: one of the pair's, or another */
		uint32_t ports[2] = {atomic_load(&st->shm->ep[0].tipc.port),
				     atomic_load(&st->shm->ep[1].tipc.port)};
		v[1] = (how & 8) ? ports[(how >> 4) & 1] : in32(in);
	}
	memcpy(p, v, sizeof(v));
	trace(st, "corrupt record err head {%u,%#x} -> {%u,%#x}", old_err, old_port, v[0], v[1]);
}

static void op_corrupt(struct tro_state *st, struct tro_in *in)
{
	uint8_t what = in8(in);
	st->op = "corrupt";
	st->corrupted = true;
	st->stats->corruptions++;
	switch (what % 5) {
	case 0:
	case 1: { /* a named field */
		const struct tro_field *f = &st->fields[in8(in) % st->n_fields];
		uint64_t cur = field_get(st, f);
		uint64_t v = derive_value(st, in, cur);
		field_set(st, f, v);
		trace(st, "corrupt %s: %#llx -> %#llx", f->name, (unsigned long long)cur,
		      (unsigned long long)v);
		break;
	}
	case 2: { /* the header of the n-th record from the head */
		int q = in8(in) & 1;
		unsigned n = in8(in) % 8;
		uint8_t which = in8(in);
		unsigned char *data = ring_data(st, q);
		uint64_t pos = atomic_load(&st->shm->ring[q].head);
		/* walk as a reader would, but defensively: this is the attacker */
		for (unsigned i = 0; i < n; i++) {
			struct usp_rec_hdr h;
			memcpy(&h, data + (pos & USP_RING_MASK & ~7ull), sizeof(h));
			if (h.kind == USP_REC_WRAP)
				pos = (pos | USP_RING_MASK) + 1;
			else
				pos += USP_REC_HDR + (((uint64_t)h.len + 7) & ~7ull);
		}
		size_t off = pos & USP_RING_MASK & ~7ull;
		struct usp_rec_hdr h;
		memcpy(&h, data + off, sizeof(h));
		struct usp_rec_hdr old = h;
		if (which & 1)
			h.len = (uint32_t)derive_value(st, in, h.len);
		if (which & 2)
			h.kind = !(which & 4)  ? (uint32_t)derive_value(st, in, h.kind)
				 : st->tipc ? tipc_kind(in8(in))
					    : (uint32_t)in8(in) % 4;
		if (!(which & 3))
			h.kind = USP_REC_WRAP;
		memcpy(data + off, &h, sizeof(h));
		trace(st, "corrupt ring%d record %u at %#zx: {%u,%#x} -> {%u,%#x}", q, n, off,
		      old.len, old.kind, h.len, h.kind);
		/* AF_TIPC: the {err, port} head of a USP_REC_TIPC_ERR record's
		 * payload (what a USP_REC_DATA record has there, else) */
		if (st->tipc && (which & 8) && off + USP_REC_HDR + 8 <= USP_RING_BYTES)
			corrupt_err_head(st, in, data + off + USP_REC_HDR);
		break;
	}
	case 3: { /* raw bytes of the control structures, locks excepted */
		size_t off = in16(in) % sizeof(struct usp_shared);
		unsigned cnt = 1 + in8(in) % 8;
		for (unsigned i = 0; i < cnt && off + i < sizeof(struct usp_shared); i++) {
			uint8_t v = in8(in);
			if (!in_lock(off + i))
				((volatile unsigned char *)st->shm)[off + i] = v;
		}
		trace(st, "corrupt %u raw bytes at header offset %#zx", cnt, off);
		break;
	}
	default: { /* raw bytes of ring data near the head */
		int q = in8(in) & 1;
		uint64_t head = atomic_load(&st->shm->ring[q].head);
		size_t off = (size_t)((head + in16(in) % 1024) & USP_RING_MASK);
		uint8_t v = in8(in);
		ring_data(st, q)[off] = v;
		trace(st, "corrupt ring%d data byte at %#zx = %#x", q, off, v);
		break;
	}
	}
}

/* ---- driver ---- */

enum {
	OP_SEND,
	OP_RECV,
	OP_SENDMSG,
	OP_RECVMSG,
	OP_POLL,
	OP_IOCTL,
	OP_SHUTDOWN,
	OP_SETSOCKOPT,
	OP_CLOSE,
	OP_CORRUPT,
	N_OPS
};

/* opcode byte -> op; weights by repetition */
static const unsigned char op_table[32] = {
	OP_SEND,     OP_SEND,     OP_SEND,	  OP_SEND,     OP_RECV,	    OP_RECV,
	OP_RECV,     OP_RECV,     OP_SENDMSG,	  OP_SENDMSG,  OP_RECVMSG,  OP_RECVMSG,
	OP_POLL,     OP_POLL,     OP_IOCTL,	  OP_IOCTL,    OP_SHUTDOWN, OP_SETSOCKOPT,
	OP_SETSOCKOPT, OP_CLOSE,  OP_CORRUPT,	  OP_CORRUPT,  OP_CORRUPT,  OP_CORRUPT,
	OP_CORRUPT,  OP_CORRUPT,  OP_SEND,	  OP_RECV,     OP_POLL,	    OP_RECV,
	OP_SEND,     OP_CORRUPT,
};

static void unix_step(struct tro_state *st, struct tro_in *in, uint8_t code)
{
	switch (op_table[code % 32]) {
	case OP_SEND:
		op_send(st, in, false);
		break;
	case OP_SENDMSG:
		op_send(st, in, true);
		break;
	case OP_RECV:
		op_recv(st, in, false);
		break;
	case OP_RECVMSG:
		op_recv(st, in, true);
		break;
	case OP_POLL:
		op_poll(st, in);
		break;
	case OP_IOCTL:
		op_ioctl(st, in);
		break;
	case OP_SHUTDOWN:
		op_shutdown(st, in);
		break;
	case OP_SETSOCKOPT:
		op_setsockopt(st, in);
		break;
	case OP_CLOSE:
		tro_close(st, in);
		break;
	default:
		op_corrupt(st, in);
		break;
	}
}

bool tro_guard_regions(void)
{
	return usp__region_guard_enable();
}

int tro_run(const uint8_t *data, size_t size, struct tro_stats *stats)
{
	static bool handler_set;
	if (!handler_set) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = tro_count_sigpipe;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGPIPE, &sa, NULL);
		handler_set = true;
	}
	static struct tro_state st; /* big: the message models */
	memset(&st, 0, sizeof(st));
	struct tro_in in = {data, size, 0};
	static const int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
	static const int tipc_types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_RDM, SOCK_DGRAM};
	uint8_t b0 = in8(&in);
	bool tipc = b0 & TRO_B0_TIPC;
	st.type = tipc ? tipc_types[b0 & 3] : types[b0 % 3];
	st.fields = tipc ? fields_tipc : fields_unix;
	st.n_fields = tipc ? N_OF(fields_tipc) : N_OF(fields_unix);
	st.interesting = tipc ? interesting_tipc : interesting_unix;
	st.n_interesting = tipc ? N_OF(interesting_tipc) : N_OF(interesting_unix);
	st.size_edges = tipc ? tro_tipc_size_edges : size_edges_unix;
	st.n_size_edges = tipc ? tro_tipc_n_size_edges : N_OF(size_edges_unix);
	st.stats = stats;
	st.model_ok = true;
	st.verbose = getenv("TRO_VERBOSE") && atoi(getenv("TRO_VERBOSE")) > 0;
	st.peek_off_on[0] = st.peek_off_on[1] = 0;
	stats->inputs++;
	unsigned long pipes_before = atomic_load(&tro_sigpipes);
	if (usp_socketpair(tipc ? AF_TIPC : AF_UNIX, st.type | ((b0 & 4) ? SOCK_NONBLOCK : 0), 0,
			   st.sv) != 0) {
		/* descriptors or memory ran out: not an answer to judge */
		fprintf(stderr, "region_ops: usp_socketpair: %s\n", strerror(errno));
		return 0;
	}
	st.open[0] = st.open[1] = true;
	struct usp_sock s;
	if (!usp__lookup(st.sv[0], &s)) {
		violation(&st, "usp__lookup of a new pair failed");
		return st.violations;
	}
	st.shm = s.shm;
	usp__put(&s);
	if (tipc)
		tro_tipc_begin(&st); /* sets st.tipc */
	trace(&st, "socketpair %s%s", tro_type_name(&st), (b0 & 4) ? " NONBLOCK" : "");

	for (int n = 0; n < TRO_MAX_OPS && in.pos < in.n; n++) {
		st.step = n + 1;
		uint8_t code = in8(&in);
		if (tipc) {
			if (!tro_tipc_step(&st, &in, code))
				op_corrupt(&st, &in);
			/* the descriptors may have become their backing AF_UNIX
			 * sockets (usp__lookup: gone_to_kernel) */
			if (atomic_load(&st.shm->ep[0].kernel_mode) ||
			    atomic_load(&st.shm->ep[1].kernel_mode))
				st.kernel_seen = true;
		} else {
			unix_step(&st, &in, code);
		}
		if (st.dead && st.op && strcmp(st.op, "corrupt") != 0)
			tro_check_poll_dead(&st);
	}
	st.step++;
	st.op = "final close";
	for (int e = 0; e < 2; e++) {
		if (st.open[e] && usp_close(st.sv[e]) != 0)
			violation(&st, "close of end %d: %s", e, strerror(errno));
		st.open[e] = false;
	}
	/* rule 8: the last close unmaps the region or puts it in the
	 * process's region cache (no reference leaks) */
	unsigned char vec;
	if (mincore(st.shm, 4096, &vec) == 0 && !usp__region_cached(st.shm))
		violation(&st, "the region is still mapped after both ends were closed");
	if (atomic_load(&tro_sigpipes) != pipes_before && !(tipc && st.kernel_seen))
		violation(&st, tipc ? "SIGPIPE raised: TIPC never raises it"
				    : "SIGPIPE raised although every send passed MSG_NOSIGNAL");
	return st.violations;
}

void tro_print_input(const uint8_t *data, size_t size)
{
	fprintf(stderr, "input (%zu bytes): \"", size);
	for (size_t i = 0; i < size; i++)
		fprintf(stderr, "\\x%02x", data[i]);
	fprintf(stderr, "\"\n");
}
