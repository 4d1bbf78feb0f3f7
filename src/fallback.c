/*
 * The fallback to the kernel path: a pair whose data from now on moves
 * through its backing kernel sockets, which are the user's descriptors.
 *
 * Why: the shared region cannot follow a descriptor everywhere a kernel
 * socket can go: not through exec (the mapping is gone), not into a
 * process that does not run uspair, not into the kernel's epoll, splice or
 * sendfile.  Since every uspair descriptor *is* a connected kernel socket
 * of the right type, a pair can hand itself over to the kernel at any
 * moment, provided that what the user's data looks like in the kernel's
 * queues is exactly what it would have been: nothing lost, nothing
 * reordered, nothing of uspair's own left in front of it.
 *
 * Protocol (usp__fallback, run by a process holding end A of the pair):
 *  1. Take both endpoints' send_locks, then both recv_locks (side order:
 *     a sender holds one send_lock and at most the peer's recv_lock, a
 *     receiver no other lock).  No record can now be published or read.
 *  2. First fallback only: each ring holding plain records whose other
 *     end has a descriptor in this process is marked for a flush.
 *     need_drained (exec: A's ring must end up empty) and A's ring can
 *     be neither flushed here nor asked of an ancestor: -EBUSY, nothing
 *     changed.
 *  3. kernel_mode = 1 on both endpoints (K1, seq_cst; pairs with J1 in
 *     usp__send_junk), with A's flush_wanted when an ancestor must flush;
 *     then wait for junk_writers == 0 on both: from now on no wake token
 *     or liveness probe enters either backing queue, and every one sent
 *     before is queued and counted in junk_sent.
 *  4. Release the recv_locks, flush the marked rings (flush_ring: each
 *     record received through the normal path and sent through the other
 *     end's descriptor, so it lands in order in the owner's backing
 *     queue), release the send_locks, wake every sleeper of both
 *     endpoints (their waits return -USP_ERAW; their calls then go to the
 *     descriptor).  Senders check kernel_mode under their send_lock before
 *     every record (io.c), so none is published after step 3, and one
 *     that meets it goes to the kernel after the flush.
 *  5. Each end is drained lazily, by any process holding it, in
 *     usp__passthrough (called by usp__lookup while kernel_mode is set):
 *     under its recv_lock, once its ring is empty, it eats
 *     junk_sent - junk_eaten junk items from the head of its backing
 *     queue (everything behind them was sent by the kernel path, flushed,
 *     or is a kernel record's part already consumed in ring order),
 *     copies the endpoint's socket state to the backing socket
 *     (kernel_synced, once per endpoint), and marks the side passthrough
 *     in this process.  Until then its readers read the ring as before; a
 *     receive that finds the ring empty returns -USP_ERAW and is redone on
 *     the descriptor.
 *  An ancestor asked to flush (flush_wanted, its watchdog woken through
 *  the service word, watchdog.c) does step 4's flush for that ring under
 *  both send_locks (usp__serve_flush); so does any call of a process
 *  holding the other end before it goes to the kernel path.
 *
 * The counters live in the shared region and are untrusted: a difference
 * above USP_MAX_JUNK marks the pair corrupt, and junk is eaten only while
 * it looks like junk, so a lying count can never make us eat user data.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Far more junk than can be queued: a token is at most one in flight per
 * endpoint, probes are sent only when nothing of ours is queued. */
#define USP_MAX_JUNK 4096
/* How long step 3 waits for a junk writer (a few instructions and one
 * send); one that died inside is given up on after this. */
#define USP_JUNK_WAIT_NS (1000LL * 1000 * 1000)

static bool ring_drained(struct usp_sock *s)
{
	return usp__ring_empty(s->rxq) &&
	       !atomic_load_explicit(&s->rxq->head_marked, memory_order_relaxed);
}

/* Eat the junk at the head of our backing queue.  Caller holds recv_lock
 * and has found the ring drained in kernel mode. */
int usp__eat_junk(struct usp_sock *s)
{
	uint64_t n = atomic_load(&s->self->junk_sent) - atomic_load(&s->self->junk_eaten);
	if (n > USP_MAX_JUNK) {
		usp__pair_corrupt(s->pair);
		return -EIO;
	}
	while (n) {
		unsigned char buf[64];
		size_t want = s->type == SOCK_STREAM ? (n < sizeof(buf) ? n : sizeof(buf)) : 1;
		ssize_t r = recv(s->fd, buf, want, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
		if (r <= 0)
			break;
		size_t junk = 0;
		if (s->type == SOCK_STREAM) {
			while (junk < (size_t)r && buf[junk] == 'w')
				junk++;
		} else {
			junk = r == 1 && buf[0] == 'w';
		}
		if (!junk || recv(s->fd, buf, junk, MSG_DONTWAIT) != (ssize_t)junk)
			break;
		atomic_fetch_add(&s->self->junk_eaten, junk);
		n -= junk;
	}
	return 0;
}

/* Copy what lives only in the shared endpoint to the backing socket, once
 * per endpoint.  Options the user set were forwarded to it already
 * (sockopt.c); these were not. */
static void sync_endpoint(struct usp_sock *s)
{
	uint32_t zero = 0;
	if (!atomic_compare_exchange_strong(&s->self->kernel_synced, &zero, 1))
		return;
	uint32_t bits = atomic_load(&s->self->shutdown);
	if (bits & USP_SEND_SHUTDOWN)
		shutdown(s->fd, SHUT_WR);
	if (bits & USP_RCV_SHUTDOWN)
		shutdown(s->fd, SHUT_RD);
	if (atomic_load(&s->self->backing_sized)) {
		/* the backing socket was given room for kernel records:
		 * back to what the user set (the kernel doubles it) */
		int half = atomic_load(&s->self->sndbuf_shown) / 2;
		if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &half, sizeof(half)) < 0)
			setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &half, sizeof(half));
	}
	int off = atomic_load(&s->self->peek_off);
	if (off >= 0)
		setsockopt(s->fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
}

/* Step 5.  Called with kernel_mode seen set. */
bool usp__passthrough(struct usp_sock *s)
{
	if (atomic_load_explicit(&s->pair->passthrough[s->side], memory_order_acquire))
		return true;
	int saved = errno;
	usp__serve_flush(s); /* before anything of ours goes to the kernel */
	bool done = false;
	/* our send_lock too: a flush of the peer's ring (which holds every
	 * send_lock while it moves the ring into the kernel) must be over
	 * before our sends go there straight */
	usp__lock(&s->self->send_lock);
	usp__lock(&s->self->recv_lock);
	if (ring_drained(s) && usp__eat_junk(s) == 0) {
		if (!(atomic_load(&s->peer->flush_wanted) && atomic_load(&s->peer->kernel_mode))) {
			sync_endpoint(s);
			atomic_store_explicit(&s->pair->passthrough[s->side], true,
					      memory_order_release);
			done = true;
		}
	}
	usp__unlock(&s->self->recv_lock);
	usp__unlock(&s->self->send_lock);
	errno = saved;
	return done;
}

static void wait_junk_writers(struct usp_endpoint *ep)
{
	int64_t until = usp__now_ns() + USP_JUNK_WAIT_NS;
	while (atomic_load(&ep->junk_writers) && usp__now_ns() < until)
		sched_yield();
}

/* A table entry found by usp__table_find: (pair, side) and its number. */
struct entry_ref {
	struct usp_pair *pair;
	int side;
	int fd;
};

static bool match_side(struct usp_pair *pair, int side, int fd, void *arg)
{
	struct entry_ref *q = arg;
	if (pair != q->pair || side != q->side)
		return false;
	q->fd = fd;
	return true;
}

/* A descriptor of side `side` of pair in this process, or -1 (the hint
 * checked against the table, else a search of the table).  Caller holds
 * no table lock. */
static int fd_of_side(struct usp_pair *pair, int side)
{
	int fd = atomic_load(&pair->fd_hint[side]);
	struct usp_sock s;
	if (usp__lookup_entry(fd, &s)) {
		bool same = s.pair == pair && s.side == side;
		usp__put(&s);
		if (same)
			return fd;
	}
	/* the hint's descriptor was closed: another may remain (a dup) */
	struct entry_ref q = {pair, side, -1};
	usp__table_lock();
	usp__table_find(match_side, &q);
	usp__table_unlock();
	return q.fd;
}

/* Only plain data records between head and tail (no kernel record, no
 * out-of-band byte): what flush_ring can move.  Caller holds recv_lock. */
static bool ring_plain(struct usp_sock *s)
{
	uint64_t pos = atomic_load(&s->rxq->head);
	uint64_t tail = usp__ld_acq(&s->rxq->tail); /* C1 */
	for (unsigned guard = 0; guard < USP_RING_BYTES / USP_REC_HDR + 2; guard++) {
		struct usp_rec rec;
		int r = usp__ring_peek(s->pair, s->rxq, s->rxdata, pos, tail, &rec);
		if (r == -EAGAIN)
			return true;
		if (r < 0 || rec.kernel || rec.oob)
			return false;
		pos = rec.next;
	}
	return false;
}

/*
 * The ring's unread data moved into s's backing queue, in order, by
 * receiving it here and sending it through the peer's descriptor peer_fd
 * (held by this process).  s->fd may be -1 (usp__serve_flush: this
 * process holds only the peer): the receive path then finds no backing
 * socket to go on into, which is right, since that queue is the one being
 * filled.  Caller holds both send_locks, so nothing else
 * enters that queue meanwhile, and kernel_mode is newly set, so the queue
 * holds nothing but junk (eaten first, as usual).  The backing sockets
 * have at least the room the ring admitted (accounting mirrors the
 * kernel's), so a send that fails here is a broken promise: said loudly.
 */
static int flush_ring(struct usp_sock *s, int peer_fd)
{
	/* records of every size up to a whole ring, but no more memory than
	 * the data takes: one record at a time */
	size_t cap = 64 * 1024;
	unsigned char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	int err = 0;
	/* the sender's backing socket gets the room kernel records get
	 * (pair.c size_backing): the ring admitted what the kernel would,
	 * but a probe or token may sit in that queue too */
	struct usp_sock sender;
	atomic_fetch_add(&s->pair->refs, 1);
	usp__sock_init(&sender, s->pair, s->side ^ 1, peer_fd);
	usp__backing_ready(&sender); /* we hold its send_lock */
	usp__put(&sender);
	/* one locked section: no reader of this end, in any process, may
	 * take record k+1 from the ring while record k is on its way */
	usp__lock(&s->self->recv_lock);
	s->recv_locked = true;
	for (;;) {
		uint64_t head = atomic_load(&s->rxq->head);
		struct usp_rec rec;
		int pr = usp__ring_peek(s->pair, s->rxq, s->rxdata, head,
					usp__ld_acq(&s->rxq->tail), &rec);
		if (pr == 0 && rec.len > cap) {
			unsigned char *bigger = realloc(buf, rec.len);
			if (!bigger) {
				err = -ENOMEM;
				break;
			}
			buf = bigger;
			cap = rec.len;
		}
		struct iovec iov = {buf, cap};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n = usp__recvmsg(s, &m, MSG_DONTWAIT);
		if (n == -USP_ERAW || n == -EAGAIN)
			break;
		if (n < 0) {
			err = (int)n;
			break;
		}
		if (n == 0 && s->type == SOCK_STREAM)
			break; /* end of file: nothing more */
		/* the backing socket may be short of room (a DGRAM liveness
		 * probe in the queue): wait for it, boundedly */
		ssize_t sent;
		int tries = 0;
		while ((sent = send(peer_fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 &&
		       errno == EAGAIN && tries++ < 200) {
			struct pollfd p = {peer_fd, POLLOUT, 0};
			poll(&p, 1, 10);
		}
		if (sent != n) {
			usp__busy_message(s->fd, "unread data lost moving it to the kernel");
			err = -EIO;
			break;
		}
	}
	s->recv_locked = false;
	usp__unlock(&s->self->recv_lock);
	free(buf);
	return err;
}

/* How long an exec waits for a process holding the other end to move
 * its ring into the kernel (usp__serve_flush). */
#define USP_FLUSH_WAIT_NS (2000LL * 1000 * 1000)

/* Steps 1-4.  0, -EBUSY (need_drained and our ring holds data that
 * cannot be moved) or -EIO.
 *
 * The first fallback of a pair also moves each ring's unread data into
 * the backing queue behind it (flush_ring) where it can: plain records
 * only, and this process must hold the other end's descriptor to send
 * them through (one process holding both ends, or a child between fork
 * and exec that has not closed the other end).  Then the kernel's
 * readiness (epoll) and whoever reads the descriptor after exec see that
 * data.  A ring that cannot be moved here is asked of the ancestor
 * processes, one of which may hold the other end (flush_wanted,
 * usp__serve_flush from its watchdog thread); with need_drained (exec)
 * that is waited for up to USP_FLUSH_WAIT_NS, and -EBUSY if nobody did
 * it.  A ring left unmoved is read through uspair until it is drained. */
int usp__fallback(struct usp_sock *s, bool need_drained)
{
	if (usp__is_corrupt(s))
		return -EIO;
	/* An AF_TIPC pair's backing sockets are AF_UNIX: after the fallback
	 * it is an AF_UNIX pair of the backing type (docs/DESIGN.md, known
	 * differences).  TIPC messages cannot become AF_UNIX ones, so only
	 * a pair with nothing queued either way falls back. */
	struct usp_shared *shm = s->shm;
	if (s->tipc_type)
		usp__tipc_settle(s->pair);
	/* lock order: send_locks, then recv_locks, each in side order (a
	 * sender holds one send_lock and at most the peer's recv_lock; a
	 * receiver takes no other lock) */
	usp__lock(&shm->ep[0].send_lock);
	usp__lock(&shm->ep[1].send_lock);
	usp__lock(&shm->ep[0].recv_lock);
	usp__lock(&shm->ep[1].recv_lock);
	/* checked with every producer and consumer stopped: TIPC senders
	 * look at kernel_mode under their send_lock (tipc.c) */
	if (s->tipc_type && (!usp__ring_empty(&shm->ring[0]) || !usp__ring_empty(&shm->ring[1]) ||
			     atomic_load(&shm->ep[0].tipc.release_pending) ||
			     atomic_load(&shm->ep[1].tipc.release_pending))) {
		usp__unlock(&shm->ep[1].recv_lock);
		usp__unlock(&shm->ep[0].recv_lock);
		usp__unlock(&shm->ep[1].send_lock);
		usp__unlock(&shm->ep[0].send_lock);
		return -EBUSY;
	}
	int r = 0;
	bool first = !atomic_load(&s->self->kernel_mode);
	struct usp_sock side_sock[2];
	bool flush[2] = {false, false};
	int flush_via[2] = {-1, -1}; /* the other end's descriptor, to send */
	bool ask_ancestors = false;
	for (int t = 0; first && t < 2; t++) {
		int fd = t == s->side ? s->fd : fd_of_side(s->pair, t);
		int peer_fd = fd_of_side(s->pair, t ^ 1);
		if (fd < 0 || peer_fd < 0)
			continue;
		atomic_fetch_add(&s->pair->refs, 1);
		usp__sock_init(&side_sock[t], s->pair, t, fd);
		flush[t] = !ring_drained(&side_sock[t]) && ring_plain(&side_sock[t]);
		flush_via[t] = peer_fd;
		if (!flush[t])
			usp__put(&side_sock[t]);
	}
	if (first && !flush[s->side] && !ring_drained(s) && ring_plain(s) && usp__have_ancestors())
		ask_ancestors = true; /* (epoll too: the kernel must see the data) */
	else if (need_drained && !ring_drained(s) && !flush[s->side])
		r = -EBUSY;
	if (!r && first) {
		atomic_store(&shm->ep[0].kernel_mode, 1); /* K1: pairs with J1 */
		atomic_store(&shm->ep[1].kernel_mode, 1);
		/* with K1, under the send_locks: a sender of the peer either
		 * published before (the data is flushed) or sees both */
		if (ask_ancestors)
			atomic_store(&s->self->flush_wanted, 1);
		wait_junk_writers(&shm->ep[0]);
		wait_junk_writers(&shm->ep[1]);
	}
	usp__unlock(&shm->ep[1].recv_lock);
	usp__unlock(&shm->ep[0].recv_lock);
	for (int t = 0; t < 2; t++) {
		if (!flush[t])
			continue;
		/* under both send_locks; the peer's descriptor sends */
		int fr = r ? 0 : flush_ring(&side_sock[t], flush_via[t]);
		if (t == s->side && fr)
			r = fr;
		usp__put(&side_sock[t]);
	}
	usp__unlock(&shm->ep[1].send_lock);
	usp__unlock(&shm->ep[0].send_lock);
	if (first && atomic_load(&s->self->kernel_mode)) {
		usp__wake_endpoint(&shm->ep[0], -1);
		usp__wake_endpoint(&shm->ep[1], -1);
	}
	if (r)
		return r;
	if (ask_ancestors)
		usp__request_flush();
	if (ask_ancestors && need_drained) {
		int64_t until = usp__now_ns() + USP_FLUSH_WAIT_NS;
		while (atomic_load(&s->self->flush_wanted) && usp__now_ns() < until) {
			struct timespec ms = {0, 1000 * 1000};
			nanosleep(&ms, NULL);
		}
		if (atomic_load(&s->self->flush_wanted))
			return -EBUSY; /* nobody holding the other end answered */
	}
	if (need_drained && !usp__passthrough(s))
		return -EBUSY; /* another reader is mid-record */
	return 0;
}

/*
 * The other end of s asked for its ring to be moved into its backing
 * queue (flush_wanted: it is about to exec without our descriptor).  We
 * hold s, whose descriptor sends into that queue.  Called from this
 * process's watchdog thread when asked (usp__request_flush), and before
 * any call on s goes to the kernel path (usp__passthrough, and a send
 * that met kernel_mode): nothing of ours may enter that queue before the
 * ring's data.
 */
void usp__serve_flush(struct usp_sock *s)
{
	struct usp_endpoint *wanting = s->peer;
	if (!atomic_load(&wanting->flush_wanted))
		return;
	struct usp_shared *shm = s->shm;
	usp__lock(&shm->ep[0].send_lock);
	usp__lock(&shm->ep[1].send_lock);
	if (atomic_load(&wanting->flush_wanted) && atomic_load(&wanting->kernel_mode)) {
		struct usp_sock ring_owner;
		atomic_fetch_add(&s->pair->refs, 1);
		usp__sock_init(&ring_owner, s->pair, s->side ^ 1, -1);
		flush_ring(&ring_owner, s->fd);
		usp__put(&ring_owner);
		atomic_store(&wanting->flush_wanted, 0); /* the waiter polls it */
	}
	usp__unlock(&shm->ep[1].send_lock);
	usp__unlock(&shm->ep[0].send_lock);
}

static bool collect_flush(struct usp_pair *pair, int side, int fd, void *arg)
{
	struct entry_ref *job = arg;
	if (atomic_load(&pair->shm->ep[side ^ 1].flush_wanted)) {
		*job = (struct entry_ref){pair, side, fd};
		return true;
	}
	return false;
}

/* The watchdog's answer to usp__request_flush: every endpoint held here
 * whose other end wants a flush.  One at a time, found under the table
 * lock and served without it (serving takes the pair's locks, which are
 * taken before the table lock elsewhere).  It sends through a duplicate
 * made under the table lock: the user's descriptor may be closed (and its
 * number reused) by another thread meanwhile, while an entry in the table
 * means it is still open (usp_close uninstalls before it closes). */
void usp__serve_all_flushes(void)
{
	for (int rounds = 0; rounds < 1024; rounds++) {
		struct entry_ref job = {NULL, 0, -1};
		int dup_fd = -1;
		usp__table_lock();
		bool found = usp__table_find(collect_flush, &job);
		if (found) {
			atomic_fetch_add(&job.pair->refs, 1); /* the entry holds one */
			dup_fd = fcntl(job.fd, F_DUPFD_CLOEXEC, 0);
		}
		usp__table_unlock();
		if (!found)
			return;
		bool still = true;
		if (dup_fd >= 0) {
			struct usp_sock s;
			usp__sock_init(&s, job.pair, job.side, dup_fd);
			usp__serve_flush(&s);
			still = atomic_load(&s.peer->flush_wanted);
			close(dup_fd);
		}
		usp__pair_unref(job.pair);
		if (still)
			return; /* could not (no descriptor left, a lying region) */
	}
}

int usp_fallback(int fd)
{
	struct usp_sock s;
	if (!usp__lookup_entry(fd, &s))
		return fcntl(fd, F_GETFD) < 0 ? -1 : 0;
	int r = usp__fallback(&s, false);
	if (r == 0)
		usp__passthrough(&s);
	usp__put(&s);
	return (int)usp__ret_errno(r);
}

/* The endpoint behind descriptor fd, found by the inode of its socket:
 * also for a number the table does not know (a vfork child's dup2 onto
 * 0, 1, 2 before exec). */
static bool endpoint_of_socket(int fd, struct usp_sock *s)
{
	if (usp__lookup_entry(fd, s))
		return true;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	struct usp_pair *pair;
	int side;
	usp__table_lock();
	bool found = usp__find_by_inode((uint64_t)st.st_ino, &pair, &side);
	usp__table_unlock();
	if (found)
		usp__sock_init(s, pair, side, fd);
	return found;
}

/* One inherited descriptor: 0, or -EBUSY if its ring holds data that
 * cannot be moved, -EIO if moving it failed or the pair is corrupt. */
static int exec_prepare_fd(int fd)
{
	int fdflags = fcntl(fd, F_GETFD);
	if (fdflags < 0 || (fdflags & FD_CLOEXEC))
		return 0;
	struct usp_sock s;
	if (!endpoint_of_socket(fd, &s))
		return 0;
	int r = usp__fallback(&s, true);
	usp__put(&s);
	return r;
}

/*
 * Before exec: the new image keeps every descriptor without FD_CLOEXEC but
 * loses the shared region, so each uspair endpoint it inherits falls back
 * to the kernel path now, with its ring drained (data already in the ring
 * could not be read after exec).  0, or -EBUSY with *busy_fd set: that
 * endpoint has unread data and exec must fail (the endpoints looked at
 * before it have fallen back, which only costs them speed).
 *
 * The descriptors are listed from /proc/self/fd and recognised by inode,
 * so that numbers made by raw dup2 calls count too.  (The preload makes
 * vfork a fork: moving a ring allocates and takes locks.)  Without /proc, the
 * numbers up to RLIMIT_NOFILE (at most 65536) are tried.
 */
int usp__exec_prepare(int *busy_fd)
{
	int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		struct rlimit rl;
		long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (long)rl.rlim_cur
										      : 65536;
		for (int fd = 0; fd < max; fd++) {
			int r = exec_prepare_fd(fd);
			if (r < 0) {
				*busy_fd = fd;
				return r;
			}
		}
		return 0;
	}
	int r = 0;
	char buf[4096] __attribute__((aligned(8)));
	for (;;) {
		long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 {
				uint64_t d_ino;
				int64_t d_off;
				unsigned short d_reclen;
				unsigned char d_type;
				char d_name[];
			} *d = (struct linux_dirent64 *)(buf + off);
			off += d->d_reclen;
			char *end;
			long fd = strtol(d->d_name, &end, 10);
			if (*end || end == d->d_name || fd == dir)
				continue;
			r = exec_prepare_fd((int)fd);
			if (r < 0) {
				*busy_fd = (int)fd;
				goto out;
			}
		}
	}
out:
	close(dir);
	return r;
}

/* fd is a uspair endpoint whose pair has not fallen back (the preload's
 * question before a descriptor leaves through SCM_RIGHTS). */
bool usp__on_fast_path(int fd)
{
	struct usp_sock s;
	if (!usp__lookup_entry(fd, &s))
		return false;
	bool fast = !usp__kernel_mode(&s);
	usp__put(&s);
	return fast;
}

/* The loud half of "fail loudly": the program gets EBUSY from a call that
 * never fails that way, so say why on stderr too. */
void usp__busy_message(int fd, const char *why)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
			 "uspair: descriptor %d (%s) still has unread data in shared memory, "
			 "which its new holder could not read; failing with EBUSY "
			 "(read it first, or see docs/DESIGN.md, \"Falling back to the kernel\")\n",
			 fd, why);
	if (n > 0)
		(void)!write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

/* fd goes where shared memory cannot follow (another process image,
 * another program): its pair falls back with fd's ring drained.  0 (also
 * for a descriptor uspair does not know), or -1 with errno EBUSY after a
 * message, or EIO for a corrupt pair. */
int usp__hand_over(int fd, const char *why)
{
	struct usp_sock s;
	if (!usp__lookup_entry(fd, &s))
		return 0;
	int r = usp__fallback(&s, true);
	usp__put(&s);
	if (r == -EBUSY)
		usp__busy_message(fd, why);
	return (int)usp__ret_errno(r);
}
