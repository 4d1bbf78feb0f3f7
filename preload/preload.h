/* Internal header of libuspair-preload.so: the real libc functions
 * (real.c) behind the names that preload.c interposes. */
#ifndef USPAIR_PRELOAD_H
#define USPAIR_PRELOAD_H

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

int usp__real_socketpair(int d, int t, int p, int sv[2]);
int usp__real_close(int fd);
int usp__real_close_range(unsigned first, unsigned last, int flags);
void usp__real_closefrom(int lowfd);
int usp__real_dup(int fd);
int usp__real_dup2(int oldfd, int newfd);
int usp__real_dup3(int oldfd, int newfd, int flags);
ssize_t usp__real_read(int fd, void *buf, size_t n);
ssize_t usp__real_write(int fd, const void *buf, size_t n);
ssize_t usp__real_readv(int fd, const struct iovec *iov, int cnt);
ssize_t usp__real_writev(int fd, const struct iovec *iov, int cnt);
ssize_t usp__real_send(int fd, const void *buf, size_t n, int flags);
ssize_t usp__real_recv(int fd, void *buf, size_t n, int flags);
ssize_t usp__real_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a, socklen_t al);
ssize_t usp__real_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *al);
ssize_t usp__real_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t usp__real_recvmsg(int fd, struct msghdr *m, int flags);
int usp__real_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags);
int usp__real_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t);
int usp__real_shutdown(int fd, int how);
int usp__real_connect(int fd, const struct sockaddr *a, socklen_t l);
int usp__real_bind(int fd, const struct sockaddr *a, socklen_t l);
int usp__real_listen(int fd, int backlog);
int usp__real_accept(int fd, struct sockaddr *a, socklen_t *l);
int usp__real_accept4(int fd, struct sockaddr *a, socklen_t *l, int f);
int usp__real_getsockopt(int fd, int l, int o, void *v, socklen_t *len);
int usp__real_setsockopt(int fd, int l, int o, const void *v, socklen_t len);
int usp__real_getsockname(int fd, struct sockaddr *a, socklen_t *al);
int usp__real_getpeername(int fd, struct sockaddr *a, socklen_t *al);
int usp__real_poll(struct pollfd *fds, nfds_t n, int timeout);
int usp__real_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *m);
int usp__real_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t);
int usp__real_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m);
int usp__real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
ssize_t usp__real_splice(int in, loff_t *oin, int out, loff_t *oout, size_t n, unsigned f);
ssize_t usp__real_tee(int in, int out, size_t n, unsigned f);
ssize_t usp__real_vmsplice(int fd, const struct iovec *iov, size_t n, unsigned f);
ssize_t usp__real_sendfile(int out, int in, off_t *off, size_t n);
ssize_t usp__real_copy_file_range(int in, loff_t *oin, int out, loff_t *oout, size_t n, unsigned f);
FILE *usp__real_fdopen(int fd, const char *mode);
int usp__real_execve(const char *p, char *const argv[], char *const envp[]);
int usp__real_execv(const char *p, char *const argv[]);
int usp__real_execvp(const char *f, char *const argv[]);
int usp__real_execvpe(const char *f, char *const argv[], char *const envp[]);
int usp__real_fexecve(int fd, char *const argv[], char *const envp[]);
int usp__real_execveat(int dfd, const char *p, char *const argv[], char *const envp[], int fl);
int usp__real_posix_spawn(pid_t *pid, const char *p, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at, char *const argv[], char *const envp[]);
int usp__real_posix_spawnp(pid_t *pid, const char *p, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at, char *const argv[], char *const envp[]);
int usp__real_posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa, int fd, int newfd);
int usp__real_system(const char *cmd);
FILE *usp__real_popen(const char *cmd, const char *type);
int usp__real_fcntl(int fd, int cmd, ...);
int usp__real_ioctl(int fd, unsigned long request, ...);

#endif
