/*
 * uspair: socketpair(2) in user space.
 *
 * usp_socketpair() creates a pair of connected AF_UNIX sockets whose
 * descriptors are real kernel file descriptors, but whose data moves
 * through shared memory.  Every other usp_* call has the signature and the
 * return convention (-1 and errno) of its POSIX namesake, so that a program
 * can switch with a macro.  Descriptors that uspair did not create pass
 * through to the kernel unchanged.
 *
 * Rule of use: a uspair descriptor must be duplicated with usp_dup/usp_dup2/
 * usp_fcntl(F_DUPFD*) and closed with usp_close.  See docs/DESIGN.md,
 * "Descriptors closed behind uspair's back".
 */
#ifndef USPAIR_H
#define USPAIR_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define USPAIR_VERSION_MAJOR 0
#define USPAIR_VERSION_MINOR 1

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

int usp_socketpair(int domain, int type, int protocol, int sv[2]);
int usp_close(int fd);

ssize_t usp_read(int fd, void *buf, size_t count);
ssize_t usp_write(int fd, const void *buf, size_t count);
ssize_t usp_readv(int fd, const struct iovec *iov, int iovcnt);
ssize_t usp_writev(int fd, const struct iovec *iov, int iovcnt);

ssize_t usp_send(int fd, const void *buf, size_t len, int flags);
ssize_t usp_recv(int fd, void *buf, size_t len, int flags);
ssize_t usp_sendto(int fd, const void *buf, size_t len, int flags,
		   const struct sockaddr *dest_addr, socklen_t addrlen);
ssize_t usp_recvfrom(int fd, void *buf, size_t len, int flags,
		     struct sockaddr *src_addr, socklen_t *addrlen);
ssize_t usp_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t usp_recvmsg(int fd, struct msghdr *msg, int flags);
struct mmsghdr;
struct timespec;
int usp_sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
int usp_recvmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
		 struct timespec *timeout);

int usp_shutdown(int fd, int how);
int usp_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
int usp_bind(int fd, const struct sockaddr *addr, socklen_t addrlen);
int usp_listen(int fd, int backlog);
int usp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
int usp_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
int usp_getsockopt(int fd, int level, int optname, void *optval,
		   socklen_t *optlen);
int usp_setsockopt(int fd, int level, int optname, const void *optval,
		   socklen_t optlen);
int usp_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen);
int usp_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen);
int usp_fcntl(int fd, int cmd, ... /* arg */);
int usp_ioctl(int fd, unsigned long request, ... /* arg */);
int usp_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int usp_dup(int oldfd);
int usp_dup2(int oldfd, int newfd);
int usp_dup3(int oldfd, int newfd, int flags);

/* Non-zero if fd is a uspair endpoint known to this process. */
int usp_is_uspair(int fd);

/*
 * Hand fd's pair over to the kernel: from now on its data moves through
 * the kernel sockets behind the two descriptors, in every process, so that
 * they can go where shared memory cannot follow (exec, a process without
 * uspair, epoll, splice).  Nothing queued is lost or reordered: data
 * already in shared memory is still read first (and is moved into the
 * kernel's queue when this process holds the other end too).  0 on
 * success, also for a descriptor uspair does not know; -1 with EBADF, EIO
 * for a corrupt pair or a failure moving the data, or ENOMEM.  See
 * docs/DESIGN.md, "Falling back to the kernel".
 */
int usp_fallback(int fd);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* USPAIR_H */
