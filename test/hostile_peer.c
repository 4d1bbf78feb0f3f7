/*
 * The peer's shared memory is untrusted input.  This test plays the
 * hostile peer: it scribbles over the indices, lengths and headers of a
 * pair's region (deliberately, through the internal layout) and checks
 * that the other end answers EIO/POLLERR and never reads or writes out of
 * bounds, crashes or hangs.  Then a forked child writes random bytes over
 * the control structures while the parent keeps sending and receiving.
 * Run it under AddressSanitizer (make check SAN=address,undefined).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "t_helpers.h"

static int failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);   \
			fprintf(stderr, __VA_ARGS__);                          \
			fprintf(stderr, "\n");                                 \
			failures++;                                            \
		}                                                              \
	} while (0)

static const char *type_name(int type)
{
	return type == SOCK_STREAM ? "STREAM" : type == SOCK_DGRAM ? "DGRAM" : "SEQPACKET";
}

enum corruption {
	TAIL_FAR_AHEAD,
	TAIL_UNALIGNED,
	HEAD_PAST_TAIL,
	HEADER_HUGE_LEN,
	HEADER_BAD_KIND,
	HEADER_LEN_PAST_TAIL,
	CHARGE_HUGE,
	N_CORRUPTIONS
};

static const char *corruption_name[] = {
	"tail far ahead", "tail unaligned", "head past tail", "header huge len",
	"header bad kind", "header len past tail", "charge huge"};

/* Queue one message 0 -> 1, corrupt queue 1, then use end 1 and end 0. */
static void corrupt_once(int type, enum corruption c)
{
	int sv[2];
	char buf[256];
	if (usp_socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		return;
	}
	CHECK(usp_send(sv[0], "hello", 5, 0) == 5, "send");
	struct usp_shared *shm = t_usp_region(sv[1], NULL);
	struct usp_ring *q = &shm->ring[1];
	unsigned char *data = (unsigned char *)shm + USP_DATA_OFFSET + USP_RING_BYTES;
	uint64_t head = atomic_load(&q->head);
	struct usp_rec_hdr *hdr = (struct usp_rec_hdr *)(data + (head & USP_RING_MASK));
	switch (c) {
	case TAIL_FAR_AHEAD:
		atomic_store(&q->tail, head + 3ull * USP_RING_BYTES);
		break;
	case TAIL_UNALIGNED:
		atomic_store(&q->tail, atomic_load(&q->tail) + 3);
		break;
	case HEAD_PAST_TAIL:
		atomic_store(&q->head, atomic_load(&q->tail) + 4096);
		break;
	case HEADER_HUGE_LEN:
		hdr->len = 0xfffffff0u;
		break;
	case HEADER_BAD_KIND:
		hdr->kind = 77;
		break;
	case HEADER_LEN_PAST_TAIL:
		hdr->len = 4096;
		break;
	case CHARGE_HUGE:
		atomic_store(&q->charged, 1ull << 60);
		break;
	default:
		break;
	}
	ssize_t r;
	if (c == CHARGE_HUGE) {
		/* the sender's accounting, not the receiver's queue */
		struct pollfd p = {.fd = sv[0], .events = POLLOUT};
		r = usp_poll(&p, 1, 0);
		CHECK(r == 1 && (p.revents & POLLERR), "%s %s: poll %zd revents %#x",
		      type_name(type), corruption_name[c], r, p.revents);
		for (int i = 0; i < 300; i++) {
			r = usp_send(sv[0], buf, 100, 0);
			if (r < 0)
				break;
		}
		CHECK(r < 0 && errno == EIO, "%s %s: send gave %zd (%s), want EIO",
		      type_name(type), corruption_name[c], r, strerror(errno));
	} else {
		r = usp_recv(sv[1], buf, sizeof(buf), 0);
		CHECK(r < 0 && errno == EIO, "%s %s: recv gave %zd (%s), want EIO",
		      type_name(type), corruption_name[c], r, strerror(errno));
		struct pollfd p = {.fd = sv[1], .events = POLLIN};
		r = usp_poll(&p, 1, 0);
		CHECK(r == 1 && (p.revents & POLLERR), "%s %s: poll %zd revents %#x",
		      type_name(type), corruption_name[c], r, p.revents);
		/* the whole pair is over, both directions */
		r = usp_send(sv[0], "x", 1, MSG_NOSIGNAL);
		CHECK(r < 0 && errno == EIO, "%s %s: send after corruption gave %zd",
		      type_name(type), corruption_name[c], r);
	}
	CHECK(usp_close(sv[0]) == 0 && usp_close(sv[1]) == 0, "close");
}

/* The peer writes its own value into our pending error (SO_ERROR).  Only
 * ECONNRESET on STREAM/SEQPACKET is one uspair sets; anything else must end
 * the pair with EIO.  Regression: a negative value became the return value
 * of recv/send (sock_error returned -sk_err), a byte count that no data
 * backed; found by fuzz/region_fuzz. */
static void bad_sk_err(int type, int value)
{
	int sv[2];
	char buf[64];
	if (usp_socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		return;
	}
	struct usp_shared *shm = t_usp_region(sv[1], NULL);
	atomic_store(&shm->ep[1].sk_err, value);
	ssize_t r = usp_recv(sv[1], buf, sizeof(buf), 0);
	CHECK(r < 0 && errno == EIO, "%s sk_err %d: recv gave %zd (%s), want EIO", type_name(type),
	      value, r, r < 0 ? strerror(errno) : "bytes");
	atomic_store(&shm->ep[0].sk_err, value);
	r = usp_send(sv[0], "x", 1, MSG_NOSIGNAL);
	CHECK(r < 0 && errno == EIO, "%s sk_err %d: send gave %zd (%s), want EIO", type_name(type),
	      value, r, r < 0 ? strerror(errno) : "bytes");
	CHECK(usp_close(sv[0]) == 0 && usp_close(sv[1]) == 0, "close");
}

/* Once corrupt, calls answer EIO before any error that depends on the
 * socket's state.  Regression: a STREAM send after SHUT_WR said EPIPE and a
 * SEQPACKET/DGRAM send longer than SO_SNDBUF said EMSGSIZE on a pair that
 * had already answered EIO; found by fuzz/region_fuzz. */
static void eio_before_state_errors(int type)
{
	int sv[2];
	char buf[64];
	if (usp_socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		return;
	}
	CHECK(usp_send(sv[0], "hello", 5, 0) == 5, "send");
	struct usp_shared *shm = t_usp_region(sv[1], NULL);
	struct usp_ring *q = &shm->ring[1];
	unsigned char *data = (unsigned char *)shm + USP_DATA_OFFSET + USP_RING_BYTES;
	struct usp_rec_hdr *hdr =
		(struct usp_rec_hdr *)(data + (atomic_load(&q->head) & USP_RING_MASK));
	hdr->kind = 77;
	ssize_t r = usp_recv(sv[1], buf, sizeof(buf), 0);
	CHECK(r < 0 && errno == EIO, "%s: recv gave %zd, want EIO", type_name(type), r);
	if (type == SOCK_STREAM) {
		usp_shutdown(sv[0], SHUT_WR);
		r = usp_send(sv[0], "x", 1, MSG_NOSIGNAL);
	} else {
		static char big[300000];
		r = usp_send(sv[0], big, sizeof(big), MSG_NOSIGNAL);
	}
	CHECK(r < 0 && errno == EIO, "%s: send after EIO gave %zd (%s), want EIO", type_name(type), r,
	      r < 0 ? strerror(errno) : "bytes");
	CHECK(usp_close(sv[0]) == 0 && usp_close(sv[1]) == 0, "close");
}

/* A SEQPACKET send that finds the peer released but itself not (yet) shut
 * down: the moment inside usp__endpoint_released between marking the peer
 * gone and setting our shutdown bits, or a peer that wrote its state word.
 * Linux's unix_dgram_sendmsg says EPIPE for SEQPACKET in that race.
 * Regression: uspair said ECONNREFUSED, then ENOTCONN (the DGRAM answers);
 * found by fuzz/region_fuzz. */
static void seqpacket_peer_gone_unshut(void)
{
	int sv[2];
	if (usp_socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		return;
	}
	struct usp_shared *shm = t_usp_region(sv[1], NULL);
	atomic_store(&shm->ep[0].state, USP_EP_GONE);
	for (int i = 0; i < 2; i++) {
		ssize_t r = usp_send(sv[1], "x", 1, MSG_NOSIGNAL);
		CHECK(r < 0 && errno == EPIPE, "SEQPACKET peer gone: send %d gave %zd (%s), want EPIPE",
		      i, r, r < 0 ? strerror(errno) : "bytes");
	}
	CHECK(usp_close(sv[0]) == 0 && usp_close(sv[1]) == 0, "close");
}

/* The peer that broke the region clears the shared corrupt flag again.
 * Regression: the next calls went on as if nothing had happened (the flag
 * lived in shared memory only); found by fuzz/region_fuzz.  Now this
 * process remembers it. */
static void corrupt_flag_cleared(int type)
{
	int sv[2];
	char buf[64];
	if (usp_socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		return;
	}
	CHECK(usp_send(sv[0], "hello", 5, 0) == 5, "send");
	struct usp_shared *shm = t_usp_region(sv[1], NULL);
	struct usp_ring *q = &shm->ring[1];
	unsigned char *data = (unsigned char *)shm + USP_DATA_OFFSET + USP_RING_BYTES;
	struct usp_rec_hdr *hdr =
		(struct usp_rec_hdr *)(data + (atomic_load(&q->head) & USP_RING_MASK));
	hdr->kind = 77;
	ssize_t r = usp_recv(sv[1], buf, sizeof(buf), 0);
	CHECK(r < 0 && errno == EIO, "%s: recv gave %zd, want EIO", type_name(type), r);
	hdr->kind = USP_REC_DATA;
	shm->corrupt = 0;
	r = usp_recv(sv[1], buf, sizeof(buf), 0);
	CHECK(r < 0 && errno == EIO, "%s: recv after the flag was cleared gave %zd, want EIO",
	      type_name(type), r);
	r = usp_send(sv[0], "x", 1, MSG_NOSIGNAL);
	CHECK(r < 0 && errno == EIO, "%s: send after the flag was cleared gave %zd, want EIO",
	      type_name(type), r);
	struct pollfd p = {.fd = sv[0], .events = POLLOUT};
	r = usp_poll(&p, 1, 0);
	CHECK(r == 1 && (p.revents & (POLLERR | POLLHUP)) == (POLLERR | POLLHUP),
	      "%s: poll after the flag was cleared: %zd revents %#x", type_name(type), r,
	      (unsigned)p.revents);
	CHECK(usp_close(sv[0]) == 0 && usp_close(sv[1]) == 0, "close");
}

/* Huge socket timeouts, set legitimately (the kernel accepts centuries)
 * or written by the peer.  Regression: the deadline computation overflowed
 * (signed overflow, UBSan) on every receive or send; found by
 * test/region_random under UBSan. */
static void huge_timeouts(int type)
{
	int sv[2];
	char buf[64];
	if (usp_socketpair(AF_UNIX, type, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		return;
	}
	struct timeval tv = {.tv_sec = 1000000000000000L, .tv_usec = 0};
	CHECK(usp_setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, "SO_RCVTIMEO");
	CHECK(usp_setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0, "SO_SNDTIMEO");
	ssize_t r = usp_recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(r < 0 && errno == EAGAIN, "%s: recv gave %zd", type_name(type), r);
	CHECK(usp_send(sv[0], "x", 1, MSG_DONTWAIT) == 1, "%s: send", type_name(type));
	struct usp_shared *shm = t_usp_region(sv[1], NULL);
	atomic_store(&shm->ep[1].rcvtimeo_us, INT64_MAX);
	atomic_store(&shm->ep[1].sndtimeo_us, INT64_MAX);
	CHECK(usp_recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) == 1, "%s: recv", type_name(type));
	r = usp_recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(r < 0 && errno == EAGAIN, "%s: recv gave %zd", type_name(type), r);
	CHECK(usp_send(sv[1], "x", 1, MSG_DONTWAIT) == 1, "%s: send", type_name(type));
	CHECK(usp_close(sv[0]) == 0 && usp_close(sv[1]) == 0, "close");
}

/* A peer that writes a tiny SO_SNDBUF (below 32) into our endpoint: the
 * datagram bound `sndbuf - 32` must not wrap and admit a length of 4 GiB
 * and more, whose 32-bit record length would be small and whose copy
 * would run far past the ring.  The send must fail with EMSGSIZE, as the
 * kernel's does for any datagram above SO_SNDBUF - 32 (the buffer is
 * 4 GiB of readable zero pages, reserved but never touched). */
static void tiny_sndbuf(int type)
{
	int sv[2];
	size_t len = ((size_t)1 << 32) + 8;
	void *buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (buf == MAP_FAILED) {
		CHECK(0, "mmap: %s", strerror(errno));
		return;
	}
	if (usp_socketpair(AF_UNIX, type, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		munmap(buf, len);
		return;
	}
	int side = 0;
	struct usp_shared *shm = t_usp_region(sv[0], &side);
	atomic_store(&shm->ep[side].sndbuf, 8);
	ssize_t r = usp_send(sv[0], buf, len, MSG_DONTWAIT);
	CHECK(r < 0 && errno == EMSGSIZE, "%s: a 4 GiB send with SO_SNDBUF 8 in the region gave %zd (%s)",
	      type_name(type), r, r < 0 ? strerror(errno) : "");
	CHECK(usp_close(sv[0]) == 0 && usp_close(sv[1]) == 0, "close");
	munmap(buf, len);
}

/* A child writes random bytes over the control structures and ring
 * headers while the parent sends and receives; every call must return
 * (data, EAGAIN or EIO) and nothing may crash. */
static void random_scribbler(int type, unsigned seed)
{
	int sv[2];
	if (usp_socketpair(AF_UNIX, type | SOCK_NONBLOCK, 0, sv) != 0) {
		CHECK(0, "usp_socketpair: %s", strerror(errno));
		return;
	}
	struct usp_shared *shm = t_usp_region(sv[0], NULL);
	fflush(stdout);
	pid_t child = fork();
	if (child == 0) {
		srand(seed);
		unsigned char *rings = (unsigned char *)&shm->ring[0];
		unsigned char *data0 = (unsigned char *)shm + USP_DATA_OFFSET;
		for (int i = 0; i < 200000; i++) {
			int which = rand() % 3;
			if (which == 0)
				rings[rand() % sizeof(shm->ring)] = (unsigned char)rand();
			else
				data0[rand() % 8192] = (unsigned char)rand();
			if (i % 1000 == 0)
				usleep(100);
		}
		_exit(0);
	}
	char buf[4096];
	int eio = 0;
	for (int i = 0; i < 20000; i++) {
		ssize_t r = usp_send(sv[1], buf, (size_t)(rand() % 2000), MSG_NOSIGNAL);
		if (r < 0 && errno == EIO)
			eio++;
		r = usp_recv(sv[0], buf, sizeof(buf), 0);
		if (r < 0 && errno == EIO)
			eio++;
		CHECK(r < 0 ? (errno == EAGAIN || errno == EIO || errno == ECONNRESET) : r <= (ssize_t)sizeof(buf),
		      "%s scribbler: recv %zd errno %s", type_name(type), r, strerror(errno));
		int n;
		usp_ioctl(sv[0], FIONREAD, &n);
		struct pollfd p = {.fd = sv[0], .events = POLLIN | POLLOUT};
		usp_poll(&p, 1, 0);
	}
	int status;
	waitpid(child, &status, 0);
	printf("%s scribbler seed %u: %d EIO answers, no crash\n", type_name(type), seed, eio);
	usp_close(sv[0]);
	usp_close(sv[1]);
}

/*
 * Two places that wrote or read at an offset the peer chose, next to the
 * end of the region: each runs in a child (whose region cache starts
 * empty once a first pair has been made), which leaves a guard page where
 * the region will end: mmap places the region at the top of the highest
 * gap that fits, and the child makes that gap end at the guard.  A read
 * or write past the region is then SIGSEGV.  The child exits 0 when all
 * went well, 77 when the region landed elsewhere.
 *  - "release": the release of an endpoint looks at a lone record at the
 *    head of its queue (pair.c usp__endpoint_released); the peer put an
 *    out-of-band header in the ring's last 8 bytes, head and tail around
 *    it.  Without the check the close read one byte past the region.
 *  - "unaligned tail": a send crossing a 64 KiB boundary may write a WRAP
 *    header at the tail (ring.c usp__ring_reserve); the peer set the tail
 *    3 bytes short of the ring's end.  Without the check that write went
 *    5 bytes past the region; the send must say EIO.
 */
enum guarded { GUARD_RELEASE, GUARD_UNALIGNED_TAIL };
static const char *guarded_name[] = {"release", "unaligned tail"};

static int guarded_child(int type, enum guarded what)
{
	size_t page = 4096;
	/* first a pair that stays open: its creation unmaps the regions the
	 * cache inherited from the parent (holes mmap could use) */
	int keep[2];
	if (usp_socketpair(AF_UNIX, type, 0, keep) != 0)
		return 2;
	unsigned char *hole = mmap(NULL, USP_REGION_BYTES + page, PROT_NONE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hole == MAP_FAILED)
		return 77;
	unsigned char *guard = hole + USP_REGION_BYTES;
	munmap(hole, USP_REGION_BYTES); /* the guard page stays */
	int sv[2];
	if (usp_socketpair(AF_UNIX, type, 0, sv) != 0)
		return 2;
	int side;
	struct usp_shared *shm = t_usp_region(sv[1], &side);
	if (!shm || side != 1)
		return 3;
	unsigned char *end = (unsigned char *)shm + USP_REGION_BYTES;
	if (end != guard)
		return 77;
	struct usp_ring *q = &shm->ring[1]; /* the queue into sv[1] */
	if (what == GUARD_RELEASE) {
		uint64_t head = USP_RING_BYTES - USP_REC_HDR;
		struct usp_rec_hdr *hdr = (struct usp_rec_hdr *)(end - USP_REC_HDR);
		hdr->len = 1;
		hdr->kind = USP_REC_OOB;
		atomic_store(&q->head, head);
		atomic_store(&q->tail, head + USP_REC_HDR + USP_OOB_SPAN);
		usp_close(sv[1]); /* the release of end 1 runs here */
	} else {
		uint64_t tail = USP_RING_BYTES - 3;
		atomic_store(&q->tail, tail);
		atomic_store(&q->head, tail - 8);
		atomic_store(&q->seen_head, tail - 8);
		char buf[100] = {0};
		if (usp_send(sv[0], buf, sizeof(buf), MSG_DONTWAIT) != -1 || errno != EIO)
			return 4;
	}
	return 0;
}

struct guarded_case {
	int type;
	enum guarded what;
};

static int guarded_run(void *arg)
{
	struct guarded_case *g = arg;
	return guarded_child(g->type, g->what);
}

static void guarded(int type, enum guarded what)
{
	struct guarded_case g = {type, what};
	int st = t_run_in_child(guarded_run, &g);
	if (st == 77)
		fprintf(stderr, "note: %s %s: the region did not land below the guard page, "
			"not checked\n", type_name(type), guarded_name[what]);
	else
		CHECK(st == 0, "%s %s: %s %d", type_name(type), guarded_name[what],
		      st > 128 ? "killed by signal" : "exit", st > 128 ? st - 128 : st);
}

/* SO_PEEK_OFF lives in the region, so the peer can change it during a
 * peek.  A DGRAM/SEQPACKET peek read it twice, once for the bytes to skip
 * and once for whether to walk past messages; a peer that flipped it
 * between 2 GiB and -1 got a skip with no walk, and a copy from 2 GiB
 * past the message.  A child peeks while a thread flips it: every answer
 * must be the whole message or EAGAIN (the offset past the queue). */
static atomic_bool flipping;

static void *flip_peek_off(void *arg)
{
	_Atomic int32_t *peek_off = arg;
	while (atomic_load(&flipping)) {
		atomic_store(peek_off, 0x7fffffff);
		atomic_store(peek_off, -1);
	}
	return NULL;
}

static int peek_off_flipped_child(int type)
{
	int sv[2];
	if (usp_socketpair(AF_UNIX, type, 0, sv) != 0)
		return 2;
	char msg[100], buf[4096];
	memset(msg, 'p', sizeof(msg));
	if (usp_send(sv[0], msg, sizeof(msg), 0) != (ssize_t)sizeof(msg))
		return 3;
	int side;
	struct usp_shared *shm = t_usp_region(sv[1], &side);
	if (!shm)
		return 4;
	atomic_store(&flipping, true);
	pthread_t t;
	if (pthread_create(&t, NULL, flip_peek_off, &shm->ep[side].peek_off) != 0)
		return 5;
	int bad = 0;
	for (int i = 0; i < 200000 && !bad; i++) {
		ssize_t r = usp_recv(sv[1], buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
		if (!(r == (ssize_t)sizeof(msg) && memcmp(buf, msg, sizeof(msg)) == 0) &&
		    !(r < 0 && errno == EAGAIN)) {
			fprintf(stderr, "%s: a peek gave %zd (%s)\n", type_name(type), r,
				r < 0 ? strerror(errno) : "bytes");
			bad = 1;
		}
	}
	atomic_store(&flipping, false);
	pthread_join(t, NULL);
	return bad ? 6 : 0;
}

static int peek_off_flipped_run(void *arg)
{
	return peek_off_flipped_child(*(int *)arg);
}

static void peek_off_flipped(int type)
{
	int st = t_run_in_child(peek_off_flipped_run, &type);
	CHECK(st == 0, "%s peek offset flipped: %s %d", type_name(type),
	      st > 128 ? "killed by signal" : "exit", st > 128 ? st - 128 : st);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	const int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
	for (int t = 0; t < 3; t++)
		for (int c = 0; c < N_CORRUPTIONS; c++)
			corrupt_once(types[t], (enum corruption)c);
	for (int t = 0; t < 3; t++) {
		bad_sk_err(types[t], -100);
		bad_sk_err(types[t], 12345);
		if (types[t] == SOCK_DGRAM)
			bad_sk_err(types[t], ECONNRESET);
		eio_before_state_errors(types[t]);
		corrupt_flag_cleared(types[t]);
		huge_timeouts(types[t]);
		if (types[t] != SOCK_STREAM)
			tiny_sndbuf(types[t]);
	}
	seqpacket_peer_gone_unshut();
	for (int t = 0; t < 3; t++) {
		guarded(types[t], GUARD_RELEASE);
		guarded(types[t], GUARD_UNALIGNED_TAIL);
	}
	peek_off_flipped(SOCK_SEQPACKET);
	peek_off_flipped(SOCK_DGRAM);
	for (int t = 0; t < 3; t++)
		random_scribbler(types[t], 1234u + (unsigned)t);
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	return 0;
}
