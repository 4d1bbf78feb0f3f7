/*
 * The process-local descriptor table: which descriptor numbers are uspair
 * endpoints, and of which pair and side.
 *
 * Lookups are lock-free: the table is a fixed array of chunk pointers, each
 * chunk an array of atomic words holding (struct usp_pair * | side).
 * Changes (install, uninstall) take table_mutex.  A lookup takes a
 * reference on the pair, then re-reads the slot: if the slot changed in
 * between, a concurrent usp_close won and the lookup drops its reference
 * and retries.  The reference is taken only while the count is not zero,
 * and pair structures are never freed, only reused (pair.c pair_alloc), so
 * a lookup that read the slot just before a close released the pair
 * touches valid memory and does not revive it.  The region is unmapped
 * when the last reference goes, so a call in progress on one thread never
 * touches unmapped memory even if another thread closes the descriptor
 * under it.
 *
 * fork: the child inherits this table and the mappings, and each entry is
 * one more holder of its endpoint (usp_endpoint.holders), counted in the
 * pthread_atfork prepare handler while table_mutex is held.
 */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 14) /* descriptors up to 16M */

static _Atomic(_Atomic uintptr_t *) chunks[MAX_CHUNKS];
static pthread_mutex_t table_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

struct usp_stats usp__stats;
bool usp__stats_on;

void usp__table_lock(void)
{
	pthread_mutex_lock(&table_mutex);
}

void usp__table_unlock(void)
{
	pthread_mutex_unlock(&table_mutex);
}

static _Atomic uintptr_t *slot_of(int fd, bool create)
{
	if (fd < 0 || (unsigned)fd >= MAX_CHUNKS * CHUNK_SLOTS)
		return NULL;
	unsigned ci = (unsigned)fd >> CHUNK_BITS;
	_Atomic uintptr_t *c = atomic_load_explicit(&chunks[ci], memory_order_acquire);
	if (!c && create) {
		c = calloc(CHUNK_SLOTS, sizeof(*c));
		if (!c)
			return NULL;
		/* only called under table_mutex: no race with another creator */
		atomic_store_explicit(&chunks[ci], c, memory_order_release);
	}
	return c ? &c[fd & (CHUNK_SLOTS - 1)] : NULL;
}

/* Applies fn to every installed (pair, side) until it returns true (then
 * returns true); caller holds table_mutex. */
static bool for_each_entry(bool (*fn)(struct usp_pair *, int, int, void *), void *arg)
{
	for (unsigned ci = 0; ci < MAX_CHUNKS; ci++) {
		_Atomic uintptr_t *c = atomic_load_explicit(&chunks[ci], memory_order_relaxed);
		if (!c)
			continue;
		for (unsigned i = 0; i < CHUNK_SLOTS; i++) {
			uintptr_t v = atomic_load_explicit(&c[i], memory_order_relaxed);
			if (v && fn((struct usp_pair *)(v & ~(uintptr_t)1), (int)(v & 1),
				    (int)(ci * CHUNK_SLOTS + i), arg))
				return true;
		}
	}
	return false;
}

/* for_each_entry for other files; caller holds table_mutex */
bool usp__table_find(bool (*fn)(struct usp_pair *, int, int, void *), void *arg)
{
	return for_each_entry(fn, arg);
}

static bool count_fork_holder(struct usp_pair *pair, int side, int fd, void *arg)
{
	atomic_fetch_add(&pair->shm->ep[side].holders, 1);
	return false;
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&table_mutex);
	for_each_entry(count_fork_holder, NULL);
	usp__region_cache_atfork_prepare();
	usp__watch_atfork_prepare();
}

static void atfork_parent(void)
{
	atomic_fetch_add(&usp__fork_gen, 1); /* the child sees every region */
	usp__region_cache_atfork_parent();
	pthread_mutex_unlock(&table_mutex);
}

static void atfork_child(void)
{
	atomic_fetch_add(&usp__fork_gen, 1);
	usp__region_cache_atfork_child();
	pthread_mutex_unlock(&table_mutex);
	usp__watch_atfork_child();
}

static bool exit_drop_holder(struct usp_pair *pair, int side, int fd, void *arg)
{
	usp__endpoint_drop_holder(pair->shm, side, -1);
	return false;
}

/* At exit the kernel closes every descriptor; tell the peers now so that
 * they see EOF without waiting for the kernel liveness check. */
__attribute__((destructor)) static void usp__at_exit(void)
{
	if (pthread_mutex_trylock(&table_mutex) != 0)
		return; /* another thread is mid-change: leave it to the kernel */
	for_each_entry(exit_drop_holder, NULL);
	/* The entries stay: other threads may still run until exit ends. */
	pthread_mutex_unlock(&table_mutex);
}

static void register_atfork(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

bool usp__lookup(int fd, struct usp_sock *s)
{
	if (!usp__lookup_entry(fd, s))
		return false;
	/* a corrupt pair answers EIO on both ends even after the fallback:
	 * a hostile peer must not be able to end that by setting kernel_mode */
	if (USP_UNLIKELY(atomic_load_explicit(&s->self->kernel_mode, memory_order_relaxed)) &&
	    !usp__is_corrupt(s) && usp__passthrough(s)) {
		usp__put(s);
		return false;
	}
	return true;
}

/* s describes (pair, side) as seen through descriptor fd; the caller
 * holds a reference on pair, which s now carries (usp__put). */
void usp__sock_init(struct usp_sock *s, struct usp_pair *pair, int side, int fd)
{
	struct usp_shared *shm = pair->shm;
	s->pair = pair;
	s->shm = shm;
	s->side = side;
	s->fd = fd;
	s->recv_locked = false;
	s->spun = false;
	s->type = pair->type;
	s->self = &shm->ep[side];
	s->peer = &shm->ep[side ^ 1];
	s->rxq = &shm->ring[side];
	s->txq = &shm->ring[side ^ 1];
	s->rxdata = (unsigned char *)shm + USP_DATA_OFFSET + (size_t)side * USP_RING_BYTES;
	s->txdata = (unsigned char *)shm + USP_DATA_OFFSET + (size_t)(side ^ 1) * USP_RING_BYTES;
}

bool usp__lookup_entry(int fd, struct usp_sock *s)
{
	_Atomic uintptr_t *slot = slot_of(fd, false);
	if (!slot)
		return false;
	for (;;) {
		uintptr_t v = atomic_load_explicit(slot, memory_order_acquire);
		if (!v)
			return false;
		struct usp_pair *pair = (struct usp_pair *)(v & ~(uintptr_t)1);
		/* increment unless released (pair memory stays valid:
		 * pair.c pair_alloc) */
		int refs = atomic_load_explicit(&pair->refs, memory_order_relaxed);
		do {
			if (refs == 0)
				break;
		} while (!atomic_compare_exchange_weak_explicit(&pair->refs, &refs, refs + 1,
								memory_order_acquire,
								memory_order_relaxed));
		if (refs == 0)
			continue; /* the slot has changed or will be seen empty */
		if (atomic_load_explicit(slot, memory_order_acquire) != v) {
			usp__pair_unref(pair);
			continue;
		}
		usp__sock_init(s, pair, (int)(v & 1), fd);
		return true;
	}
}

void usp__put(struct usp_sock *s)
{
	usp__pair_unref(s->pair);
}

void usp__pair_unref(struct usp_pair *pair)
{
	if (atomic_fetch_sub_explicit(&pair->refs, 1, memory_order_acq_rel) == 1)
		usp__region_release(pair);
}

/* Caller holds table_mutex and a reference on pair that the slot takes
 * over.  Replaces a stale entry left by a descriptor closed with libc's
 * close(): the kernel handed out this number again, so the old entry is
 * certainly dead. */
int usp__install(int fd, struct usp_pair *pair, int side)
{
	pthread_once(&atfork_once, register_atfork);
	_Atomic uintptr_t *slot = slot_of(fd, true);
	if (!slot)
		return -ENOMEM;
	uintptr_t old = atomic_exchange(slot, (uintptr_t)pair | (uintptr_t)side);
	atomic_store(&pair->fd_hint[side], fd);
	if (old) {
		struct usp_pair *stale = (struct usp_pair *)(old & ~(uintptr_t)1);
		usp__endpoint_drop_holder(stale->shm, (int)(old & 1), -1);
		usp__pair_unref(stale);
	}
	return 0;
}

/* newfd is a kernel duplicate of s's descriptor: one more holder of the
 * same endpoint.  Caller holds table_mutex; an entry already at newfd
 * (dup2 over another endpoint) is dropped by usp__install. */
int usp__install_dup(struct usp_sock *s, int newfd)
{
	atomic_fetch_add(&s->self->holders, 1);
	atomic_fetch_add(&s->pair->refs, 1);
	int r = usp__install(newfd, s->pair, s->side);
	if (r < 0) {
		usp__endpoint_drop_holder(s->shm, s->side, -1);
		usp__pair_unref(s->pair);
	}
	return r;
}

/* Caller holds table_mutex.  Returns the pair with the slot's reference,
 * which the caller must drop, or NULL if fd is not ours. */
struct usp_pair *usp__uninstall(int fd, int *side)
{
	_Atomic uintptr_t *slot = slot_of(fd, false);
	if (!slot)
		return NULL;
	uintptr_t v = atomic_exchange(slot, 0);
	if (!v)
		return NULL;
	*side = (int)(v & 1);
	return (struct usp_pair *)(v & ~(uintptr_t)1);
}

struct inode_query {
	uint64_t ino;
	struct usp_pair *pair;
	int side;
};

static bool match_inode(struct usp_pair *pair, int side, int fd, void *arg)
{
	struct inode_query *q = arg;
	/* either end: this process may hold only the other */
	for (int sd = 0; sd < 2; sd++) {
		if (pair->ino[sd] == q->ino) {
			q->pair = pair;
			q->side = sd;
			return true;
		}
	}
	return false;
}

/* Is a socket with this inode an end of a pair mapped here?  Caller holds
 * table_mutex; on success *pair carries a new reference. */
bool usp__find_by_inode(uint64_t ino, struct usp_pair **pair, int *side)
{
	struct inode_query q = {ino, NULL, 0};
	if (!for_each_entry(match_inode, &q))
		return false;
	atomic_fetch_add(&q.pair->refs, 1);
	*pair = q.pair;
	*side = q.side;
	return true;
}

int usp_is_uspair(int fd)
{
	_Atomic uintptr_t *slot = slot_of(fd, false);
	return slot && atomic_load_explicit(slot, memory_order_relaxed) != 0;
}

/* The lowest descriptor number >= from that is a table entry, or -1.  No
 * lock: for close_range and closefrom, which race with other threads'
 * changes in the kernel too. */
int usp__next_fd(int from)
{
	if (from < 0)
		from = 0;
	for (unsigned fd = (unsigned)from; fd < MAX_CHUNKS * CHUNK_SLOTS;) {
		_Atomic uintptr_t *c = atomic_load_explicit(&chunks[fd >> CHUNK_BITS],
							    memory_order_acquire);
		if (!c) {
			fd = (fd | (CHUNK_SLOTS - 1)) + 1;
			continue;
		}
		if (atomic_load_explicit(&c[fd & (CHUNK_SLOTS - 1)], memory_order_relaxed))
			return (int)fd;
		fd++;
	}
	return -1;
}
