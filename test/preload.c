/*
 * preload: libuspair-preload.so under a program that only calls libc.
 *
 * The program (this file, run as `preload --steps`) does its steps with
 * plain libc calls and prints a trace line per call.  It runs twice, both
 * times with the preload: with USPAIR_DISABLE=1 (every pair is the
 * kernel's) and without (every AF_UNIX socketpair is uspair's), and the
 * two traces must be equal.  The uspair run's USPAIR_STATS line must show
 * that its pairs were uspair's and that data took the fast path.
 *
 * Steps: data both ways for every type and blocking mode through read,
 * write, readv, writev, send, recv, sendmsg, recvmsg; poll, ppoll, select
 * and pselect; dup, dup2, dup3, F_DUPFD_CLOEXEC and close; shutdown,
 * FIONREAD and getsockopt; fork; exec of a child that uses an inherited
 * end, with data queued for it before (the pair falls back, the data
 * is moved into the kernel's queue); epoll, splice and fdopen with data queued in
 * shared memory first (the pair falls back without loss or reordering),
 * also in a forked child that holds only its end;
 * an end passed in SCM_RIGHTS over a kernel socket.  The one deliberate
 * difference, exec while the inherited end has unread data and the
 * other end is not in the process (EBUSY under uspair), is checked separately with its hand-written expectation.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *self_path;

static void trace(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *err_name(long r, int err)
{
	static char buf[32];
	if (r >= 0)
		return "";
	snprintf(buf, sizeof(buf), " errno=%s", strerrorname_np(err) ? strerrorname_np(err) : "?");
	return buf;
}

#define REC(desc, expr)                                              \
	do {                                                         \
		errno = 0;                                           \
		long r_ = (long)(expr);                              \
		int e_ = errno;                                      \
		trace("%s = %ld%s", desc, r_, err_name(r_, e_));     \
	} while (0)

/* a receive, traced with what it got */
static void rec_data(const char *desc, long r, int err, const char *buf)
{
	trace("%s = %ld%s data=\"%.*s\"", desc, r, err_name(r, err), r > 0 ? (int)r : 0,
	      buf);
}

#define RECV(desc, expr, buf)                                  \
	do {                                                   \
		errno = 0;                                     \
		memset(buf, 0, sizeof(buf));                   \
		long r_ = (long)(expr);                        \
		rec_data(desc, r_, errno, buf);                \
	} while (0)

static const int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
static const char *type_name(int t)
{
	return t == SOCK_STREAM ? "STREAM" : t == SOCK_SEQPACKET ? "SEQPACKET" : "DGRAM";
}

static void data_calls(int type, int nonblock, int from, int to)
{
	char buf[256];
	int dw = nonblock ? 0 : MSG_DONTWAIT;
	REC("write", write(from, "w-one", 5));
	struct iovec wv[2] = {{"wv-a", 4}, {"wv-b", 4}};
	REC("writev", writev(from, wv, 2));
	REC("send", send(from, "s-three", 7, 0));
	struct iovec mv = {"m-four", 6};
	struct msghdr mh = {.msg_iov = &mv, .msg_iovlen = 1};
	REC("sendmsg", sendmsg(from, &mh, 0));
	int avail = -1;
	REC("ioctl FIONREAD", ioctl(to, FIONREAD, &avail));
	trace("  FIONREAD value %d", avail);
	RECV("read 3", read(to, buf, 3), buf);
	char a[3], b[5];
	struct iovec rv[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
	errno = 0;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	long r = readv(to, rv, 2);
	trace("readv = %ld%s data=\"%.3s|%.5s\"", r, err_name(r, errno), a, b);
	RECV("recv", recv(to, buf, sizeof(buf), dw), buf);
	struct iovec iv = {buf, sizeof(buf)};
	struct msghdr rh = {.msg_iov = &iv, .msg_iovlen = 1};
	RECV("recvmsg", recvmsg(to, &rh, dw), buf);
	trace("  msg_flags %d", rh.msg_flags);
	RECV("recv empty", recv(to, buf, sizeof(buf), MSG_DONTWAIT), buf);
	(void)type;
}

static void readiness_calls(int x, int y)
{
	struct pollfd p[2] = {{x, POLLIN | POLLOUT, 0}, {y, POLLIN | POLLOUT, 0}};
	REC("poll", poll(p, 2, 0));
	trace("  revents %#x %#x", p[0].revents, p[1].revents);
	REC("send", send(x, "ready", 5, 0));
	struct timespec ts = {0, 20 * 1000 * 1000};
	p[0].revents = p[1].revents = 0;
	p[1].events = POLLIN;
	REC("ppoll", ppoll(&p[1], 1, &ts, NULL));
	trace("  revents %#x", p[1].revents);
	fd_set rd, wr;
	FD_ZERO(&rd);
	FD_ZERO(&wr);
	FD_SET(x, &rd);
	FD_SET(y, &rd);
	FD_SET(x, &wr);
	struct timeval tv = {0, 0};
	int n = (x > y ? x : y) + 1;
	REC("select", select(n, &rd, &wr, NULL, &tv));
	trace("  read set x=%d y=%d write set x=%d", FD_ISSET(x, &rd), FD_ISSET(y, &rd),
	      FD_ISSET(x, &wr));
	FD_ZERO(&rd);
	FD_SET(x, &rd);
	REC("pselect (nothing to read, 20 ms)", pselect(n, &rd, NULL, NULL, &ts, NULL));
	char buf[16];
	RECV("recv", recv(y, buf, sizeof(buf), 0), buf);
}

static void descriptor_calls(int x, int y)
{
	char buf[32];
	int d1 = dup(x);
	trace("dup ok %d", d1 >= 0);
	REC("send via dup", send(d1, "dup", 3, 0));
	REC("close original", close(x));
	RECV("recv", recv(y, buf, sizeof(buf), 0), buf);
	int d2 = fcntl(d1, F_DUPFD_CLOEXEC, 50);
	trace("F_DUPFD_CLOEXEC ok %d cloexec %d", d2 >= 50, fcntl(d2, F_GETFD));
	REC("dup2 onto 60", dup2(d2, 60));
	REC("dup3 onto 61", dup3(d2, 61, O_CLOEXEC));
	REC("dup3 same fd", dup3(61, 61, 0));
	REC("send via 61", send(61, "via61", 5, 0));
	REC("close 61", close(61));
	REC("close 60", close(60));
	REC("close d2", close(d2));
	RECV("recv", recv(y, buf, sizeof(buf), 0), buf);
	REC("shutdown SHUT_WR", shutdown(d1, SHUT_WR));
	RECV("recv after shutdown", recv(y, buf, sizeof(buf), MSG_DONTWAIT), buf);
	int v = 0;
	socklen_t len = sizeof(v);
	REC("getsockopt SO_TYPE", getsockopt(y, SOL_SOCKET, SO_TYPE, &v, &len));
	trace("  SO_TYPE %d", v);
	REC("close last of x", close(d1));
	RECV("recv after close", recv(y, buf, sizeof(buf), MSG_DONTWAIT), buf);
	REC("send to closed peer", send(y, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL));
	REC("close y", close(y));
}

static void fork_calls(int x, int y)
{
	pid_t pid = fork();
	if (pid == 0) {
		char buf[32];
		ssize_t r = recv(y, buf, sizeof(buf), 0);
		if (r > 0)
			send(y, buf, (size_t)r, 0);
		send(y, "child", 5, 0);
		_exit(0);
	}
	char buf[32];
	REC("send to child", send(x, "ping", 4, 0));
	int st;
	waitpid(pid, &st, 0);
	trace("child status %d", st);
	RECV("recv echo", recv(x, buf, sizeof(buf), MSG_DONTWAIT), buf);
	RECV("recv child", recv(x, buf, sizeof(buf), MSG_DONTWAIT), buf);
}

/* `preload --exec-child FD`: echo one message back, then say bye */
static int exec_child(int fd)
{
	char buf[64];
	ssize_t r = recv(fd, buf, sizeof(buf), 0);
	if (r > 0)
		send(fd, buf, (size_t)r, 0);
	send(fd, "bye", 3, 0);
	return 0;
}

/* the child closes `other` (if >= 0) before it execs with fd */
static pid_t spawn_exec_child(int fd, int other)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (other >= 0)
			close(other);
		char arg[16];
		snprintf(arg, sizeof(arg), "%d", fd);
		execl(self_path, self_path, "--exec-child", arg, (char *)NULL);
		fprintf(stderr, "execl: %s\n", strerror(errno));
		_exit(127);
	}
	return pid;
}

static void exec_calls(int x, int y, int child_closes_x)
{
	char buf[32];
	REC("send before exec", send(y, "early", 5, 0)); /* to x: read below */
	RECV("recv", recv(x, buf, sizeof(buf), 0), buf);
	/* queued before the child execs: its exec moves it to the kernel,
	 * sent through x by the child, or by this process (the child's
	 * ancestor) when the child closed x */
	REC("send to exec child", send(x, "hello", 5, 0));
	pid_t pid = spawn_exec_child(y, child_closes_x ? x : -1);
	int st;
	waitpid(pid, &st, 0);
	trace("exec child status %d", st);
	RECV("recv echo", recv(x, buf, sizeof(buf), MSG_DONTWAIT), buf);
	RECV("recv bye", recv(x, buf, sizeof(buf), MSG_DONTWAIT), buf);
	REC("send after", send(x, "after", 5, 0));
	RECV("recv in parent", recv(y, buf, sizeof(buf), 0), buf);
}

/* Data queued in shared memory, then a call that needs the kernel socket. */
static void fallback_calls(int type, int x, int y)
{
	char buf[64];
	REC("send one", send(x, "one", 3, 0));
	REC("send two", send(x, "two", 3, 0));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = y};
	REC("epoll_ctl ADD", epoll_ctl(ep, EPOLL_CTL_ADD, y, &ev));
	struct epoll_event out[2];
	REC("epoll_wait", epoll_wait(ep, out, 2, 0));
	REC("send three", send(x, "three", 5, 0));
	for (int i = 0; i < 4; i++)
		RECV("recv", recv(y, buf, sizeof(buf), MSG_DONTWAIT), buf);
	REC("epoll_wait drained", epoll_wait(ep, out, 2, 0));
	close(ep);
	if (type == SOCK_STREAM) {
		int p[2];
		if (pipe(p) < 0)
			return;
		REC("send four", send(y, "four", 4, 0));
		REC("splice to pipe", splice(x, NULL, p[1], NULL, 64, SPLICE_F_NONBLOCK));
		RECV("read pipe", read(p[0], buf, sizeof(buf)), buf);
		close(p[0]);
		close(p[1]);
		REC("send line", send(y, "a line\n", 7, 0));
		FILE *f = fdopen(dup(x), "r");
		trace("fdopen ok %d", f != NULL);
		if (f) {
			char *got = fgets(buf, sizeof(buf), f);
			trace("fgets %s", got ? buf : "(null)\n");
			fclose(f);
		}
	}
}

/* epoll in a forked child that holds only its end, with data queued in
 * shared memory before: the data must reach the kernel's queue (moved
 * by this process, the child's ancestor) for epoll to report it. */
static void epoll_child_calls(int x, int y)
{
	REC("send before fork", send(x, "queued", 6, 0));
	pid_t pid = fork();
	if (pid == 0) {
		close(x);
		char buf[32];
		int ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = y};
		REC("child epoll_ctl ADD", epoll_ctl(ep, EPOLL_CTL_ADD, y, &ev));
		struct epoll_event out;
		REC("child epoll_wait (2 s)", epoll_wait(ep, &out, 1, 2000));
		RECV("child recv", recv(y, buf, sizeof(buf), MSG_DONTWAIT), buf);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	trace("child status %d", st);
}

/* An end passed over a kernel AF_UNIX connection (socket, bind, connect:
 * never a uspair pair), with data already queued for it. */
static void scm_calls(int x, int y)
{
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1, "uspair-preload-%d", getpid());
	socklen_t alen = offsetof(struct sockaddr_un, sun_path) + 1 +
			 (socklen_t)strlen(addr.sun_path + 1);
	if (bind(l, (struct sockaddr *)&addr, alen) < 0 || listen(l, 1) < 0) {
		trace("listen failed");
		return;
	}
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	connect(c, (struct sockaddr *)&addr, alen);
	int a = accept(l, NULL, NULL);
	char buf[64];
	REC("send queued", send(x, "queued", 6, 0));
	RECV("recv queued", recv(y, buf, sizeof(buf), 0), buf);
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = {"F", 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			   .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &y, sizeof(int));
	REC("sendmsg SCM_RIGHTS over a kernel socket", sendmsg(c, &m, 0));
	char one;
	struct iovec riov = {&one, 1};
	memset(cbuf, 0, sizeof(cbuf));
	struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	REC("recvmsg", recvmsg(a, &rm, 0));
	int got = -1;
	cm = CMSG_FIRSTHDR(&rm);
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&got, CMSG_DATA(cm), sizeof(int));
	REC("send to passed end", send(x, "to-passed", 9, 0));
	RECV("recv on received descriptor", recv(got, buf, sizeof(buf), 0), buf);
	REC("send from received descriptor", send(got, "back", 4, 0));
	RECV("recv", recv(x, buf, sizeof(buf), 0), buf);
	close(got);
	close(a);
	close(c);
	close(l);
}

static int make_pair(int type, int nonblock, int sv[2])
{
	int r = socketpair(AF_UNIX, type | (nonblock ? SOCK_NONBLOCK : 0), 0, sv);
	if (r < 0)
		trace("socketpair failed: %s", strerror(errno));
	return r;
}

static void step_fork(int type, int x, int y)
{
	fork_calls(x, y);
}

static void step_exec(int type, int x, int y)
{
	exec_calls(x, y, 0);
}

static void step_exec_without_other_end(int type, int x, int y)
{
	exec_calls(x, y, 1);
}

static void step_epoll_child(int type, int x, int y)
{
	epoll_child_calls(x, y);
}

static void step_scm(int type, int x, int y)
{
	scm_calls(x, y);
}

/* Steps on a fresh blocking pair of each type. */
static const struct {
	const char *name;
	void (*fn)(int type, int x, int y);
} pair_steps[] = {
	{"fork", step_fork},
	{"exec", step_exec},
	{"exec, the child without the other end", step_exec_without_other_end},
	{"fallback", fallback_calls},
	{"epoll in a child without the other end", step_epoll_child},
	{"SCM_RIGHTS over a kernel socket", step_scm},
};

static int steps(void)
{
	int sv[2];
	for (size_t t = 0; t < 3; t++) {
		for (int nb = 0; nb < 2; nb++) {
			for (int dir = 0; dir < 2; dir++) {
				trace("== %s %s %s", type_name(types[t]),
				      nb ? "nonblocking" : "blocking", dir ? "1->0" : "0->1");
				if (make_pair(types[t], nb, sv) < 0)
					return 1;
				data_calls(types[t], nb, sv[dir], sv[!dir]);
				readiness_calls(sv[dir], sv[!dir]);
				descriptor_calls(sv[dir], sv[!dir]);
			}
		}
		for (size_t k = 0; k < sizeof(pair_steps) / sizeof(pair_steps[0]); k++) {
			trace("== %s %s", type_name(types[t]), pair_steps[k].name);
			if (make_pair(types[t], 0, sv) < 0)
				return 1;
			pair_steps[k].fn(types[t], sv[0], sv[1]);
			close(sv[0]);
			close(sv[1]);
		}
	}
	return 0;
}

/* The deliberate difference: exec with unread data for the inherited end
 * when no process holds the other end any more (it was closed after the
 * data was sent: Linux keeps the data readable).  Prints "EBUSY" or
 * "exec ok". */
static int exec_busy(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	send(sv[0], "unread", 6, 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		usleep(100 * 1000); /* the parent closes its copy meanwhile */
		char arg[16];
		snprintf(arg, sizeof(arg), "%d", sv[1]);
		execl(self_path, self_path, "--exec-child", arg, (char *)NULL);
		_exit(errno == EBUSY ? 42 : 127);
	}
	close(sv[0]);
	int st;
	waitpid(pid, &st, 0);
	printf("%s\n", WIFEXITED(st) && WEXITSTATUS(st) == 42 ? "EBUSY" : "exec ok");
	return 0;
}

/* Runs `self ARG` with the preload; its stdout into out (cap bytes). */
static int run_self(const char *preload, const char *arg, int disable, const char *stats,
		    char *out, size_t cap)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		setenv("LD_PRELOAD", preload, 1);
		if (disable)
			setenv("USPAIR_DISABLE", "1", 1);
		else
			unsetenv("USPAIR_DISABLE");
		if (stats)
			setenv("USPAIR_STATS", stats, 1);
		else
			unsetenv("USPAIR_STATS");
		execl(self_path, self_path, arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t len = 0;
	ssize_t r;
	while (len + 1 < cap && (r = read(p[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* first differing line of two traces */
static void show_difference(const char *a, const char *b)
{
	int line = 1;
	while (*a || *b) {
		const char *ea = strchrnul(a, '\n'), *eb = strchrnul(b, '\n');
		if (ea - a != eb - b || memcmp(a, b, (size_t)(ea - a)) != 0) {
			fprintf(stderr, "first difference at line %d:\n  kernel: %.*s\n  uspair: %.*s\n",
				line, (int)(ea - a), a, (int)(eb - b), b);
			return;
		}
		a = *ea ? ea + 1 : ea;
		b = *eb ? eb + 1 : eb;
		line++;
	}
}

int main(int argc, char **argv)
{
	self_path = argv[0];
	if (argc > 1 && strcmp(argv[1], "--steps") == 0)
		return steps();
	if (argc > 2 && strcmp(argv[1], "--exec-child") == 0)
		return exec_child(atoi(argv[2]));
	if (argc > 1 && strcmp(argv[1], "--exec-busy") == 0)
		return exec_busy();

	signal(SIGPIPE, SIG_IGN);
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	static char preload[4096];
	snprintf(preload, sizeof(preload), "%s/libuspair-preload.so", build);
	if (access(preload, R_OK) != 0) {
		printf("SKIP: %s not built\n", preload);
		return 77;
	}
	/* a sanitizer runtime linked into this program comes after the
	 * preload in the library list: tell ASan that this is intended */
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0:detect_leaks=0", 0);
	char stats[] = "/tmp/uspair-preload-stats.XXXXXX";
	int sfd = mkstemp(stats);
	if (sfd < 0)
		return 1;
	close(sfd);
	static char kernel_out[1 << 20], uspair_out[1 << 20];
	int failed = 0;
	int rk = run_self(preload, "--steps", 1, NULL, kernel_out, sizeof(kernel_out));
	int ru = run_self(preload, "--steps", 0, stats, uspair_out, sizeof(uspair_out));
	printf("kernel run: exit %d, %zu bytes of trace; uspair run: exit %d, %zu bytes\n", rk,
	       strlen(kernel_out), ru, strlen(uspair_out));
	if (rk != 0 || ru != 0 || strcmp(kernel_out, uspair_out) != 0) {
		fprintf(stderr, "FAIL: the traces differ\n");
		show_difference(kernel_out, uspair_out);
		failed = 1;
	}
	/* the uspair run's own line: the first one written, by the parent
	 * (children exit with _exit and write none) */
	FILE *f = fopen(stats, "r");
	unsigned long long pairs = 0, fast = 0, fallback = 0, sleeps = 0;
	int pid;
	char line[256];
	int found = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "pid=%d pairs=%llu fast_bytes=%llu fallback_bytes=%llu sleeps=%llu",
			   &pid, &pairs, &fast, &fallback, &sleeps) == 5 && pairs > 0) {
			found = 1;
			break;
		}
	}
	if (f)
		fclose(f);
	unlink(stats);
	printf("uspair run stats: pairs=%llu fast_bytes=%llu fallback_bytes=%llu sleeps=%llu\n",
	       pairs, fast, fallback, sleeps);
	/* 4 data pairs and 6 more per type */
	if (!found || pairs != 30 || fast == 0 || fallback == 0) {
		fprintf(stderr, "FAIL: USPAIR_STATS does not show the pairs on uspair\n");
		failed = 1;
	}
	char busy[64];
	run_self(preload, "--exec-busy", 1, NULL, busy, sizeof(busy));
	printf("exec with unread data, kernel: %s", busy);
	if (strcmp(busy, "exec ok\n") != 0)
		failed = 1;
	run_self(preload, "--exec-busy", 0, NULL, busy, sizeof(busy));
	printf("exec with unread data, uspair: %s", busy);
	if (strcmp(busy, "EBUSY\n") != 0)
		failed = 1;
	printf("preload: %s\n", failed ? "FAILED" : "ok");
	return failed;
}
