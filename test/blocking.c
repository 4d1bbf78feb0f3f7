/*
 * blocking: calls that really block, on blocking pairs of every type in
 * both directions, compared between kernel and uspair.
 *
 * A blocking recv woken by a send from another thread and from a forked
 * process; a blocking send on a full socket woken by a reader; MSG_WAITALL
 * across several sends (and cut short by a shutdown); blocking calls woken
 * by the peer closing; EINTR: a signal handler installed without SA_RESTART
 * makes blocking recv/read/send/poll fail with EINTR, with SA_RESTART the
 * socket calls are restarted (except with a timeout set, and poll, which
 * are never restarted).  The signals come from another thread with
 * pthread_kill.
 */
#include "t_helpers.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DELAY_MS 20
#define SIGNAL_INTERVAL_MS 10

static void set_timeout(int fd, int opt, long usec)
{
	struct timeval tv = { usec / 1000000, usec % 1000000 };
	if (usp_setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) < 0)
		t_die("setsockopt timeout: %s", strerror(errno));
}

/* ---- a thread doing one thing after a delay ---- */

enum action { ACT_SEND, ACT_SEND_PIECES, ACT_SEND_THEN_SHUTDOWN, ACT_CLOSE, ACT_DRAIN,
	      ACT_SEND_1000, ACT_POLLOUT };

struct helper {
	enum action action;
	int fd;
	long want;		/* ACT_DRAIN: bytes (STREAM) or records to take */
	int is_stream;
	long result;
	double took; /* seconds the action took */
};

static void *helper_thread(void *arg)
{
	struct helper *h = arg;
	t_sleep_ms(DELAY_MS);
	switch (h->action) {
	case ACT_SEND:
		h->result = usp_send(h->fd, "wake up", 7, 0);
		break;
	case ACT_SEND_PIECES:
		h->result = usp_send(h->fd, "ab", 2, 0);
		t_sleep_ms(10);
		usp_send(h->fd, "cd", 2, 0);
		t_sleep_ms(10);
		usp_send(h->fd, "ef", 2, 0);
		break;
	case ACT_SEND_THEN_SHUTDOWN:
		h->result = usp_send(h->fd, "ab", 2, 0);
		t_sleep_ms(10);
		usp_shutdown(h->fd, SHUT_WR);
		break;
	case ACT_CLOSE:
		h->result = usp_close(h->fd);
		break;
	case ACT_SEND_1000: { /* into a full queue: sleeps (SO_SNDTIMEO set) */
		double from = t_now();
		h->result = usp_send(h->fd, (char[1000]){ 0 }, 1000, 0);
		if (h->result < 0)
			h->result = -errno;
		h->took = t_now() - from;
		break;
	}
	case ACT_POLLOUT: {
		struct pollfd p = { .fd = h->fd, .events = POLLOUT };
		h->result = usp_poll(&p, 1, 2000) < 0 ? -errno : p.revents;
		break;
	}
	case ACT_DRAIN: {
		char *buf = malloc(200000);
		long got = 0;
		if (!buf)
			break;
		double deadline = t_now() + 5.0;
		while (got < h->want && t_now() < deadline) {
			struct pollfd p = { .fd = h->fd, .events = POLLIN };
			usp_poll(&p, 1, 100);
			ssize_t r = usp_recv(h->fd, buf, 200000, MSG_DONTWAIT);
			if (r > 0)
				got += h->is_stream ? r : 1;
		}
		free(buf);
		h->result = got;
		break;
	}
	}
	return NULL;
}

static void scenario_recv_woken_by_thread(struct t_ctx *c)
{
	static const size_t shape[] = { 3, 100 };
	pthread_t th;
	struct helper h = { ACT_SEND, c->a, 0, 0, 0, 0 };
	c->prepoll_ms = -1;

	t_thread_start(&th, helper_thread, &h);
	t_recv(c, c->b, 100, 0);
	t_thread_join(th);

	t_thread_start(&th, helper_thread, &h);
	t_read(c, c->b, 100);
	t_thread_join(th);

	t_thread_start(&th, helper_thread, &h);
	t_recvmsg(c, c->b, shape, 2, 0, 0, 0);
	t_thread_join(th);

	/* and the other way round */
	h.fd = c->b;
	t_thread_start(&th, helper_thread, &h);
	t_recv(c, c->a, 100, 0);
	t_thread_join(th);
}

/*
 * A blocking peek whose SO_PEEK_OFF walks past every queued message waits
 * for more data (unix_stream_data_wait(), __skb_wait_for_more_packets()),
 * then starts over from the head with the whole offset; with nothing more
 * it times out.  Also a peeked empty message skipped at offset 0.  The CPU
 * the waits burn is checked too (uspair once spun here).
 */
static void scenario_peek_past_queue(struct t_ctx *c)
{
	pthread_t th;
	struct helper h = { ACT_SEND, c->a, 0, 0, 0, 0 };
	c->prepoll_ms = -1;
	set_timeout(c->b, SO_RCVTIMEO, 300000);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, 5, "SO_PEEK_OFF=5");
	t_send(c, c->a, "ab", 2, 0);
	clock_t cpu = clock();
	t_recv(c, c->b, 100, MSG_PEEK); /* times out: nothing past offset 5 */
	t_thread_start(&th, helper_thread, &h);
	t_recv(c, c->b, 100, MSG_PEEK); /* "wake up" arrives: from offset 5 */
	t_thread_join(th);
	t_recv(c, c->b, 100, 0);
	t_recv(c, c->b, 100, 0);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF=0");
	t_send(c, c->a, "", 0, 0);
	t_recv(c, c->b, 100, MSG_PEEK);
	t_recv(c, c->b, 100, MSG_PEEK); /* SEQPACKET/DGRAM: skips the peeked empty one, times out */
	double used = (double)(clock() - cpu) / CLOCKS_PER_SEC;
	if (used > 0.25)
		t_fail("peek past the queue (%s %s): %.2f s of CPU in about 0.6 s of waiting",
		       t_kind_name(c->kind), t_type_name(c->type), used);
}

static void scenario_recv_woken_by_process(struct t_ctx *c)
{
	c->prepoll_ms = -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(10);
		t_sleep_ms(DELAY_MS);
		int ok = usp_send(c->a, "from the child", 14, 0) == 14;
		t_sleep_ms(DELAY_MS);
		ok &= usp_send(c->a, "second", 6, 0) == 6;
		char buf[32];
		/* and wait for an answer */
		ok &= usp_recv(c->a, buf, sizeof(buf), 0) == 6 && memcmp(buf, "answer", 6) == 0;
		_exit(ok ? 0 : 1);
	}
	t_recv(c, c->b, 100, 0);
	t_recv(c, c->b, 100, 0);
	t_send(c, c->b, "answer", 6, 0);
	int status;
	waitpid(pid, &status, 0);
	t_log(c, "child exit status %d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static long fill(int fd)
{
	long bytes = 0;
	ssize_t r;
	while ((r = usp_send(fd, (char[1000]){ 0 }, 1000, MSG_DONTWAIT)) > 0 && bytes < 100000000)
		bytes += r;
	return bytes;
}

static void scenario_send_woken_by_reader(struct t_ctx *c)
{
	int stream = c->type == SOCK_STREAM;
	size_t size = stream ? 100000 : 1000;
	long filled = fill(c->a);
	t_log(c, "filled a with %ld bytes", filled);
	pthread_t th;
	struct helper h = { ACT_DRAIN, c->b, 0, stream, 0, 0 };
	h.want = stream ? filled + (long)size : filled / 1000 + 1;
	t_thread_start(&th, helper_thread, &h);
	t_send_pattern(c, c->a, size, 1, 0);
	t_thread_join(th);
	t_log(c, "reader took %s", h.result == h.want ? "everything" : "NOT everything");
	t_queues(c);
}

/*
 * A sender asleep on a full queue, and a poll for POLLOUT, are woken by
 * the very receive that takes the queue down to a quarter of SO_SNDBUF
 * (unix_write_space()): the reader stops there, with messages left, as
 * soon as SIOCOUTQ says the sender's socket is writable (unix_writable():
 * (outq + 1) * 4 <= SO_SNDBUF).  A sender that is not woken sleeps until
 * its SO_SNDTIMEO of 4 s, then finds the room and sends (as Linux's
 * would): the log says whether it was woken well before that.  (A poll
 * re-checks by itself every 40 ms, docs/DESIGN.md; its answer is
 * compared.)  With a non-NULL c->user the reader is another process
 * (forked before the sleeper starts), whose view of the queue, and so its
 * decision whether its receive may wake anyone (io.c wake_room), is its
 * own.
 */
static void drain_to_writable(struct t_ctx *c, int sndbuf)
{
	char buf[1000];
	for (;;) {
		int outq = 0;
		if (usp_ioctl(c->a, SIOCOUTQ, &outq) < 0 || (outq + 1L) * 4 <= sndbuf ||
		    usp_recv(c->b, buf, sizeof(buf), MSG_DONTWAIT) != (ssize_t)sizeof(buf))
			break;
	}
}

static void scenario_woken_at_a_quarter(struct t_ctx *c)
{
	bool reader_process = c->user != NULL;
	char buf[1000];
	int sndbuf = 0;
	socklen_t sl = sizeof(sndbuf);
	if (usp_getsockopt(c->a, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) < 0)
		t_die("getsockopt SO_SNDBUF: %s", strerror(errno));
	set_timeout(c->a, SO_SNDTIMEO, 4000000);
	for (int phase = 0; phase < 2; phase++) {
		long filled = fill(c->a);
		int go[2] = {-1, -1};
		pid_t reader = -1;
		if (reader_process) {
			if (pipe(go) != 0)
				t_die("pipe: %s", strerror(errno));
			reader = fork();
			if (reader < 0)
				t_die("fork: %s", strerror(errno));
			if (reader == 0) {
				char x;
				alarm(20);
				close(go[1]); /* a parent gone is end of file */
				if (read(go[0], &x, 1) == 1)
					drain_to_writable(c, sndbuf);
				usp_close(c->a); /* its holds on the pair, before _exit */
				usp_close(c->b);
				_exit(0);
			}
		}
		pthread_t th;
		struct helper h = { phase ? ACT_POLLOUT : ACT_SEND_1000, c->a, 0, 0, 0, 0 };
		t_thread_start(&th, helper_thread, &h);
		t_sleep_ms(DELAY_MS + 130); /* the helper is asleep by now */
		if (reader_process) {
			if (write(go[1], "g", 1) != 1)
				t_die("write: %s", strerror(errno));
			int st;
			if (waitpid(reader, &st, 0) != reader || !WIFEXITED(st) || WEXITSTATUS(st))
				t_fail("%s: the reader process failed (%#x)", c->scenario, st);
			close(go[0]);
			close(go[1]);
		} else {
			drain_to_writable(c, sndbuf);
		}
		t_thread_join(th);
		t_log(c, "%s: filled %ld bytes, helper got %ld%s",
		      phase ? "poll POLLOUT" : "blocked send", filled, h.result,
		      phase || h.took < 2.0 ? "" : ", only at its timeout");
		while (usp_recv(c->b, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
	}
	t_queues(c);
}

static void scenario_waitall_across_sends(struct t_ctx *c)
{
	pthread_t th;
	struct helper h = { ACT_SEND_PIECES, c->a, 0, 0, 0, 0 };
	c->prepoll_ms = -1;
	t_thread_start(&th, helper_thread, &h);
	t_recv(c, c->b, 6, MSG_WAITALL);
	t_thread_join(th);
	for (int i = 0; i < 3; i++)
		t_recv(c, c->b, 100, MSG_DONTWAIT);

	/* an end of file cuts MSG_WAITALL short */
	h = (struct helper){ ACT_SEND_THEN_SHUTDOWN, c->a, 0, 0, 0, 0 };
	set_timeout(c->b, SO_RCVTIMEO, 500000); /* DGRAM has no end of file */
	t_thread_start(&th, helper_thread, &h);
	t_recv(c, c->b, 6, MSG_WAITALL);
	t_thread_join(th);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
}

static void scenario_woken_by_peer_close(struct t_ctx *c)
{
	pthread_t th;
	struct helper h = { ACT_CLOSE, c->a, 0, 0, 0, 0 };
	c->prepoll_ms = -1;
	set_timeout(c->b, SO_RCVTIMEO, 150000); /* DGRAM has no end of file */
	t_send(c, c->a, "last", 4, 0);
	t_recv(c, c->b, 100, 0);
	t_forget_fd(c, c->a);
	t_thread_start(&th, helper_thread, &h);
	t_recv(c, c->b, 100, 0);
	t_thread_join(th);
	t_recv(c, c->b, 100, 0);
}

static void scenario_send_woken_by_peer_close(struct t_ctx *c)
{
	pthread_t th;
	struct helper h = { ACT_CLOSE, c->b, 0, 0, 0, 0 };
	set_timeout(c->a, SO_SNDTIMEO, 300000);
	long filled = fill(c->a);
	t_log(c, "filled a with %ld bytes", filled);
	t_forget_fd(c, c->b);
	t_thread_start(&th, helper_thread, &h);
	t_send_pattern(c, c->a, 5000, 1, 0);
	t_thread_join(th);
	t_send_pattern(c, c->a, 10, 2, 0);
}

/*
 * usp_close() of a descriptor while another thread is blocked in recv on
 * it.  Linux does not wake the receiver: the call holds its own reference
 * to the socket, which stays connected until that call returns, so a later
 * send is still received.
 */
static void scenario_close_while_blocked(struct t_ctx *c)
{
	struct t_blocked_recv br = {.fd = c->b, .cap = 16};
	pthread_t th;
	set_timeout(c->b, SO_RCVTIMEO, 500000); /* bound the wait either way */
	t_thread_start(&th, t_blocked_recv_thread, &br);
	t_sleep_ms(DELAY_MS);
	t_close(c, c->b);
	t_sleep_ms(DELAY_MS);
	t_send(c, c->a, "after close", 11, MSG_DONTWAIT | MSG_NOSIGNAL);
	t_thread_join(th);
	char res[64];
	t_fmt_result(res, sizeof(res), br.r, br.err);
	t_log(c, "the blocked recv(b) returned %s%s%.*s", res, br.r > 0 ? " " : "",
	      br.r > 0 ? (int)br.r : 0, br.buf);
	t_poll1(c, c->a, POLLIN | POLLOUT | POLLRDHUP);
	t_send(c, c->a, "later", 5, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ---- EINTR ---- */

static atomic_int signals_handled;

static void count_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&signals_handled, 1);
}

struct interrupter {
	pthread_t target;
	atomic_int stop;
	int max_signals;	/* 0: until stopped */
	int send_fd;		/* >= 0: send data after the signals */
};

static void *interrupter_thread(void *arg)
{
	struct interrupter *in = arg;
	int sent = 0;
	/* at least one signal, so that "handler ran" never depends on timing */
	do {
		t_sleep_ms(SIGNAL_INTERVAL_MS);
		if (in->max_signals && sent == in->max_signals) {
			if (in->send_fd >= 0)
				usp_send(in->send_fd, "after signals", 13, 0);
			break;
		}
		pthread_kill(in->target, SIGUSR1);
		sent++;
	} while (!atomic_load(&in->stop));
	return NULL;
}

static void install_handler(int restart)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = count_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGUSR1, &sa, NULL);
}

/* Runs `call` while another thread sends SIGUSR1 until it returns. */
static void interrupted(struct t_ctx *c, void (*call)(struct t_ctx *c))
{
	struct interrupter in;
	pthread_t th;
	in.target = pthread_self();
	atomic_init(&in.stop, 0);
	in.max_signals = 0;
	in.send_fd = -1;
	atomic_store(&signals_handled, 0);
	t_thread_start(&th, interrupter_thread, &in);
	call(c);
	atomic_store(&in.stop, 1);
	t_thread_join(th);
	t_log(c, "  signal handler ran: %s", atomic_load(&signals_handled) > 0 ? "yes" : "no");
}

static void call_recv(struct t_ctx *c) { t_recv(c, c->b, 100, 0); }
static void call_read(struct t_ctx *c) { t_read(c, c->b, 100); }
static void call_recv_waitall(struct t_ctx *c) { t_recv(c, c->b, 100, MSG_WAITALL); }
static void call_send_full(struct t_ctx *c) { t_send_pattern(c, c->a, 3000, 1, 0); }
/* more than fits: STREAM queues part, then a signal ends the wait */
static void call_send_huge(struct t_ctx *c) { t_send_pattern(c, c->a, 300000, 2, 0); }

static void call_poll(struct t_ctx *c)
{
	struct pollfd p = { .fd = c->b, .events = POLLIN };
	t_guard_arm("poll(b,IN,5000)");
	errno = 0;
	int r = usp_poll(&p, 1, 5000);
	int err = errno;
	t_guard_disarm();
	t_record(c, "poll(b,IN,5000)", r, err);
}

static void scenario_eintr_without_restart(struct t_ctx *c)
{
	c->prepoll_ms = -1;
	install_handler(0);
	interrupted(c, call_recv);
	interrupted(c, call_read);
	interrupted(c, call_poll);
	/* with a timeout set, EINTR too */
	set_timeout(c->b, SO_RCVTIMEO, 3000000);
	interrupted(c, call_recv);
	set_timeout(c->b, SO_RCVTIMEO, 0);
	t_send(c, c->a, "ab", 2, 0);
	if (c->type == SOCK_STREAM)
		interrupted(c, call_recv_waitall); /* partial data: returns it */
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	long filled = fill(c->a);
	t_log(c, "filled a with %ld bytes", filled);
	interrupted(c, call_send_full);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
}

/* A send that has queued part of its data when the signal comes. */
static void scenario_eintr_partial_send(struct t_ctx *c)
{
	install_handler(0);
	interrupted(c, call_send_huge);
	t_queues(c);
	install_handler(1);	/* SA_RESTART changes nothing once data moved */
	long drained = 0;
	ssize_t r;
	while ((r = usp_recv(c->b, (char[65536]){ 0 }, 65536, MSG_DONTWAIT)) > 0)
		drained += r;
	t_log(c, "drained %ld bytes", drained);
	t_send_pattern(c, c->a, 150000, 3, 0);
	interrupted(c, call_send_huge);
	t_queues(c);
}

/* With SA_RESTART: signals, then data; the call must return the data. */
static void restarted(struct t_ctx *c, void (*call)(struct t_ctx *c), int data_fd)
{
	struct interrupter in;
	pthread_t th;
	in.target = pthread_self();
	atomic_init(&in.stop, 0);
	in.max_signals = 2;
	in.send_fd = data_fd;
	atomic_store(&signals_handled, 0);
	t_thread_start(&th, interrupter_thread, &in);
	call(c);
	atomic_store(&in.stop, 1);
	t_thread_join(th);
	t_log(c, "  signal handler ran: %s", atomic_load(&signals_handled) > 0 ? "yes" : "no");
}

static void scenario_eintr_with_restart(struct t_ctx *c)
{
	c->prepoll_ms = -1;
	install_handler(1);
	restarted(c, call_recv, c->a);
	restarted(c, call_read, c->a);
	/* poll is never restarted (no data follows: the result must not
	 * depend on when the thread notices that the call returned) */
	restarted(c, call_poll, -1);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	/* a call that already moved data returns the count, restart or not */
	if (c->type == SOCK_STREAM) {
		t_send(c, c->a, "ab", 2, 0);
		restarted(c, call_recv_waitall, -1);
	}
	/* a socket timeout turns the restart into EINTR */
	set_timeout(c->b, SO_RCVTIMEO, 3000000);
	restarted(c, call_recv, -1);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
}

int main(void)
{
	static int yes = 1;
	t_init("blocking");
	t_compare_matrix("recv_woken_by_thread", scenario_recv_woken_by_thread, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("recv_woken_by_process", scenario_recv_woken_by_process, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("peek_past_queue", scenario_peek_past_queue, T_ALL_TYPES, T_BLOCKING, T_DIR_0_TO_1, NULL);
	t_compare_matrix("send_woken_by_reader", scenario_send_woken_by_reader, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("woken_at_a_quarter", scenario_woken_at_a_quarter, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("woken_at_a_quarter by a reader process", scenario_woken_at_a_quarter,
			 T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, &yes);
	t_compare_matrix("waitall_across_sends", scenario_waitall_across_sends, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("woken_by_peer_close", scenario_woken_by_peer_close, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("send_woken_by_peer_close", scenario_send_woken_by_peer_close, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	/* closing a descriptor another thread is using is a race by
	 * ThreadSanitizer's rules, deliberate here */
	if (t_thread_sanitizer())
		t_note("close_while_blocked not run under ThreadSanitizer");
	else if (!getenv("T_KNOWN_DIFFERENCES"))
		/* docs/DESIGN.md, known difference: usp_close releases at once */
		t_note("close_while_blocked: known difference, run with T_KNOWN_DIFFERENCES=1");
	else
		t_compare_matrix("close_while_blocked", scenario_close_while_blocked, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("eintr_without_restart", scenario_eintr_without_restart, T_ALL_TYPES, T_BLOCKING, T_DIR_0_TO_1, NULL);
	t_compare_matrix("eintr_partial_send", scenario_eintr_partial_send, T_ALL_TYPES, T_BLOCKING, T_DIR_0_TO_1, NULL);
	t_compare_matrix("eintr_with_restart", scenario_eintr_with_restart, T_ALL_TYPES, T_BLOCKING, T_DIR_0_TO_1, NULL);
	signal(SIGUSR1, SIG_IGN);
	return t_finish();
}
