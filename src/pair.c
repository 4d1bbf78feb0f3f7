/*
 * Creation of a pair's shared region, and liveness: how an endpoint
 * learns that every holder of its peer is gone.
 *
 * Liveness has two sources (docs/DESIGN.md "Liveness"):
 *  1. Cooperative: usp_endpoint.holders counts the descriptors that refer
 *     to the endpoint in every process (creation, usp_dup, fork, minus
 *     usp_close and exit).  The holder that takes it to zero releases the
 *     endpoint at once.
 *  2. The kernel: each endpoint's descriptor is one end of a kernel
 *     socketpair of the same type.  When the last descriptor of an end is
 *     closed for any reason (SIGKILL, exec with close-on-exec, _exit, libc
 *     close), the kernel disconnects it; usp__check_peer() asks the kernel
 *     when a caller is about to wait or report "nothing to do", and at most
 *     every USP_LIVENESS_NS on the fast path.
 * Either source calls usp__endpoint_released(), which acts once.
 */
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define USP_LIVENESS_NS (40 * 1000 * 1000LL)

static void endpoint_init(struct usp_endpoint *ep)
{
	atomic_init(&ep->holders, 1);
	atomic_init(&ep->sndbuf, usp__default_sndbuf());
	atomic_init(&ep->sndbuf_shown, usp__default_sndbuf_shown());
	atomic_init(&ep->rcvbuf, usp__default_rcvbuf());
	atomic_init(&ep->rcvlowat, 1);
	atomic_init(&ep->peek_off, -1);
	usp__lock_init(&ep->send_lock);
	usp__lock_init(&ep->recv_lock);
}

/*
 * The region cache.  Mapping a fresh 64 MiB shared region and unmapping it
 * costs far more than the kernel's whole socketpair()+close() on these
 * machines (page-table and shmem teardown), so a region whose pair is gone
 * is kept for the next usp_socketpair() of the process.  Only a region no
 * other process can see may be kept: one created by this process with no
 * fork since (usp__fork_gen, bumped in both parent and child).  Regions
 * already in the cache at a fork stay usable by the parent; the child must
 * not use them (the parent will), so the child's copy of the cache is
 * stale (cache_epoch, bumped in the child only) and unmapped lazily.
 * Protected by cache_lock; never touched by a signal handler.
 */
#define USP_REGION_CACHE 16
_Atomic uint64_t usp__fork_gen;
static uint64_t cache_epoch;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	void *mem;
	uint64_t epoch;
} region_cache[USP_REGION_CACHE];
static int region_cache_n;

static pthread_mutex_t free_pairs_lock = PTHREAD_MUTEX_INITIALIZER;

/* The fork handlers hold cache_lock and then free_pairs_lock across fork
 * (after table_mutex), so that the child never copies a half-updated
 * cache or free list, nor a lock that another thread held at the fork
 * and that no thread of the child would ever release (its next
 * usp_socketpair or last close hung: 2 forks in 918 while another thread
 * made and closed pairs). */
void usp__region_cache_atfork_prepare(void)
{
	usp__local_lock(&cache_lock);
	usp__local_lock(&free_pairs_lock);
}

void usp__region_cache_atfork_parent(void)
{
	usp__local_unlock(&free_pairs_lock);
	usp__local_unlock(&cache_lock);
}

void usp__region_cache_atfork_child(void)
{
	usp__local_reinit(&free_pairs_lock);
	usp__local_reinit(&cache_lock);
	cache_epoch++;
}

/* For tests and fuzzers (test/region_random, fuzz/region_fuzz): each
 * region is followed by a PROT_NONE page, so that an access past its end
 * faults instead of landing in the next mapping unseen (the sanitizers do
 * not track mmap'd memory).  It can be turned on only before the process
 * maps its first region, and never off, so that every region is unmapped
 * with the size it was mapped with. */
static _Atomic bool region_guard, region_mapped;

bool usp__region_guard_enable(void)
{
	if (atomic_load(&region_mapped))
		return false;
	atomic_store(&region_guard, true);
	return true;
}

static size_t region_span(void)
{
	return USP_REGION_BYTES + (atomic_load_explicit(&region_guard, memory_order_relaxed)
					   ? USP_REGION_GUARD
					   : 0);
}

static void *region_take(void)
{
	void *stale[USP_REGION_CACHE];
	int n_stale = 0;
	void *mem = NULL;
	usp__local_lock(&cache_lock);
	while (region_cache_n > 0 && !mem) {
		region_cache_n--;
		if (region_cache[region_cache_n].epoch == cache_epoch)
			mem = region_cache[region_cache_n].mem;
		else
			stale[n_stale++] = region_cache[region_cache_n].mem;
		region_cache[region_cache_n].mem = NULL;
	}
	usp__local_unlock(&cache_lock);
	for (int i = 0; i < n_stale; i++)
		munmap(stale[i], region_span());
	if (mem) {
		/* the socket state starts from zero as in a fresh mapping; ring
		 * bytes are always written before they are read */
		memset(mem, 0, sizeof(struct usp_shared));
		return mem;
	}
	/* MAP_SHARED|MAP_ANONYMOUS: shared with every child forked later,
	 * needs no descriptor (so RLIMIT_NOFILE counts exactly what the
	 * kernel's socketpair would), leaves no file behind, and is freed by
	 * the kernel when the last process unmaps it or exits.  Pages are
	 * allocated only when touched. */
	atomic_store(&region_mapped, true);
	mem = mmap(NULL, region_span(), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		return NULL;
	if (atomic_load_explicit(&region_guard, memory_order_relaxed) &&
	    mprotect((unsigned char *)mem + USP_REGION_BYTES, USP_REGION_GUARD, PROT_NONE) != 0) {
		munmap(mem, region_span());
		return NULL;
	}
	return mem;
}

/* For the tests' leak checks: is this region idle in the cache, and how
 * many are? */
bool usp__region_cached(const void *mem)
{
	bool found = false;
	usp__local_lock(&cache_lock);
	for (int i = 0; i < region_cache_n; i++)
		found |= region_cache[i].mem == mem;
	usp__local_unlock(&cache_lock);
	return found;
}

int usp__region_cache_count(void)
{
	usp__local_lock(&cache_lock);
	int n = region_cache_n;
	usp__local_unlock(&cache_lock);
	return n;
}

/*
 * struct usp_pair memory is never given back to malloc: a released pair
 * goes on free_pairs and is reused.  A lookup (fdtable.c) may still touch
 * the refs of a pair whose last reference a concurrent close just dropped;
 * with type-stable memory that touch is harmless, and its increment-if-
 * not-zero never revives a released pair.
 */
static struct usp_pair *free_pairs; /* linked through ->shm */

static void pair_free(struct usp_pair *pair)
{
	usp__local_lock(&free_pairs_lock);
	pair->shm = (struct usp_shared *)free_pairs;
	free_pairs = pair;
	usp__local_unlock(&free_pairs_lock);
}

/* A zeroed pair with refs 0 (refs left alone: see above). */
static struct usp_pair *pair_alloc(void)
{
	usp__local_lock(&free_pairs_lock);
	struct usp_pair *pair = free_pairs;
	if (pair)
		free_pairs = (struct usp_pair *)pair->shm;
	usp__local_unlock(&free_pairs_lock);
	if (!pair) {
		/* aligned as its per-side lines (usp_pair.seen) ask */
		size_t size = (sizeof(*pair) + USP_CACHELINE - 1) & ~(size_t)(USP_CACHELINE - 1);
		pair = aligned_alloc(USP_CACHELINE, size);
		if (pair)
			memset(pair, 0, sizeof(*pair));
		return pair;
	}
	pair->shm = NULL;
	pair->type = 0;
	size_t after = offsetof(struct usp_pair, refs) + sizeof(pair->refs);
	memset((char *)pair + after, 0, sizeof(*pair) - after);
	return pair;
}

/* The last reference of this process to pair is gone. */
void usp__region_release(struct usp_pair *pair)
{
	struct usp_shared *shm = pair->shm;
	bool keep = pair->fork_gen == atomic_load(&usp__fork_gen);
	bool twice = false;
	if (keep) {
		/* give back the pages of a ring that grew past its hot part
		 * (bulk transfers); a small pair keeps a few pages resident */
		for (int i = 0; i < 2; i++)
			if (atomic_load_explicit(&shm->ring[i].tail, memory_order_relaxed) >
			    USP_RING_HOT_BYTES)
				madvise((unsigned char *)shm + USP_DATA_OFFSET +
						(size_t)i * USP_RING_BYTES + USP_RING_HOT_BYTES,
					USP_RING_BYTES - USP_RING_HOT_BYTES, MADV_REMOVE);
		usp__local_lock(&cache_lock);
		/* a second release of the same region (a lookup racing the
		 * last close of a descriptor) neither caches it again, which
		 * would give it to two pairs, nor unmaps it under the cache */
		for (int i = 0; i < region_cache_n; i++)
			twice |= region_cache[i].mem == shm;
		keep = !twice && region_cache_n < USP_REGION_CACHE;
		if (keep) {
			region_cache[region_cache_n].mem = shm;
			region_cache[region_cache_n].epoch = cache_epoch;
			region_cache_n++;
		}
		usp__local_unlock(&cache_lock);
	}
	if (!keep && !twice)
		munmap(shm, region_span());
	pair_free(pair);
}

int usp__pair_create(int type, int tipc_type, int kernel_sv[2], struct usp_pair **out)
{
	struct usp_pair *pair = pair_alloc();
	if (!pair)
		return -ENOMEM;
	/* read before the region exists: a fork from here on makes it
	 * visible to the child, so it must not be cached */
	pair->fork_gen = atomic_load(&usp__fork_gen);
	void *mem = region_take();
	if (!mem) {
		pair_free(pair);
		return -ENOMEM;
	}
	struct usp_shared *shm = mem;
	shm->magic = USP_MAGIC;
	shm->type = (uint32_t)type;
	shm->tipc_type = (uint32_t)tipc_type;
	endpoint_init(&shm->ep[0]);
	endpoint_init(&shm->ep[1]);
	if (tipc_type)
		usp__tipc_init(shm, tipc_type);
	pair->shm = shm;
	pair->type = type;
	pair->tipc_type = tipc_type;
	usp__pair_socks_init(pair);
	atomic_store(&pair->refs, 2); /* one per table entry */
	for (int i = 0; i < 2; i++)
		atomic_init(&pair->spin_ns[i], 20000);
	/* the backing sockets get their send room at the first kernel record
	 * (usp__backing_ready); their inodes are taken now, while the
	 * descriptors are certainly theirs */
	for (int i = 0; i < 2; i++) {
		struct stat st;
		pair->ino[i] = fstat(kernel_sv[i], &st) == 0 ? (uint64_t)st.st_ino : 0;
	}
	*out = pair;
	return 0;
}

/*
 * Room in the backing socket for kernel records.  The user's SO_SNDBUF S
 * (what getsockopt answers and the ring admits up to) is kept in shared
 * memory; the backing socket gets 2*S + USP_BACKING_SLACK.  Why: the ring
 * charges a kernel record what the kernel pair would (truesize of len
 * bytes), but its part (scm.c) costs the backing socket a mark byte more,
 * which can be a whole slab step or page of truesize, nearly doubling it;
 * and the backing socket also pays for the wake tokens and the DGRAM
 * liveness probe that sit unread in the peer's queue (at most a few,
 * wait.c).  The kernel admits a send while the charge is below the buffer,
 * so the backing socket never refuses what the ring admitted as long as
 * it has that much.  SO_SNDBUFFORCE gets it where the caller is
 * privileged; otherwise net.core.wmem_max clamps it (docs/DESIGN.md, known
 * differences).  The kernel doubles what it is given.
 *
 * Sized lazily, at the first kernel record an endpoint sends, because most
 * pairs never send one and socketpair() should cost what the kernel's
 * does; and again after every SO_SNDBUF.  Both run under the endpoint's
 * send_lock, so a resize never overtakes the user's newer SO_SNDBUF.
 */
#define USP_BACKING_SLACK 8192

static void size_backing(int kfd, int shown)
{
	if (shown < 0)
		shown = 0; /* the value lives where the peer can write it */
	int want = shown > INT_MAX / 2 - USP_BACKING_SLACK ? INT_MAX / 2
							   : shown + USP_BACKING_SLACK / 2;
	int saved = errno;
	/* one refused SO_SNDBUFFORCE (EPERM) says it for the process */
	static _Atomic bool force_refused;
	if (atomic_load_explicit(&force_refused, memory_order_relaxed) ||
	    setsockopt(kfd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0) {
		if (errno == EPERM)
			atomic_store_explicit(&force_refused, true, memory_order_relaxed);
		setsockopt(kfd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	}
	errno = saved;
}

/* The kernel has just set kfd's SO_SNDBUF for the user.  Caller holds
 * ep's send_lock. */
void usp__backing_sndbuf(int kfd, struct usp_endpoint *ep)
{
	int v;
	socklen_t len = sizeof(v);
	if (getsockopt(kfd, SOL_SOCKET, SO_SNDBUF, &v, &len) < 0)
		return;
	atomic_store(&ep->sndbuf_shown, v);
	atomic_store(&ep->sndbuf, v > (int)USP_MAX_SNDBUF ? (int)USP_MAX_SNDBUF : v);
	size_backing(kfd, v);
	atomic_store(&ep->backing_sized, 1);
}

/* Before a kernel record's part is sent.  Caller holds s's send_lock. */
void usp__backing_ready(struct usp_sock *s)
{
	if (USP_LIKELY(atomic_load_explicit(&s->self->backing_sized, memory_order_relaxed)))
		return;
	size_backing(s->fd, atomic_load(&s->self->sndbuf_shown));
	atomic_store(&s->self->backing_sized, 1);
}

void usp__pair_corrupt(struct usp_pair *pair)
{
	struct usp_shared *shm = pair->shm;
	atomic_store(&pair->corrupt, 1);
	atomic_store((_Atomic uint32_t *)&shm->corrupt, 1);
	usp__wake_endpoint(&shm->ep[0], -1);
	usp__wake_endpoint(&shm->ep[1], -1);
}

/*
 * Every holder of endpoint `side` is gone.  Runs once per endpoint (the
 * state CAS decides who).  Mirrors unix_release_sock(): a connected peer of
 * a STREAM or SEQPACKET socket is shut down both ways and, if the released
 * socket had unread data, gets ECONNRESET.  A DGRAM peer notices on its
 * next send (ECONNREFUSED).
 */
void usp__endpoint_released(struct usp_shared *shm, int side)
{
	struct usp_endpoint *ep = &shm->ep[side];
	struct usp_endpoint *peer = &shm->ep[side ^ 1];
	uint32_t open = USP_EP_OPEN;
	if (!atomic_compare_exchange_strong(&ep->state, &open, USP_EP_GONE))
		return;
	if (shm->tipc_type) {
		/* tipc_release(), left for a caller without locks (tipc.c
		 * usp__tipc_settle); the peer's sleepers wake to do it.  (A
		 * hostile AF_UNIX peer that sets tipc_type only loses its own
		 * ECONNRESET.) */
		usp__tipc_released(shm, side);
		usp__wake_endpoint(peer, -1);
		usp__wake_endpoint(ep, -1);
		return;
	}
	struct usp_ring *rx = &shm->ring[side];
	uint64_t head = atomic_load(&rx->head), tail = usp__ld_acq(&rx->tail);
	bool unread = head != tail;
	if (unread && shm->type != SOCK_DGRAM) {
		/* Linux 6.x unix_release_sock() first drops a zero-length skb
		 * at the head of the queue (for STREAM: a consumed OOB skb),
		 * then resets the peer only if the queue is still not empty:
		 * one lone empty record does not count as unread data, with
		 * or without ancillary data (a kernel record: header and its
		 * meta block). */
		unsigned char *data = (unsigned char *)shm + USP_DATA_OFFSET +
				      (size_t)side * USP_RING_BYTES;
		/* read only: the header is copied out of its bounded slot,
		 * and the whole span, head and tail being the peer's to
		 * write, must lie inside this ring (an OOB record's byte at
		 * the ring's last header slot would be past the region) */
		uint64_t span = tail - head;
		if ((span == USP_REC_HDR || span == USP_REC_HDR + 8) && !(head & 7) &&
		    (head & USP_RING_MASK) + span <= USP_RING_BYTES) {
			const unsigned char *p = data + (head & USP_RING_MASK);
			struct usp_rec_hdr h;
			memcpy(&h, p, sizeof(h));
			h.kind &= ~USP_REC_PEEKED;
			if (h.kind == USP_REC_DATA && h.len == 0 && span == USP_REC_HDR)
				unread = false;
			/* a kernel record: header and its meta block */
			if (h.kind == USP_REC_KERNEL && h.len == 0 &&
			    span == USP_REC_HDR + sizeof(struct usp_kernel_meta))
				unread = false;
			/* STREAM: an out-of-band byte already read */
			if (h.kind == USP_REC_OOB && span == USP_REC_HDR + USP_OOB_SPAN &&
			    __atomic_load_n(p + USP_REC_HDR + 1, __ATOMIC_RELAXED))
				unread = false;
		}
	}
	atomic_store(&ep->reset_on_release, unread);
	if (shm->type != SOCK_DGRAM) {
		if (unread)
			atomic_store(&peer->sk_err, ECONNRESET);
		atomic_fetch_or(&peer->shutdown, USP_SHUTDOWN_MASK);
	}
	/* Pollers of the peer see the kernel's POLLHUP (STREAM/SEQPACKET);
	 * sleepers are woken here. */
	usp__wake_endpoint(peer, -1);
	usp__wake_endpoint(ep, -1);
}

void usp__endpoint_drop_holder(struct usp_shared *shm, int side, int kfd)
{
	/* After the fallback the count no longer sees every holder (the
	 * descriptor may have gone to a process without uspair, through exec
	 * or SCM_RIGHTS over a kernel socket): the kernel alone tells. */
	if (atomic_fetch_sub(&shm->ep[side].holders, 1) == 1 &&
	    !atomic_load(&shm->ep[side].kernel_mode))
		usp__endpoint_released(shm, side);
}

bool usp__peer_gone(struct usp_sock *s)
{
	return atomic_load_explicit(&s->peer->state, memory_order_acquire) ==
	       USP_EP_GONE;
}

/* Ask the kernel whether the peer's descriptor still exists anywhere.
 * force: the caller is about to report "nothing to do" or to sleep. */
void usp__check_peer(struct usp_sock *s, bool force)
{
	/* after the fallback the kernel itself answers for the peer */
	if (usp__peer_gone(s) || usp__kernel_mode(s))
		return;
	/* the coarse clock (a jiffy's resolution, no TSC read) is plenty for
	 * a 40 ms interval, and a send pays for it on every call */
	int64_t now = usp__coarse_now_ns();
	_Atomic int64_t *last = &s->pair->last_check_ns[s->side];
	if (!force && now - atomic_load_explicit(last, memory_order_relaxed) <
			      USP_LIVENESS_NS)
		return;
	atomic_store_explicit(last, now, memory_order_relaxed);
	bool gone;
	if (s->type == SOCK_DGRAM) {
		/* A DGRAM socket shows nothing in poll() when its peer dies;
		 * a send says ECONNREFUSED (then ENOTCONN).  The byte doubles
		 * as a poll wake-up token for the peer, which drains it.  But
		 * while anything we sent is still queued at the peer, it is
		 * alive (a released socket's queue is purged, which returns
		 * our send buffer): then send nothing, so that probes never
		 * pile up in a peer that does not poll. */
		int queued = 0;
		if (ioctl(s->fd, SIOCOUTQ, &queued) == 0 && queued > 0)
			return;
		int r = usp__send_junk(s->peer, s->fd);
		gone = r == -ECONNREFUSED || r == -ENOTCONN;
	} else {
		/* The backing socket is never shut down by uspair, so POLLHUP
		 * means that the peer's file was released. */
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		gone = poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLNVAL)) == POLLHUP;
	}
	if (gone)
		usp__endpoint_released(s->shm, s->side ^ 1);
}
