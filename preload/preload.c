/*
 * libuspair-preload.so: runs an unmodified, dynamically linked program on
 * uspair.  socketpair(AF_UNIX or AF_TIPC, ...) makes a uspair pair, and every libc
 * entry point that can touch its descriptors goes through the matching
 * usp_* call, which passes any other descriptor straight to libc.
 *
 * Where shared memory cannot follow a descriptor, its pair first falls
 * back to the kernel path (src/fallback.c), after which both descriptors
 * are the plain kernel sockets they always were:
 *  - epoll_ctl(ADD/MOD), splice, tee, vmsplice, sendfile, copy_file_range
 *    and fdopen (stdio reads with libc's internal read, which cannot be
 *    interposed) on a uspair descriptor;
 *  - exec (every exec function, posix_spawn, system, popen): each
 *    endpoint the new image inherits falls back with its ring drained;
 *    one with unread data makes the call fail with EBUSY and a message on
 *    stderr, because the data could not be read after exec;
 *  - a uspair descriptor passed in SCM_RIGHTS over a socket that is not a
 *    uspair pair (the receiver may not run uspair) must have its ring
 *    drained too, or sendmsg fails the same way.
 * vfork is fork here: a vfork child shares the parent's memory, uspair's
 * descriptor table included, and its dup2/close before exec would change
 * the parent's view.  POSIX lets vfork be fork.
 *
 * Environment: USPAIR_DISABLE=1 leaves socketpair to the kernel (every
 * other call then finds no uspair descriptor and goes to libc);
 * USPAIR_STATS=FILE appends one line per process image at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "preload.h"
#include "uspair.h"

extern void __chk_fail(void) __attribute__((noreturn));

/* glibc's fortified entry points (the _FORTIFY_SOURCE builds of programs
 * call these), declared here since no public header does */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *addrlen);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask,
		size_t fdslen);

/* The aliases (glibc's own exported names for the same calls) need not
 * repeat the attributes glibc's headers put on the originals. */
#pragma GCC diagnostic ignored "-Wmissing-attributes"

#define EXPORT __attribute__((visibility("default")))

static bool disabled;
static const char *stats_path;

/* A forked child is a new process: its line counts its own work. */
static void stats_atfork_child(void)
{
	atomic_store(&usp__stats.pairs, 0);
	atomic_store(&usp__stats.fast_bytes, 0);
	atomic_store(&usp__stats.fallback_bytes, 0);
	atomic_store(&usp__stats.sleeps, 0);
}

__attribute__((constructor)) static void preload_init(void)
{
	pthread_atfork(NULL, NULL, stats_atfork_child);
	const char *d = getenv("USPAIR_DISABLE");
	disabled = d && *d && strcmp(d, "0") != 0;
	stats_path = getenv("USPAIR_STATS");
	if (stats_path && !*stats_path)
		stats_path = NULL;
	usp__stats_on = stats_path != NULL;
}

/* One line per process image; written with the real calls, no stdio (the
 * program's streams may be in any state at exit). */
static void write_stats(void)
{
	if (!stats_path)
		return;
	char line[256];
	int n = snprintf(line, sizeof(line),
			 "pid=%d pairs=%llu fast_bytes=%llu fallback_bytes=%llu sleeps=%llu\n",
			 (int)getpid(), (unsigned long long)atomic_load(&usp__stats.pairs),
			 (unsigned long long)atomic_load(&usp__stats.fast_bytes),
			 (unsigned long long)atomic_load(&usp__stats.fallback_bytes),
			 (unsigned long long)atomic_load(&usp__stats.sleeps));
	int fd = open(stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	usp__real_write(fd, line, (size_t)n);
	usp__real_close(fd);
}

__attribute__((destructor)) static void preload_fini(void)
{
	write_stats();
}

/* ---- creation, descriptors ------------------------------------------- */

EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
	if (disabled || (domain != AF_UNIX && domain != AF_TIPC))
		return usp__real_socketpair(domain, type, protocol, sv);
	return usp_socketpair(domain, type, protocol, sv);
}

/* close and dup2/dup3 of descriptors uspair does not know go straight to
 * libc, without the table lock: so they stay async-signal-safe, as
 * libc's are, for every descriptor but a uspair one. */
EXPORT int close(int fd)
{
	if (!usp_is_uspair(fd))
		return usp__real_close(fd);
	return usp_close(fd);
}
EXPORT int __close(int fd) __attribute__((alias("close")));

/* The endpoints among [first, last] leave the table through usp_close
 * (their peers learn at once); the kernel closes the rest. */
static void close_table_range(unsigned first, unsigned last)
{
	for (int fd = usp__next_fd((int)(first > INT_MAX ? INT_MAX : first));
	     fd >= 0 && (unsigned)fd <= last; fd = usp__next_fd(fd + 1))
		usp_close(fd);
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	if (first <= last && !(flags & CLOSE_RANGE_CLOEXEC))
		close_table_range(first, last);
	return usp__real_close_range(first, last, flags);
}

EXPORT void closefrom(int lowfd)
{
	if (lowfd >= 0)
		close_table_range((unsigned)lowfd, UINT_MAX);
	usp__real_closefrom(lowfd);
}

EXPORT int dup(int fd)
{
	return usp_dup(fd);
}

EXPORT int dup2(int oldfd, int newfd)
{
	if (!usp_is_uspair(oldfd) && !usp_is_uspair(newfd))
		return usp__real_dup2(oldfd, newfd);
	return usp_dup2(oldfd, newfd);
}
EXPORT int __dup2(int oldfd, int newfd) __attribute__((alias("dup2")));

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	if (!usp_is_uspair(oldfd) && !usp_is_uspair(newfd))
		return usp__real_dup3(oldfd, newfd, flags);
	return usp_dup3(oldfd, newfd, flags);
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return usp_fcntl(fd, cmd, arg);
}
EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));
EXPORT int __fcntl(int fd, int cmd, ...) __attribute__((alias("fcntl")));

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return usp_ioctl(fd, request, arg);
}

/* ---- data ------------------------------------------------------------ */

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	return usp_read(fd, buf, n);
}
EXPORT ssize_t __read(int fd, void *buf, size_t n) __attribute__((alias("read")));

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return usp_read(fd, buf, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	return usp_write(fd, buf, n);
}
EXPORT ssize_t __write(int fd, const void *buf, size_t n) __attribute__((alias("write")));

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	return usp_readv(fd, iov, cnt);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	return usp_writev(fd, iov, cnt);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	return usp_send(fd, buf, n, flags);
}
EXPORT ssize_t __send(int fd, const void *buf, size_t n, int flags) __attribute__((alias("send")));

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return usp_recv(fd, buf, n, flags);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return usp_recv(fd, buf, n, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
		      socklen_t addrlen)
{
	return usp_sendto(fd, buf, n, flags, addr, addrlen);
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
			socklen_t *addrlen)
{
	return usp_recvfrom(fd, buf, n, flags, addr, addrlen);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
			      struct sockaddr *addr, socklen_t *addrlen)
{
	if (n > buflen)
		__chk_fail();
	return usp_recvfrom(fd, buf, n, flags, addr, addrlen);
}

/* Descriptors that leave through a socket uspair does not own may reach a
 * process without uspair: their pairs fall back first, drained.  0 or -1
 * with EBUSY (after a message). */
static int hand_over_passed(int fd, const struct msghdr *msg)
{
	if (usp__on_fast_path(fd) || !msg || !msg->msg_control ||
	    msg->msg_controllen < sizeof(struct cmsghdr))
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
	     c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int passed;
			memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (usp__hand_over(passed, "passed in SCM_RIGHTS") < 0)
				return -1;
		}
	}
	return 0;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (hand_over_passed(fd, msg) < 0)
		return -1;
	return usp_sendmsg(fd, msg, flags);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	return usp_recvmsg(fd, msg, flags);
}

EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
	for (unsigned int i = 0; vec && i < n && i < UIO_MAXIOV; i++)
		if (hand_over_passed(fd, &vec[i].msg_hdr) < 0)
			return -1;
	return usp_sendmmsg(fd, vec, n, flags);
}

EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags,
		    struct timespec *timeout)
{
	return usp_recvmmsg(fd, vec, n, flags, timeout);
}

/* ---- socket calls ---------------------------------------------------- */

EXPORT int shutdown(int fd, int how)
{
	return usp_shutdown(fd, how);
}

/* On an AF_UNIX pair the kernel answers these (usp_connect passes them
 * on); on an AF_TIPC pair uspair does. */
EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	return usp_connect(fd, addr, len);
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	return usp_bind(fd, addr, len);
}

EXPORT int listen(int fd, int backlog)
{
	return usp_listen(fd, backlog);
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return usp_accept(fd, addr, len);
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return usp_accept4(fd, addr, len, flags);
}

EXPORT int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
	return usp_getsockopt(fd, level, opt, val, len);
}

EXPORT int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
	return usp_setsockopt(fd, level, opt, val, len);
}

EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	return usp_getsockname(fd, addr, len);
}

EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	return usp_getpeername(fd, addr, len);
}

/* ---- readiness ------------------------------------------------------- */

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	return usp_poll(fds, n, timeout);
}
EXPORT int __poll(struct pollfd *fds, nfds_t n, int timeout) __attribute__((alias("poll")));

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return usp_poll(fds, n, timeout);
}

static bool any_uspair(const struct pollfd *fds, nfds_t n)
{
	for (nfds_t i = 0; i < n; i++)
		if (usp_is_uspair(fds[i].fd))
			return true;
	return false;
}

/* ppoll with uspair descriptors: usp_poll under the given signal mask
 * (not atomically: docs/DESIGN.md, known differences). */
static int poll_masked(struct pollfd *fds, nfds_t n, int timeout_ms, const sigset_t *mask)
{
	sigset_t old;
	if (mask)
		pthread_sigmask(SIG_SETMASK, mask, &old);
	int r = usp_poll(fds, n, timeout_ms);
	int saved = errno;
	if (mask)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return r;
}

/* A timeout in milliseconds, rounded up as the kernel rounds a sleep;
 * -2 for an invalid one. */
static int timespec_ms(const struct timespec *ts)
{
	if (!ts)
		return -1;
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
		return -2;
	if (ts->tv_sec >= INT_MAX / 1000 - 1)
		return INT_MAX;
	return (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	int ms = timespec_ms(ts);
	if (!fds || ms == -2 || !any_uspair(fds, n))
		return usp__real_ppoll(fds, n, ts, mask);
	return poll_masked(fds, n, ms, mask);
}

EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts,
		       const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		__chk_fail();
	return ppoll(fds, n, ts, mask);
}

/*
 * select and pselect with uspair descriptors among the sets: the sets as a
 * poll array, with the kernel's mapping (fs/select.c): readable is
 * POLLIN, POLLHUP or POLLERR; writable POLLOUT or POLLERR; exceptional
 * POLLPRI.  A closed descriptor in a set is EBADF.  Returns -2 when no
 * uspair descriptor is in the sets (the caller asks the kernel).
 */
static int select_via_poll(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int timeout_ms,
			   const sigset_t *mask)
{
	if (nfds < 0 || nfds > FD_SETSIZE)
		return -2;
	struct pollfd pfd[FD_SETSIZE];
	nfds_t n = 0;
	bool ours = false;
	for (int fd = 0; fd < nfds; fd++) {
		short ev = 0;
		if (rd && FD_ISSET(fd, rd))
			ev |= POLLIN;
		if (wr && FD_ISSET(fd, wr))
			ev |= POLLOUT;
		if (ex && FD_ISSET(fd, ex))
			ev |= POLLPRI;
		if (!ev)
			continue;
		ours |= usp_is_uspair(fd) != 0;
		pfd[n++] = (struct pollfd){.fd = fd, .events = ev};
	}
	if (!ours)
		return -2;
	int r = poll_masked(pfd, n, timeout_ms, mask);
	if (r < 0)
		return -1;
	for (nfds_t i = 0; i < n; i++) {
		if (pfd[i].revents & POLLNVAL) {
			errno = EBADF;
			return -1;
		}
	}
	int count = 0;
	for (nfds_t i = 0; i < n; i++) {
		int fd = pfd[i].fd;
		short re = pfd[i].revents;
		if (rd && FD_ISSET(fd, rd)) {
			if (re & (POLLIN | POLLHUP | POLLERR))
				count++;
			else
				FD_CLR(fd, rd);
		}
		if (wr && FD_ISSET(fd, wr)) {
			if (re & (POLLOUT | POLLERR))
				count++;
			else
				FD_CLR(fd, wr);
		}
		if (ex && FD_ISSET(fd, ex)) {
			if (re & POLLPRI)
				count++;
			else
				FD_CLR(fd, ex);
		}
	}
	return count;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
	int ms = -1;
	if (tv) {
		if (tv->tv_sec < 0 || tv->tv_usec < 0)
			return usp__real_select(nfds, rd, wr, ex, tv); /* EINVAL */
		struct timespec ts = {tv->tv_sec + tv->tv_usec / 1000000,
				      (tv->tv_usec % 1000000) * 1000};
		ms = timespec_ms(&ts);
	}
	int64_t start = tv ? now_us() : 0;
	int r = select_via_poll(nfds, rd, wr, ex, ms, NULL);
	if (r == -2)
		return usp__real_select(nfds, rd, wr, ex, tv);
	if (tv) {
		/* Linux writes back the time left */
		int saved = errno;
		int64_t left = (int64_t)tv->tv_sec * 1000000 + tv->tv_usec - (now_us() - start);
		if (left < 0 || r == 0)
			left = 0;
		tv->tv_sec = left / 1000000;
		tv->tv_usec = left % 1000000;
		errno = saved;
	}
	return r;
}
EXPORT int __select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
	__attribute__((alias("select")));

EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts,
		   const sigset_t *mask)
{
	int ms = timespec_ms(ts);
	int r = ms == -2 ? -2 : select_via_poll(nfds, rd, wr, ex, ms, mask);
	if (r == -2)
		return usp__real_pselect(nfds, rd, wr, ex, ts, mask);
	return r;
}

/* ---- where shared memory cannot follow: fall back ------------------- */

static void fall_back(int fd)
{
	int saved = errno;
	if (usp_is_uspair(fd))
		usp_fallback(fd);
	errno = saved;
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int saved = errno;
	if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && usp_is_uspair(fd) &&
	    usp_fallback(fd) < 0 && errno == EBUSY) {
		/* an AF_TIPC pair with messages queued cannot become the
		 * AF_UNIX pair epoll would watch (docs/DESIGN.md, known
		 * difference 16): say so rather than watch nothing */
		usp__busy_message(fd, "added to an epoll set");
		errno = EBUSY;
		return -1;
	}
	errno = saved;
	return usp__real_epoll_ctl(epfd, op, fd, ev);
}

EXPORT ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t n, unsigned flags)
{
	fall_back(in);
	fall_back(out);
	return usp__real_splice(in, off_in, out, off_out, n, flags);
}

EXPORT ssize_t tee(int in, int out, size_t n, unsigned flags)
{
	fall_back(in);
	fall_back(out);
	return usp__real_tee(in, out, n, flags);
}

EXPORT ssize_t vmsplice(int fd, const struct iovec *iov, size_t n, unsigned flags)
{
	fall_back(fd);
	return usp__real_vmsplice(fd, iov, n, flags);
}

EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	fall_back(in);
	fall_back(out);
	return usp__real_sendfile(out, in, off, n);
}
EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n) __attribute__((alias("sendfile")));

EXPORT ssize_t copy_file_range(int in, loff_t *off_in, int out, loff_t *off_out, size_t n,
			       unsigned flags)
{
	fall_back(in);
	fall_back(out);
	return usp__real_copy_file_range(in, off_in, out, off_out, n, flags);
}

EXPORT FILE *fdopen(int fd, const char *mode)
{
	fall_back(fd);
	return usp__real_fdopen(fd, mode);
}

/* ---- process creation ------------------------------------------------ */

EXPORT pid_t vfork(void)
{
	return fork();
}
EXPORT pid_t __vfork(void) __attribute__((alias("vfork")));

/* Before the process image changes (or a child execs with our
 * descriptors): 0, or -1 with EBUSY after a message. */
static int exec_prepare(void)
{
	int busy_fd = -1;
	int r = usp__exec_prepare(&busy_fd);
	if (r == 0)
		return 0;
	if (r == -EBUSY)
		usp__busy_message(busy_fd, "inherited across exec");
	errno = -r;
	return -1;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	if (exec_prepare() < 0)
		return -1;
	return usp__real_execve(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
	if (exec_prepare() < 0)
		return -1;
	return usp__real_execv(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	if (exec_prepare() < 0)
		return -1;
	return usp__real_execvp(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	if (exec_prepare() < 0)
		return -1;
	return usp__real_execvpe(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	if (exec_prepare() < 0)
		return -1;
	return usp__real_fexecve(fd, argv, envp);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		    int flags)
{
	if (exec_prepare() < 0)
		return -1;
	return usp__real_execveat(dirfd, path, argv, envp, flags);
}

/* execl, execle, execlp: the argument list as an array on the stack (the
 * kernel's own limit on arguments keeps it bounded in practice). */
#define COLLECT_ARGS(arg0, ap, argv)                                  \
	size_t argc_ = 1;                                             \
	va_start(ap, arg0);                                           \
	while (va_arg(ap, char *))                                    \
		argc_++;                                              \
	va_end(ap);                                                   \
	char *argv[argc_ + 1];                                        \
	argv[0] = (char *)(arg0);                                     \
	va_start(ap, arg0);                                           \
	for (size_t i_ = 1; i_ <= argc_; i_++)                        \
		argv[i_] = va_arg(ap, char *);

EXPORT int execl(const char *path, const char *arg0, ...)
{
	va_list ap;
	COLLECT_ARGS(arg0, ap, argv)
	va_end(ap);
	return execv(path, argv);
}

EXPORT int execlp(const char *file, const char *arg0, ...)
{
	va_list ap;
	COLLECT_ARGS(arg0, ap, argv)
	va_end(ap);
	return execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg0, ...)
{
	va_list ap;
	COLLECT_ARGS(arg0, ap, argv)
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, argv, envp);
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (exec_prepare() < 0)
		return errno;
	return usp__real_posix_spawn(pid, path, fa, attr, argv, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	if (exec_prepare() < 0)
		return errno;
	return usp__real_posix_spawnp(pid, file, fa, attr, argv, envp);
}

/* A descriptor the child will dup2 (close-on-exec or not) goes to the new
 * image: its pair falls back now, drained. */
EXPORT int posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd)
{
	int saved = errno;
	if (usp__hand_over(fd, "given to posix_spawn") < 0) {
		int err = errno;
		errno = saved;
		return err;
	}
	return usp__real_posix_spawn_file_actions_adddup2(fa, fd, newfd);
}

EXPORT int system(const char *cmd)
{
	if (cmd && exec_prepare() < 0)
		return -1;
	return usp__real_system(cmd);
}

EXPORT FILE *popen(const char *cmd, const char *type)
{
	if (exec_prepare() < 0)
		return NULL;
	return usp__real_popen(cmd, type);
}
