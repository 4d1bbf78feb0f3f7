/*
 * poll_states: poll revents for every state a pair can be in (fresh, data
 * queued, zero-length record queued, drained, full, partly drained, shut
 * down in each way, peer closed with and without unread data), with
 * several requested event sets; poll timeouts; a blocked poll woken from
 * another thread by a send, a drain, a shutdown and a close; and usp_poll
 * on a mixed array of uspair descriptors, kernel descriptors (a pipe),
 * negative and closed descriptors.  Compared between kernel and uspair.
 *
 * uspair only (the kernel pair has no wake tokens): an event loop whose
 * polls find data ready, or sleep and are woken, leaves at most one wake
 * token in the backing queue, however long it runs (a poller that stays
 * counted after it returned made every later send pay a token that nobody
 * drained, until the backing send buffer filled); a thread cancelled in
 * usp_poll leaks no reference.
 */
#include "t_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/sockios.h>

#define ALL_EVENTS (POLLIN | POLLOUT | POLLRDHUP | POLLPRI)
#define NORMAL_EVENTS (POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND)

/* Polls every named descriptor with several event sets. */
static void poll_state(struct t_ctx *c, const char *state)
{
	t_log(c, "-- state: %s", state);
	for (int i = 0; i < c->nfds; i++) {
		int fd = c->fds[i].fd;
		t_poll1(c, fd, ALL_EVENTS);
		t_poll1(c, fd, 0);
		t_poll1(c, fd, NORMAL_EVENTS);
		t_poll1(c, fd, POLLIN);
		t_poll1(c, fd, POLLOUT);
	}
}

static long fill(struct t_ctx *c, int fd)
{
	long sends = 0;
	while (sends < 100000 && usp_send(fd, (char[512]){ 0 }, 512, MSG_DONTWAIT) == 512)
		sends++;
	t_log(c, "filled %s with %ld sends of 512 bytes", t_fd_name(c, fd), sends);
	return sends;
}

static void scenario_data_states(struct t_ctx *c)
{
	poll_state(c, "fresh");
	t_send(c, c->a, "data", 4, 0);
	poll_state(c, "data queued a->b");
	t_send(c, c->b, "back", 4, 0);
	poll_state(c, "data queued both ways");
	t_recv(c, c->b, 100, 0);
	t_recv(c, c->a, 100, 0);
	poll_state(c, "drained");
	t_send(c, c->a, "", 0, 0);
	poll_state(c, "zero-length send");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	poll_state(c, "after receiving it");
	long sends = fill(c, c->a);
	poll_state(c, "a full");
	for (long i = 0; i < sends / 2; i++)
		usp_recv(c->b, (char[512]){ 0 }, 512, MSG_DONTWAIT);
	poll_state(c, "half drained");
	for (long i = 0; i < sends; i++)
		usp_recv(c->b, (char[512]){ 0 }, 512, MSG_DONTWAIT);
	poll_state(c, "fully drained");
}

static void scenario_shutdown_states(struct t_ctx *c)
{
	t_send(c, c->b, "x", 1, 0);
	t_shutdown(c, c->a, SHUT_RD);
	poll_state(c, "a SHUT_RD with data queued to a");
	t_shutdown(c, c->a, SHUT_WR);
	poll_state(c, "a SHUT_RDWR");
	t_recv(c, c->a, 10, MSG_DONTWAIT);
	poll_state(c, "a SHUT_RDWR, drained");
	t_shutdown(c, c->b, SHUT_WR);
	poll_state(c, "and b SHUT_WR");
}

static void scenario_shut_wr_states(struct t_ctx *c)
{
	t_shutdown(c, c->a, SHUT_WR);
	poll_state(c, "a SHUT_WR");
	t_shutdown(c, c->b, SHUT_RD);
	poll_state(c, "a SHUT_WR, b SHUT_RD");
}

static void scenario_close_states(struct t_ctx *c)
{
	int unread = *(const int *)c->user;
	t_send(c, c->a, "for b", 5, 0);
	if (unread)
		t_send(c, c->b, "for a", 5, 0);
	t_close(c, c->a);
	poll_state(c, unread ? "a closed with unread data" : "a closed");
	t_so_error(c, c->b);
	poll_state(c, "after reading SO_ERROR");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	poll_state(c, "after receiving");
}

static void scenario_timeout(struct t_ctx *c)
{
	struct pollfd p = { .fd = c->b, .events = POLLIN };
	double start = t_now();
	errno = 0;
	int r = usp_poll(&p, 1, 50);
	int err = errno;
	double elapsed = t_now() - start;
	t_record(c, "poll(b,IN,50)", r, err);
	t_log(c, "  waited at least 45 ms: %s", elapsed >= 0.045 ? "yes" : "NO");
	/* timeout -1 with something ready returns at once */
	t_send(c, c->a, "x", 1, 0);
	p.revents = 0;
	start = t_now();
	r = usp_poll(&p, 1, -1);
	t_record(c, "poll(b,IN,-1) with data", r, errno);
	t_log(c, "  revents=0x%x, returned within 1 s: %s", (unsigned)p.revents,
	      t_now() - start < 1.0 ? "yes" : "NO");
}

/* ---- wake-ups from another thread ---- */

enum wake_action { WAKE_SEND, WAKE_DRAIN, WAKE_SHUTDOWN, WAKE_CLOSE, WAKE_SHUTDOWN_RD };

struct waker {
	enum wake_action action;
	int fd;
	unsigned delay_ms;
	long result;
};

static void *waker_thread(void *arg)
{
	struct waker *w = arg;
	t_sleep_ms(w->delay_ms);
	switch (w->action) {
	case WAKE_SEND:
		w->result = usp_send(w->fd, "wake", 4, 0);
		break;
	case WAKE_DRAIN: {
		long total = 0;
		ssize_t r;
		char buf[4096];
		while ((r = usp_recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			total += r;
		w->result = total > 0;
		break;
	}
	case WAKE_SHUTDOWN:
		w->result = usp_shutdown(w->fd, SHUT_WR);
		break;
	case WAKE_CLOSE:
		w->result = usp_close(w->fd);
		break;
	case WAKE_SHUTDOWN_RD:
		w->result = usp_shutdown(w->fd, SHUT_RD);
		break;
	}
	return NULL;
}

static void blocked_poll(struct t_ctx *c, int fd, int events, int timeout,
			 struct waker *w, const char *what)
{
	pthread_t th;
	struct pollfd p = { .fd = fd, .events = (short)events };
	char ev[128], rev[128], desc[300];
	t_thread_start(&th, waker_thread, w);
	double start = t_now();
	t_guard_arm(what);
	errno = 0;
	int r = usp_poll(&p, 1, timeout);
	int err = errno;
	t_guard_disarm();
	double elapsed = t_now() - start;
	t_thread_join(th);
	t_fmt_poll_events(ev, sizeof(ev), events);
	t_fmt_poll_events(rev, sizeof(rev), (unsigned short)p.revents);
	snprintf(desc, sizeof(desc), "%s: poll(%s,%s,%d) revents=%s", what,
		 t_fd_name(c, fd), ev, timeout, r > 0 ? rev : "-");
	t_record(c, desc, r, err);
	t_log(c, "  woken by the other thread within 1 s: %s; other thread's call %s",
	      r > 0 && elapsed < 1.0 ? "yes" : r == 0 ? "timed out" : "NO",
	      w->result >= 0 ? "succeeded" : "failed");
}

static void scenario_wakeups(struct t_ctx *c)
{
	struct waker w = { WAKE_SEND, c->a, 30, 0 };
	blocked_poll(c, c->b, POLLIN, 5000, &w, "woken by send");
	t_recv(c, c->b, 100, MSG_DONTWAIT);

	fill(c, c->a);
	w = (struct waker){ WAKE_DRAIN, c->b, 30, 0 };
	blocked_poll(c, c->a, POLLOUT, 5000, &w, "woken by the reader draining");

	/* DGRAM has no end-of-file: the kernel times out there */
	w = (struct waker){ WAKE_SHUTDOWN, c->a, 30, 0 };
	blocked_poll(c, c->b, POLLIN | POLLRDHUP, 150, &w, "woken by peer shutdown");

	/* the poller's own end shut down by another thread */
	w = (struct waker){ WAKE_SHUTDOWN_RD, c->b, 30, 0 };
	blocked_poll(c, c->b, POLLIN | POLLRDHUP, 1000, &w, "woken by own-end SHUT_RD");

	w = (struct waker){ WAKE_CLOSE, c->a, 30, 0 };
	t_forget_fd(c, c->a);
	blocked_poll(c, c->b, POLLIN, 150, &w, "woken by peer close");
}

/* ---- arrays mixing uspair and kernel descriptors ---- */

struct entry {
	int fd;
	short events;
	const char *name;
};

static void poll_array(struct t_ctx *c, const struct entry *e, int n, int timeout)
{
	struct pollfd p[16];
	char line[2000], rev[96];
	size_t used = 0;
	for (int i = 0; i < n; i++) {
		p[i].fd = e[i].fd;
		p[i].events = e[i].events;
		p[i].revents = (short)0x5a5a;
	}
	t_guard_arm("poll_array");
	errno = 0;
	int r = usp_poll(p, (nfds_t)n, timeout);
	int err = errno;
	t_guard_disarm();
	used += (size_t)snprintf(line, sizeof(line), "poll(%d entries,%d) ", n, timeout);
	if (r < 0) {
		used += (size_t)snprintf(line + used, sizeof(line) - used, "= -1 %s",
					 t_errno_name(err));
	} else {
		used += (size_t)snprintf(line + used, sizeof(line) - used, "= %d:", r);
		for (int i = 0; i < n && used < sizeof(line); i++) {
			t_fmt_poll_events(rev, sizeof(rev), (unsigned short)p[i].revents);
			used += (size_t)snprintf(line + used, sizeof(line) - used, " %s=%s",
						 e[i].name, rev);
		}
	}
	t_log(c, "%s", line);
}

struct pipe_writer {
	int fd;
	long result;
};

static void *write_pipe_later(void *arg)
{
	struct pipe_writer *pw = arg;
	t_sleep_ms(30);
	pw->result = write(pw->fd, "p", 1);
	return NULL;
}

static void scenario_mixed_array(struct t_ctx *c)
{
	int pipefd[2], gone[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0 || pipe2(gone, O_CLOEXEC) < 0)
		t_die("pipe2: %s", strerror(errno));
	close(gone[0]);	/* gone[0] is now a closed descriptor number */
	const short all = ALL_EVENTS;
	struct entry e[] = {
		{ c->b, all, "b" },
		{ pipefd[0], POLLIN, "pipe_r" },
		{ pipefd[1], POLLOUT, "pipe_w" },
		{ -1, all, "-1" },
		{ c->a, all, "a" },
		{ gone[0], POLLIN, "closed" },
		{ -gone[1] - 1, POLLIN, "negated" },
		{ c->b, POLLIN, "b_again" },
		{ 1000000, POLLIN, "1000000" },
	};
	int n = (int)(sizeof(e) / sizeof(e[0]));
	poll_array(c, e, n, 0);
	t_send(c, c->a, "x", 1, 0);
	poll_array(c, e, n, 0);
	if (write(pipefd[1], "y", 1) != 1)
		t_die("write to pipe");
	poll_array(c, e, n, 0);
	t_recv(c, c->b, 10, 0);
	if (read(pipefd[0], (char[4]){ 0 }, 4) != 1)
		t_die("read from pipe");
	poll_array(c, e, n, 0);

	/* a kernel descriptor wakes a poll that also waits on uspair ones */
	struct entry wait_set[] = {
		{ c->b, POLLIN, "b" },
		{ pipefd[0], POLLIN, "pipe_r" },
		{ c->a, POLLIN, "a" },
	};
	struct pipe_writer pw = { pipefd[1], 0 };
	pthread_t th;
	t_thread_start(&th, write_pipe_later, &pw);
	poll_array(c, wait_set, 3, 5000);
	t_thread_join(th);
	if (read(pipefd[0], (char[4]){ 0 }, 4) != 1)
		t_die("read from pipe");
	/* and a uspair descriptor wakes one that also waits on a pipe */
	struct waker w = { WAKE_SEND, c->a, 30, 0 };
	t_thread_start(&th, waker_thread, &w);
	poll_array(c, wait_set, 3, 5000);
	t_thread_join(th);
	t_recv(c, c->b, 10, 0);
	/* only kernel descriptors, or none */
	poll_array(c, e + 1, 2, 0);
	poll_array(c, e, 0, 20);
	struct entry negatives[] = { { -1, POLLIN, "-1" }, { -7, POLLOUT, "-7" } };
	poll_array(c, negatives, 2, 20);
	T_RECORD(c, "poll(NULL,1,0)", usp_poll(NULL, 1, 0));
#ifndef T_SANITIZER_INTERCEPTS /* the interceptor would read 2^40 entries */
	T_RECORD(c, "poll(fds,huge nfds,0)", usp_poll((struct pollfd[1]){ { c->b, POLLIN, 0 } },
						     (nfds_t)1 << 40, 0));
#endif
	close(pipefd[0]);
	close(pipefd[1]);
	close(gone[1]);
}

/* poll through a duplicate, and after the original was closed */
static void scenario_duplicates(struct t_ctx *c)
{
	int d = t_dup(c, c->b, "b-dup");
	t_send(c, c->a, "x", 1, 0);
	t_poll1(c, d, ALL_EVENTS);
	t_close(c, c->b);
	t_poll1(c, d, ALL_EVENTS);
	t_recv(c, d, 10, 0);
	t_poll1(c, d, ALL_EVENTS);
	t_close(c, c->a);
	t_poll1(c, d, ALL_EVENTS);
}

/* ---- uspair only: wake tokens stay bounded ---- */

/* What the backing socket of `fd` has sent and the peer not yet read
 * (the kernel's SIOCOUTQ, asked directly: usp_ioctl would answer for the
 * ring); only wake tokens travel there in these loops. */
static int backing_outq(int fd)
{
	int v = -1;
	if (ioctl(fd, SIOCOUTQ, &v) < 0)
		t_fail("SIOCOUTQ: %s", strerror(errno));
	return v;
}

struct loop_sender {
	int fd, rounds;
};

static void *send_rounds(void *arg)
{
	struct loop_sender *ls = arg;
	for (int i = 0; i < ls->rounds; i++) {
		t_sleep_ms(1);
		if (usp_send(ls->fd, "x", 1, MSG_NOSIGNAL) != 1)
			t_fail("tokens: send: %s", strerror(errno));
	}
	return NULL;
}

static void check_tokens(int type)
{
	int sv[2];
	char c;
	if (t_make_pair(T_USPAIR, type, sv) < 0) {
		t_fail("tokens: socketpair: %s", strerror(errno));
		return;
	}
	/* one truesize of a one-byte skb is under 1 KiB; two tokens may be
	 * on their way in a race, the DGRAM liveness probe is one more */
	const int limit = 3 * 1024;
	struct pollfd p = { .fd = sv[1], .events = POLLIN };
	for (int i = 0; i < 300; i++) {
		if (usp_send(sv[0], "x", 1, 0) != 1 || usp_poll(&p, 1, -1) != 1 ||
		    usp_recv(sv[1], &c, 1, 0) != 1) {
			t_fail("tokens (%s, ready loop) round %d: %s", t_type_name(type), i,
			       strerror(errno));
			break;
		}
	}
	int q = backing_outq(sv[0]);
	if (q > limit)
		t_fail("tokens (%s): %d bytes of wake tokens queued after 300 polls that "
		       "found data ready", t_type_name(type), q);
	pthread_t th;
	struct loop_sender ls = { sv[0], 50 };
	t_thread_start(&th, send_rounds, &ls);
	for (int i = 0; i < ls.rounds; i++) {
		if (usp_poll(&p, 1, 5000) != 1 || usp_recv(sv[1], &c, 1, 0) != 1) {
			t_fail("tokens (%s, sleeping loop) round %d: %s", t_type_name(type), i,
			       strerror(errno));
			break;
		}
	}
	t_thread_join(th);
	for (int i = 0; i < 300; i++)
		if (usp_send(sv[0], "x", 1, 0) != 1 || usp_recv(sv[1], &c, 1, 0) != 1)
			t_fail("tokens: unpolled round %d: %s", i, strerror(errno));
	q = backing_outq(sv[0]);
	if (q > limit)
		t_fail("tokens (%s): %d bytes of wake tokens queued after a poller slept "
		       "and 300 sends nobody polled for", t_type_name(type), q);
	usp_close(sv[0]);
	usp_close(sv[1]);
}

/* A thread cancelled while it sleeps in usp_poll (poll() is a
 * cancellation point) leaves nothing behind: closing the pair afterwards
 * releases its region (to the process's region cache). */
int usp__region_cache_count(void); /* internal (src/pair.c), for this check */

static void *poll_forever(void *arg)
{
	struct pollfd p = { .fd = *(int *)arg, .events = POLLIN };
	usp_poll(&p, 1, -1);
	return NULL;
}

static void check_cancelled_poller(int type)
{
	int sv[2];
	if (t_make_pair(T_USPAIR, type, sv) < 0) {
		t_fail("cancelled poller: socketpair: %s", strerror(errno));
		return;
	}
	pthread_t th;
	t_thread_start(&th, poll_forever, &sv[1]);
	t_sleep_ms(30);
	pthread_cancel(th);
	void *ret;
	pthread_join(th, &ret);
	if (ret != PTHREAD_CANCELED)
		t_fail("cancelled poller (%s): the poll was not cancelled", t_type_name(type));
	int before = usp__region_cache_count();
	usp_close(sv[0]);
	usp_close(sv[1]);
	/* 16: the cache's size (src/pair.c); a full cache unmaps instead */
	if (before < 16 && usp__region_cache_count() != before + 1)
		t_fail("cancelled poller (%s): the pair's region was not released after "
		       "both ends were closed (a reference leaked)", t_type_name(type));
}

int main(void)
{
	static const int no = 0, yes = 1;
	t_init("poll_states");
	t_compare_matrix("data_states", scenario_data_states, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("shutdown_states", scenario_shutdown_states, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("shut_wr_states", scenario_shut_wr_states, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("close_states", scenario_close_states, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, (void *)&no);
	t_compare_matrix("close_states_unread", scenario_close_states, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, (void *)&yes);
	t_compare_matrix("timeout", scenario_timeout, T_ALL_TYPES, T_NONBLOCKING, T_DIR_0_TO_1, NULL);
	t_compare_matrix("wakeups", scenario_wakeups, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("mixed_array", scenario_mixed_array, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("duplicates", scenario_duplicates, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	check_tokens(SOCK_STREAM);
	check_tokens(SOCK_SEQPACKET);
	check_tokens(SOCK_DGRAM);
	check_cancelled_poller(SOCK_STREAM);
	check_cancelled_poller(SOCK_DGRAM);
	return t_finish();
}
