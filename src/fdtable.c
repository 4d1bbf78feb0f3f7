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
 *
 * The lookup cache.  Taking and dropping a reference costs two atomic
 * read-modify-writes per call, each of which waits for the store buffer
 * to drain (the previous send's stores into the peer's cache lines): about
 * a sixth of a streaming sender's time.  So send/recv/read/write look up
 * through a small per-thread cache (usp__lookup_cached) whose entries
 * each hold one reference of their own, valid while table_gen has not
 * moved since the entry was filled.
 *  - Ownership: an entry is read and written only by its thread, except
 *    by the fork child handler (the other threads are gone) and by the
 *    thread-exit destructor; the list of caches is under table_mutex.
 *    While a call of the thread uses the cache (`busy`, from the lookup
 *    to usp__put), a signal handler of that thread looks up without it:
 *    self-pipe handlers write to socketpairs, and a refill from a handler
 *    could drop the reference the interrupted call runs on.
 *  - Ordering: every slot change is followed by a bump of table_gen
 *    (G1, release); a fill reads table_gen (G2, acquire, pairs with G1)
 *    before it reads the slot, so an entry never carries a generation
 *    newer than its slot value.  A hit whose slot changed concurrently
 *    acts as the call would have before the change (a call racing a close
 *    in the kernel may also go through); the entry's reference keeps the
 *    pair and its region valid meanwhile.
 *  - A pair stays mapped while some thread's entry holds it: until that
 *    thread's next miss on the entry, its exit, or (for the closing thread)
 *    the close itself (usp__lookup_cache_forget); in a fork child, the
 *    entries of the threads that did not follow stay held.
 *  - A thread inside a section that holds a library lock (usp__local_lock)
 *    does not use the cache either: a handler's miss may take table_mutex
 *    and a refill may release a pair (the region cache's and free list's
 *    locks).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define CHUNK_BITS 10
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define MAX_CHUNKS (1u << 14) /* descriptors up to 16M */

static _Atomic(_Atomic uintptr_t *) chunks[MAX_CHUNKS];

#define LOOKUP_CACHE_WAYS 4 /* direct-mapped by descriptor number */
struct lookup_cache {
	struct {
		int fd; /* -1: empty */
		int side;
		uint64_t gen;
		struct usp_pair *pair; /* holds a reference */
	} way[LOOKUP_CACHE_WAYS];
	struct lookup_cache *next; /* caches_list, under table_mutex */
	bool listed;
	/* A call of this thread is using the cache (filling an entry, or
	 * working on a pair through an entry's reference): a signal handler
	 * that interrupts it must not touch the entries (a refill could drop
	 * the reference the call runs on, or tear an entry) and looks up
	 * without the cache.  Only this thread and its handlers touch it. */
	volatile sig_atomic_t busy;
};
static _Atomic uint64_t table_gen = 1;
USP_TLS unsigned usp__tl_local_locks;
static USP_TLS struct lookup_cache tl_cache = {
	.way = {{.fd = -1}, {.fd = -1}, {.fd = -1}, {.fd = -1}}};
static struct lookup_cache *caches_list;
static pthread_key_t cache_key;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;

/* G1: after every change of a slot (caller holds table_mutex) */
static void table_changed(void)
{
	atomic_fetch_add_explicit(&table_gen, 1, memory_order_release);
}
static pthread_mutex_t table_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

struct usp_stats usp__stats;
bool usp__stats_on;

void usp__table_lock(void)
{
	usp__local_lock(&table_mutex);
}

void usp__table_unlock(void)
{
	usp__local_unlock(&table_mutex);
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
	usp__local_lock(&table_mutex);
	for_each_entry(count_fork_holder, NULL);
	usp__region_cache_atfork_prepare();
	usp__watch_atfork_prepare();
	usp__lock_atfork_prepare();
}

static void atfork_parent(void)
{
	atomic_fetch_add(&usp__fork_gen, 1); /* the child sees every region */
	usp__region_cache_atfork_parent();
	usp__local_unlock(&table_mutex);
}

/* In a fork child only the forking thread lives on.  The references held
 * by the other threads' caches are not dropped: a release here could
 * need the region cache's or the free list's lock, which another thread
 * may have held at the fork.  The pairs they hold stay mapped in the
 * child (memory only: their endpoints' holders are counted apart).
 * Caller holds table_mutex. */
static void caches_atfork_child(void)
{
	caches_list = tl_cache.listed ? &tl_cache : NULL;
	tl_cache.next = NULL;
	table_changed();
}

static void atfork_child(void)
{
	atomic_fetch_add(&usp__fork_gen, 1);
	usp__lock_atfork_child();
	caches_atfork_child();
	usp__region_cache_atfork_child();
	usp__local_unlock(&table_mutex);
	usp__watch_atfork_child();
	usp__deferred_atfork_child();
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
	if (!usp__local_trylock(&table_mutex))
		return; /* another thread is mid-change: leave it to the kernel */
	for_each_entry(exit_drop_holder, NULL);
	/* The entries stay: other threads may still run until exit ends. */
	usp__local_unlock(&table_mutex);
}

static void register_atfork(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* The looked-up end has fallen back to the kernel path with its ring
 * drained: drop s, the caller uses the descriptor itself.  A corrupt pair
 * answers EIO on both ends even after the fallback: a hostile peer must
 * not be able to end that by setting kernel_mode. */
static USP_COLD bool gone_to_kernel_slow(struct usp_sock *s)
{
	if (!usp__is_corrupt(s) && usp__passthrough(s)) {
		usp__put(s);
		return true;
	}
	return false;
}

static inline bool gone_to_kernel(struct usp_sock *s)
{
	return USP_UNLIKELY(atomic_load_explicit(&s->self->kernel_mode, memory_order_relaxed)) &&
	       gone_to_kernel_slow(s);
}

bool usp__lookup(int fd, struct usp_sock *s)
{
	return usp__lookup_entry(fd, s) && !gone_to_kernel(s);
}

/* What a descriptor of each side of pair describes (usp__sock_init
 * copies it and adds the descriptor): computed once, when the pair gets
 * its region, instead of at every lookup. */
void usp__pair_socks_init(struct usp_pair *pair)
{
	struct usp_shared *shm = pair->shm;
	for (int side = 0; side < 2; side++) {
		struct usp_sock *s = &pair->sock[side];
		*s = (struct usp_sock){
			.pair = pair,
			.shm = shm,
			.self = &shm->ep[side],
			.peer = &shm->ep[side ^ 1],
			.rxq = &shm->ring[side],
			.txq = &shm->ring[side ^ 1],
			.rxdata = (unsigned char *)shm + USP_DATA_OFFSET + (size_t)side * USP_RING_BYTES,
			.txdata = (unsigned char *)shm + USP_DATA_OFFSET +
				  (size_t)(side ^ 1) * USP_RING_BYTES,
			.fd = -1,
			.side = side,
			.type = pair->type,
			.tipc_type = pair->tipc_type,
		};
	}
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
	if (!s->cached) {
		usp__pair_unref(s->pair);
		return;
	}
	atomic_signal_fence(memory_order_seq_cst);
	tl_cache.busy = 0; /* the call is done with the entry */
}

/* Empty entry i of c and drop its reference. */
static void cache_drop(struct lookup_cache *c, int i)
{
	struct usp_pair *pair = c->way[i].pair;
	c->way[i].pair = NULL;
	c->way[i].fd = -1;
	usp__pair_unref(pair);
}

/* Thread exit: drop this thread's cache references. */
static void cache_destroy(void *arg)
{
	struct lookup_cache *c = arg;
	/* for good: a handler, or a later key destructor that does I/O, looks
	 * up without the cache (and never lists it again) */
	c->busy = 1;
	atomic_signal_fence(memory_order_seq_cst);
	usp__local_lock(&table_mutex);
	for (struct lookup_cache **p = &caches_list; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	c->listed = false;
	usp__local_unlock(&table_mutex);
	for (int i = 0; i < LOOKUP_CACHE_WAYS; i++)
		if (c->way[i].pair)
			cache_drop(c, i);
}

static void cache_key_create(void)
{
	pthread_key_create(&cache_key, cache_destroy);
}

/* Way w of c holds fd, filled under the table generation gen (G2):
 * what makes a lookup a hit. */
static inline bool cache_way_fresh(const struct lookup_cache *c, int w, int fd, uint64_t gen)
{
	return c->way[w].fd == fd && c->way[w].gen == gen;
}

/* A miss of the calling thread's cache (which is busy: c->busy set):
 * look fd up in the table and make it the entry of way w.  Out of line,
 * so that a hit saves no registers for it. */
static USP_COLD bool cache_fill(struct lookup_cache *c, int w, uint64_t gen, int fd,
				    struct usp_sock *s)
{
	bool found = usp__lookup_entry(fd, s);
	if (found && !c->listed) {
		pthread_once(&cache_key_once, cache_key_create);
		if (pthread_setspecific(cache_key, c) == 0) {
			usp__local_lock(&table_mutex);
			c->next = caches_list;
			caches_list = c;
			c->listed = true;
			usp__local_unlock(&table_mutex);
		}
	}
	if (found && c->listed) {
		/* the entry's own reference (s holds one: refs > 0) */
		atomic_fetch_add_explicit(&s->pair->refs, 1, memory_order_relaxed);
		struct usp_pair *old = c->way[w].pair;
		c->way[w].pair = s->pair;
		c->way[w].side = s->side;
		c->way[w].fd = fd;
		c->way[w].gen = gen;
		if (old)
			usp__pair_unref(old);
	}
	/* s carries the lookup's own reference: the cache is free */
	atomic_signal_fence(memory_order_seq_cst);
	c->busy = 0;
	return found && !gone_to_kernel(s);
}

bool usp__lookup_cached(int fd, struct usp_sock *s)
{
	struct lookup_cache *c = &tl_cache;
	/* a handler inside a call of ours, or inside a section holding a
	 * library lock that a miss or a refill may take */
	if (c->busy || usp__tl_local_locks || fd < 0)
		return usp__lookup(fd, s);
	c->busy = 1;
	atomic_signal_fence(memory_order_seq_cst);
	int w = fd & (LOOKUP_CACHE_WAYS - 1);
	uint64_t gen = atomic_load_explicit(&table_gen, memory_order_acquire); /* G2 */
	if (USP_UNLIKELY(!cache_way_fresh(c, w, fd, gen)))
		return cache_fill(c, w, gen, fd, s);
	usp__sock_init(s, c->way[w].pair, c->way[w].side, fd);
	s->cached = true; /* busy until usp__put */
	return !gone_to_kernel(s);
}

/* For tests: whether the calling thread's next lookup of fd would be
 * served by its cache (a fresh entry, and nothing forcing a bypass). */
bool usp__lookup_cache_serves(int fd)
{
	const struct lookup_cache *c = &tl_cache;
	int w = fd & (LOOKUP_CACHE_WAYS - 1);
	return fd >= 0 && !c->busy && !usp__tl_local_locks &&
	       cache_way_fresh(c, w, fd, atomic_load_explicit(&table_gen, memory_order_acquire));
}

/* The calling thread's entries for pair go (one of its descriptors was
 * just closed by this thread), so that a program closing pairs from the
 * thread that used them unmaps them at once. */
void usp__lookup_cache_forget(struct usp_pair *pair)
{
	struct lookup_cache *c = &tl_cache;
	if (c->busy || usp__tl_local_locks)
		return; /* a handler inside a call or a locked section of ours */
	c->busy = 1;
	atomic_signal_fence(memory_order_seq_cst);
	for (int i = 0; i < LOOKUP_CACHE_WAYS; i++)
		if (c->way[i].pair == pair)
			cache_drop(c, i);
	atomic_signal_fence(memory_order_seq_cst);
	c->busy = 0;
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
	table_changed();
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
	table_changed();
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
