/*
 * Descriptor life outside the usp_* rule, as docs/DESIGN.md defines it
 * ("Descriptors closed behind uspair's back"), and an idle blocked reader's
 * CPU use.
 *
 *  1. libc close() of one end: the peer learns it from the kernel (EOF on
 *     STREAM/SEQPACKET, ECONNREFUSED on DGRAM, as Linux) within 100 ms.
 *  2. The number is then reused by usp_socketpair(): the stale entry is
 *     replaced, and the new pair carries its own data, not the old pair's.
 *  3. The number is reused by a descriptor uspair does not create (a
 *     pipe): uspair still claims it (usp_is_uspair), and usp_close() closes
 *     the pipe end and forgets the stale entry; afterwards usp_* pass
 *     through to the kernel for that number.
 *  4. A reader blocked for a second uses well under 5% of a core.
 *  5. A thread keeps using a descriptor number while another thread
 *     closes it (EBADF meanwhile) and gets the number again for a new
 *     pair, then dup2()s a
 *     third pair's end over it: each send of the first thread reaches
 *     whatever the number refers to at that moment, for kernel pairs and
 *     uspair pairs alike (uspair's per-thread lookup cache must notice).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uspair.h>

static int failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "FAIL line %d: ", __LINE__);           \
			fprintf(stderr, __VA_ARGS__);                          \
			fprintf(stderr, "\n");                                 \
			failures++;                                            \
		}                                                              \
	} while (0)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void libc_close_then_reuse(int type)
{
	int sv[2], nv[2];
	char buf[64];
	CHECK(usp_socketpair(AF_UNIX, type, 0, sv) == 0, "usp_socketpair");
	CHECK(usp_send(sv[1], "old", 3, 0) == 3, "send old");
	close(sv[1]); /* behind uspair's back */

	/* 1: the survivor learns it from the kernel, within 100 ms */
	double start = now_ms();
	ssize_t r;
	for (;;) {
		if (type == SOCK_DGRAM)
			r = usp_send(sv[0], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			r = usp_recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT);
		bool seen = type == SOCK_DGRAM ? (r < 0 && errno == ECONNREFUSED) : r == 0;
		if (seen || now_ms() - start > 1000)
			break;
		if (r > 0)
			continue;
		usleep(1000);
	}
	double took = now_ms() - start;
	if (type == SOCK_DGRAM)
		CHECK(r < 0 && errno == ECONNREFUSED, "type %d: DGRAM send after libc close: %zd %s",
		      type, r, strerror(errno));
	else
		CHECK(r == 0, "type %d: no EOF after libc close (%zd %s)", type, r, strerror(errno));
	CHECK(took < 100, "type %d: the peer's close took %.1f ms to show", type, took);

	/* 2: the number comes back from usp_socketpair with the new pair */
	int old = sv[1];
	CHECK(usp_socketpair(AF_UNIX, type, 0, nv) == 0, "usp_socketpair 2");
	CHECK(nv[0] == old || nv[1] == old, "type %d: number %d not reused (%d,%d)", type, old,
	      nv[0], nv[1]);
	CHECK(usp_send(nv[0], "new", 3, 0) == 3, "send new");
	r = usp_recv(nv[1], buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(r == 3 && memcmp(buf, "new", 3) == 0, "type %d: reused number got %zd bytes", type, r);
	r = usp_recv(nv[1], buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(r < 0 && errno == EAGAIN, "type %d: old pair's data on the new pair", type);
	usp_close(nv[0]);
	usp_close(nv[1]);
	usp_close(sv[0]);
}

/* 1b: a STREAM send after the peer's libc close() with data unread, once
 * the liveness interval has passed: through send() and through sendmsg(),
 * the kernel says EPIPE (SEND_SHUTDOWN comes before the pending
 * ECONNRESET); so must uspair on both paths. */
static void send_after_libc_close(bool kernel, bool use_sendmsg, int *err)
{
	int sv[2];
	*err = 0;
	CHECK((kernel ? socketpair : usp_socketpair)(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "pair");
	CHECK(usp_send(sv[0], "u", 1, 0) == 1, "send unread");
	close(sv[1]); /* behind uspair's back, data unread */
	usleep(60 * 1000); /* past uspair's 40 ms liveness interval */
	struct iovec iov = {"x", 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t r = use_sendmsg ? usp_sendmsg(sv[0], &msg, MSG_NOSIGNAL)
				: usp_send(sv[0], "x", 1, MSG_NOSIGNAL);
	*err = r < 0 ? errno : 0;
	usp_close(sv[0]);
}

static void send_after_libc_close_compare(void)
{
	for (int m = 0; m < 2; m++) {
		int k, u;
		send_after_libc_close(true, m, &k);
		send_after_libc_close(false, m, &u);
		CHECK(k == u, "%s after the peer's libc close: kernel %s, uspair %s",
		      m ? "sendmsg" : "send", strerror(k), strerror(u));
	}
}

static void libc_close_then_kernel_reuse(void)
{
	int sv[2], p[2];
	CHECK(usp_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "usp_socketpair");
	close(sv[1]);
	CHECK(pipe(p) == 0, "pipe");
	CHECK(p[0] == sv[1], "pipe did not reuse %d", sv[1]);
	/* 3: the defined stale case */
	CHECK(usp_is_uspair(p[0]), "stale entry not reported by usp_is_uspair");
	CHECK(usp_close(p[0]) == 0, "usp_close of the reused number");
	CHECK(fcntl(p[0], F_GETFD) == -1 && errno == EBADF, "usp_close did not close the pipe end");
	CHECK(!usp_is_uspair(p[0]), "stale entry survived usp_close");
	int q[2];
	CHECK(pipe(q) == 0 && q[0] == p[0], "pipe");
	/* the number is the kernel's again: usp_* pass through */
	CHECK(usp_write(q[1], "z", 1) == 1, "write to the new pipe");
	char c = 0;
	CHECK(usp_read(q[0], &c, 1) == 1 && c == 'z', "usp_read did not pass through to the pipe");
	CHECK(usp_close(q[0]) == 0 && usp_close(q[1]) == 0 && usp_close(p[1]) == 0, "close");
	usp_close(sv[0]);
}

static void idle_reader_cpu(void)
{
	int sv[2];
	CHECK(usp_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "usp_socketpair");
	pid_t child = fork();
	if (child == 0) {
		char c;
		_exit(usp_recv(sv[1], &c, 1, 0) == 1 ? 0 : 1);
	}
	usleep(1000 * 1000);
	CHECK(usp_send(sv[0], "!", 1, 0) == 1, "send");
	int status;
	struct rusage ru;
	CHECK(wait4(child, &status, 0, &ru) == child && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "blocked reader failed");
	double cpu_ms = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 +
			ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
	printf("reader blocked 1 s used %.1f ms of CPU\n", cpu_ms);
	CHECK(cpu_ms < 50, "an idle blocked reader used %.1f ms of CPU in 1 s (>5%%)", cpu_ms);
	usp_close(sv[0]);
	usp_close(sv[1]);
}

/* 5: the number `num` changes meaning under a thread that sends on it */
struct reuse_job {
	bool kernel;
	int num;
	pthread_barrier_t step;
	ssize_t sent[4];
	int err[4];
};

static void *reuse_sender(void *arg)
{
	struct reuse_job *j = arg;
	for (int i = 0; i < 4; i++) {
		char c = (char)('0' + i);
		errno = 0;
		j->sent[i] = j->kernel ? send(j->num, &c, 1, MSG_DONTWAIT)
				       : usp_send(j->num, &c, 1, MSG_DONTWAIT);
		j->err[i] = errno;
		pthread_barrier_wait(&j->step); /* main checks and changes num */
		pthread_barrier_wait(&j->step);
	}
	return NULL;
}

static char recv_one(bool kernel, int fd)
{
	char c = 0;
	ssize_t r = kernel ? recv(fd, &c, 1, MSG_DONTWAIT) : usp_recv(fd, &c, 1, MSG_DONTWAIT);
	return r == 1 ? c : '?';
}

static void number_reused_under_thread(bool kernel, int type)
{
	const char *kind = kernel ? "kernel" : "uspair";
	int p1[2], p2[2], p3[2];
	int (*mk)(int, int, int, int *) = kernel ? socketpair : usp_socketpair;
	int (*cl)(int) = kernel ? close : usp_close;
	CHECK(mk(AF_UNIX, type, 0, p1) == 0, "%s: pair 1", kind);
	struct reuse_job j = {.kernel = kernel, .num = p1[0]};
	pthread_barrier_init(&j.step, NULL, 2);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, reuse_sender, &j) == 0, "pthread_create");
	pthread_barrier_wait(&j.step);
	CHECK(j.sent[0] == 1 && recv_one(kernel, p1[1]) == '0', "%s: first send", kind);
	cl(p1[0]);
	cl(p1[1]);
	pthread_barrier_wait(&j.step);
	pthread_barrier_wait(&j.step);
	CHECK(j.sent[1] == -1 && j.err[1] == EBADF, "%s: a send after close gave %zd (%s)",
	      kind, j.sent[1], strerror(j.err[1]));
	CHECK(mk(AF_UNIX, type, 0, p2) == 0, "%s: pair 2", kind);
	CHECK(p2[0] == j.num, "%s: pair 2 got %d, not the number %d again", kind, p2[0], j.num);
	pthread_barrier_wait(&j.step);
	pthread_barrier_wait(&j.step);
	CHECK(j.sent[2] == 1 && recv_one(kernel, p2[1]) == '2',
	      "%s: a send after close and reuse reached the new pair", kind);
	CHECK(mk(AF_UNIX, type, 0, p3) == 0, "%s: pair 3", kind);
	if (kernel)
		CHECK(dup2(p3[0], j.num) == j.num, "dup2");
	else
		CHECK(usp_dup2(p3[0], j.num) == j.num, "usp_dup2");
	pthread_barrier_wait(&j.step);
	pthread_barrier_wait(&j.step);
	CHECK(j.sent[3] == 1 && recv_one(kernel, p3[1]) == '3',
	      "%s: a send after dup2 over the number reached the third pair", kind);
	CHECK(recv_one(kernel, p2[1]) == '?', "%s: nothing went to pair 2", kind);
	pthread_barrier_wait(&j.step); /* the sender's last wait */
	pthread_join(t, NULL);
	pthread_barrier_destroy(&j.step);
	cl(p2[0]);
	cl(p2[1]);
	cl(p3[0]);
	cl(p3[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	libc_close_then_reuse(SOCK_STREAM);
	libc_close_then_reuse(SOCK_SEQPACKET);
	libc_close_then_reuse(SOCK_DGRAM);
	libc_close_then_kernel_reuse();
	send_after_libc_close_compare();
	idle_reader_cpu();
	for (int k = 0; k < 2; k++) {
		number_reused_under_thread(k == 0, SOCK_STREAM);
		number_reused_under_thread(k == 0, SOCK_SEQPACKET);
		number_reused_under_thread(k == 0, SOCK_DGRAM);
	}
	if (failures) {
		fprintf(stderr, "descriptors: %d failures\n", failures);
		return 1;
	}
	return 0;
}
