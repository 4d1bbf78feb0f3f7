/*
 * The libc functions behind the interposed names, for the library's own
 * calls and the interposers'.
 *
 * The library objects inside libuspair-preload.so are built with every
 * interposed name renamed to usp__real_NAME (objcopy --redefine-syms with
 * preload/real.syms), so that the library's `read` is libc's read while the
 * program's `read` is the interposer in preload.c.  Each usp__real_NAME
 * calls through the pointer dlsym(RTLD_NEXT, "NAME") gives, resolved on
 * first use (a constructor of another library may call before ours ran).
 * The pointer is written with the same value by every racer: relaxed
 * atomics suffice.
 */
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "preload.h"

static void *resolve(const char *name)
{
	void *fn = dlsym(RTLD_NEXT, name);
	if (!fn) {
		static const char msg[] = "libuspair-preload: libc lacks a function it needs\n";
		syscall(SYS_write, 2, msg, sizeof(msg) - 1);
		abort();
	}
	return fn;
}

#define REAL(ret, name, params, args)                                              \
	static ret(*real_##name) params;                                           \
	ret usp__real_##name params                                                \
	{                                                                          \
		ret(*fn) params = __atomic_load_n(&real_##name, __ATOMIC_RELAXED); \
		if (!fn) {                                                         \
			fn = (ret(*) params)resolve(#name);                        \
			__atomic_store_n(&real_##name, fn, __ATOMIC_RELAXED);      \
		}                                                                  \
		return fn args;                                                    \
	}

REAL(int, socketpair, (int d, int t, int p, int sv[2]), (d, t, p, sv))
REAL(int, close, (int fd), (fd))
REAL(int, close_range, (unsigned first, unsigned last, int flags), (first, last, flags))
REAL(void, closefrom, (int lowfd), (lowfd))
REAL(int, dup, (int fd), (fd))
REAL(int, dup2, (int oldfd, int newfd), (oldfd, newfd))
REAL(int, dup3, (int oldfd, int newfd, int flags), (oldfd, newfd, flags))
REAL(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n))
REAL(ssize_t, write, (int fd, const void *buf, size_t n), (fd, buf, n))
REAL(ssize_t, readv, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt))
REAL(ssize_t, writev, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt))
REAL(ssize_t, send, (int fd, const void *buf, size_t n, int flags), (fd, buf, n, flags))
REAL(ssize_t, recv, (int fd, void *buf, size_t n, int flags), (fd, buf, n, flags))
REAL(ssize_t, sendto,
     (int fd, const void *buf, size_t n, int flags, const struct sockaddr *a, socklen_t al),
     (fd, buf, n, flags, a, al))
REAL(ssize_t, recvfrom,
     (int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *al),
     (fd, buf, n, flags, a, al))
REAL(ssize_t, sendmsg, (int fd, const struct msghdr *m, int flags), (fd, m, flags))
REAL(ssize_t, recvmsg, (int fd, struct msghdr *m, int flags), (fd, m, flags))
REAL(int, sendmmsg, (int fd, struct mmsghdr *v, unsigned n, int flags), (fd, v, n, flags))
REAL(int, recvmmsg, (int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t),
     (fd, v, n, flags, t))
REAL(int, shutdown, (int fd, int how), (fd, how))
REAL(int, connect, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))
REAL(int, bind, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))
REAL(int, listen, (int fd, int backlog), (fd, backlog))
REAL(int, accept, (int fd, struct sockaddr *a, socklen_t *l), (fd, a, l))
REAL(int, accept4, (int fd, struct sockaddr *a, socklen_t *l, int f), (fd, a, l, f))
REAL(int, getsockopt, (int fd, int l, int o, void *v, socklen_t *len), (fd, l, o, v, len))
REAL(int, setsockopt, (int fd, int l, int o, const void *v, socklen_t len), (fd, l, o, v, len))
REAL(int, getsockname, (int fd, struct sockaddr *a, socklen_t *al), (fd, a, al))
REAL(int, getpeername, (int fd, struct sockaddr *a, socklen_t *al), (fd, a, al))
REAL(int, poll, (struct pollfd *fds, nfds_t n, int timeout), (fds, n, timeout))
REAL(int, ppoll, (struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m),
     (fds, n, t, m))
REAL(int, select, (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t), (n, r, w, e, t))
REAL(int, pselect,
     (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m),
     (n, r, w, e, t, m))
REAL(int, epoll_ctl, (int epfd, int op, int fd, struct epoll_event *ev), (epfd, op, fd, ev))
REAL(ssize_t, splice, (int in, loff_t *oin, int out, loff_t *oout, size_t n, unsigned f),
     (in, oin, out, oout, n, f))
REAL(ssize_t, tee, (int in, int out, size_t n, unsigned f), (in, out, n, f))
REAL(ssize_t, vmsplice, (int fd, const struct iovec *iov, size_t n, unsigned f), (fd, iov, n, f))
REAL(ssize_t, sendfile, (int out, int in, off_t *off, size_t n), (out, in, off, n))
REAL(ssize_t, copy_file_range, (int in, loff_t *oin, int out, loff_t *oout, size_t n, unsigned f),
     (in, oin, out, oout, n, f))
REAL(FILE *, fdopen, (int fd, const char *mode), (fd, mode))
REAL(int, execve, (const char *p, char *const argv[], char *const envp[]), (p, argv, envp))
REAL(int, execv, (const char *p, char *const argv[]), (p, argv))
REAL(int, execvp, (const char *f, char *const argv[]), (f, argv))
REAL(int, execvpe, (const char *f, char *const argv[], char *const envp[]), (f, argv, envp))
REAL(int, fexecve, (int fd, char *const argv[], char *const envp[]), (fd, argv, envp))
REAL(int, execveat, (int dfd, const char *p, char *const argv[], char *const envp[], int fl),
     (dfd, p, argv, envp, fl))
REAL(int, posix_spawn,
     (pid_t *pid, const char *p, const posix_spawn_file_actions_t *fa,
      const posix_spawnattr_t *at, char *const argv[], char *const envp[]),
     (pid, p, fa, at, argv, envp))
REAL(int, posix_spawnp,
     (pid_t *pid, const char *p, const posix_spawn_file_actions_t *fa,
      const posix_spawnattr_t *at, char *const argv[], char *const envp[]),
     (pid, p, fa, at, argv, envp))
REAL(int, posix_spawn_file_actions_adddup2, (posix_spawn_file_actions_t *fa, int fd, int newfd),
     (fa, fd, newfd))
REAL(int, system, (const char *cmd), (cmd))
REAL(FILE *, popen, (const char *cmd, const char *type), (cmd, type))

/* The variadic ones: the argument is an int or a pointer, passed on as a
 * pointer-sized word (what the kernel takes). */
static int (*real_fcntl)(int, int, ...);
int usp__real_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int (*fn)(int, int, ...) = __atomic_load_n(&real_fcntl, __ATOMIC_RELAXED);
	if (!fn) {
		fn = (int (*)(int, int, ...))resolve("fcntl");
		__atomic_store_n(&real_fcntl, fn, __ATOMIC_RELAXED);
	}
	return fn(fd, cmd, arg);
}

static int (*real_ioctl)(int, unsigned long, ...);
int usp__real_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int (*fn)(int, unsigned long, ...) = __atomic_load_n(&real_ioctl, __ATOMIC_RELAXED);
	if (!fn) {
		fn = (int (*)(int, unsigned long, ...))resolve("ioctl");
		__atomic_store_n(&real_ioctl, fn, __ATOMIC_RELAXED);
	}
	return fn(fd, request, arg);
}
