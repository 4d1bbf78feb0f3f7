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
 *  1. Take both endpoints' send_locks (index order, so two fallbacks from
 *     both ends cannot deadlock; a sender holds one send_lock and at most
 *     a recv_lock, which we do not hold yet), then A's recv_lock.  No
 *     record can now be published in either ring, and A's ring is ours.
 *  2. need_drained (the caller is about to lose the mapping, exec): A's
 *     ring must be empty, else -EBUSY and nothing changed.
 *  3. kernel_mode = 1 on both endpoints (K1, seq_cst; pairs with J1 in
 *     usp__send_junk), then wait for junk_writers == 0 on both: from now
 *     on no wake token or liveness probe enters either backing queue, and
 *     every one sent before is queued and counted in junk_sent.
 *  4. Release the locks and wake every sleeper of both endpoints (their
 *     waits return -USP_ERAW; their calls then go to the descriptor).
 *     Senders check kernel_mode under their send_lock before every
 *     record (io.c), so none is published after step 3.
 *  5. Each end is drained lazily, by any process holding it, in
 *     usp__passthrough (called by usp__lookup while kernel_mode is set):
 *     under its recv_lock, once its ring is empty, it eats
 *     junk_sent - junk_eaten junk items from the head of its backing
 *     queue (everything behind them was sent by the kernel path or is a
 *     kernel record's part already consumed in ring order), copies the
 *     endpoint's socket state to the backing socket (kernel_synced, once
 *     per endpoint), and marks the side passthrough in this process.
 *     Until then its readers read the ring as before; a receive that
 *     finds the ring empty returns -USP_ERAW and is redone on the
 *     descriptor.
 *
 * The counters live in the shared region and are untrusted: a difference
 * above USP_MAX_JUNK marks the pair corrupt, and junk is eaten only while
 * it looks like junk, so a lying count can never make us eat user data.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <string.h>
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
	bool done = false;
	usp__lock(&s->self->recv_lock);
	if (ring_drained(s) && usp__eat_junk(s) == 0) {
		sync_endpoint(s);
		atomic_store_explicit(&s->pair->passthrough[s->side], true, memory_order_release);
		done = true;
	}
	usp__unlock(&s->self->recv_lock);
	errno = saved;
	return done;
}

static void wait_junk_writers(struct usp_endpoint *ep)
{
	int64_t until = usp__now_ns() + USP_JUNK_WAIT_NS;
	while (atomic_load(&ep->junk_writers) && usp__now_ns() < until)
		sched_yield();
}

/* Steps 1-4.  0, -EBUSY (need_drained and our ring holds data) or -EIO. */
int usp__fallback(struct usp_sock *s, bool need_drained)
{
	if (usp__is_corrupt(s))
		return -EIO;
	struct usp_shared *shm = s->shm;
	usp__lock(&shm->ep[0].send_lock);
	usp__lock(&shm->ep[1].send_lock);
	usp__lock(&s->self->recv_lock);
	int r = 0;
	if (need_drained && !ring_drained(s)) {
		r = -EBUSY;
	} else if (!atomic_load(&s->self->kernel_mode)) {
		atomic_store(&shm->ep[0].kernel_mode, 1); /* K1: pairs with J1 */
		atomic_store(&shm->ep[1].kernel_mode, 1);
		wait_junk_writers(&shm->ep[0]);
		wait_junk_writers(&shm->ep[1]);
	}
	usp__unlock(&s->self->recv_lock);
	usp__unlock(&shm->ep[1].send_lock);
	usp__unlock(&shm->ep[0].send_lock);
	if (r)
		return r;
	usp__wake_endpoint(&shm->ep[0], -1);
	usp__wake_endpoint(&shm->ep[1], -1);
	if (need_drained && !usp__passthrough(s))
		return -EBUSY; /* data arrived between: cannot, it was locked out */
	return 0;
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
