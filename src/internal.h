/*
 * uspair internals.  Names with usp__ are library-internal (hidden by the
 * version script); internal functions return -errno unless they say
 * otherwise.  docs/DESIGN.md explains the architecture; this header holds
 * the shared-memory layout and the contracts between the files.
 */
#ifndef USPAIR_INTERNAL_H
#define USPAIR_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "uspair.h"

#define USP_HIDDEN __attribute__((visibility("hidden")))
/* Thread-local variables of the library: the initial-exec model, so that
 * the shared library and the preload reach them with one %fs-relative
 * access instead of a __tls_get_addr call (the lookup cache is read twice
 * per call: 88 of 1,183 instructions per send+recv round went there).  It
 * takes static TLS space (under 200 bytes), which glibc sets aside for
 * libraries loaded with dlopen too. */
#define USP_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#define USP_LIKELY(x) __builtin_expect(!!(x), 1)
#define USP_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* a rare path kept out of its caller's way (no registers saved for it) */
#define USP_COLD __attribute__((noinline, cold))
#define USP_CACHELINE 64

/* ------------------------------------------------------------------------
 * Shared-memory layout of one pair (one MAP_SHARED|MAP_ANONYMOUS region).
 *
 *   struct usp_shared                       header, 2 endpoints, 2 rings
 *   ring data for queue 0 (into endpoint 0)  USP_RING_BYTES
 *   ring data for queue 1 (into endpoint 1)  USP_RING_BYTES
 *
 * Endpoint i is the socket behind sv[i]; queue i is its receive queue.
 * Everything here is readable and writable by every process holding either
 * end, so every value read from it is treated as untrusted: indices and
 * lengths are checked before use, and a value that cannot be right marks
 * the pair corrupt (usp__pair_corrupt), after which every call on it fails
 * with EIO.
 * --------------------------------------------------------------------- */

#define USP_MAGIC 0x7573706169723031ULL /* "uspair01" */

/* Ring capacity.  It must hold what the kernel's accounting admits: the
 * sender may queue while its charged truesize is below SO_SNDBUF (at most
 * USP_MAX_SNDBUF), and each record costs less ring space than truesize. */
#define USP_MAX_SNDBUF (8u << 20)
#define USP_MIN_SANE_SNDBUF 2048 /* below any SO_SNDBUF the kernel gives */
#define USP_RING_BYTES (32u << 20)
#define USP_RING_MASK (USP_RING_BYTES - 1)
/* When the ring is empty and the write offset is past this, the producer
 * wraps to offset 0 so that steady small traffic keeps touching the same
 * few pages. */
#define USP_RING_HOT_BYTES (64u << 10)

#define USP_REC_HDR 8u
#define USP_REC_DATA 1u /* a record carrying len payload bytes */
#define USP_REC_WRAP 2u /* skip to the start of the ring */
/* A record whose len payload bytes, with their ancillary data, wait in the
 * receiver's backing kernel socket (scm.c); the ring holds only this
 * header and a struct usp_kernel_meta. */
#define USP_REC_KERNEL 3u
/* STREAM MSG_OOB: one out-of-band byte (the kernel's oob_skb); payload
 * byte 0 is the byte, byte 1 is set by the receiver once it was read with
 * MSG_OOB (the skb's length is then 0, but it stays queued until a normal
 * read passes it, as in Linux) */
#define USP_REC_OOB 4u
/* Or'ed into the kind by the receiver (under its recv_lock) when a
 * MSG_PEEK returns an empty SEQPACKET/DGRAM record: the kernel's
 * skb->peeked, which makes a later peek at a peek offset skip it. */
#define USP_REC_PEEKED 0x100u
/* AF_TIPC: a rejected message coming back (tipc.c): payload is the u32
 * TIPC error code, the u32 port that rejected it, then up to 1024 bytes
 * of the message's data */
#define USP_REC_TIPC_ERR 5u
/* AF_TIPC flags or'ed into a record's kind by its producer: the sender
 * made the message droppable (TIPC_DEST_DROPPABLE: never returned when
 * rejected), and the message was sent to its own sender's port */
#define USP_REC_TIPC_DROPPABLE 0x200u
#define USP_REC_TIPC_SELF 0x400u
/* ... and a STREAM message sent in Nagle mode, whose buffer (and so its
 * truesize) is Nagle's fixed size, whatever it holds */
#define USP_REC_TIPC_NAGLE 0x800u
#define USP_REC_TIPC_FLAGS (USP_REC_TIPC_DROPPABLE | USP_REC_TIPC_SELF | USP_REC_TIPC_NAGLE)
#define USP_OOB_SPAN 8u

struct usp_rec_hdr {
	uint32_t len;
	uint32_t kind;
};

/* What the sender of a USP_REC_KERNEL record says about it (untrusted:
 * used only to decide where a STREAM read stops, never for bounds). */
#define USP_KMETA_FDS 1u   /* carries SCM_RIGHTS */
#define USP_KMETA_CREDS 2u /* the kernel attached the sender's credentials */
struct usp_kernel_meta {
	uint32_t flags;
	uint32_t reserved;
};

/* Kernel shutdown bits, as in include/net/sock.h. */
#define USP_RCV_SHUTDOWN 1u
#define USP_SEND_SHUTDOWN 2u
#define USP_SHUTDOWN_MASK 3u

/* usp_endpoint.pass_flags: SO_PASSCRED and friends.  While either end
 * has one set, every message goes through the kernel (scm.c), which
 * attaches the sender's credentials as it would for a kernel pair. */
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76 /* Linux 6.5; older headers lack it */
#endif
#define USP_PASS_CRED 1u
#define USP_PASS_PIDFD 2u
#define USP_PASS_SEC 4u

/* Endpoint liveness (usp_endpoint.state). */
#define USP_EP_OPEN 0u
#define USP_EP_GONE 1u /* every holder closed it or died */

/* DGRAM connection state as the survivor sees it. */
#define USP_DGRAM_CONNECTED 0u
#define USP_DGRAM_REFUSED 1u /* ECONNREFUSED reported once, now unconnected */

/*
 * One receive queue.  Producers are the holders of the *other* endpoint
 * (serialised by that endpoint's send_lock); consumers are the holders of
 * this endpoint (serialised by this endpoint's recv_lock).
 *
 * Memory ordering:
 *  - The producer writes a record, then stores tail with release (P1).
 *    The consumer loads tail with acquire (C1, pairs with P1) before it
 *    reads any record below tail.
 *  - The consumer finishes reading, then stores head and released with
 *    release (C2).  The producer loads head/released with acquire (P2,
 *    pairs with C2) before it reuses that space or trusts the charge.
 *  - wmem_alloc (the kernel's sk_wmem_alloc) is charged - released, each
 *    counter owned by one side, so neither needs a read-modify-write.
 */
struct usp_ring {
	/* producer-owned, read by the consumer */
	_Alignas(USP_CACHELINE) _Atomic uint64_t tail;
	_Atomic uint64_t charged; /* total truesize charged by the producer */
	_Atomic uint64_t bytes_in; /* total payload bytes published */
	/* producer-private copies of head and released, refreshed only when
	 * they would make the producer wait: keeps the producer from pulling
	 * the consumer's cache line on every send */
	_Atomic uint64_t seen_head;
	_Atomic uint64_t seen_released;
	/* consumer-owned, read by the producer when it runs short */
	_Alignas(USP_CACHELINE) _Atomic uint64_t head;
	_Atomic uint64_t released; /* total truesize released by the consumer */
	_Atomic uint64_t bytes_out; /* total payload bytes consumed */
	_Atomic uint32_t head_used; /* STREAM: bytes of the head record consumed */
	/* STREAM: the head record is a kernel record read in part (perhaps
	 * only its mark byte and ancillary data, by a read of length 0, so
	 * that head_used is still 0): the rest of its kernel part is at the
	 * head of the backing queue, in front of any wake token, and its
	 * bytes must never be taken for tokens */
	_Atomic uint32_t head_marked;
};

/*
 * The TIPC socket state of an AF_TIPC endpoint (tipc.c; struct tipc_sock
 * in net/tipc/socket.c).  Connection flow control counts 1 KiB blocks, as
 * TIPC does: the sender adds to snt_unacked and may send while it is at
 * most snd_win; the receiver counts what it consumed in rcv_unacked and,
 * at a quarter of rcv_win, acknowledges it by subtracting it from the
 * sender's snt_unacked (an atomic read-modify-write: the only counter both
 * sides write) and opening the sender's window.
 */
#define USP_TIPC_ESTABLISHED 1u
#define USP_TIPC_DISCONNECTING 2u
struct usp_tipc_ep {
	_Atomic uint32_t port;	    /* port id (getsockname's ref) */
	_Atomic uint32_t state;	    /* USP_TIPC_ESTABLISHED or _DISCONNECTING */
	_Atomic int32_t snt_unacked; /* blocks sent and not acknowledged */
	_Atomic int32_t snd_win;     /* the peer's advertised window */
	_Atomic int32_t rcv_unacked; /* blocks consumed, not yet acknowledged */
	_Atomic int32_t rcv_win;
	_Atomic int32_t rcvbuf;	    /* sk_rcvbuf */
	_Atomic uint32_t importance; /* TIPC_IMPORTANCE */
	_Atomic uint32_t src_droppable;
	_Atomic uint32_t dest_droppable;
	_Atomic uint32_t conn_timeout;
	_Atomic uint32_t nodelay;
	/* STREAM Nagle state (tipc.c conn_sendmsg): messages sent since the
	 * last one received, and after how many the next one asks for an
	 * immediate acknowledgement */
	_Atomic uint32_t oneway;
	_Atomic uint32_t nagle_start;
	/* RDM/DGRAM: where a send without an address goes (tsk->peer): the
	 * peer's port at first, changed by connect(); family 0 after
	 * connect(AF_UNSPEC) */
	_Atomic uint32_t dest_family;
	_Atomic uint32_t dest_addrtype;
	_Atomic uint32_t dest_addr[3]; /* the address union's three words */
	/* every holder is gone: the TIPC release (rejecting what it had not
	 * read, the FIN) is still to be done by whoever comes next without
	 * locks held (tipc.c usp__tipc_settle) */
	_Atomic uint32_t release_pending;
};

/* An endpoint lock (lock.c): owner ids and a waiters bit in one word;
 * no pointers, so that nothing the peer writes here is ever followed. */
struct usp_lock {
	_Atomic uint64_t word;
};

/*
 * Socket state of one endpoint, shared by every holder (a kernel socket's
 * state lives in its struct sock, shared by every descriptor that refers to
 * it; this is that struct).
 *
 * Wake protocol (see docs/DESIGN.md "Wake protocol"):
 *  - Anyone who changes something a holder of this endpoint may wait for
 *    (data into its queue, space in its peer's queue, shutdown, release,
 *    an error) calls usp__wake_endpoint() after making the change visible;
 *    new data wakes only receivers (USP_WAKE_DATA), new room only senders
 *    (USP_WAKE_ROOM), anything else both (USP_WAKE_ALL).
 *  - A sleeper increments `sleepers` (receivers) or `room_sleepers`
 *    (senders), reads `event_seq` or `room_seq`, re-checks its condition,
 *    then futex-waits on that word.  The waker, after its change, issues a
 *    seq_cst fence (W1; or a locked release that is one, usp__unlock_full,
 *    in the fast path) and reads the sleeper count; the sleeper's
 *    increment is seq_cst (S1).  W1/S1 form a Dekker pair: either the waker
 *    sees the sleeper, or the sleeper's re-check sees the change.
 *  - A poller (usp_poll) counts itself in `pollers` (seq_cst, like S1)
 *    before sleeping in the kernel's poll() on the backing socket; a waker
 *    that sees pollers and sets token_sent (0 -> 1) sends one token byte
 *    through the kernel pair so that poll() returns; whoever consumes the
 *    tokens clears token_sent (scm.c skip_tokens).
 */
struct usp_endpoint {
	/* wake state: written only by sleepers and pollers */
	_Alignas(USP_CACHELINE) _Atomic uint32_t event_seq; /* futex word */
	_Atomic uint32_t sleepers;
	/* senders waiting for room in the peer's queue sleep apart from
	 * receivers (wait.c): a reader consuming a message must not wake a
	 * peer that waits for its answer */
	_Atomic uint32_t room_seq; /* futex word */
	_Atomic uint32_t room_sleepers;
	/* when the last receiver went to sleep (CLOCK_MONOTONIC ns): a waker
	 * tells a peer idle for long from one that slept a moment ago
	 * (wait.c usp__spin); a hint only, never trusted for anything else */
	_Atomic int64_t data_sleep_since_ns;
	_Atomic uint32_t pollers;    /* usp_poll calls that may sleep */
	_Atomic uint32_t token_sent; /* a wake token is on its way */
	/* Bytes (STREAM) or messages that are not the user's, sent into this
	 * endpoint's backing queue: wake tokens and DGRAM liveness probes
	 * (usp__send_junk).  junk_sent is counted by their senders after the
	 * send succeeded, inside junk_writers; junk_eaten by this endpoint's
	 * receivers, under recv_lock.  After the fallback to the kernel path
	 * (pair.c), a receiver eats the difference before it hands the
	 * backing socket to the user.  Untrusted like the rest. */
	_Atomic uint32_t junk_writers;
	_Atomic uint64_t junk_sent;
	_Atomic uint64_t junk_eaten;
	/* socket state: written rarely, read on every call */
	_Alignas(USP_CACHELINE) _Atomic uint32_t state; /* USP_EP_OPEN/GONE */
	_Atomic uint32_t shutdown; /* USP_*_SHUTDOWN bits of this socket */
	_Atomic int32_t sk_err;	 /* pending error (SO_ERROR), positive errno */
	_Atomic uint32_t dgram_state;
	_Atomic uint32_t reset_on_release; /* unread data when it was released */
	_Atomic uint32_t nonblock; /* O_NONBLOCK of the open file */
	_Atomic uint32_t pass_flags; /* USP_PASS_*: options that ask for
				      * ancillary data on every message */
	_Atomic uint32_t oobinline;  /* SO_OOBINLINE */
	/* The pair has fallen back to the kernel path (fallback.c
	 * usp__fallback): set on both endpoints, never cleared.  No record
	 * is published after it; a receiver reads what its ring still holds,
	 * then the backing socket itself. */
	_Atomic uint32_t kernel_mode;
	/* this endpoint's socket state was copied to its backing socket */
	_Atomic uint32_t kernel_synced;
	/* Set by a process about to exec with this endpoint and unread data
	 * in its ring, but without the peer's descriptor: a process holding
	 * the peer moves the ring into our backing queue and clears it
	 * (fallback.c usp__serve_flush). */
	_Atomic uint32_t flush_wanted;
	/* STREAM: ring position + 1 of the current out-of-band record in our
	 * queue (the kernel's oob_skb), 0 if none.  Set by the sender that
	 * queues it (under its send_lock), cleared by a receiver (under our
	 * recv_lock, by CAS so that a newer one is not lost).  Untrusted:
	 * only ever compared with positions. */
	_Atomic uint64_t oob_pos;
	/* DGRAM/SEQPACKET: its backing socket may have a name (the kernel
	 * autobinds a sender with SO_PASSCRED or SO_PASSPIDFD): receivers
	 * then ask getpeername() for the sender's name, as the kernel's
	 * recvmsg copies the sending socket's address (unix_copy_addr) */
	_Atomic uint32_t maybe_named;
	_Atomic int32_t sndbuf;	/* what the ring admits (capped) */
	/* SO_SNDBUF as the kernel set it for the user; the backing socket's
	 * own is twice that, room for kernel records' mark bytes (scm.c) */
	_Atomic int32_t sndbuf_shown;
	_Atomic uint32_t backing_sized; /* usp__backing_ready() has run */
	_Atomic int32_t rcvbuf;
	_Atomic int32_t rcvlowat;
	_Atomic int32_t peek_off; /* SO_PEEK_OFF; -1 = off; under recv_lock */
	_Atomic int64_t rcvtimeo_us; /* 0 = none */
	_Atomic int64_t sndtimeo_us;
	/* AF_TIPC pairs only (tipc.c); untrusted like the rest */
	_Alignas(USP_CACHELINE) struct usp_tipc_ep tipc;
	_Alignas(USP_CACHELINE) _Atomic int32_t holders; /* fds in all processes */
	/* lock.c; each on its own line */
	_Alignas(USP_CACHELINE) struct usp_lock send_lock;
	_Alignas(USP_CACHELINE) struct usp_lock recv_lock;
};

struct usp_shared {
	uint64_t magic;
	uint32_t type; /* SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM */
	/* AF_TIPC pairs: SOCK_STREAM, SOCK_SEQPACKET, SOCK_RDM or SOCK_DGRAM
	 * as the user sees it (type is then the backing sockets' type);
	 * 0 for AF_UNIX */
	uint32_t tipc_type;
	uint32_t corrupt;
	struct usp_endpoint ep[2];
	struct usp_ring ring[2];
};

#define USP_DATA_OFFSET                                                        \
	((sizeof(struct usp_shared) + 4095) & ~(size_t)4095)
#define USP_REGION_BYTES (USP_DATA_OFFSET + 2 * (size_t)USP_RING_BYTES)
#define USP_REGION_GUARD 4096u /* pair.c usp__region_guard_enable, for tests */

/* ------------------------------------------------------------------------
 * Process-local state.
 * --------------------------------------------------------------------- */

struct usp_pair;

/* What a looked-up descriptor refers to; holds one ref on pair. */
struct usp_sock {
	struct usp_pair *pair;
	struct usp_shared *shm;
	struct usp_endpoint *self, *peer;
	struct usp_ring *rxq; /* our receive queue */
	struct usp_ring *txq; /* the peer's receive queue */
	unsigned char *rxdata, *txdata;
	int fd;
	int side;
	int type;
	int tipc_type; /* AF_TIPC: the type the user sees; 0 for AF_UNIX */
	/* a blocked receive waits for the tail to move past this (io.c) */
	uint64_t wait_tail;
	/* the caller holds self->recv_lock across several non-blocking
	 * receives (fallback.c flush_ring): the receive paths leave it */
	bool recv_locked;
	/* the fast path spun already in this call: a wait sleeps at once */
	bool spun;
	/* the reference on pair is the calling thread's lookup cache's, not
	 * this lookup's (fdtable.c usp__lookup_cached): usp__put leaves it */
	bool cached;
};

/* One per pair mapped in this process. */
struct usp_pair {
	struct usp_shared *shm; /* the region, USP_REGION_BYTES long */
	int type;		/* copied at creation: never read from shm */
	int tipc_type;		/* the same, for AF_TIPC pairs; 0 for AF_UNIX */
	_Atomic int refs;	/* table entries + calls in progress */
	/* per side: adaptive spin budget and last kernel liveness check */
	_Atomic int64_t spin_ns[2];
	/* this side's last publish woke a peer that had slept for long
	 * (wait.c usp__spin) */
	_Atomic bool woke_peer[2];
	/* this side's last spin for data ([0]) or room ([1]) was quick
	 * (wait.c usp__spin): the next one first waits without looking */
	_Atomic bool spin_quick[2][2];
	_Atomic int64_t last_check_ns[2];
	/* Written by a side's readers whenever they catch up with the
	 * producer, so each side's on a line of its own: on the line of what
	 * every call reads, they cost the other side's threads a miss per
	 * message.  Written under that side's recv_lock. */
	struct {
		/* the tail of the side's receive ring as this process's
		 * readers last read it (io.c rx_tail) */
		_Alignas(USP_CACHELINE) _Atomic uint64_t tail;
		/* the producer's `charged` read with that tail: a lower
		 * bound of the charge (io.c wake_room) */
		_Atomic uint64_t charged;
	} seen[2];
	/* a descriptor of each side in this process, if any (a hint: check
	 * it with usp__lookup) */
	_Atomic int fd_hint[2];
	/* inode of each side's backing socket: how a descriptor received
	 * through SCM_RIGHTS is recognised as one of this pair's ends */
	uint64_t ino[2];
	/* this side has fallen back to the kernel path and its ring is
	 * drained: calls on it go straight to the backing socket */
	_Atomic bool passthrough[2];
	/* this process has seen the region corrupt: sticky, because the
	 * shared flag can be cleared again by the peer that broke it */
	_Atomic uint32_t corrupt;
	/* An error usp_recvmmsg stored for the next call on each side, after
	 * it had received something (the kernel's sk_err, which any errno of
	 * a receive can be).  Kept here, out of the region, where a peer
	 * could not forge one; so only this process sees it. */
	_Atomic int mmsg_err[2];
	/* usp__fork_gen when the region was mapped: no fork since means no
	 * other process can see it, so it may be cached (pair.c) */
	uint64_t fork_gen;
	/* what a descriptor of each side describes, fd aside: usp__sock_init
	 * copies it (set with shm, never changed while the pair lives) */
	struct usp_sock sock[2];
};

/* An iovec array walked in order (io.c, tipc.c). */
struct usp_iov_cursor {
	const struct iovec *iov;
	size_t cnt;
	size_t idx;
	size_t off;
};

static inline void usp__cursor_init(struct usp_iov_cursor *c, const struct iovec *iov, size_t cnt)
{
	c->iov = iov;
	c->cnt = cnt;
	c->idx = 0;
	c->off = 0;
}

/* The next piece of at most n (> 0) bytes of the cursor, advancing it;
 * the caller has checked that the iovecs hold n more bytes. */
static inline size_t usp__cursor_next(struct usp_iov_cursor *c, size_t n, unsigned char **piece)
{
	while (c->iov[c->idx].iov_len == c->off) {
		c->idx++;
		c->off = 0;
	}
	size_t avail = c->iov[c->idx].iov_len - c->off;
	size_t k = n < avail ? n : avail;
	*piece = (unsigned char *)c->iov[c->idx].iov_base + c->off;
	c->off += k;
	return k;
}

static inline void usp__cursor_copy_out(struct usp_iov_cursor *c, unsigned char *dst, size_t n)
{
	while (n) {
		unsigned char *p;
		size_t k = usp__cursor_next(c, n, &p);
		memcpy(dst, p, k);
		dst += k;
		n -= k;
	}
}

static inline void usp__cursor_copy_in(struct usp_iov_cursor *c, const unsigned char *src, size_t n)
{
	while (n) {
		unsigned char *p;
		size_t k = usp__cursor_next(c, n, &p);
		memcpy(p, src, k);
		src += k;
		n -= k;
	}
}

/* Pointers into the first page (NULL included) can never be mapped: the
 * kernel's EFAULT (docs/DESIGN.md, known difference 4). */
static inline bool usp__bad_ptr(const void *p)
{
	return (uintptr_t)p < 4096u;
}

static inline bool usp__iov_has_bad(const struct iovec *iov, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++)
		if (iov[i].iov_len && usp__bad_ptr(iov[i].iov_base))
			return true;
	return false;
}

/* Public calls return -1 and errno; internals return -errno. */
static inline ssize_t usp__ret_errno(ssize_t r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* Internal answer (never an errno): the pair fell back to the kernel path
 * during the call and nothing was moved; do the call on the descriptor
 * itself. */
#define USP_ERAW 4096

/* Per-process counters for USPAIR_STATS (the preload prints them at
 * exit).  Counted only while usp__stats_on, so that the fast path pays
 * one predictable branch and no shared cache line otherwise. */
struct usp_stats {
	_Atomic uint64_t pairs;		 /* usp_socketpair successes */
	_Atomic uint64_t fast_bytes;	 /* bytes sent and received through the rings */
	_Atomic uint64_t fallback_bytes; /* same, on fallen-back pairs' descriptors */
	_Atomic uint64_t sleeps;	 /* futex waits */
};
USP_HIDDEN extern struct usp_stats usp__stats;
USP_HIDDEN extern bool usp__stats_on;

static inline void usp__stat_add(_Atomic uint64_t *counter, ssize_t n)
{
	if (USP_UNLIKELY(usp__stats_on) && n > 0)
		atomic_fetch_add_explicit(counter, (uint64_t)n, memory_order_relaxed);
}

/* fdtable.c */
/* usp__lookup: false for a descriptor uspair does not know, and for one
 * whose pair fell back to the kernel path with its ring drained (the
 * caller then uses the descriptor as the kernel socket it is);
 * usp__lookup_entry: any table entry */
USP_HIDDEN bool usp__lookup(int fd, struct usp_sock *s);
USP_HIDDEN bool usp__lookup_entry(int fd, struct usp_sock *s);
/* usp__lookup through the calling thread's cache: for the hot calls only */
USP_HIDDEN bool usp__lookup_cached(int fd, struct usp_sock *s);
USP_HIDDEN void usp__lookup_cache_forget(struct usp_pair *pair);
static inline void usp__sock_init(struct usp_sock *s, struct usp_pair *pair, int side, int fd)
{
	*s = pair->sock[side];
	s->fd = fd;
}
USP_HIDDEN void usp__pair_socks_init(struct usp_pair *pair);
USP_HIDDEN void usp__put(struct usp_sock *s);
USP_HIDDEN int usp__install(int fd, struct usp_pair *pair, int side);
USP_HIDDEN int usp__install_dup(struct usp_sock *s, int newfd);
USP_HIDDEN struct usp_pair *usp__uninstall(int fd, int *side);
USP_HIDDEN void usp__pair_unref(struct usp_pair *pair);
USP_HIDDEN void usp__table_lock(void);
USP_HIDDEN void usp__table_unlock(void);
USP_HIDDEN int usp__next_fd(int from);
USP_HIDDEN bool usp__table_find(bool (*fn)(struct usp_pair *, int, int, void *), void *arg);
USP_HIDDEN bool usp__find_by_inode(uint64_t ino, struct usp_pair **pair, int *side);

/* pair.c */
USP_HIDDEN int usp__pair_create(int type, int tipc_type, int kernel_sv[2],
				 struct usp_pair **out);
USP_HIDDEN void usp__region_release(struct usp_pair *pair);
USP_HIDDEN void usp__region_cache_atfork_prepare(void);
USP_HIDDEN void usp__region_cache_atfork_parent(void);
USP_HIDDEN void usp__region_cache_atfork_child(void);
USP_HIDDEN bool usp__region_cached(const void *mem);
USP_HIDDEN int usp__region_cache_count(void);
USP_HIDDEN bool usp__lookup_cache_serves(int fd); /* fdtable.c, for tests */
/* pair.c, for tests: a PROT_NONE page after every region; false once a
 * region has been mapped */
USP_HIDDEN bool usp__region_guard_enable(void);
USP_HIDDEN extern _Atomic uint64_t usp__fork_gen; /* forks seen, parent or child */
USP_HIDDEN void usp__backing_sndbuf(int kfd, struct usp_endpoint *ep);
USP_HIDDEN void usp__backing_ready(struct usp_sock *s);
USP_HIDDEN void usp__endpoint_drop_holder(struct usp_shared *shm, int side, int kfd);
USP_HIDDEN void usp__endpoint_released(struct usp_shared *shm, int side);
USP_HIDDEN bool usp__peer_gone(struct usp_sock *s);
USP_HIDDEN void usp__check_peer(struct usp_sock *s, bool force);
USP_HIDDEN void usp__pair_corrupt(struct usp_pair *pair);
/* fallback.c */
USP_HIDDEN bool usp__passthrough(struct usp_sock *s);
USP_HIDDEN int usp__exec_prepare(int *busy_fd);
USP_HIDDEN void usp__serve_flush(struct usp_sock *s);
USP_HIDDEN void usp__serve_all_flushes(void);
/* watchdog.c: the service word ancestors' watchdogs wait on */
USP_HIDDEN bool usp__have_ancestors(void);
USP_HIDDEN void usp__request_flush(void);
USP_HIDDEN void usp__watch_atfork_prepare(void);
USP_HIDDEN void usp__watch_ensure(void);
USP_HIDDEN int usp__hand_over(int fd, const char *why);
USP_HIDDEN bool usp__on_fast_path(int fd);
USP_HIDDEN void usp__busy_message(int fd, const char *why);
USP_HIDDEN int usp__fallback(struct usp_sock *s, bool need_drained);
USP_HIDDEN int usp__eat_junk(struct usp_sock *s);
static inline bool usp__kernel_mode(const struct usp_sock *s)
{
	return USP_UNLIKELY(atomic_load_explicit(&s->self->kernel_mode, memory_order_acquire));
}
/* The process-local library locks (table_mutex, the region cache's, the
 * pair free list's) are taken through these, which count them per thread:
 * a signal handler that interrupts such a section must not take any of
 * them, so the lookup cache, whose misses and refills may, is bypassed
 * while the count is not zero (fdtable.c usp__lookup_cached). */
USP_HIDDEN extern USP_TLS unsigned usp__tl_local_locks;
static inline void usp__local_lock(pthread_mutex_t *m)
{
	usp__tl_local_locks++;
	atomic_signal_fence(memory_order_seq_cst);
	pthread_mutex_lock(m);
}
static inline bool usp__local_trylock(pthread_mutex_t *m)
{
	usp__tl_local_locks++;
	atomic_signal_fence(memory_order_seq_cst);
	if (pthread_mutex_trylock(m) == 0)
		return true;
	atomic_signal_fence(memory_order_seq_cst);
	usp__tl_local_locks--;
	return false;
}
static inline void usp__local_unlock(pthread_mutex_t *m)
{
	pthread_mutex_unlock(m);
	atomic_signal_fence(memory_order_seq_cst);
	usp__tl_local_locks--;
}
/* A fork child's handler re-initialises a lock its prepare handler took
 * (the child must not unlock what another thread's memory says): the
 * count goes back too, or the forking thread's count stays above zero
 * and the child looks everything up without the cache. */
static inline void usp__local_reinit(pthread_mutex_t *m)
{
	pthread_mutex_init(m, NULL);
	atomic_signal_fence(memory_order_seq_cst);
	usp__tl_local_locks--;
}
/* lock.c: the endpoint locks (see there for the word, the ordering and
 * the wake protocol).  Locked: an acquiring CAS of the caller's id into a
 * free word (L1); unlocked: a releasing CAS to 0 (U1), which wakes
 * a sleeper when USP_LOCK_WAITERS was set. */
#define USP_LOCK_TID_MASK 0x3fffffffu
#define USP_LOCK_FOREIGN 0x3fffffffu /* not a thread id (those are < 2^22) */
#define USP_LOCK_WAITERS 0x80000000u
/* a signal handler of the owner's thread queued sends behind it (deferred.c) */
#define USP_LOCK_DEFERRED 0x40000000u
/* the owner's id in a word: pid and thread id, without the flag bits */
static inline uint64_t usp__lock_owner(uint64_t word)
{
	return word & ~(uint64_t)(USP_LOCK_WAITERS | USP_LOCK_DEFERRED);
}
USP_HIDDEN extern USP_TLS uint64_t usp__tl_lock_id; /* 0 until first used */
USP_HIDDEN uint64_t usp__lock_id_slow(void);
USP_HIDDEN void usp__lock_slow(struct usp_lock *l, uint64_t self);
USP_HIDDEN void usp__unlock_slow(struct usp_lock *l);
USP_HIDDEN void usp__lock_init(struct usp_lock *l);
USP_HIDDEN bool usp__trylock(struct usp_lock *l);
USP_HIDDEN void usp__lock_atfork_prepare(void);
USP_HIDDEN void usp__lock_atfork_child(void);
/* owners judged so far by this process's waiters (for tests) */
USP_HIDDEN extern _Atomic unsigned long usp__lock_checks;

/* a spinning wait's pause (wait.c, lock.c) */
static inline void usp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline uint64_t usp__lock_id(void)
{
	uint64_t id = usp__tl_lock_id;
	return USP_LIKELY(id) ? id : usp__lock_id_slow();
}

/* L1: the word goes from `from` to `to` (the taker's id), with acquire */
static inline bool usp__lock_take(struct usp_lock *l, uint64_t from, uint64_t to)
{
	return atomic_compare_exchange_strong_explicit(&l->word, &from, to,
						       memory_order_acquire, /* L1 */
						       memory_order_relaxed);
}

static inline void usp__lock(struct usp_lock *l)
{
	uint64_t self = usp__lock_id();
	if (USP_UNLIKELY(!usp__lock_take(l, 0, self)))
		usp__lock_slow(l, self);
}

/* The send_locks this thread's sends are taking or hold, innermost last
 * (a handler's sends above the call it interrupted); only the thread and
 * its handlers touch it.  An array of lock addresses, compared and never
 * followed, with a depth: a siglongjmp out of a marked call leaves its
 * entry behind, which costs a look but can never be followed. */
#define USP_SEND_MARKS 8
struct usp_send_marks {
	struct usp_lock *lock[USP_SEND_MARKS];
	unsigned depth;
};
USP_HIDDEN extern USP_TLS struct usp_send_marks usp__tl_send_marks;
/* Mark l; false when the array is full (then nothing is marked).  The
 * depth goes up before the entry is written: a handler that comes in
 * between sees a stale entry, which cannot make it defer (the word is
 * not ours yet), and pushes above it. */
static inline bool usp__send_mark(struct usp_lock *l)
{
	unsigned d = usp__tl_send_marks.depth;
	if (USP_UNLIKELY(d >= USP_SEND_MARKS))
		return false;
	usp__tl_send_marks.depth = d + 1;
	atomic_signal_fence(memory_order_seq_cst);
	usp__tl_send_marks.lock[d] = l;
	atomic_signal_fence(memory_order_seq_cst);
	return true;
}
static inline void usp__send_unmark(bool marked)
{
	atomic_signal_fence(memory_order_seq_cst);
	if (marked)
		usp__tl_send_marks.depth--;
}
/* deferred.c: sends that a signal handler made while its own thread held
 * the endpoint's send_lock, queued behind that holder, which makes them
 * before it lets go (USP_LOCK_DEFERRED says there are some). */
USP_HIDDEN bool usp__deferring(struct usp_lock *l, uint64_t self);
USP_HIDDEN void usp__deferred_drop(struct usp_lock *l, uint64_t owner);
USP_HIDDEN ssize_t usp__defer_send(struct usp_sock *s, const void *buf, size_t len);
USP_HIDDEN void usp__send_deferred(struct usp_sock *s, const void *buf, uint32_t len);
USP_HIDDEN void usp__deferred_flush(struct usp_lock *l);
USP_HIDDEN void usp__deferred_atfork_child(void);
USP_HIDDEN extern _Atomic unsigned long usp__deferred_sends; /* so far (for tests) */

/* U1: pairs with L1 of the next holder.  A CAS from the word we hold
 * rather than an exchange: a handler of ours may set USP_LOCK_DEFERRED
 * (and a waiter USP_LOCK_WAITERS) at any moment, and deferred sends must
 * go out while we still hold the lock, or a later send of a handler
 * could overtake them. */
static inline void usp__unlock(struct usp_lock *l)
{
	uint64_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
	if (USP_LIKELY(!(w & (USP_LOCK_DEFERRED | USP_LOCK_WAITERS))) &&
	    USP_LIKELY(atomic_compare_exchange_strong_explicit(&l->word, &w, 0,
							       memory_order_release, /* U1 */
							       memory_order_relaxed)))
		return;
	usp__unlock_slow(l);
}

/* After a locked read-modify-write: a full barrier, as the kernel's
 * smp_mb__after_atomic().  x86 orders every load and store around a
 * LOCK-prefixed instruction, so the compiler is all that must be kept
 * from moving accesses across it; elsewhere it is a fence. */
static inline void usp__mb_after_rmw(void)
{
#if defined(__x86_64__) || defined(__i386__)
	atomic_signal_fence(memory_order_seq_cst);
#else
	atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* usp__unlock that is also a full barrier between what the caller did
 * under the lock and what it does next: the W1 of a wake after the
 * release (io.c fast_send, fast_recv): on x86 one locked instruction
 * where a release and a fence took two (elsewhere the fence stays).
 * Every release ends in a locked read-modify-write of the word: the
 * CAS of usp__unlock, or the CAS or exchange of usp__unlock_slow. */
static inline void usp__unlock_full(struct usp_lock *l)
{
	usp__unlock(l);
	usp__mb_after_rmw(); /* W1: pairs with S1 (wait.c) */
}

/* truesize.c: the kernel's memory accounting for AF_UNIX skbs */
USP_HIDDEN uint32_t usp__dgram_truesize(size_t len);
USP_HIDDEN size_t usp__stream_chunk(size_t remaining, int sndbuf);
USP_HIDDEN uint32_t usp__stream_truesize(size_t chunk);
USP_HIDDEN int usp__default_sndbuf(void);
USP_HIDDEN int usp__default_sndbuf_shown(void);
USP_HIDDEN int usp__default_rcvbuf(void);

/* ring.c */
struct usp_rec {
	uint64_t pos; /* ring position of the header */
	uint64_t next; /* position after the record */
	uint32_t len;
	const unsigned char *data; /* NULL for a kernel record */
	bool kernel;		   /* USP_REC_KERNEL */
	bool oob;		   /* USP_REC_OOB */
	bool oob_consumed;	   /* ... already read with MSG_OOB */
	bool peeked;		   /* USP_REC_PEEKED */
	bool tipc_err;		   /* USP_REC_TIPC_ERR */
	bool droppable;		   /* USP_REC_TIPC_DROPPABLE */
	bool from_self;		   /* USP_REC_TIPC_SELF */
	bool nagle;		   /* USP_REC_TIPC_NAGLE */
	struct usp_kernel_meta meta;
};
USP_HIDDEN void usp__ring_mark_peeked(unsigned char *data, const struct usp_rec *rec);
USP_HIDDEN int usp__ring_peek(struct usp_pair *pair, struct usp_ring *r,
			      unsigned char *data, uint64_t pos, uint64_t tail,
			      struct usp_rec *rec);
/* The fast path's peek (io.c fast_recv): a plain data record at pos, with
 * usp__ring_peek's checks, filling only what that path reads (pos, next,
 * len, data, kernel, oob); anything else (an empty ring, a WRAP, another
 * kind, a header that fails a check) is left to usp__ring_peek, which
 * gives the same answer for a data record.  The header is copied out once
 * and every check is on the copy, as the peer may be rewriting it. */
static inline int usp__ring_peek_data(struct usp_pair *pair, struct usp_ring *r,
				      unsigned char *data, uint64_t pos, uint64_t tail,
				      struct usp_rec *rec)
{
	uint64_t off = pos & USP_RING_MASK;
	/* USP_REC_HDR <= tail - pos <= USP_RING_BYTES, both aligned */
	if (USP_LIKELY(tail - pos - USP_REC_HDR <= USP_RING_BYTES - USP_REC_HDR &&
		       !((off | tail) & 7))) {
		struct usp_rec_hdr h;
		memcpy(&h, data + off, sizeof(h));
		if (USP_LIKELY((h.kind & ~(uint32_t)USP_REC_PEEKED) == USP_REC_DATA &&
			       h.len <= USP_MAX_SNDBUF)) {
			uint64_t span = USP_REC_HDR + ((h.len + 7u) & ~7u);
			if (USP_LIKELY(off + span <= USP_RING_BYTES && span <= tail - pos)) {
				rec->pos = pos;
				rec->next = pos + span;
				rec->len = h.len;
				rec->data = data + off + USP_REC_HDR;
				rec->kernel = false;
				rec->oob = false;
				return 0;
			}
		}
	}
	return usp__ring_peek(pair, r, data, pos, tail, rec);
}
USP_HIDDEN int usp__ring_reserve(struct usp_pair *pair, struct usp_ring *r,
				 unsigned char *data, uint32_t len, uint32_t kind,
				 uint64_t sndbuf, struct usp_lock *consumer_lock,
				 uint64_t *tail, unsigned char **payload);
/* The fast path's reserve (io.c fast_send): a data record that fits below
 * the ring's end, within the space the producer's cached head leaves, and
 * does not cross a USP_RING_HOT_BYTES boundary past the first (where
 * usp__ring_reserve looks for an early wrap).  The checks are
 * usp__ring_reserve's on the same values; anything else goes there. */
static inline int usp__ring_reserve_data(struct usp_pair *pair, struct usp_ring *r,
					 unsigned char *data, uint32_t len, uint64_t sndbuf,
					 struct usp_lock *consumer_lock, uint64_t *tail,
					 unsigned char **payload)
{
	uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&r->seen_head, memory_order_relaxed);
	uint64_t span = USP_REC_HDR + (((uint64_t)len + 7u) & ~(uint64_t)7u);
	uint64_t off = t & USP_RING_MASK;
	if (USP_LIKELY(!(t & 7) && off + span <= USP_RING_BYTES &&
		       (off <= USP_RING_HOT_BYTES ||
			off / USP_RING_HOT_BYTES == (off + span) / USP_RING_HOT_BYTES) &&
		       t - h <= USP_RING_BYTES && t + span - h <= USP_RING_BYTES)) {
		struct usp_rec_hdr hdr = {len, USP_REC_DATA};
		memcpy(data + off, &hdr, sizeof(hdr));
		*payload = data + off + USP_REC_HDR;
		*tail = t + span;
		return 0;
	}
	return usp__ring_reserve(pair, r, data, len, USP_REC_DATA, sndbuf, consumer_lock, tail,
				 payload);
}
USP_HIDDEN bool usp__ring_has_room(struct usp_pair *pair, struct usp_ring *r,
				   uint64_t sndbuf);
USP_HIDDEN uint64_t usp__ring_wmem(struct usp_pair *pair, struct usp_ring *r);
USP_HIDDEN bool usp__ring_empty(struct usp_ring *r);

/* The producer's half of publishing a record: its charge and bytes, then
 * the tail (P1: pairs with C1 in the consumer).  Caller holds the
 * producer's send_lock and wrote the record below tail. */
static inline void usp__ring_publish(struct usp_ring *q, uint64_t tail, uint32_t len,
				     uint32_t truesize)
{
	atomic_store_explicit(&q->charged,
			      atomic_load_explicit(&q->charged, memory_order_relaxed) + truesize,
			      memory_order_relaxed);
	atomic_store_explicit(&q->bytes_in,
			      atomic_load_explicit(&q->bytes_in, memory_order_relaxed) + len,
			      memory_order_relaxed);
	atomic_store_explicit(&q->tail, tail, memory_order_release); /* P1 */
}

/* The consumer's half of consuming the record at head: the head record's
 * partial-read state, bytes and release, then head (C2: pairs with P2 in
 * the producer).  Caller holds the consumer's recv_lock. */
static inline void usp__ring_consume(struct usp_ring *q, const struct usp_rec *rec,
				     uint32_t truesize)
{
	atomic_store_explicit(&q->head_used, 0, memory_order_relaxed);
	atomic_store_explicit(&q->head_marked, 0, memory_order_relaxed);
	atomic_store_explicit(&q->bytes_out,
			      atomic_load_explicit(&q->bytes_out, memory_order_relaxed) + rec->len,
			      memory_order_relaxed);
	atomic_store_explicit(&q->released,
			      atomic_load_explicit(&q->released, memory_order_relaxed) + truesize,
			      memory_order_release);
	atomic_store_explicit(&q->head, rec->next, memory_order_release); /* C2 */
}

/* wait.c */
USP_HIDDEN int64_t usp__now_ns(void);
/* CLOCK_MONOTONIC_COARSE: cheaper, a jiffy's resolution */
USP_HIDDEN int64_t usp__coarse_now_ns(void);
/* Whom a change concerns: holders waiting for data (or any state change
 * of their socket), for room in the peer's queue, or both. */
#define USP_WAKE_DATA 1u
#define USP_WAKE_ROOM 2u
#define USP_WAKE_ALL (USP_WAKE_DATA | USP_WAKE_ROOM)
/* true when it woke a receiver that had been asleep for longer than the
 * longest spin (an idle peer, not one that slept a moment ago).
 * usp__wake_after_mb: the caller has issued W1 itself (usp__unlock_full);
 * most calls find nobody to wake, and decide so without a call. */
USP_HIDDEN bool usp__wake_sleepers(struct usp_endpoint *ep, int token_fd, unsigned which);
static inline bool usp__wake_after_mb(struct usp_endpoint *ep, int token_fd, unsigned which)
{
	if (USP_LIKELY(!((which & USP_WAKE_DATA) &&
			 atomic_load_explicit(&ep->sleepers, memory_order_relaxed)) &&
		       !((which & USP_WAKE_ROOM) &&
			 atomic_load_explicit(&ep->room_sleepers, memory_order_relaxed)) &&
		       !(token_fd >= 0 && atomic_load_explicit(&ep->pollers, memory_order_relaxed))))
		return false;
	return usp__wake_sleepers(ep, token_fd, which);
}
static inline bool usp__wake(struct usp_endpoint *ep, int token_fd, unsigned which)
{
	atomic_thread_fence(memory_order_seq_cst); /* W1: pairs with S1 */
	return usp__wake_after_mb(ep, token_fd, which);
}
static inline bool usp__wake_endpoint(struct usp_endpoint *ep, int token_fd)
{
	return usp__wake(ep, token_fd, USP_WAKE_ALL);
}
/* After publishing into the peer's queue: wake its receivers, and
 * remember whether one had slept long, so that our own next wait sleeps
 * at once instead of spinning against it for the CPU (usp__spin). */
static inline void usp__wake_reader_after_mb(struct usp_sock *s)
{
	bool woke = usp__wake_after_mb(s->peer, s->fd, USP_WAKE_DATA);
	if (woke != atomic_load_explicit(&s->pair->woke_peer[s->side], memory_order_relaxed))
		atomic_store_explicit(&s->pair->woke_peer[s->side], woke, memory_order_relaxed);
}
static inline void usp__wake_reader(struct usp_sock *s)
{
	atomic_thread_fence(memory_order_seq_cst); /* W1: pairs with S1 */
	usp__wake_reader_after_mb(s);
}

struct usp_wait {
	int64_t deadline_ns; /* 0: none */
	unsigned wait_for;   /* USP_WAKE_DATA or USP_WAKE_ROOM */
	bool spun;
	/* the call already moved data: any signal handler ends it with the
	 * count (the kernel returns it rather than restart) */
	bool moved_data;
};
typedef bool (*usp_ready_fn)(struct usp_sock *s);
/* wait_for: USP_WAKE_DATA or USP_WAKE_ROOM (what ready(s) waits for) */
USP_HIDDEN bool usp__spin(struct usp_sock *s, usp_ready_fn ready, unsigned wait_for);
USP_HIDDEN void usp__wait_init(struct usp_wait *w, int64_t timeo_us, unsigned wait_for);
USP_HIDDEN int usp__wait(struct usp_sock *s, struct usp_wait *w,
			 usp_ready_fn ready, bool liveness);
USP_HIDDEN int usp__send_junk(struct usp_endpoint *to, int kfd);

/* watchdog.c */
USP_HIDDEN bool usp__watch_begin(struct usp_sock *s);
USP_HIDDEN void usp__watch_end(struct usp_sock *s);
USP_HIDDEN void usp__watch_atfork_child(void);

/* io.c */
/* sock_error(): take the pending error, recvmmsg's (usp_pair.mmsg_err)
 * first; one the region holds that uspair cannot have set is corruption */
USP_HIDDEN int usp__sock_error(struct usp_sock *s);
USP_HIDDEN ssize_t usp__sendmsg(struct usp_sock *s, const struct msghdr *msg,
				int flags);
USP_HIDDEN ssize_t usp__recvmsg(struct usp_sock *s, struct msghdr *msg,
				int flags);

/* scm.c: ancillary data and the backing socket's receive queue */
#define USP_SCM_MAX_FD 253 /* SCM_MAX_FD */
/* What usp__scm_check found in a message to send. */
struct usp_scm_send {
	int nfds;	  /* descriptors in SCM_RIGHTS */
	bool creds;	  /* an explicit SCM_CREDENTIALS */
	struct ucred ucred;
};
/* Ancillary data received with a kernel record, not yet given to the user. */
struct usp_scm_recv {
	bool has_creds;
	struct ucred creds;
	int nfds;
	int fds[USP_SCM_MAX_FD];
	int pidfd;	  /* SCM_PIDFD, or -1 */
	size_t extra_len; /* other control messages, passed on as they came */
	unsigned char extra[256];
};
USP_HIDDEN int usp__scm_check(const struct msghdr *msg, struct usp_scm_send *scm);
USP_HIDDEN bool usp__scm_via_kernel(struct usp_sock *s, const struct usp_scm_send *scm);
USP_HIDDEN ssize_t usp__kernel_send(struct usp_sock *s, const struct iovec *iov,
				    size_t iovcnt, const void *control,
				    size_t controllen, int flags);
USP_HIDDEN void usp__scm_creds_only(const struct usp_scm_send *scm,
				    unsigned char *buf, size_t *len);
USP_HIDDEN void usp__scm_hold_endpoints(const struct msghdr *msg, int delta);
USP_HIDDEN ssize_t usp__kernel_recv(struct usp_sock *s, const struct iovec *iov,
				    size_t iovcnt, size_t want, bool mark,
				    int flags, struct usp_scm_recv *scm);
/* Who wrote a STREAM record, as far as a read may glue records together
 * (unix_skb_scm_eq()): the credentials, or the process of the pidfd. */
struct usp_scm_writer {
	bool has_creds;
	struct ucred creds;
	uint64_t pid_ino; /* inode of the SCM_PIDFD's pidfs file, or 0 */
};
USP_HIDDEN int usp__kernel_peek_writer(struct usp_sock *s, struct usp_scm_writer *w);
USP_HIDDEN void usp__scm_writer(const struct usp_scm_recv *scm, struct usp_scm_writer *w);
USP_HIDDEN bool usp__same_writer(const struct usp_scm_writer *a,
				 const struct usp_scm_writer *b);
USP_HIDDEN void usp__scm_init(struct usp_scm_recv *scm);
USP_HIDDEN void usp__scm_merge(struct usp_scm_recv *into, struct usp_scm_recv *from);
USP_HIDDEN void usp__scm_deliver(struct usp_sock *s, struct msghdr *msg,
				 struct usp_scm_recv *scm, int flags);
USP_HIDDEN void usp__scm_discard(struct usp_scm_recv *scm);
USP_HIDDEN void usp__scm_put_creds(struct msghdr *msg, const struct ucred *c);
USP_HIDDEN void usp__scm_defer_begin(void);
USP_HIDDEN void usp__scm_defer_end(void);
USP_HIDDEN void usp__kernel_purge(struct usp_sock *s);
USP_HIDDEN bool usp__drain_tokens(struct usp_sock *s);
USP_HIDDEN struct ucred usp__no_creds(void);

/* unix_writable(): the charge, plus the socket's own reference on
 * sk_wmem_alloc, at most a quarter of SO_SNDBUF (io.c wakes sleeping
 * senders then; poll.c shows POLLOUT) */
static inline bool usp__wmem_writable(uint64_t wmem, int sndbuf)
{
	return ((wmem + 1) << 2) <= (uint64_t)(sndbuf < 0 ? 0 : sndbuf);
}

/* tipc.c: AF_TIPC pairs */
USP_HIDDEN void usp__tipc_init(struct usp_shared *shm, int tipc_type);
USP_HIDDEN void usp__tipc_released(struct usp_shared *shm, int side);
USP_HIDDEN void usp__tipc_settle_pending(struct usp_pair *pair);
/* Do the TIPC releases left pending (tipc.c), if any: every TIPC entry
 * point calls it, so the common case (none) is two loads, inline. */
static inline void usp__tipc_settle(struct usp_pair *pair)
{
	struct usp_shared *shm = pair->shm;
	if (USP_UNLIKELY(atomic_load_explicit(&shm->ep[0].tipc.release_pending,
					      memory_order_relaxed) |
			 atomic_load_explicit(&shm->ep[1].tipc.release_pending,
					      memory_order_relaxed)))
		usp__tipc_settle_pending(pair);
}
USP_HIDDEN ssize_t usp__tipc_sendmsg(struct usp_sock *s, const struct msghdr *msg,
				     size_t len, int flags);
USP_HIDDEN ssize_t usp__tipc_recvmsg(struct usp_sock *s, struct msghdr *msg,
				     size_t len, int flags);
USP_HIDDEN short usp__tipc_poll_mask(struct usp_sock *s, short events);
USP_HIDDEN int usp__tipc_shutdown(struct usp_sock *s, int how);
USP_HIDDEN int usp__tipc_getname(struct usp_sock *s, struct sockaddr *addr,
				 socklen_t *addrlen, bool peer);
USP_HIDDEN int usp__tipc_getsockopt(struct usp_sock *s, int level, int optname,
				    void *optval, socklen_t *optlen);
USP_HIDDEN int usp__tipc_setsockopt(struct usp_sock *s, int level, int optname,
				    const void *optval, socklen_t optlen);
USP_HIDDEN int usp__tipc_ioctl(unsigned long request, void *arg);
USP_HIDDEN uint32_t usp__tipc_truesize(size_t msg_size);
USP_HIDDEN int usp__tipc_connect(struct usp_sock *s, const struct sockaddr *addr,
				 socklen_t len);
USP_HIDDEN int usp__tipc_bind(struct usp_sock *s, const struct sockaddr *addr, socklen_t len);
USP_HIDDEN int usp__tipc_listen(struct usp_sock *s);
/* sockopt.c: move_addr_to_user(); a timeval in microseconds, saturated */
struct timeval;
USP_HIDDEN int usp__put_name(struct sockaddr *addr, socklen_t *addrlen, const void *name,
			     socklen_t namelen);
USP_HIDDEN int64_t usp__timeval_us(const struct timeval *tv);
/* scm.c: put_cmsg() */
USP_HIDDEN void usp__put_cmsg(struct msghdr *msg, size_t *used, int level, int type,
			      const void *data, size_t len);

/* poll.c */
USP_HIDDEN short usp__poll_mask(struct usp_sock *s, short events);

/* A pending error (usp_endpoint.sk_err) uspair can have set: ECONNRESET on
 * AF_UNIX STREAM and SEQPACKET only (AF_TIPC pairs have none); anything
 * else was written by a hostile peer. */
static inline bool usp__sk_err_valid(const struct usp_sock *s, int err)
{
	return err == ECONNRESET && s->type != SOCK_DGRAM && !s->tipc_type;
}

/* Take the error usp_recvmmsg left for this side (usp_pair.mmsg_err),
 * as a negative errno, or 0. */
static inline int usp__take_mmsg_err(struct usp_sock *s)
{
	_Atomic int *e = &s->pair->mmsg_err[s->side];
	if (USP_LIKELY(!atomic_load_explicit(e, memory_order_relaxed)))
		return 0;
	return -atomic_exchange(e, 0);
}

static inline bool usp__mmsg_err_pending(const struct usp_sock *s)
{
	return atomic_load_explicit(&s->pair->mmsg_err[s->side], memory_order_relaxed) != 0;
}

/* Is the pair corrupt?  Either this process saw it (sticky) or the shared
 * flag says so, which this process then remembers. */
static inline bool usp__is_corrupt(const struct usp_sock *s)
{
	if (USP_UNLIKELY(atomic_load_explicit(&s->pair->corrupt, memory_order_relaxed)))
		return true;
	if (USP_LIKELY(!atomic_load_explicit((_Atomic uint32_t *)&s->shm->corrupt,
					     memory_order_relaxed)))
		return false;
	atomic_store_explicit(&s->pair->corrupt, 1, memory_order_relaxed);
	return true;
}

#define USP_ACCESS_ONCE_U32(p) atomic_load_explicit((p), memory_order_relaxed)

static inline struct usp_endpoint *usp__ep(struct usp_shared *shm, int side)
{
	return &shm->ep[side];
}

static inline uint64_t usp__ld_acq(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

static inline uint32_t usp__ld32(_Atomic uint32_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

#endif /* USPAIR_INTERNAL_H */
