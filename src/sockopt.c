/*
 * Socket options, ioctls, fcntl, names and shutdown.
 *
 * The backing kernel socket has the same family and type as the uspair
 * endpoint and is shared by the same holders, so it answers most of these
 * exactly: uspair forwards the call, and only where the state lives in
 * shared memory (pending error, queue lengths, O_NONBLOCK, buffer sizes
 * and timeouts that the data path needs) does it add or take its part.
 * Forwarding first also gives the kernel's errno for bad arguments
 * (short optlen, EFAULT, EINVAL, ENOPROTOOPT) for free.
 */
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

int64_t usp__timeval_us(const struct timeval *tv)
{
	/* the kernel keeps timeouts up to MAX_SCHEDULE_TIMEOUT jiffies, far
	 * more microseconds than an int64_t holds: saturate */
	if (tv->tv_sec >= INT64_MAX / 1000000 - 1)
		return INT64_MAX;
	return (int64_t)tv->tv_sec * 1000000 + tv->tv_usec;
}

/* After the kernel accepted a setsockopt, read back the value it stored
 * (with its doubling and clamps) into the shared endpoint. */
static void mirror_option(struct usp_sock *s, int optname)
{
	int v;
	struct timeval tv;
	socklen_t len = sizeof(v);
	switch (optname) {
	case SO_SNDBUF:
	case SO_SNDBUFFORCE:
		usp__backing_sndbuf(s->fd, s->self);
		break;
	case SO_RCVBUF:
	case SO_RCVBUFFORCE:
		if (!getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &v, &len))
			atomic_store(&s->self->rcvbuf, v);
		break;
	case SO_RCVLOWAT:
		if (!getsockopt(s->fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len))
			atomic_store(&s->self->rcvlowat, v);
		break;
	case SO_PEEK_OFF:
		if (!getsockopt(s->fd, SOL_SOCKET, SO_PEEK_OFF, &v, &len)) {
			usp__lock(&s->self->recv_lock);
			atomic_store(&s->self->peek_off, v);
			/* uspair applies the offset itself; the backing socket
			 * must peek its kernel records from their start */
			int off = -1;
			setsockopt(s->fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
			usp__unlock(&s->self->recv_lock);
		}
		break;
	case SO_OOBINLINE:
		if (!getsockopt(s->fd, SOL_SOCKET, SO_OOBINLINE, &v, &len))
			atomic_store(&s->self->oobinline, v != 0);
		break;
	case SO_PASSCRED:
	case SO_PASSPIDFD:
	case SO_PASSSEC: {
		/* any of these makes every message a kernel record (scm.c) */
		uint32_t flags = 0;
		static const struct {
			int opt;
			uint32_t flag;
		} pass[] = {{SO_PASSCRED, USP_PASS_CRED},
			    {SO_PASSPIDFD, USP_PASS_PIDFD},
			    {SO_PASSSEC, USP_PASS_SEC}};
		for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
			len = sizeof(v);
			if (!getsockopt(s->fd, SOL_SOCKET, pass[i].opt, &v, &len) && v)
				flags |= pass[i].flag;
		}
		atomic_store(&s->self->pass_flags, flags);
		break;
	}
	case SO_RCVTIMEO_OLD:
	case SO_RCVTIMEO_NEW:
		len = sizeof(tv);
		if (!getsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO_OLD, &tv, &len))
			atomic_store(&s->self->rcvtimeo_us, usp__timeval_us(&tv));
		break;
	case SO_SNDTIMEO_OLD:
	case SO_SNDTIMEO_NEW:
		len = sizeof(tv);
		if (!getsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO_OLD, &tv, &len))
			atomic_store(&s->self->sndtimeo_us, usp__timeval_us(&tv));
		break;
	}
}

int usp_setsockopt(int fd, int level, int optname, const void *optval,
		   socklen_t optlen)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return setsockopt(fd, level, optname, optval, optlen);
	if (s.tipc_type) {
		int t = usp__tipc_setsockopt(&s, level, optname, optval, optlen);
		usp__put(&s);
		return (int)usp__ret_errno(t);
	}
	/* the backing socket's room is resized under the send_lock (pair.c
	 * usp__backing_ready), after the user's value is set */
	bool sndbuf = level == SOL_SOCKET && (optname == SO_SNDBUF || optname == SO_SNDBUFFORCE);
	if (sndbuf)
		usp__lock(&s.self->send_lock);
	int r = setsockopt(fd, level, optname, optval, optlen);
	if (r == 0 && level == SOL_SOCKET)
		mirror_option(&s, optname);
	if (sndbuf) {
		int saved = errno;
		/* A consume of the peer's that found the queue unwritable
		 * under the old SO_SNDBUF wakes nobody and makes no fence
		 * (io.c wake_room): passing through its recv_lock (the order
		 * send_lock, then the peer's recv_lock) makes what it released
		 * visible to the senders woken below. */
		usp__lock(&s.peer->recv_lock);
		usp__unlock(&s.peer->recv_lock);
		usp__unlock(&s.self->send_lock);
		errno = saved;
	}
	if (r == 0 && level == SOL_SOCKET) {
		/* a larger buffer may unblock a sender */
		usp__wake_endpoint(s.self, -1);
	}
	int saved = errno;
	usp__put(&s);
	errno = saved;
	return r;
}

int usp_getsockopt(int fd, int level, int optname, void *optval,
		   socklen_t *optlen)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return getsockopt(fd, level, optname, optval, optlen);
	if (s.tipc_type) {
		int t = usp__tipc_getsockopt(&s, level, optname, optval, optlen);
		usp__put(&s);
		return (int)usp__ret_errno(t);
	}
	/* The kernel checks optlen and the buffers and writes its value. */
	int r = getsockopt(fd, level, optname, optval, optlen);
	if (r == 0 && level == SOL_SOCKET && optname == SO_SNDBUF) {
		/* the backing socket has more room (usp__backing_sndbuf) */
		int v = atomic_load(&s.self->sndbuf_shown);
		memcpy(optval, &v, *optlen < sizeof(v) ? *optlen : sizeof(v));
	}
	if (r == 0 && level == SOL_SOCKET &&
	    (optname == SO_ERROR || optname == SO_PEEK_OFF)) {
		/* state that moves with the data lives in shared memory */
		int local = optname == SO_ERROR ? -usp__take_mmsg_err(&s) : 0;
		int v = local ? local
		      : optname == SO_ERROR ? atomic_exchange(&s.self->sk_err, 0)
					    : atomic_load(&s.self->peek_off);
		if (optname == SO_ERROR && v && !local && !usp__sk_err_valid(&s, v)) {
			/* written by a hostile peer: not an error to hand out */
			usp__pair_corrupt(s.pair);
			v = EIO;
		}
		memcpy(optval, &v, *optlen < sizeof(v) ? *optlen : sizeof(v));
	}
	int saved = errno;
	usp__put(&s);
	errno = saved;
	return r;
}

/* move_addr_to_user(): as much of the name as fits, and its whole length */
int usp__put_name(struct sockaddr *addr, socklen_t *addrlen, const void *name,
		  socklen_t namelen)
{
	/* its order: EFAULT for the length's pointer (one into the first
	 * page: DESIGN.md, known difference 4), EINVAL for a negative
	 * length, EFAULT for the address if anything is copied */
	if ((uintptr_t)addrlen < 4096)
		return -EFAULT;
	if ((int)*addrlen < 0)
		return -EINVAL;
	if (*addrlen && (uintptr_t)addr < 4096)
		return -EFAULT;
	if (*addrlen)
		memcpy(addr, name, *addrlen < namelen ? *addrlen : namelen);
	*addrlen = namelen;
	return 0;
}

/* unix_getname() of a socket without a name: the family alone. */
static int unnamed(struct sockaddr *addr, socklen_t *addrlen)
{
	sa_family_t family = AF_UNIX;
	return (int)usp__ret_errno(usp__put_name(addr, addrlen, &family, sizeof(family)));
}

int usp_getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return getsockname(fd, addr, addrlen);
	if (s.tipc_type) {
		int t = usp__tipc_getname(&s, addr, addrlen, false);
		usp__put(&s);
		return (int)usp__ret_errno(t);
	}
	bool named = s.type != SOCK_DGRAM || atomic_load(&s.self->maybe_named);
	usp__put(&s);
	if (named || (uintptr_t)addr < 4096 || (uintptr_t)addrlen < 4096 || (int)*addrlen < 0)
		return getsockname(fd, addr, addrlen); /* and the kernel's errors */
	/* The DGRAM liveness probe (a one-byte send) autobinds a backing
	 * socket that has SO_PASSCRED set, where the kernel's socket, which
	 * never sent, has no name: an autobound name ("\0" and five hex
	 * digits) that no send of the user's gave is not shown. */
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return getsockname(fd, addr, addrlen);
	if (len == offsetof(struct sockaddr_un, sun_path) + 6 && a.sun_path[0] == 0)
		return unnamed(addr, addrlen);
	memcpy(addr, &a, *addrlen < len ? *addrlen : len);
	*addrlen = len;
	return 0;
}

int usp_getpeername(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return getpeername(fd, addr, addrlen);
	if (s.tipc_type) {
		int t = usp__tipc_getname(&s, addr, addrlen, true);
		usp__put(&s);
		return (int)usp__ret_errno(t);
	}
	/* The backing DGRAM socket is disconnected by uspair's liveness
	 * probe, not by the user's send; answer from uspair's state.  An
	 * unnamed peer's name is the same as an unnamed socket's own. */
	bool refused = s.type == SOCK_DGRAM &&
		       atomic_load(&s.self->dgram_state) != USP_DGRAM_CONNECTED;
	bool named = atomic_load(&s.peer->maybe_named);
	usp__put(&s);
	if (refused) {
		errno = ENOTCONN;
		return -1;
	}
	if (s.type == SOCK_DGRAM && named) {
		/* a peer autobound by a send with SO_PASSCRED has a name */
		socklen_t len = addrlen ? *addrlen : 0;
		int saved = errno;
		if (getpeername(fd, addr, addrlen) == 0)
			return 0;
		errno = saved;
		if (addrlen)
			*addrlen = len;
	}
	/* the peer has no name: the family alone (not our own name, which
	 * a send with SO_PASSCRED or the liveness probe may have given) */
	return s.type == SOCK_DGRAM ? unnamed(addr, addrlen) : getpeername(fd, addr, addrlen);
}

/* unix_shutdown() */
int usp_shutdown(int fd, int how)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return shutdown(fd, how);
	int r = 0;
	if (s.tipc_type) {
		r = usp__tipc_shutdown(&s, how);
		goto out;
	}
	if (how < SHUT_RD || how > SHUT_RDWR) {
		r = -EINVAL;
		goto out;
	}
	uint32_t mode = (uint32_t)how + 1; /* SHUT_RD -> RCV_SHUTDOWN ... */
	atomic_fetch_or(&s.self->shutdown, mode);
	if (s.type != SOCK_DGRAM) {
		uint32_t peer_mode = 0;
		if (mode & USP_RCV_SHUTDOWN)
			peer_mode |= USP_SEND_SHUTDOWN;
		if (mode & USP_SEND_SHUTDOWN)
			peer_mode |= USP_RCV_SHUTDOWN;
		atomic_fetch_or(&s.peer->shutdown, peer_mode);
	}
	usp__wake_endpoint(s.self, -1);
	usp__wake_endpoint(s.peer, s.fd);
	/* fallen back, ring not yet drained: the backing socket must know
	 * too (it was already told of earlier ones, fallback.c) */
	if (usp__kernel_mode(&s))
		shutdown(fd, how);
out:
	usp__put(&s);
	return usp__ret_errno(r);
}

static int queue_len_in(struct usp_sock *s)
{
	struct usp_ring *q = s->rxq;
	if (s->type == SOCK_DGRAM) {
		/* the next datagram only */
		usp__lock(&s->self->recv_lock);
		struct usp_rec rec;
		uint64_t head = atomic_load(&q->head);
		int r = usp__ring_peek(s->pair, q, s->rxdata, head,
				       usp__ld_acq(&q->tail), &rec);
		usp__unlock(&s->self->recv_lock);
		return r == 0 ? (int)rec.len : 0;
	}
	uint64_t in = usp__ld_acq(&q->bytes_in);
	uint64_t out = usp__ld_acq(&q->bytes_out);
	uint64_t used = s->type == SOCK_STREAM ? atomic_load(&q->head_used) : 0;
	uint64_t n = in - out - used;
	if (in - out > 4ull * USP_MAX_SNDBUF || used > in - out)
		return 0;
	return (int)n;
}

/*
 * SIOCATMARK (unix_ioctl()): 1 when the next byte is the out-of-band one,
 * or the head of the queue is an empty record (an out-of-band byte already
 * read, or a zero-length SEQPACKET/DGRAM message) with no out-of-band byte
 * or the out-of-band byte right after it.
 */
static int at_mark(struct usp_sock *s)
{
	usp__lock(&s->self->recv_lock);
	int answer = 0;
	uint64_t head = atomic_load(&s->rxq->head);
	uint64_t tail = usp__ld_acq(&s->rxq->tail);
	uint64_t cur = atomic_load(&s->self->oob_pos);
	struct usp_rec rec, next;
	if (usp__ring_peek(s->pair, s->rxq, s->rxdata, head, tail, &rec) == 0) {
		bool empty = rec.oob ? rec.oob_consumed : rec.len == 0;
		if (cur == rec.pos + 1)
			answer = 1;
		else if (empty)
			answer = !cur || (usp__ring_peek(s->pair, s->rxq, s->rxdata, rec.next,
							 tail, &next) == 0 &&
					  cur == next.pos + 1);
	}
	usp__unlock(&s->self->recv_lock);
	return answer;
}

int usp_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	va_start(ap, request);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return ioctl(fd, request, arg);
	int t = s.tipc_type ? usp__tipc_ioctl(request, arg) : 1;
	if (t <= 0) {
		usp__put(&s);
		return (int)usp__ret_errno(t);
	}
	/* The kernel validates the argument (EFAULT) and answers what it
	 * owns; uspair overwrites the queue lengths, which it owns. */
	int r = ioctl(fd, request, arg);
	int saved = errno;
	if (r == 0) {
		switch (request) {
		case FIONREAD: /* == SIOCINQ */
			*(int *)arg = queue_len_in(&s);
			break;
		case SIOCOUTQ: {
			uint64_t w = usp__peer_gone(&s) ? 0 : usp__ring_wmem(s.pair, s.txq);
			*(int *)arg = (int)w;
			break;
		}
		case FIONBIO:
			atomic_store(&s.self->nonblock, *(int *)arg != 0);
			break;
		case SIOCATMARK:
			*(int *)arg = at_mark(&s);
			break;
		}
	}
	usp__put(&s);
	errno = saved;
	return r;
}

int usp_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	long arg = va_arg(ap, long);
	va_end(ap);
	struct usp_sock s;
	if (!usp__lookup_entry(fd, &s))
		return fcntl(fd, cmd, arg);
	int r;
	int saved;
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		usp__table_lock();
		r = fcntl(fd, cmd, arg);
		saved = errno;
		if (r >= 0 && usp__install_dup(&s, r) < 0) {
			close(r);
			r = -1;
			saved = ENOMEM;
		}
		usp__table_unlock();
		break;
	case F_SETFL:
		r = fcntl(fd, cmd, arg);
		saved = errno;
		if (r == 0)
			atomic_store(&s.self->nonblock, (arg & O_NONBLOCK) != 0);
		break;
	default:
		r = fcntl(fd, cmd, arg);
		saved = errno;
		break;
	}
	usp__put(&s);
	errno = saved;
	return r;
}

int usp_dup(int oldfd)
{
	return usp_fcntl(oldfd, F_DUPFD, 0L);
}

/* ---- connect, bind, listen, accept --------------------------------------
 *
 * An AF_UNIX pair's backing socket has its family, type and state, so the
 * kernel answers these on the descriptor itself.  An AF_TIPC pair's is an
 * AF_UNIX socket: tipc.c answers for TIPC, after the argument checks of
 * the socket layer.
 */

/* move_addr_to_kernel() */
static int addr_in(const struct sockaddr *addr, socklen_t len, struct sockaddr_storage *to)
{
	if ((int)len < 0 || len > sizeof(*to))
		return -EINVAL;
	if (len && (uintptr_t)addr < 4096)
		return -EFAULT;
	memset(to, 0, sizeof(*to));
	if (len)
		memcpy(to, addr, len);
	return 0;
}

/* The TIPC endpoint behind fd, or false (the caller asks the kernel). */
static bool tipc_endpoint(int fd, struct usp_sock *s)
{
	if (!usp__lookup(fd, s))
		return false;
	if (s->tipc_type)
		return true;
	usp__put(s);
	return false;
}

int usp_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	struct usp_sock s;
	if (!tipc_endpoint(fd, &s))
		return connect(fd, addr, addrlen);
	struct sockaddr_storage a;
	int r = addr_in(addr, addrlen, &a);
	if (r == 0)
		r = usp__tipc_connect(&s, (struct sockaddr *)&a, addrlen);
	usp__put(&s);
	return (int)usp__ret_errno(r);
}

int usp_bind(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	struct usp_sock s;
	if (!tipc_endpoint(fd, &s))
		return bind(fd, addr, addrlen);
	struct sockaddr_storage a;
	int r = addr_in(addr, addrlen, &a);
	if (r == 0)
		r = usp__tipc_bind(&s, (struct sockaddr *)&a, addrlen);
	usp__put(&s);
	return (int)usp__ret_errno(r);
}

int usp_listen(int fd, int backlog)
{
	struct usp_sock s;
	if (!tipc_endpoint(fd, &s))
		return listen(fd, backlog);
	int r = usp__tipc_listen(&s);
	usp__put(&s);
	return (int)usp__ret_errno(r);
}

int usp_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	struct usp_sock s;
	if (!tipc_endpoint(fd, &s))
		return accept4(fd, addr, addrlen, flags);
	/* __sys_accept4(): the flags, a descriptor for the new socket
	 * (EMFILE), then the protocol: tipc_accept() wants a listening
	 * socket (EINVAL), sock_no_accept() refuses (EOPNOTSUPP).  The
	 * backing socket, connected, answers all but the last like that. */
	int r = accept4(fd, addr, addrlen, flags);
	int err = errno;
	if (r >= 0) { /* cannot be: it is connected */
		close(r);
		err = EINVAL;
	}
	if (err == EINVAL && !(flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)) &&
	    (s.tipc_type == SOCK_RDM || s.tipc_type == SOCK_DGRAM))
		err = EOPNOTSUPP;
	usp__put(&s);
	errno = err;
	return -1;
}

int usp_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
	return usp_accept4(fd, addr, addrlen, 0);
}
