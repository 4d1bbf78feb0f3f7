/*
 * usp_socketpair(), usp_close(), usp_dup2(): the life of descriptors.
 *
 * usp_socketpair() first asks the kernel for a socketpair of the same
 * domain, type and protocol into a private array.  That one call gives the
 * kernel's exact answer for every argument error, EMFILE and ENFILE, and
 * the two descriptors that become the endpoints (see docs/DESIGN.md, "The
 * kernel object behind each descriptor").  Only then is sv written, so it
 * is untouched on every failure.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

/* Is sv writable?  Copy its bytes out and back in through the kernel:
 * EFAULT instead of a crash, and a partial write rewrites the same bytes,
 * so sv is unchanged either way. */
static bool sv_writable(int sv[2])
{
	int copy[2];
	struct iovec local = {copy, sizeof(copy)};
	struct iovec remote = {sv, sizeof(copy)};
	pid_t self = getpid();
	ssize_t r = process_vm_readv(self, &local, 1, &remote, 1, 0);
	if (r < 0 && (errno == ENOSYS || errno == EPERM))
		return sv != NULL; /* no way to ask: trust the pointer */
	if (r != (ssize_t)sizeof(copy))
		return false;
	return process_vm_writev(self, &local, 1, &remote, 1, 0) == (ssize_t)sizeof(copy);
}

static void close_keep_errno(int fd)
{
	int saved = errno;
	close(fd);
	errno = saved;
}

/*
 * AF_TIPC: the kernel is not asked for a TIPC socket (most kernels here
 * have none, and the answer must not depend on it).  The backing pair is
 * AF_UNIX (tipc.c), created first so that EMFILE and ENFILE come from the
 * kernel, in the order of __sys_socketpair(): the flag bits, the
 * descriptors, writing sv (EFAULT), then __sock_create()'s type range and
 * tipc_sk_create()'s protocol and type.  Returns the TIPC type.
 */
static int tipc_backing_pair(int type, int protocol, int sv[2], int k[2])
{
	int flags = type & ~0xf;
	type &= 0xf;
	if (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK))
		return -EINVAL;
	int backing = type == SOCK_STREAM ? SOCK_STREAM : SOCK_SEQPACKET;
	if (socketpair(AF_UNIX, backing | flags, 0, k) < 0)
		return -errno;
	int err = 0;
	if (!sv_writable(sv))
		err = -EFAULT;
	else if (type >= 11) /* SOCK_MAX */
		err = -EINVAL;
	else if (protocol != 0)
		err = -EPROTONOSUPPORT;
	else if (type != SOCK_STREAM && type != SOCK_SEQPACKET && type != SOCK_RDM &&
		 type != SOCK_DGRAM)
		err = -EPROTOTYPE;
	if (err) {
		close(k[0]);
		close(k[1]);
		return err;
	}
	return type;
}

int usp_socketpair(int domain, int type, int protocol, int sv[2])
{
	int k[2];
	int real_type, tipc_type = 0;
	if (domain == AF_TIPC) {
		tipc_type = tipc_backing_pair(type, protocol, sv, k);
		if (tipc_type < 0) {
			errno = -tipc_type;
			return -1;
		}
		real_type = tipc_type == SOCK_STREAM ? SOCK_STREAM : SOCK_SEQPACKET;
		goto create;
	}
	if (socketpair(domain, type, protocol, k) < 0) {
		/* Linux reserves the descriptors (EMFILE) and writes sv (EFAULT)
		 * before it creates the sockets. */
		int err = errno;
		if (err != EINVAL && err != EMFILE && err != ENFILE && !sv_writable(sv))
			err = EFAULT;
		errno = err;
		return -1;
	}
	if (!sv_writable(sv)) {
		close(k[0]);
		close(k[1]);
		errno = EFAULT;
		return -1;
	}
	if (domain != AF_UNIX) {
		/* AF_UNIX and AF_TIPC are the families socketpair() supports;
		 * whatever else a kernel pairs stays the kernel's */
		sv[0] = k[0];
		sv[1] = k[1];
		return 0;
	}
	/* the kernel accepted the type: unix_create() keeps STREAM,
	 * SEQPACKET and DGRAM and makes SOCK_RAW a DGRAM socket; ask it
	 * about anything else */
	real_type = type & 0xf;
	if (real_type == SOCK_RAW)
		real_type = SOCK_DGRAM;
	if (real_type != SOCK_STREAM && real_type != SOCK_SEQPACKET && real_type != SOCK_DGRAM) {
		socklen_t len = sizeof(real_type);
		if (getsockopt(k[0], SOL_SOCKET, SO_TYPE, &real_type, &len) < 0)
			real_type = type & 0xf;
	}
create:;
	struct usp_pair *pair;
	int r = usp__pair_create(real_type, tipc_type, k, &pair);
	if (r < 0)
		goto fail;
	if (type & SOCK_NONBLOCK) {
		atomic_store(&pair->shm->ep[0].nonblock, 1);
		atomic_store(&pair->shm->ep[1].nonblock, 1);
	}
	usp__table_lock();
	r = usp__install(k[0], pair, 0);
	if (r == 0) {
		r = usp__install(k[1], pair, 1);
		if (r < 0) {
			int side;
			usp__uninstall(k[0], &side);
		}
	}
	usp__table_unlock();
	if (r < 0) {
		usp__pair_unref(pair);
		usp__pair_unref(pair);
		goto fail;
	}
	usp__stat_add(&usp__stats.pairs, 1);
	usp__watch_ensure(); /* to serve this process's children (watchdog.c) */
	sv[0] = k[0];
	sv[1] = k[1];
	return 0;
fail:
	close(k[0]);
	close(k[1]);
	errno = -r;
	return -1;
}

int usp_close(int fd)
{
	usp__table_lock();
	int side;
	struct usp_pair *pair = usp__uninstall(fd, &side);
	usp__table_unlock();
	if (!pair)
		return close(fd);
	/* Release before the kernel close so that the peer's first look
	 * finds the final state (unread data -> ECONNRESET). */
	usp__endpoint_drop_holder(pair->shm, side, fd);
	int r = close(fd);
	int saved = errno;
	/* If another process held this end too (fork) and has since gone
	 * without telling, this close may have been the last one.  When this
	 * process holds the peer, ask the kernel now rather than let the peer
	 * find out on its next liveness check. */
	struct usp_sock peer;
	int hint = atomic_load(&pair->fd_hint[side ^ 1]);
	if (atomic_load(&pair->shm->ep[side].state) == USP_EP_OPEN &&
	    usp__lookup_entry(hint, &peer)) {
		if (peer.pair == pair && peer.side == (side ^ 1))
			usp__check_peer(&peer, true);
		usp__put(&peer);
	}
	/* an AF_TIPC release runs here, where no lock is held */
	if (pair->tipc_type)
		usp__tipc_settle(pair);
	usp__lookup_cache_forget(pair);
	usp__pair_unref(pair);
	errno = saved;
	return r;
}

/* dup2() (dup3 false) and dup3(): the kernel's call, with the table
 * following: newfd stops being whatever endpoint it was, and becomes one
 * more holder of oldfd's endpoint. */
static int dup_to(int oldfd, int newfd, int flags, bool dup3_call)
{
	struct usp_sock s;
	if (!usp__lookup_entry(oldfd, &s)) {
		/* newfd may be a uspair endpoint that dup2 closes */
		usp__table_lock();
		int side;
		struct usp_pair *old = usp__uninstall(newfd, &side);
		int r = dup3_call ? dup3(oldfd, newfd, flags) : dup2(oldfd, newfd);
		int saved = errno;
		if (r < 0 && old) {
			usp__install(newfd, old, side);
		} else if (old) {
			usp__endpoint_drop_holder(old->shm, side, newfd);
			usp__pair_unref(old);
		}
		usp__table_unlock();
		errno = saved;
		return r;
	}
	int r;
	int saved;
	usp__table_lock();
	if (oldfd == newfd && !dup3_call) {
		r = fcntl(oldfd, F_GETFD) < 0 ? -1 : newfd;
		saved = errno;
	} else {
		r = dup3_call ? dup3(oldfd, newfd, flags) : dup2(oldfd, newfd);
		saved = errno;
		if (r >= 0 && usp__install_dup(&s, newfd) < 0) {
			close_keep_errno(newfd);
			r = -1;
			saved = ENOMEM;
		}
	}
	usp__table_unlock();
	usp__put(&s);
	errno = saved;
	return r;
}

int usp_dup2(int oldfd, int newfd)
{
	return dup_to(oldfd, newfd, 0, false);
}

int usp_dup3(int oldfd, int newfd, int flags)
{
	return dup_to(oldfd, newfd, flags, true);
}
