/*
 * fork: a pair used across fork(), compared between kernel and uspair.
 *
 * - Traffic: parent and child exchange many messages both ways (then in
 *   ping-pong), every byte checked.
 * - The child dies: exit(), _exit() or SIGKILL, with or without having sent
 *   data, with or without unread data: the parent sees what the kernel
 *   shows (poll mask, recv sequence, EPIPE/ECONNREFUSED, SO_ERROR), and
 *   for uspair POLLHUP (STREAM, SEQPACKET) within 100 ms of waitpid()
 *   returning (measured; more is a failure).  DGRAM, which has no hang-up,
 *   is inspected 100 ms after waitpid().
 * - A parent blocked in recv/poll when the child is killed wakes up.
 * - dup/dup2/F_DUPFD then closing one copy keeps the endpoint alive;
 *   closing the last one is seen by the peer; a child closing its copies
 *   does not end the parent's.
 * - exec: with SOCK_CLOEXEC the exec closes the endpoint and the peer sees
 *   the end; without it, the endpoint stays alive until the process ends.
 * - uspair only, the region cache (src/pair.c): a pair's region that a
 *   forked child can still see is never reused by the parent, and a region
 *   idle in the parent's cache at fork is reused by the parent only, never
 *   by the child; both sides check every byte of their own traffic while
 *   the other runs.
 */
#include "t_helpers.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define HUP_LIMIT_MS 100.0

static int wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			t_die("waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static pid_t fork_or_die(void)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork: %s", strerror(errno));
	if (pid == 0)
		alarm(20); /* the inherited watchdog handler reports and exits */
	return pid;
}

/* ---- traffic ---- */

#define MESSAGES 2000
#define MAX_MESSAGE 300

/* Message i of a stream: length and bytes derived from (seed, i). */
static size_t message_len(unsigned seed, int i)
{
	return 1 + (size_t)((unsigned)i * 2654435761u ^ seed) % MAX_MESSAGE;
}

/* Sends message i; on STREAM with a 2-byte length prefix. */
static int send_message(int fd, int stream, unsigned seed, int i)
{
	unsigned char buf[MAX_MESSAGE + 2];
	size_t len = message_len(seed, i);
	size_t off = stream ? 2 : 0;
	buf[0] = (unsigned char)(len >> 8);
	buf[1] = (unsigned char)len;
	t_fill_pattern(buf + off, len, seed, (size_t)i * 1000);
	size_t total = len + off, done = 0;
	while (done < total) {
		ssize_t r = usp_send(fd, buf + done, total - done, 0);
		if (r < 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static int receive_exact(int fd, unsigned char *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = usp_recv(fd, buf + done, len - done, MSG_WAITALL);
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

/* Receives and checks message i; 0 if correct. */
static int receive_message(int fd, int stream, unsigned seed, int i)
{
	unsigned char buf[MAX_MESSAGE + 8], want[MAX_MESSAGE];
	size_t len = message_len(seed, i);
	size_t got;
	if (stream) {
		if (receive_exact(fd, buf, 2) < 0)
			return -1;
		got = (size_t)buf[0] << 8 | buf[1];
		if (got != len || receive_exact(fd, buf, got) < 0)
			return -1;
	} else {
		ssize_t r = usp_recv(fd, buf, sizeof(buf), 0);
		if (r < 0)
			return -1;
		got = (size_t)r;
	}
	t_fill_pattern(want, len, seed, (size_t)i * 1000);
	return got == len && memcmp(buf, want, len) == 0 ? 0 : -1;
}

static void scenario_traffic(struct t_ctx *c)
{
	int stream = c->type == SOCK_STREAM;
	pid_t pid = fork_or_die();
	if (pid == 0) {
		usp_close(c->b);
		int bad = 0;
		for (int i = 0; i < MESSAGES; i++)
			bad += send_message(c->a, stream, 11, i) != 0;
		for (int i = 0; i < MESSAGES; i++)
			bad += receive_message(c->a, stream, 22, i) != 0;
		for (int i = 0; i < 500; i++) {
			bad += receive_message(c->a, stream, 33, i) != 0;
			bad += send_message(c->a, stream, 44, i) != 0;
		}
		_exit(bad ? 1 : 0);
	}
	t_close(c, c->a);
	int bad = 0, first_bad = -1;
	for (int i = 0; i < MESSAGES; i++)
		if (receive_message(c->b, stream, 11, i) != 0 && bad++ == 0)
			first_bad = i;
	t_log(c, "parent received %d messages from the child: %d wrong (first #%d)",
	      MESSAGES, bad, first_bad);
	bad = 0;
	for (int i = 0; i < MESSAGES; i++)
		bad += send_message(c->b, stream, 22, i) != 0;
	t_log(c, "parent sent %d messages: %d failed", MESSAGES, bad);
	bad = 0;
	for (int i = 0; i < 500; i++) {
		bad += send_message(c->b, stream, 33, i) != 0;
		bad += receive_message(c->b, stream, 44, i) != 0;
	}
	t_log(c, "500 round trips: %d failures", bad);
	t_log(c, "child exit status %d", wait_child(pid));
	t_recv(c, c->b, 100, MSG_DONTWAIT);
}

/* ---- the child dies ---- */

enum death { DEATH_EXIT, DEATH__EXIT, DEATH_SIGKILL };

struct death_case {
	enum death how;
	int child_sends;	/* the child sends "bye" before dying */
	int child_unread;	/* the parent sent data the child never reads */
};

/* Waits (up to limit_ms) for POLLHUP on fd; returns the milliseconds it took. */
static double wait_for_hup(int fd, int *revents, double limit_ms)
{
	double start = t_now();
	*revents = 0;
	while ((t_now() - start) * 1000.0 < limit_ms) {
		struct pollfd p = { .fd = fd, .events = POLLRDHUP };
		if (usp_poll(&p, 1, 20) > 0 && (p.revents & POLLHUP)) {
			*revents = p.revents;
			break;
		}
	}
	return (t_now() - start) * 1000.0;
}

/* What the parent sees once the child's end is gone. */
static void inspect_survivor(struct t_ctx *c, double since_waitpid_ms)
{
	if (c->type == SOCK_DGRAM) {
		/* no hang-up for DGRAM: look 100 ms after waitpid */
		double wait_ms = HUP_LIMIT_MS - since_waitpid_ms;
		if (wait_ms > 0)
			t_sleep_ms((unsigned)wait_ms);
	} else {
		int revents;
		double ms = wait_for_hup(c->b, &revents, 1000.0) + since_waitpid_ms;
		t_log(c, "POLLHUP within %.0f ms of waitpid: %s", HUP_LIMIT_MS,
		      ms <= HUP_LIMIT_MS ? "yes" : "NO");
		if (c->kind == T_USPAIR && ms > HUP_LIMIT_MS)
			t_fail("%s %s: POLLHUP %.1f ms after waitpid returned (limit %.0f ms)",
			       c->scenario, t_type_name(c->type), ms, HUP_LIMIT_MS);
	}
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	t_so_error(c, c->b);
	for (int i = 0; i < 3; i++)
		t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_send(c, c->b, "x", 1, MSG_DONTWAIT);
	t_send(c, c->b, "y", 1, MSG_DONTWAIT);
	t_send(c, c->b, "z", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	t_so_error(c, c->b);
}

static void scenario_child_dies(struct t_ctx *c)
{
	const struct death_case *dc = c->user;
	int ready[2];
	if (pipe(ready) < 0)
		t_die("pipe: %s", strerror(errno));
	if (dc->child_unread)
		t_send(c, c->b, "never read", 10, 0);
	pid_t pid = fork_or_die();
	if (pid == 0) {
		usp_close(c->b);
		close(ready[0]);
		if (dc->child_sends)
			usp_send(c->a, "bye", 3, 0);
		if (dc->how == DEATH_SIGKILL) {
			if (write(ready[1], "k", 1) != 1)
				_exit(3);
			pause(); /* the parent kills us */
			_exit(4);
		}
		if (dc->how == DEATH_EXIT)
			exit(0);
		_exit(0);
	}
	close(ready[1]);
	t_close(c, c->a);
	if (dc->how == DEATH_SIGKILL) {
		char ch;
		if (read(ready[0], &ch, 1) != 1)
			t_die("child did not get ready");
		kill(pid, SIGKILL);
	}
	close(ready[0]);
	int status = wait_child(pid);
	double reaped = t_now();
	t_log(c, "child ended with status %d", status);
	inspect_survivor(c, (t_now() - reaped) * 1000.0);
}

/* The parent is blocked when the child is killed by another thread. */
struct killer {
	pid_t pid;
	double killed_at;
};

static void *kill_after_delay(void *arg)
{
	struct killer *k = arg;
	t_sleep_ms(30);
	k->killed_at = t_now();
	kill(k->pid, SIGKILL);
	return NULL;
}

static void scenario_blocked_parent(struct t_ctx *c)
{
	int use_poll = *(const int *)c->user;
	pid_t pid = fork_or_die();
	if (pid == 0) {
		usp_close(c->b);
		pause();
		_exit(4);
	}
	t_close(c, c->a);
	struct killer k = { pid, 0 };
	pthread_t th;
	/* DGRAM has no hang-up: bound the wait */
	if (c->type == SOCK_DGRAM) {
		struct timeval tv = { 0, 200000 };
		usp_setsockopt(c->b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	t_thread_start(&th, kill_after_delay, &k);
	if (use_poll) {
		struct pollfd p = { .fd = c->b, .events = POLLIN | POLLRDHUP };
		t_guard_arm("poll in blocked_parent");
		int r = usp_poll(&p, 1, c->type == SOCK_DGRAM ? 200 : 3000);
		t_guard_disarm();
		t_log(c, "poll(b,IN|RDHUP) while the child is killed = %d revents=0x%x", r,
		      (unsigned)p.revents);
	} else {
		c->prepoll_ms = -1;
		t_recv(c, c->b, 100, 0);
	}
	double woke = t_now();
	t_thread_join(th);
	wait_child(pid);
	if (c->type != SOCK_DGRAM) {
		double ms = (woke - k.killed_at) * 1000.0;
		t_log(c, "woke within %.0f ms of the kill: %s", HUP_LIMIT_MS,
		      ms <= HUP_LIMIT_MS ? "yes" : "NO");
		if (c->kind == T_USPAIR && ms > HUP_LIMIT_MS)
			t_fail("%s %s: woke %.1f ms after SIGKILL (limit %.0f ms)",
			       c->scenario, t_type_name(c->type), ms, HUP_LIMIT_MS);
	}
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_send(c, c->b, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ---- duplicates ---- */

static void scenario_dup_keeps_alive(struct t_ctx *c)
{
	int a2 = t_dup(c, c->a, "a2");
	t_close(c, c->a);
	t_send(c, a2, "via a2", 6, 0);
	t_recv(c, c->b, 100, 0);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	int high = 200;
	t_dup2(c, a2, high, "a200");
	t_dup2(c, a2, a2, "a2");
	t_close(c, a2);
	t_send(c, high, "via a200", 8, 0);
	t_recv(c, c->b, 100, 0);
	t_send(c, c->b, "to a200", 7, 0);
	t_recv(c, high, 100, 0);
	int a3 = usp_fcntl(high, F_DUPFD_CLOEXEC, 0);
	t_record(c, "fcntl(a200,F_DUPFD_CLOEXEC,0) (new descriptor)", a3 < 0 ? -1 : 0, errno);
	if (a3 >= 0) {
		t_name_fd(c, a3, "a3");
		t_close(c, high);
		t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
		t_send(c, a3, "via a3", 6, 0);
		t_recv(c, c->b, 100, 0);
		t_close(c, a3);
	}
	/* the last copy is gone now */
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_send(c, c->b, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* dup2 onto the peer's number: the peer's descriptor is closed by it */
static void scenario_dup2_over_peer(struct t_ctx *c)
{
	t_send(c, c->a, "queued", 6, 0);
	int b_number = c->b;
	t_dup2(c, c->a, b_number, "a-at-b");
	t_poll1(c, c->a, POLLIN | POLLOUT | POLLRDHUP);
	t_poll1(c, b_number, POLLIN | POLLOUT | POLLRDHUP);
	t_recv(c, b_number, 100, MSG_DONTWAIT);
	t_send(c, b_number, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	t_so_error(c, c->a);
	t_close(c, b_number);
	t_send(c, c->a, "y", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* dup2 onto an endpoint of another pair closes that endpoint */
static void scenario_dup2_over_other_pair(struct t_ctx *c)
{
	int other[2];
	int r = t_make_pair(c->kind, c->type, other);
	t_record(c, "socketpair() for a second pair", r, errno);
	if (r != 0)
		return;
	t_name_fd(c, other[0], "p");
	t_name_fd(c, other[1], "q");
	t_send(c, other[1], "to p", 4, 0);
	t_dup2(c, c->a, other[0], "a-at-p");
	t_poll1(c, other[1], POLLIN | POLLOUT | POLLRDHUP);
	t_recv(c, other[1], 100, MSG_DONTWAIT);
	t_send(c, other[1], "q", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	t_send(c, other[0], "via a-at-p", 10, 0);
	t_recv(c, c->b, 100, 0);
	t_send(c, c->b, "to a", 4, 0);
	t_recv(c, other[0], 100, 0);
	t_close(c, c->a);
	t_send(c, c->b, "still a", 7, 0);
	t_recv(c, other[0], 100, 0);
	t_close(c, other[0]);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
}

static void scenario_child_closes_its_copies(struct t_ctx *c)
{
	pid_t pid = fork_or_die();
	if (pid == 0) {
		int bad = usp_close(c->a) != 0;
		bad |= usp_close(c->b) != 0;
		_exit(bad);
	}
	t_log(c, "child closed its copies: status %d", wait_child(pid));
	t_sleep_ms(50); /* time for anyone to (wrongly) notice a release */
	t_poll_both(c);
	t_send(c, c->a, "still here", 10, 0);
	t_recv(c, c->b, 100, 0);
	t_send(c, c->b, "me too", 6, 0);
	t_recv(c, c->a, 100, 0);
}

/* Socket state is per socket, not per process: a child's changes show. */
static void scenario_child_changes_socket(struct t_ctx *c)
{
	t_fcntl(c, c->a, F_GETFL, 0, "F_GETFL");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	pid_t pid = fork_or_die();
	if (pid == 0) {
		int bad = usp_fcntl(c->a, F_SETFL, O_NONBLOCK) != 0;
		int size = 10000;
		bad |= usp_setsockopt(c->a, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) != 0;
		bad |= usp_send(c->a, "from child", 10, 0) != 10;
		bad |= usp_shutdown(c->a, SHUT_WR) != 0;
		_exit(bad);
	}
	t_log(c, "child set O_NONBLOCK and SO_SNDBUF, sent, shut down: status %d",
	      wait_child(pid));
	t_fcntl(c, c->a, F_GETFL, 0, "F_GETFL");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	t_recv(c, c->a, 10, 0);
	t_poll_both(c);
	t_recv(c, c->b, 100, 0);
	t_recv(c, c->b, 100, 0);
	t_send(c, c->a, "x", 1, MSG_NOSIGNAL);
	t_send(c, c->b, "y", 1, 0);
	t_recv(c, c->a, 100, 0);
}

/* ---- exec ---- */

static const char *const sleep_program = "/bin/sleep";

enum exec_case { EXEC_KEEPS, EXEC_CLOSES_SOCK_CLOEXEC, EXEC_CLOSES_FD_CLOEXEC };

static void scenario_exec(struct t_ctx *c)
{
	enum exec_case ec = *(const enum exec_case *)c->user;
	if (ec == EXEC_KEEPS) /* pairs are made with SOCK_CLOEXEC: clear it */
		t_fcntl(c, c->a, F_SETFD, 0, "F_SETFD");
	else if (ec == EXEC_CLOSES_FD_CLOEXEC)
		t_fcntl(c, c->a, F_SETFD, FD_CLOEXEC, "F_SETFD");
	t_fcntl(c, c->a, F_GETFD, 0, "F_GETFD");
	pid_t pid = fork_or_die();
	if (pid == 0) {
		usp_close(c->b);
		execl(sleep_program, sleep_program, "2", (char *)NULL);
		_exit(127);
	}
	t_close(c, c->a);
	if (c->type == SOCK_DGRAM) {
		t_sleep_ms(150);
	} else {
		int revents;
		double ms = wait_for_hup(c->b, &revents, 200.0);
		t_log(c, "POLLHUP within 200 ms of fork: %s (revents 0x%x)",
		      ms < 200.0 ? "yes" : "no", (unsigned)revents);
	}
	t_log(c, "child still running: %s", waitpid(pid, NULL, WNOHANG) == 0 ? "yes" : "no");
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_send(c, c->b, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	t_send(c, c->b, "y", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	kill(pid, SIGKILL);
	t_log(c, "child status %d", wait_child(pid));
	if (c->type != SOCK_DGRAM) {
		int revents;
		double ms = wait_for_hup(c->b, &revents, 1000.0);
		t_log(c, "after the child is gone: POLLHUP within %.0f ms: %s", HUP_LIMIT_MS,
		      ms <= HUP_LIMIT_MS ? "yes" : "NO");
		if (c->kind == T_USPAIR && ms > HUP_LIMIT_MS)
			t_fail("%s %s: POLLHUP %.1f ms after waitpid (limit %.0f ms)",
			       c->scenario, t_type_name(c->type), ms, HUP_LIMIT_MS);
	} else {
		t_sleep_ms((unsigned)HUP_LIMIT_MS);
	}
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	t_send(c, c->b, "z", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ---- uspair only: the region cache across fork ---- */

int usp__region_cache_count(void); /* internal (src/pair.c), for this check */
_Bool usp__lookup_cache_serves(int fd); /* internal (src/fdtable.c), for the next */

/* n messages from sv[0] to sv[1] and back, every byte checked; 0 if all
 * arrived intact. */
static int self_traffic(int sv[2], int n, unsigned seed)
{
	char out[200], in[256];
	for (int i = 0; i < n; i++) {
		size_t len = 1 + (seed + (unsigned)i * 7919u) % sizeof(out);
		for (size_t k = 0; k < len; k++)
			out[k] = (char)(seed + (unsigned)i + k);
		if (usp_send(sv[0], out, len, 0) != (ssize_t)len ||
		    usp_recv(sv[1], in, sizeof(in), 0) != (ssize_t)len || memcmp(in, out, len) ||
		    usp_send(sv[1], out, len, 0) != (ssize_t)len ||
		    usp_recv(sv[0], in, sizeof(in), 0) != (ssize_t)len || memcmp(in, out, len))
			return -1;
	}
	return 0;
}

static void check_region_cache(int type)
{
	const char *tn = t_type_name(type);
	int p[2], q[2];
	/* 1. a region the child still uses is not cached by the parent */
	if (usp_socketpair(AF_UNIX, type, 0, p) < 0) {
		t_fail("region cache %s: socketpair: %s", tn, strerror(errno));
		return;
	}
	pid_t child = fork();
	if (child == 0) {
		alarm(20);
		t_sleep_ms(20); /* the parent closes its copies and makes q */
		_exit(self_traffic(p, 3000, 11) == 0 ? 0 : 1);
	}
	int cached = usp__region_cache_count();
	usp_close(p[0]);
	usp_close(p[1]);
	if (usp__region_cache_count() != cached)
		t_fail("region cache %s: the parent cached a region its child still uses", tn);
	if (usp_socketpair(AF_UNIX, type, 0, q) < 0 || self_traffic(q, 3000, 29) != 0)
		t_fail("region cache %s: the parent's new pair lost or garbled data", tn);
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		t_fail("region cache %s: the child's pair lost or garbled data", tn);
	usp_close(q[0]);
	usp_close(q[1]);

	/* 2. a region idle in the cache at fork is the parent's alone */
	if (usp__region_cache_count() == 0)
		t_fail("region cache %s: a closed pair's region was not cached", tn);
	child = fork();
	if (child == 0) {
		alarm(20);
		int c[2];
		int bad = usp_socketpair(AF_UNIX, type, 0, c) < 0 || self_traffic(c, 3000, 47) != 0;
		/* the stale entries inherited from the parent are gone */
		bad |= usp__region_cache_count() != 0;
		_exit(bad);
	}
	if (usp_socketpair(AF_UNIX, type, 0, q) < 0 || self_traffic(q, 3000, 53) != 0)
		t_fail("region cache %s: the parent's pair from the cache lost or garbled data", tn);
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		t_fail("region cache %s: the child reused a cached region or lost data", tn);
	usp_close(q[0]);
	usp_close(q[1]);
}

/* ---- uspair only: the lookup cache across fork ---- */

/* One message each way on sv, then whether this thread's lookup cache
 * serves both descriptors: 0 if it does. */
static int cache_serves_after_traffic(int sv[2])
{
	if (self_traffic(sv, 1, 3) != 0)
		return 2;
	return usp__lookup_cache_serves(sv[0]) && usp__lookup_cache_serves(sv[1]) ? 0 : 1;
}

/* The fork handlers take the library's process-local locks; the child
 * must come out of them as the parent does, or every call of the child
 * (the worker of a parent/worker program) looks its descriptor up the
 * slow way, with two atomic read-modify-writes on the pair's count. */
static void check_lookup_cache(int type)
{
	const char *tn = t_type_name(type);
	int sv[2];
	if (usp_socketpair(AF_UNIX, type, 0, sv) < 0) {
		t_fail("lookup cache %s: socketpair: %s", tn, strerror(errno));
		return;
	}
	if (cache_serves_after_traffic(sv) != 0)
		t_fail("lookup cache %s: not used before any fork", tn);
	pid_t child = fork();
	if (child == 0) {
		alarm(20);
		int r = cache_serves_after_traffic(sv);
		if (r == 0) { /* and in a grandchild */
			pid_t g = fork();
			if (g == 0)
				_exit(cache_serves_after_traffic(sv));
			int st;
			r = waitpid(g, &st, 0) == g && WIFEXITED(st) ? WEXITSTATUS(st) + 10 : 3;
			if (r == 10)
				r = 0;
		}
		_exit(r);
	}
	int status;
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
		t_fail("lookup cache %s: the child did not exit", tn);
	else if (WEXITSTATUS(status) == 2 || WEXITSTATUS(status) == 12)
		t_fail("lookup cache %s: a child's traffic failed", tn);
	else if (WEXITSTATUS(status) == 3)
		t_fail("lookup cache %s: the grandchild did not exit", tn);
	else if (WEXITSTATUS(status))
		t_fail("lookup cache %s: not used in a fork %s", tn,
		       WEXITSTATUS(status) >= 10 ? "grandchild" : "child");
	if (cache_serves_after_traffic(sv) != 0)
		t_fail("lookup cache %s: not used in the parent after a fork", tn);
	usp_close(sv[0]);
	usp_close(sv[1]);
}

/* ---- fork while another thread makes and closes pairs ---- */

static atomic_int churn_stop;

static void *churn_pairs(void *arg)
{
	int type = *(const int *)arg;
	while (!atomic_load(&churn_stop)) {
		int sv[2];
		if (usp_socketpair(AF_UNIX, type, 0, sv) == 0) {
			usp_close(sv[0]);
			usp_close(sv[1]);
		}
	}
	return NULL;
}

/* The library's process-local locks (the descriptor table's, the region
 * cache's, the free list of pair structures) must be held by the fork
 * handlers, or a child forked while another thread holds one waits for
 * it for good at its first usp_socketpair or last close.  Each child
 * makes and closes pairs under alarm(); about one fork in 500 caught the
 * free list's lock before it was held across fork. */
static void check_fork_during_churn(int type) __attribute__((unused));
static void check_fork_during_churn(int type)
{
	const char *tn = t_type_name(type);
	pthread_t th[3];
	atomic_store(&churn_stop, 0);
	for (int i = 0; i < 3; i++)
		t_thread_start(&th[i], churn_pairs, &type);
	int hung = 0, failed = 0, code = 0;
	for (int i = 0; i < 1000 && !hung && !failed; i++) {
		pid_t child = fork();
		if (child < 0) {
			t_fail("fork during churn %s: fork: %s", tn, strerror(errno));
			break;
		}
		if (child == 0) {
			signal(SIGALRM, SIG_DFL); /* a hang ends by the signal */
			alarm(3);
			int bad = 0;
			for (int k = 0; k < 3; k++) {
				int sv[2];
				if (usp_socketpair(AF_UNIX, type, 0, sv) < 0) {
					bad = errno;
					break;
				}
				if (self_traffic(sv, 1, 5) != 0)
					bad = 255;
				usp_close(sv[0]);
				usp_close(sv[1]);
			}
			_exit(bad & 255);
		}
		int status;
		if (waitpid(child, &status, 0) != child)
			failed = 1;
		else if (WIFSIGNALED(status))
			hung = 1;
		else if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1, code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	}
	atomic_store(&churn_stop, 1);
	for (int i = 0; i < 3; i++)
		t_thread_join(th[i]);
	if (hung)
		t_fail("fork during churn %s: a child hung making pairs (killed by its alarm)", tn);
	if (failed)
		t_fail("fork during churn %s: a child's pair failed (%s)", tn,
		       code == 255 ? "data lost or garbled"
		       : code > 0  ? strerror(code)
				   : "no exit status");
}

int main(void)
{
	static const int no = 0, yes = 1;
	static const enum exec_case keeps = EXEC_KEEPS, closes = EXEC_CLOSES_SOCK_CLOEXEC,
				    closes_fd = EXEC_CLOSES_FD_CLOEXEC;
	static const char *const death_names[] = { "exit", "_exit", "SIGKILL" };
	t_init("fork");
	t_compare_matrix("traffic", scenario_traffic, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	for (int how = DEATH_EXIT; how <= DEATH_SIGKILL; how++) {
		for (int sends = 0; sends <= 1; sends++) {
			for (int unread = 0; unread <= 1; unread++) {
				/* every combination for SIGKILL; for the other two
				 * deaths, "nothing" and "both" (keeps TSan runs short) */
				if (how != DEATH_SIGKILL && sends != unread)
					continue;
				struct death_case dc = { (enum death)how, sends, unread };
				char name[128];
				snprintf(name, sizeof(name), "child %s%s%s", death_names[how],
					 sends ? ", sent bye" : "", unread ? ", unread data" : "");
				t_compare_matrix(name, scenario_child_dies, T_ALL_TYPES,
						 T_BLOCKING, T_DIR_0_TO_1, &dc);
			}
		}
	}
	t_compare_matrix("parent blocked in recv", scenario_blocked_parent, T_ALL_TYPES, T_BLOCKING, T_DIR_0_TO_1, (void *)&no);
	t_compare_matrix("parent blocked in poll", scenario_blocked_parent, T_ALL_TYPES, T_BLOCKING, T_DIR_0_TO_1, (void *)&yes);
	t_compare_matrix("dup keeps alive", scenario_dup_keeps_alive, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("dup2 over the peer", scenario_dup2_over_peer, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("child changes the socket", scenario_child_changes_socket, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("dup2 over another pair", scenario_dup2_over_other_pair, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("child closes its copies", scenario_child_closes_its_copies, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	if (access(sleep_program, X_OK) == 0) {
		t_compare_matrix_flags("exec with SOCK_CLOEXEC", scenario_exec, T_ALL_TYPES,
				       T_BLOCKING, T_DIR_0_TO_1, SOCK_CLOEXEC, (void *)&closes);
		t_compare_matrix("exec with FD_CLOEXEC set by fcntl", scenario_exec, T_ALL_TYPES,
				 T_BLOCKING, T_DIR_0_TO_1, (void *)&closes_fd);
		t_compare_matrix_flags("exec without close-on-exec", scenario_exec, T_ALL_TYPES,
				       T_BLOCKING, T_DIR_0_TO_1, SOCK_CLOEXEC, (void *)&keeps);
	} else {
		t_note("%s not found: exec scenarios not run", sleep_program);
	}
	check_region_cache(SOCK_STREAM);
	check_region_cache(SOCK_SEQPACKET);
	check_region_cache(SOCK_DGRAM);
	check_lookup_cache(SOCK_STREAM);
	check_lookup_cache(SOCK_SEQPACKET);
	check_lookup_cache(SOCK_DGRAM);
#ifdef T_SANITIZER_INTERCEPTS
	/* the sanitizer runtimes' own locks (allocator, thread registry) are
	 * not held across fork: a child forked while a churning thread holds
	 * one hangs in the runtime, not in uspair */
	t_note("fork during churn: not run under a sanitizer (its runtime is not fork-safe with threads running)");
#else
	check_fork_during_churn(SOCK_SEQPACKET);
#endif
	return t_finish();
}
