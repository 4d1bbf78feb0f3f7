/*
 * fallback: usp_fallback() hands a pair over to the kernel (src/fallback.c).
 * On a kernel pair it does nothing, so each scenario's trace on the kernel
 * pair is what Linux does without it; the uspair pair must give the same
 * trace although the pair changes paths in the middle: data queued in
 * shared memory before the fallback comes first, in order, then data sent
 * through the descriptors with the plain libc calls (what a process
 * without uspair would do); no wake token or liveness probe of uspair's
 * may ever show up as data; shutdown and SO_SNDBUF set before the
 * fallback hold after it; a blocked receiver or sender wakes and carries on.
 * Variants: the fallback from the sender's or the receiver's end; with
 * wake tokens in both backing queues (a poller woken before it).
 */
#include "t_helpers.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct fb_case {
	int from_receiver; /* usp_fallback(b) instead of usp_fallback(a) */
	int tokens;	   /* wake tokens queued in both backing queues */
};

static void record_fallback(struct t_ctx *c, int fd)
{
	char desc[64];
	snprintf(desc, sizeof(desc), "usp_fallback(%s)", t_fd_name(c, fd));
	T_RECORD(c, desc, usp_fallback(fd));
}

/* libc send/recv on the descriptor itself (not usp_*): after the fallback
 * the kernel socket must carry exactly the user's data */
static void raw_send(struct t_ctx *c, int fd, const char *text)
{
	char desc[96];
	snprintf(desc, sizeof(desc), "libc send(%s, \"%s\")", t_fd_name(c, fd), text);
	T_RECORD(c, desc, send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL));
}

static void raw_recv(struct t_ctx *c, int fd)
{
	char buf[256], desc[400], shown[300];
	errno = 0;
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	int err = errno;
	t_fmt_bytes(shown, sizeof(shown), buf, r > 0 ? (size_t)r : 0);
	snprintf(desc, sizeof(desc), "libc recv(%s) data=%s", t_fd_name(c, fd), shown);
	t_record(c, desc, r, err);
}

struct poller {
	int fd;
	int revents;
};

static void *poll_thread(void *arg)
{
	struct poller *p = arg;
	struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
	usp_poll(&pfd, 1, 2000);
	p->revents = pfd.revents;
	return NULL;
}

/* A poller of fd asleep when data arrives: the sender queues a wake token
 * in fd's backing socket.  The poller's answer is recorded. */
static void send_to_poller(struct t_ctx *c, int from, int to, const char *text)
{
	struct poller p = {.fd = to};
	pthread_t th;
	t_thread_start(&th, poll_thread, &p);
	t_sleep_ms(30);
	t_send(c, from, text, strlen(text), MSG_DONTWAIT);
	t_thread_join(th);
	t_log(c, "poller of %s woke with %#x", t_fd_name(c, to), p.revents);
}

/*
 * The end that falls back (f) is the one leaving uspair (about to exec, or
 * handed to a process without it): after the fallback it is used only
 * through libc.  The other end (o) stays with uspair and reads what is
 * still queued in shared memory first.
 */
static int fb_end(struct t_ctx *c)
{
	const struct fb_case *fc = c->user;
	return fc->from_receiver ? c->b : c->a;
}

static int other_end(struct t_ctx *c)
{
	return fb_end(c) == c->a ? c->b : c->a;
}

static void scenario_queued(struct t_ctx *c)
{
	const struct fb_case *fc = c->user;
	int f = fb_end(c), o = other_end(c);
	if (fc->tokens) {
		send_to_poller(c, f, o, "f-1");
		send_to_poller(c, o, f, "o-1");
	} else {
		t_send(c, f, "f-1", 3, MSG_DONTWAIT);
		t_send(c, o, "o-1", 3, MSG_DONTWAIT);
	}
	t_send(c, f, "f-2", 3, MSG_DONTWAIT);
	t_setsockopt_int(c, f, SOL_SOCKET, SO_SNDBUF, 30000, "SO_SNDBUF");
	/* f reads what is queued for it first (a process about to exec) */
	t_recv(c, f, 100, MSG_DONTWAIT);
	record_fallback(c, f);
	raw_send(c, f, "f-3");
	t_send(c, o, "o-2", 3, MSG_DONTWAIT);
	t_poll1(c, o, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	/* shared memory first, then the kernel path */
	for (int i = 0; i < 4; i++)
		t_recv(c, o, 100, MSG_DONTWAIT);
	raw_recv(c, f);
	raw_recv(c, f);
	/* both drained: every answer is the kernel's */
	raw_send(c, f, "f-4");
	t_queues(c);
	t_poll_both(c);
	T_RECORD(c, "libc getsockopt(f, SO_SNDBUF)", ({
			 int v = 0;
			 socklen_t l = sizeof(v);
			 getsockopt(f, SOL_SOCKET, SO_SNDBUF, &v, &l) < 0 ? -1 : v;
		 }));
	t_recv(c, o, 100, MSG_DONTWAIT);
	T_RECORD(c, "libc shutdown(f, SHUT_WR)", shutdown(f, SHUT_WR));
	t_recv(c, o, 100, MSG_DONTWAIT);
	t_poll_both(c);
}

/* shutdown by either end before the fallback: the kernel must know */
static void scenario_shutdown_before(struct t_ctx *c)
{
	int f = fb_end(c), o = other_end(c);
	t_send(c, o, "last", 4, MSG_DONTWAIT);
	t_shutdown(c, o, SHUT_WR);
	t_recv(c, f, 100, MSG_DONTWAIT);
	t_shutdown(c, f, SHUT_RD);
	record_fallback(c, f);
	raw_recv(c, f);
	raw_send(c, f, "after");
	t_recv(c, o, 100, MSG_DONTWAIT);
	t_send(c, o, "more", 4, MSG_DONTWAIT | MSG_NOSIGNAL);
	raw_recv(c, f);
	t_poll_both(c);
}

/* A read that empties the ring goes on into the backing socket as one
 * kernel read would: MSG_WAITALL and SO_RCVLOWAT count the bytes of both
 * (a blocking read waits for the kernel's part, a non-blocking one takes
 * what is there). */
static void scenario_straddle(struct t_ctx *c)
{
	int f = fb_end(c), o = other_end(c);
	t_send(c, o, "abc", 3, MSG_DONTWAIT);
	t_send(c, o, "de", 2, MSG_DONTWAIT);
	record_fallback(c, f);
	raw_send(c, o, "fgh");
	raw_send(c, o, "ijklm");
	t_recv(c, f, 7, MSG_WAITALL);
	t_setsockopt_int(c, f, SOL_SOCKET, SO_RCVLOWAT, 4, "SO_RCVLOWAT");
	t_recv(c, f, 100, 0);
	t_recv(c, f, 100, MSG_DONTWAIT);
}

struct late_send {
	int fd;
	const char *text;
};

static void *late_send_thread(void *arg)
{
	struct late_send *ls = arg;
	t_sleep_ms(50);
	send(ls->fd, ls->text, strlen(ls->text), MSG_NOSIGNAL);
	return NULL;
}

/* The same with the kernel's part sent while the read waits for it. */
static void scenario_straddle_wait(struct t_ctx *c)
{
	int f = fb_end(c), o = other_end(c);
	t_send(c, o, "abc", 3, MSG_DONTWAIT);
	record_fallback(c, f);
	struct late_send ls = {o, "defgh"};
	pthread_t th;
	t_thread_start(&th, late_send_thread, &ls);
	t_recv(c, f, 6, MSG_WAITALL);
	t_thread_join(th);
	t_recv(c, f, 100, MSG_DONTWAIT);
}

/* A receiver asleep in shared memory when the pair falls back: it must
 * wake and get the data that then comes through the kernel. */
static void scenario_blocked_receiver(struct t_ctx *c)
{
	const struct fb_case *fc = c->user;
	int f = fb_end(c), o = other_end(c);
	(void)fc;
	struct t_blocked_recv br = {.fd = o};
	pthread_t th;
	t_thread_start(&th, t_blocked_recv_thread, &br);
	t_sleep_ms(50);
	record_fallback(c, f);
	t_sleep_ms(20);
	raw_send(c, f, "wake");
	t_thread_join(th);
	char shown[100];
	t_fmt_bytes(shown, sizeof(shown), br.buf, br.r > 0 ? (size_t)br.r : 0);
	t_log(c, "blocked recv = %zd %s data=%s", br.r, br.r < 0 ? t_errno_name(br.err) : "",
	      shown);
}

/*
 * Order under concurrency: a writer and a reader thread stream numbered
 * messages (STREAM: a counting byte sequence) through the pair with
 * blocking calls while the main thread makes the pair fall back in the
 * middle, from either end.  Every message must arrive once, in order, with
 * no byte of uspair's own among them; the writer's messages start with
 * 'w' bytes (what a wake token looks like).
 */
#define ORDER_MESSAGES 4000

struct order_run {
	int type;
	int wfd, rfd;
	int bad;
	unsigned long wpos; /* STREAM: the writer's position */
};

static void *order_writer(void *arg)
{
	struct order_run *o = arg;
	unsigned char msg[40];
	for (unsigned i = 0; i < ORDER_MESSAGES; i++) {
		size_t len = 8 + i % 32;
		memset(msg, 'w', len);
		memcpy(msg + 2, &i, sizeof(i));
		if (o->type == SOCK_STREAM) {
			/* a counting sequence: byte k of the stream is k % 251 */
			for (size_t k = 0; k < len; k++)
				msg[k] = (unsigned char)(o->wpos++ % 251);
		}
		if (usp_send(o->wfd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
			o->bad = 1;
	}
	return NULL;
}

static void *order_read(struct order_run *o);

static void *order_reader(void *arg)
{
	struct order_run *o = arg;
	order_read(o);
	if (o->bad) /* let a blocked writer go */
		usp_shutdown(o->rfd, SHUT_RDWR);
	return NULL;
}

static void *order_read(struct order_run *o)
{
	unsigned char buf[64];
	unsigned long pos = 0, expect_total = 0;
	for (unsigned i = 0; i < ORDER_MESSAGES; i++)
		expect_total += 8 + i % 32;
	for (unsigned i = 0; o->type == SOCK_STREAM ? pos < expect_total : i < ORDER_MESSAGES;) {
		ssize_t n = usp_recv(o->rfd, buf, o->type == SOCK_STREAM ? 1 + pos % 50 : sizeof(buf), 0);
		if (n <= 0) {
			t_fail("order: recv %zd (%s) at message %u", n, strerror(errno), i);
			o->bad = 1;
			return NULL;
		}
		if (o->type == SOCK_STREAM) {
			for (ssize_t k = 0; k < n; k++, pos++)
				if (buf[k] != (unsigned char)(pos % 251)) {
					t_fail("order: STREAM byte %lu is %u, expected %lu", pos,
					       buf[k], pos % 251);
					o->bad = 1;
					return NULL;
				}
			continue;
		}
		unsigned got;
		memcpy(&got, buf + 2, sizeof(got));
		if ((size_t)n != 8 + i % 32 || got != i || buf[0] != 'w') {
			/* what follows tells a loss from a reordering */
			char next[200] = "";
			size_t at = 0;
			for (int k = 0; k < 12 && at < sizeof(next) - 12; k++) {
				ssize_t m = usp_recv(o->rfd, buf, sizeof(buf), MSG_DONTWAIT);
				if (m <= 0)
					break;
				unsigned g;
				memcpy(&g, buf + 2, sizeof(g));
				at += (size_t)snprintf(next + at, sizeof(next) - at, " #%u", g);
			}
			t_fail("order: %s message %u: got #%u of %zd bytes; then%s",
			       o->type == SOCK_DGRAM ? "DGRAM" : "SEQPACKET", i, got, n, next);
			o->bad = 1;
			return NULL;
		}
		i++;
	}
	return NULL;
}

static void order_under_fallback(void)
{
	static const int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
	int runs = 0, bad = 0;
	for (int t = 0; t < 3; t++) {
		for (int round = 0; round < 8; round++) {
			int sv[2];
			if (usp_socketpair(AF_UNIX, types[t], 0, sv) < 0) {
				t_fail("usp_socketpair: %s", strerror(errno));
				return;
			}
			struct order_run o = {types[t], sv[round & 1], sv[!(round & 1)], 0, 0};
			pthread_t w, r;
			t_thread_start(&w, order_writer, &o);
			t_thread_start(&r, order_reader, &o);
			usleep((useconds_t)(200 + 700 * round));
			if (usp_fallback(sv[(round >> 1) & 1]) < 0)
				t_fail("usp_fallback: %s", strerror(errno));
			t_thread_join(w);
			t_thread_join(r);
			runs++;
			bad += o.bad;
			usp_close(sv[0]);
			usp_close(sv[1]);
		}
	}
	printf("fallback: order under concurrent fallback: %d runs, %d broken\n", runs, bad);
}

/* A STREAM ring holding more than one read's worth (records of about
 * SO_SNDBUF/2 each) moved into the kernel whole and in order, then read
 * through the descriptor. */
static void big_stream_ring(void)
{
	int sv[2];
	if (usp_socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) {
		t_fail("usp_socketpair: %s", strerror(errno));
		return;
	}
	static unsigned char chunk[100000], got[400000];
	size_t sent = 0;
	for (;;) {
		for (size_t k = 0; k < sizeof(chunk); k++)
			chunk[k] = (unsigned char)((sent + k) % 253);
		ssize_t n = usp_send(sv[0], chunk, sizeof(chunk), 0);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	if (usp_fallback(sv[1]) < 0)
		t_fail("usp_fallback: %s", strerror(errno));
	size_t have = 0;
	ssize_t n;
	while (have < sizeof(got) && (n = recv(sv[1], got + have, sizeof(got) - have, MSG_DONTWAIT)) > 0)
		have += (size_t)n;
	size_t bad = have;
	for (size_t k = 0; k < have && bad == have; k++)
		if (got[k] != (unsigned char)(k % 253))
			bad = k;
	if (have != sent || bad != have)
		t_fail("big STREAM ring: %zu bytes queued, %zu read from the descriptor, first wrong "
		       "byte at %zu", sent, have, bad);
	else
		printf("fallback: big STREAM ring: %zu bytes moved into the kernel in order\n", sent);
	usp_close(sv[0]);
	usp_close(sv[1]);
}

static const struct fb_case cases[] = {
	{0, 0}, {1, 0}, {0, 1}, {1, 1},
};

int main(void)
{
	t_init("fallback");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "queued from_%s%s",
			 cases[i].from_receiver ? "receiver" : "sender",
			 cases[i].tokens ? " tokens" : "");
		t_compare_matrix(name, scenario_queued, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
				 (void *)&cases[i]);
		if (cases[i].tokens)
			continue;
		snprintf(name, sizeof(name), "straddle from_%s",
			 cases[i].from_receiver ? "receiver" : "sender");
		t_compare_matrix(name, scenario_straddle, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
				 (void *)&cases[i]);
		snprintf(name, sizeof(name), "straddle_wait from_%s",
			 cases[i].from_receiver ? "receiver" : "sender");
		t_compare_matrix(name, scenario_straddle_wait, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS,
				 (void *)&cases[i]);
		snprintf(name, sizeof(name), "shutdown_before from_%s",
			 cases[i].from_receiver ? "receiver" : "sender");
		t_compare_matrix(name, scenario_shutdown_before, T_ALL_TYPES, T_ALL_MODES,
				 T_ALL_DIRS, (void *)&cases[i]);
		snprintf(name, sizeof(name), "blocked_receiver from_%s",
			 cases[i].from_receiver ? "receiver" : "sender");
		t_compare_matrix(name, scenario_blocked_receiver, T_ALL_TYPES, T_BLOCKING,
				 T_ALL_DIRS, (void *)&cases[i]);
	}
	order_under_fallback();
	big_stream_ring();
	return t_finish();
}
