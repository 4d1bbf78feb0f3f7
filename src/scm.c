/*
 * Ancillary data: SCM_RIGHTS, SCM_CREDENTIALS and the options that ask for
 * credentials on every message (SO_PASSCRED, SO_PASSPIDFD, SO_PASSSEC).
 *
 * Descriptors and credentials cannot travel through shared memory: only
 * the kernel can install a descriptor in another process or vouch for a
 * sender's pid and uid.  So a message that carries ancillary data, or is
 * sent while either end has SO_PASSCRED (or PASSPIDFD/PASSSEC) set, is a
 * *kernel record*: the sender, under its send_lock, sends the payload with
 * the ancillary data through its backing kernel socket, prefixed with one
 * mark byte, and only then publishes a USP_REC_KERNEL record (header and
 * struct usp_kernel_meta, no payload) in the ring.  The receiver, under its
 * recv_lock, reaches the record in ring order and receives the payload and
 * the ancillary data from its backing socket.  The kernel therefore does
 * everything that needs authority (checking descriptors and explicit
 * credentials, attaching the real credentials, counting in-flight
 * descriptors and collecting cycles of them, closing them when the
 * receiving socket goes away); uspair only hands the result to the caller
 * with the kernel's rules for a short control buffer (put_cmsg,
 * scm_detach_fds).
 *
 * The backing socket's queue also holds wake tokens (one byte
 * USP_TOKEN_BYTE each, wait.c).  Everything that reads that queue holds the
 * endpoint's recv_lock and first skips the tokens at its head, so a kernel
 * record is never eaten by a token drain, and kernel records come out in
 * the order of their ring records (one sender at a time, under send_lock,
 * sends the kernel part and publishes the record).
 *
 * The backing queue is as untrusted as the ring: a record whose kernel
 * part is missing or does not start with the mark makes the pair corrupt.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define USP_MARK_BYTE 'S'
#define USP_TOKEN_BYTE 'w'
#ifndef UIO_MAXIOV
#define UIO_MAXIOV 1024
#endif

/* Room for everything the kernel may attach to one message. */
#define CONTROL_BYTES                                                          \
	(CMSG_SPACE(sizeof(int) * USP_SCM_MAX_FD) +                            \
	 CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int)) + 512)

/* ---- sending ---------------------------------------------------------- */

/*
 * scm_check_creds() and the pid lookup of __scm_send() for explicit
 * credentials: 0, or the kernel's -EINVAL, -EPERM or -ESRCH.  Our own ids
 * always pass; anything else is put to the kernel itself through a
 * throwaway unconnected DGRAM socket, whose unix_dgram_sendmsg() runs
 * scm_send() before it finds that it has no peer (ENOTCONN).
 */
static int check_creds(const struct ucred *cr)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (cr->pid == getpid() && getresuid(&ru, &eu, &su) == 0 &&
	    getresgid(&rg, &eg, &sg) == 0 && (cr->uid == ru || cr->uid == eu || cr->uid == su) &&
	    (cr->gid == rg || cr->gid == eg || cr->gid == sg))
		return 0;
	int saved = errno;
	int t = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (t < 0) {
		errno = saved;
		return 0; /* cannot ask: the kernel send will */
	}
	union {
		struct cmsghdr align;
		unsigned char buf[CMSG_SPACE(sizeof(struct ucred))];
	} c;
	memset(&c, 0, sizeof(c));
	struct cmsghdr h = {.cmsg_len = CMSG_LEN(sizeof(struct ucred)),
			    .cmsg_level = SOL_SOCKET,
			    .cmsg_type = SCM_CREDENTIALS};
	memcpy(c.buf, &h, sizeof(h));
	memcpy(c.buf + CMSG_LEN(0), cr, sizeof(*cr));
	struct msghdr m = {.msg_control = c.buf, .msg_controllen = sizeof(c.buf)};
	int err = 0;
	if (sendmsg(t, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != ENOTCONN)
		err = -errno;
	close(t);
	errno = saved;
	return err;
}

/*
 * The checks __scm_send() makes, in its order, so that a bad control
 * buffer fails before anything else as it does in the kernel: a malformed
 * header or an unknown SOL_SOCKET type is EINVAL, more than SCM_MAX_FD
 * descriptors in all is EINVAL, a descriptor that is not open is EBADF,
 * explicit credentials the kernel does not allow are EPERM or ESRCH.
 */
/* The next control message at *off (for_each_cmsghdr() with CMSG_OK()):
 * 1 with its header in *h and *off moved past it, 0 at the end, -EINVAL
 * for a header whose length does not fit. */
static int next_cmsg(const struct msghdr *msg, size_t *off, struct cmsghdr *h)
{
	const unsigned char *base = msg->msg_control;
	size_t size = msg->msg_controllen;
	if (!base || *off + sizeof(struct cmsghdr) > size)
		return 0;
	memcpy(h, base + *off, sizeof(*h));
	if (h->cmsg_len < sizeof(struct cmsghdr) || h->cmsg_len > size - *off)
		return -EINVAL;
	*off += CMSG_ALIGN(h->cmsg_len);
	return 1;
}

/* Descriptor i of the SCM_RIGHTS message whose header starts at `at`. */
static int rights_fd(const struct msghdr *msg, size_t at, size_t i)
{
	int fd;
	memcpy(&fd, (const unsigned char *)msg->msg_control + at + CMSG_LEN(0) +
			    i * sizeof(int), sizeof(fd));
	return fd;
}

int usp__scm_check(const struct msghdr *msg, struct usp_scm_send *scm)
{
	memset(scm, 0, sizeof(*scm));
	if (!msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr))
		return 0;
	if (msg->msg_controllen > INT_MAX)
		return -ENOBUFS;
	struct cmsghdr h;
	int more;
	for (size_t off = 0, at = 0; (more = next_cmsg(msg, &off, &h)) != 0; at = off) {
		if (more < 0)
			return more;
		if (h.cmsg_level == SOL_SOCKET) {
			switch (h.cmsg_type) {
			case SCM_RIGHTS: {
				size_t n = (h.cmsg_len - CMSG_LEN(0)) / sizeof(int);
				if (n > USP_SCM_MAX_FD || scm->nfds + n > USP_SCM_MAX_FD)
					return -EINVAL;
				for (size_t i = 0; i < n; i++) {
					int fd = rights_fd(msg, at, i);
					if (fd < 0 || fcntl(fd, F_GETFD) < 0)
						return -EBADF;
				}
				scm->nfds += (int)n;
				break;
			}
			case SCM_CREDENTIALS: {
				if (h.cmsg_len != CMSG_LEN(sizeof(struct ucred)))
					return -EINVAL;
				memcpy(&scm->ucred,
				       (const unsigned char *)msg->msg_control + at + CMSG_LEN(0),
				       sizeof(scm->ucred));
				scm->creds = true;
				/* checked here, in the order of the control
				 * messages, as __scm_send() does: before a bad
				 * descriptor after it, and even when no data
				 * is sent at all */
				int e = check_creds(&scm->ucred);
				if (e)
					return e;
				break;
			}
			default:
				return -EINVAL;
			}
		}
	}
	return 0;
}

bool usp__scm_via_kernel(struct usp_sock *s, const struct usp_scm_send *scm)
{
	return scm->nfds || scm->creds ||
	       atomic_load_explicit(&s->self->pass_flags, memory_order_relaxed) ||
	       atomic_load_explicit(&s->peer->pass_flags, memory_order_relaxed);
}

/* A control buffer holding only the explicit credentials: what every
 * later chunk of a STREAM message carries (unix_scm_to_skb() puts the
 * descriptors on the first skb only). */
void usp__scm_creds_only(const struct usp_scm_send *scm, unsigned char *buf,
			 size_t *len)
{
	*len = 0;
	if (!scm->creds)
		return;
	struct cmsghdr h = {.cmsg_len = CMSG_LEN(sizeof(struct ucred)),
			    .cmsg_level = SOL_SOCKET,
			    .cmsg_type = SCM_CREDENTIALS};
	memset(buf, 0, CMSG_SPACE(sizeof(struct ucred)));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + CMSG_LEN(0), &scm->ucred, sizeof(scm->ucred));
	*len = CMSG_SPACE(sizeof(struct ucred));
}

/*
 * A uspair endpoint in flight is still open, as the kernel socket behind
 * it is: count the copy in the message as one more holder, so that the
 * sender closing its own descriptor does not release the endpoint.  The
 * receiver takes that holder over (adopt_fd).  delta is +1 before the
 * send and -1 to undo it when the send failed.
 */
void usp__scm_hold_endpoints(const struct msghdr *msg, int delta)
{
	struct cmsghdr h;
	for (size_t off = 0, at = 0; next_cmsg(msg, &off, &h) > 0; at = off) {
		if (h.cmsg_level != SOL_SOCKET || h.cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (h.cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			struct usp_sock e;
			if (!usp__lookup_entry(rights_fd(msg, at, i), &e))
				continue;
			if (delta > 0)
				atomic_fetch_add(&e.self->holders, 1);
			else
				usp__endpoint_drop_holder(e.shm, e.side, -1);
			usp__put(&e);
		}
	}
}

/* The payload as one iovec array behind the mark byte; a caller's array
 * already at the kernel's UIO_MAXIOV limit is gathered into one buffer. */
struct marked_iov {
	struct iovec small[17];
	struct iovec *iov;
	size_t cnt;
	unsigned char *bounce;
	size_t bounce_len;
};

static int marked_iov_init(struct marked_iov *m, unsigned char *mark,
			   size_t mark_len, const struct iovec *iov,
			   size_t iovcnt, size_t want, bool gather)
{
	m->bounce = NULL;
	m->bounce_len = 0;
	m->cnt = 0;
	m->iov = m->small;
	if (iovcnt + 1 > UIO_MAXIOV) {
		m->bounce = malloc(want ? want : 1);
		if (!m->bounce)
			return -ENOMEM;
		m->bounce_len = want;
		if (gather) {
			size_t done = 0;
			for (size_t i = 0; i < iovcnt && done < want; i++) {
				size_t k = iov[i].iov_len < want - done ? iov[i].iov_len
									: want - done;
				memcpy(m->bounce + done, iov[i].iov_base, k);
				done += k;
			}
		}
		iovcnt = 0;
	} else if (iovcnt + 1 > sizeof(m->small) / sizeof(m->small[0])) {
		m->iov = malloc((iovcnt + 1) * sizeof(*m->iov));
		if (!m->iov)
			return -ENOMEM;
	}
	if (mark_len)
		m->iov[m->cnt++] = (struct iovec){mark, mark_len};
	if (m->bounce)
		m->iov[m->cnt++] = (struct iovec){m->bounce, want};
	for (size_t i = 0; i < iovcnt; i++)
		m->iov[m->cnt++] = iov[i];
	return 0;
}

static void marked_iov_scatter(struct marked_iov *m, const struct iovec *iov,
			       size_t iovcnt, size_t n)
{
	size_t done = 0;
	for (size_t i = 0; i < iovcnt && done < n; i++) {
		size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
		memcpy(iov[i].iov_base, m->bounce + done, k);
		done += k;
	}
}

static void marked_iov_free(struct marked_iov *m)
{
	if (m->iov != m->small)
		free(m->iov);
	free(m->bounce);
}

/*
 * Send the payload (iov, exactly its total length) and the control buffer
 * as the kernel part of one record.  Caller holds the send_lock and has
 * reserved the ring record; returns payload bytes sent or -errno (the
 * kernel's verdict on the ancillary data: EPERM for credentials it does
 * not allow, ETOOMANYREFS, ...).  For STREAM the caller keeps the payload
 * small enough to be one skb, so that no token lands inside it.
 */
ssize_t usp__kernel_send(struct usp_sock *s, const struct iovec *iov,
			 size_t iovcnt, const void *control, size_t controllen,
			 int flags)
{
	size_t total = 0;
	for (size_t i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	unsigned char mark = USP_MARK_BYTE;
	struct marked_iov m;
	usp__backing_ready(s);
	int r = marked_iov_init(&m, &mark, 1, iov, iovcnt, total, true);
	if (r < 0)
		return r;
	struct msghdr msg = {.msg_iov = m.iov,
			     .msg_iovlen = m.cnt,
			     .msg_control = controllen ? (void *)control : NULL,
			     .msg_controllen = controllen};
	ssize_t n = sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL |
						 (flags & MSG_EOR));
	int err = errno;
	marked_iov_free(&m);
	if (n < 0)
		return -err;
	if ((size_t)n != total + 1) {
		/* the kernel split or cut it: the queue no longer matches */
		usp__pair_corrupt(s->pair);
		return -EIO;
	}
	return (ssize_t)total;
}

/* ---- the backing socket's receive queue ------------------------------- */

/*
 * Consume the wake tokens at the head of our backing socket's queue.
 * Caller holds our recv_lock.  Returns 1 when something else (a kernel
 * record) is at the head, 0 when the queue is empty.
 */
static int skip_tokens(struct usp_sock *s)
{
	int saved = errno;
	int result = 0;
	bool consumed = false;
	if (usp__kernel_mode(s)) {
		/* after the fallback the queue may hold the user's own bytes
		 * behind the junk, and they may look like tokens: eat only
		 * the counted junk (fallback.c) */
		char c;
		ssize_t r = usp__eat_junk(s) == 0
				    ? recv(s->fd, &c, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT)
				    : -1;
		if (r > 0 || (r == 0 && s->type != SOCK_STREAM))
			result = 1;
		errno = saved;
		return result;
	}
	if (s->type == SOCK_STREAM) {
		/* the rest of a kernel part read in part is at the head: its
		 * next payload byte may well look like a token */
		if (atomic_load_explicit(&s->rxq->head_marked, memory_order_relaxed))
			return 1;
		for (;;) {
			char buf[64];
			ssize_t r = recv(s->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
			if (r <= 0)
				break;
			size_t n = 0;
			while (n < (size_t)r && buf[n] == USP_TOKEN_BYTE)
				n++;
			if (n && recv(s->fd, buf, n, MSG_DONTWAIT) != (ssize_t)n)
				break;
			if (n)
				atomic_fetch_add(&s->self->junk_eaten, n);
			consumed |= n > 0;
			if (n < (size_t)r) {
				result = 1;
				break;
			}
		}
	} else {
		bool retried = false;
		for (;;) {
			char c;
			ssize_t r = recv(s->fd, &c, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
			if (r < 0 && errno != EAGAIN && !retried) {
				/* the backing socket's own pending error, which
				 * that call consumed: a SEQPACKET backing socket
				 * is reset (ECONNRESET) when the peer's is
				 * released with kernel parts unread, even where
				 * the pair is not (a lone empty record); the
				 * pair's errors live in the shared endpoint */
				retried = true;
				continue;
			}
			if (r < 0 || (r == 0 && s->type == SOCK_SEQPACKET))
				break; /* empty, or end of file */
			if (r != 1 || c != USP_TOKEN_BYTE) {
				result = 1;
				break;
			}
			if (recv(s->fd, &c, 1, MSG_DONTWAIT) != 1)
				break;
			atomic_fetch_add(&s->self->junk_eaten, 1);
			consumed = true;
		}
	}
	/* after consuming: a waker that saw the flag still set meanwhile
	 * relied on a token we ate, and the poller it meant to wake sleeps
	 * until its 40 ms slice ends (poll.c; before would let a token sent
	 * in between be eaten with the flag left set, which no one clears) */
	if (consumed) {
		atomic_store(&s->self->token_sent, 0);
		/* the poller's rescan of the masks follows: order it after
		 * the clear (pairs with W1 of the wakers) */
		atomic_thread_fence(memory_order_seq_cst);
	}
	errno = saved;
	return result;
}

/* For usp_poll(): drain the tokens that woke it.  Returns true when a
 * kernel record's part stays at the head, so that the backing socket
 * will keep polling readable until the record is read. */
bool usp__drain_tokens(struct usp_sock *s)
{
	usp__lock(&s->self->recv_lock);
	int r = skip_tokens(s);
	usp__unlock(&s->self->recv_lock);
	return r == 1;
}

void usp__scm_init(struct usp_scm_recv *scm)
{
	scm->has_creds = false;
	scm->nfds = 0;
	scm->pidfd = -1;
	scm->extra_len = 0;
}

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04 /* Linux 6.5 */
#endif

static void parse_control(struct msghdr *m, struct usp_scm_recv *scm)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		size_t data_len = c->cmsg_len - CMSG_LEN(0);
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t n = data_len / sizeof(int);
			for (size_t i = 0; i < n; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				if (scm->nfds < USP_SCM_MAX_FD)
					scm->fds[scm->nfds++] = fd;
				else
					close(fd);
			}
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_PIDFD &&
			   data_len >= sizeof(int)) {
			if (scm->pidfd >= 0)
				close(scm->pidfd);
			memcpy(&scm->pidfd, CMSG_DATA(c), sizeof(int));
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
			   data_len >= sizeof(struct ucred)) {
			scm->has_creds = true;
			memcpy(&scm->creds, CMSG_DATA(c), sizeof(scm->creds));
		} else if (scm->extra_len + CMSG_SPACE(data_len) <= sizeof(scm->extra)) {
			/* SCM_SECURITY, SCM_PIDFD, ...: passed on as they came */
			memcpy(scm->extra + scm->extra_len, c, c->cmsg_len);
			scm->extra_len += CMSG_SPACE(data_len);
		}
	}
}

/* recvmsg on our backing socket with room for any ancillary data, which
 * is added to scm.  Returns what recvmsg returned, or -errno. */
static ssize_t recv_backing(struct usp_sock *s, struct iovec *iov, size_t iovcnt,
			    int flags, struct usp_scm_recv *scm)
{
	union {
		struct cmsghdr align;
		unsigned char buf[CONTROL_BYTES];
	} control;
	struct msghdr msg = {.msg_iov = iov,
			     .msg_iovlen = iovcnt,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};
	ssize_t n = recvmsg(s->fd, &msg, MSG_DONTWAIT | flags);
	if (n < 0)
		return -errno;
	parse_control(&msg, scm);
	return n;
}

/*
 * Receive `want` payload bytes of the kernel record at the head of our
 * queue into iov (for DGRAM and SEQPACKET, the rest of a longer message
 * is dropped, as the kernel drops it), preceded by the mark byte when
 * `mark` (the record's first read).  Ancillary data is added to scm.
 * Caller holds our recv_lock.  Returns the payload bytes received, -EAGAIN
 * when the queue is empty, -EIO when the queue does not match the ring.
 */
ssize_t usp__kernel_recv(struct usp_sock *s, const struct iovec *iov,
			 size_t iovcnt, size_t want, bool mark, int flags,
			 struct usp_scm_recv *scm)
{
	if (skip_tokens(s) == 0)
		return -EAGAIN;
	unsigned char mark_byte = 0;
	struct marked_iov m;
	int r = marked_iov_init(&m, &mark_byte, mark ? 1 : 0, iov, iovcnt, want, false);
	if (r < 0)
		return r;
	ssize_t n = recv_backing(s, m.iov, m.cnt, flags & (MSG_PEEK | MSG_CMSG_CLOEXEC), scm);
	if (n > (mark ? 1 : 0) && m.bounce)
		marked_iov_scatter(&m, iov, iovcnt, (size_t)n - (mark ? 1 : 0));
	marked_iov_free(&m);
	if (n < 0)
		return n;
	size_t expect = want + (mark ? 1 : 0);
	if ((size_t)n != expect || (mark && mark_byte != USP_MARK_BYTE)) {
		usp__pair_corrupt(s->pair);
		return -EIO;
	}
	return (ssize_t)want;
}

void usp__scm_writer(const struct usp_scm_recv *scm, struct usp_scm_writer *w)
{
	/* a message sent without credentials (no SO_PASSCRED on either end
	 * then) comes with pid 0 and the overflow ids: the same writer as a
	 * plain ring record, which has none (unix_skb_scm_eq()) */
	w->has_creds = scm->has_creds && scm->creds.pid != 0;
	w->creds = w->has_creds ? scm->creds : (struct ucred){0, 0, 0};
	w->pid_ino = 0;
	struct stat st;
	if (scm->pidfd >= 0 && fstat(scm->pidfd, &st) == 0)
		w->pid_ino = (uint64_t)st.st_ino;
}

bool usp__same_writer(const struct usp_scm_writer *a, const struct usp_scm_writer *b)
{
	return a->has_creds == b->has_creds && a->pid_ino == b->pid_ino &&
	       (!a->has_creds || (a->creds.pid == b->creds.pid && a->creds.uid == b->creds.uid &&
				  a->creds.gid == b->creds.gid));
}

/*
 * Who wrote the kernel record at the head of our queue, without consuming
 * it (a STREAM read must not glue data of different writers together).
 * Caller holds recv_lock.
 */
int usp__kernel_peek_writer(struct usp_sock *s, struct usp_scm_writer *w)
{
	struct usp_scm_recv scm;
	usp__scm_init(&scm);
	unsigned char byte;
	struct iovec iov = {&byte, 1};
	if (skip_tokens(s) == 0)
		return -EAGAIN;
	ssize_t n = recv_backing(s, &iov, 1, MSG_PEEK | MSG_CMSG_CLOEXEC, &scm);
	if (n < 0)
		return (int)n;
	usp__scm_writer(&scm, w);
	for (int i = 0; i < scm.nfds; i++)
		close(scm.fds[i]); /* peeked copies */
	if (scm.pidfd >= 0)
		close(scm.pidfd);
	return 0;
}

/* Drop everything queued in our backing socket, closing the descriptors
 * that came with it (a DGRAM socket disconnected from a dead peer).
 * Caller holds recv_lock. */
void usp__kernel_purge(struct usp_sock *s)
{
	for (;;) {
		struct usp_scm_recv scm;
		usp__scm_init(&scm);
		unsigned char buf[256];
		struct iovec iov = {buf, sizeof(buf)};
		ssize_t n = recv_backing(s, &iov, 1, MSG_CMSG_CLOEXEC, &scm);
		if (n < 0 || (n == 0 && s->type != SOCK_DGRAM))
			break;
		usp__scm_discard(&scm);
	}
}

/* ---- handing ancillary data to the caller ------------------------------ */

/* What the kernel reports for a message without credentials: pid 0 and
 * the overflow ids (from_kuid_munged() of INVALID_UID). */
struct ucred usp__no_creds(void)
{
	static _Atomic int overflow_uid = -1, overflow_gid = -1;
	int u = atomic_load_explicit(&overflow_uid, memory_order_relaxed);
	int g = atomic_load_explicit(&overflow_gid, memory_order_relaxed);
	if (u < 0 || g < 0) {
		u = g = 65534;
		FILE *f = fopen("/proc/sys/kernel/overflowuid", "re");
		if (f) {
			if (fscanf(f, "%d", &u) != 1)
				u = 65534;
			fclose(f);
		}
		f = fopen("/proc/sys/kernel/overflowgid", "re");
		if (f) {
			if (fscanf(f, "%d", &g) != 1)
				g = 65534;
			fclose(f);
		}
		atomic_store_explicit(&overflow_uid, u, memory_order_relaxed);
		atomic_store_explicit(&overflow_gid, g, memory_order_relaxed);
	}
	return (struct ucred){.pid = 0, .uid = (uid_t)u, .gid = (gid_t)g};
}

/*
 * A descriptor that arrived through SCM_RIGHTS.  If it is an end of a pair
 * this process has mapped, it becomes a uspair descriptor again: it takes
 * over the holder that the sender counted for the copy in flight (or, for
 * a peeked copy, is one more holder).  keep=false: it does not fit in the
 * caller's buffer and is closed.
 */
/*
 * Descriptors received and not kept are released at once by a recvmsg,
 * but within a recvmmsg the kernel releases them only when the system call
 * returns (fput() is task work): a pair's own end that came back and is
 * dropped does not end the pair for the later messages of the batch.
 * usp_recvmmsg() defers the same way (usp__scm_defer_begin/end).
 */
struct deferred_fd {
	int fd;
	bool drop;
	struct usp_pair *pair;
	int side;
};
static USP_TLS struct {
	bool active;
	size_t n, cap;
	struct deferred_fd *v;
} deferred;

void usp__scm_defer_begin(void)
{
	deferred.active = true;
}

void usp__scm_defer_end(void)
{
	for (size_t i = 0; i < deferred.n; i++) {
		struct deferred_fd *d = &deferred.v[i];
		if (d->drop)
			usp__endpoint_drop_holder(d->pair->shm, d->side, -1);
		if (d->pair)
			usp__pair_unref(d->pair);
		close(d->fd);
	}
	free(deferred.v);
	deferred.v = NULL;
	deferred.n = deferred.cap = 0;
	deferred.active = false;
}

static bool defer_release(int fd, bool drop, struct usp_pair *pair, int side)
{
	if (!deferred.active)
		return false;
	if (deferred.n == deferred.cap) {
		size_t cap = deferred.cap ? 2 * deferred.cap : 64;
		struct deferred_fd *v = realloc(deferred.v, cap * sizeof(*v));
		if (!v)
			return false; /* release it now */
		deferred.v = v;
		deferred.cap = cap;
	}
	deferred.v[deferred.n++] = (struct deferred_fd){fd, drop, pair, side};
	return true;
}

static void adopt_fd(int fd, bool keep, bool peeked)
{
	struct stat st;
	struct usp_pair *pair = NULL;
	int side = 0;
	if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
		usp__table_lock();
		usp__find_by_inode((uint64_t)st.st_ino, &pair, &side);
		usp__table_unlock();
	}
	if (!keep) {
		if (defer_release(fd, pair && !peeked, pair, side))
			return;
		if (pair && !peeked)
			usp__endpoint_drop_holder(pair->shm, side, -1);
		if (pair)
			usp__pair_unref(pair);
		close(fd);
		return;
	}
	if (!pair)
		return;
	if (peeked)
		atomic_fetch_add(&pair->shm->ep[side].holders, 1);
	usp__table_lock();
	int r = usp__install(fd, pair, side); /* takes our reference */
	usp__table_unlock();
	if (r < 0) {
		usp__endpoint_drop_holder(pair->shm, side, -1);
		usp__pair_unref(pair);
	}
}

void usp__scm_discard(struct usp_scm_recv *scm)
{
	for (int i = 0; i < scm->nfds; i++)
		adopt_fd(scm->fds[i], false, false);
	scm->nfds = 0;
	if (scm->pidfd >= 0)
		close(scm->pidfd);
	scm->pidfd = -1;
}

/* Moves the ancillary data of `from` into `into` (a STREAM read that
 * glues several records). */
void usp__scm_merge(struct usp_scm_recv *into, struct usp_scm_recv *from)
{
	if (from->has_creds && !into->has_creds) {
		into->has_creds = true;
		into->creds = from->creds;
	}
	for (int i = 0; i < from->nfds; i++) {
		if (into->nfds < USP_SCM_MAX_FD)
			into->fds[into->nfds++] = from->fds[i];
		else
			adopt_fd(from->fds[i], false, false);
	}
	from->nfds = 0;
	if (into->pidfd < 0)
		into->pidfd = from->pidfd;
	else if (from->pidfd >= 0)
		close(from->pidfd);
	from->pidfd = -1;
}

/* put_cmsg(): as much of the message as fits; MSG_CTRUNC if cut. */
void usp__put_cmsg(struct msghdr *msg, size_t *used, int level, int type,
		   const void *data, size_t len)
{
	size_t room = msg->msg_controllen - *used;
	if (room < sizeof(struct cmsghdr)) {
		msg->msg_flags |= MSG_CTRUNC;
		return;
	}
	size_t cmlen = CMSG_LEN(len);
	if (room < cmlen) {
		msg->msg_flags |= MSG_CTRUNC;
		cmlen = room;
	}
	unsigned char *p = (unsigned char *)msg->msg_control + *used;
	struct cmsghdr h = {.cmsg_len = cmlen, .cmsg_level = level, .cmsg_type = type};
	memcpy(p, &h, sizeof(h));
	memcpy(p + CMSG_LEN(0), data, cmlen - CMSG_LEN(0));
	size_t step = CMSG_SPACE(len);
	*used += step < room ? step : room;
}

/* Only the credentials message, into msg's control buffer (a failed
 * STREAM read; see stream_recvmsg). */
void usp__scm_put_creds(struct msghdr *msg, const struct ucred *c)
{
	if (!msg->msg_control)
		return;
	size_t used = 0;
	struct msghdr m = *msg;
	usp__put_cmsg(&m, &used, SOL_SOCKET, SCM_CREDENTIALS, c, sizeof(*c));
}

/*
 * Give the caller the ancillary data of what it received, as scm_recv()
 * does: credentials first (SO_PASSCRED; a message sent without them shows
 * pid 0 and the overflow ids), then the other messages the kernel
 * attached, then the descriptors that fit (scm_detach_fds(); the others
 * are closed and MSG_CTRUNC is set).  Sets msg_controllen to what was
 * written.  Caller may hold the recv_lock.
 */
void usp__scm_deliver(struct usp_sock *s, struct msghdr *msg,
		      struct usp_scm_recv *scm, int flags)
{
	bool peeked = flags & MSG_PEEK;
	uint32_t pass = atomic_load_explicit(&s->self->pass_flags, memory_order_relaxed);
	bool want_creds = pass & USP_PASS_CRED;
	if (!msg->msg_control) {
		if (want_creds || scm->nfds || (pass & USP_PASS_PIDFD) || scm->extra_len)
			msg->msg_flags |= MSG_CTRUNC;
		for (int i = 0; i < scm->nfds; i++)
			adopt_fd(scm->fds[i], false, peeked);
		scm->nfds = 0;
		if (scm->pidfd >= 0)
			close(scm->pidfd);
		scm->pidfd = -1;
		msg->msg_controllen = 0;
		return;
	}
	size_t used = 0;
	if (want_creds) {
		struct ucred c = scm->has_creds ? scm->creds : usp__no_creds();
		usp__put_cmsg(msg, &used, SOL_SOCKET, SCM_CREDENTIALS, &c, sizeof(c));
	}
	for (size_t off = 0; off < scm->extra_len;) {
		struct cmsghdr h;
		memcpy(&h, scm->extra + off, sizeof(h));
		usp__put_cmsg(msg, &used, h.cmsg_level, h.cmsg_type,
			 scm->extra + off + CMSG_LEN(0), h.cmsg_len - CMSG_LEN(0));
		off += CMSG_SPACE(h.cmsg_len - CMSG_LEN(0));
	}
	if (scm->nfds) {
		size_t room = msg->msg_controllen - used;
		int fdmax = room <= sizeof(struct cmsghdr)
				    ? 0
				    : (int)((room - sizeof(struct cmsghdr)) / sizeof(int));
		int keep = fdmax < scm->nfds ? fdmax : scm->nfds;
		for (int i = 0; i < scm->nfds; i++)
			adopt_fd(scm->fds[i], i < keep, peeked);
		if (keep > 0) {
			unsigned char *p = (unsigned char *)msg->msg_control + used;
			struct cmsghdr h = {.cmsg_len = CMSG_LEN(keep * sizeof(int)),
					    .cmsg_level = SOL_SOCKET,
					    .cmsg_type = SCM_RIGHTS};
			memcpy(p, &h, sizeof(h));
			memcpy(p + CMSG_LEN(0), scm->fds, keep * sizeof(int));
			size_t step = CMSG_SPACE(keep * sizeof(int));
			used += step < room ? step : room;
		}
		if (keep < scm->nfds)
			msg->msg_flags |= MSG_CTRUNC;
		scm->nfds = 0;
	}
	if ((pass & USP_PASS_PIDFD) || scm->pidfd >= 0) {
		/* scm_pidfd_recv(), last: without room for the whole message
		 * it sets MSG_CTRUNC and writes nothing, even for a message
		 * that has no sender pid (then it writes nothing either) */
		if (msg->msg_controllen - used < CMSG_LEN(sizeof(int))) {
			if (pass & USP_PASS_PIDFD)
				msg->msg_flags |= MSG_CTRUNC;
		} else if (scm->pidfd >= 0) {
			usp__put_cmsg(msg, &used, SOL_SOCKET, SCM_PIDFD, &scm->pidfd, sizeof(int));
			scm->pidfd = -1;
		}
		if (scm->pidfd >= 0)
			close(scm->pidfd);
		scm->pidfd = -1;
	}
	msg->msg_controllen = used;
}
