/*
 * The kernel's memory accounting for AF_UNIX, reproduced so that uspair
 * admits exactly as much queued data as Linux does.
 *
 * A sender may allocate a new skb while its sk_wmem_alloc (the summed
 * truesize of its queued skbs) is below sk_sndbuf; the receive buffer does
 * not limit AF_UNIX at all.  truesize is the slab-rounded linear area plus
 * struct sk_buff plus whole pages for the paged part.  The constants below
 * are those of x86_64 Linux 6.x with 4 KiB pages; test/backpressure compares
 * the resulting capacities with the running kernel's.  Buffer sizes set
 * with setsockopt come from the kernel itself (sockopt.c), clamps included.
 */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define PAGE 4096u
#define SKB_SHINFO 320u	 /* SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) */
#define SKB_STRUCT 256u	 /* SKB_DATA_ALIGN(sizeof(struct sk_buff)) */
#define SKB_MAX_HEAD0 (PAGE - SKB_SHINFO)	    /* SKB_MAX_HEAD(0) */
#define SKB_MAX_ALLOC ((PAGE << 2) - SKB_SHINFO) /* SKB_MAX_ORDER(0, 2) */
#define MAX_SKB_FRAGS 17u
#define UNIX_SKB_FRAGS_SZ (32768u) /* PAGE_SIZE << get_order(32768) */

static size_t align64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

/* kmalloc_size_roundup() for the sizes an skb head can have (multiples of
 * 64, at least 384): power-of-two slabs up to 8 KiB, then page orders. */
static size_t kmalloc_roundup(size_t n)
{
	size_t sz = 512;
	while (sz < n)
		sz <<= 1;
	return sz;
}

static uint32_t skb_truesize(size_t linear, size_t paged)
{
	size_t head = kmalloc_roundup(align64(linear) + SKB_SHINFO);
	size_t pages = (paged + PAGE - 1) / PAGE * PAGE;
	return (uint32_t)(head + SKB_STRUCT + pages);
}

/* unix_dgram_sendmsg(): heads up to SKB_MAX_ALLOC, the rest in pages. */
uint32_t usp__dgram_truesize(size_t len)
{
	size_t paged = 0;
	if (len > SKB_MAX_ALLOC) {
		paged = len - SKB_MAX_ALLOC;
		if (paged > MAX_SKB_FRAGS * PAGE)
			paged = MAX_SKB_FRAGS * PAGE;
		paged = (paged + PAGE - 1) / PAGE * PAGE;
	}
	return skb_truesize(len - paged, paged);
}

/* unix_stream_sendmsg(): how many bytes go into the next skb. */
size_t usp__stream_chunk(size_t remaining, int sndbuf)
{
	size_t size = remaining;
	long half = (long)(sndbuf >> 1) - 64;
	if (half < 0)
		half = 0;
	if (size > (size_t)half)
		size = (size_t)half;
	if (size > SKB_MAX_HEAD0 + UNIX_SKB_FRAGS_SZ)
		size = SKB_MAX_HEAD0 + UNIX_SKB_FRAGS_SZ;
	return size;
}

uint32_t usp__stream_truesize(size_t size)
{
	size_t paged = size > SKB_MAX_HEAD0 ? size - SKB_MAX_HEAD0 : 0;
	paged = (paged + PAGE - 1) / PAGE * PAGE;
	if (paged > size)
		paged = size;
	/* the paged part is charged in whole pages */
	size_t linear = size - paged;
	return skb_truesize(linear, (paged + PAGE - 1) / PAGE * PAGE);
}

static long read_sysctl(const char *path, long fallback)
{
	FILE *f = fopen(path, "re");
	long v = fallback;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = fallback;
		fclose(f);
	}
	return v;
}

static _Atomic long wmem_default_cache, rmem_default_cache;

static long cached_sysctl(_Atomic long *cache, const char *path, long fallback)
{
	long v = atomic_load_explicit(cache, memory_order_relaxed);
	if (v == 0) {
		v = read_sysctl(path, fallback);
		if (v <= 0)
			v = fallback;
		atomic_store_explicit(cache, v, memory_order_relaxed);
	}
	return v;
}

/* The SO_SNDBUF a new socket answers (sock_init_data()). */
int usp__default_sndbuf_shown(void)
{
	long v = cached_sysctl(&wmem_default_cache,
			       "/proc/sys/net/core/wmem_default", 212992);
	return v > INT32_MAX ? INT32_MAX : (int)v;
}

/* ... and what the ring admits (capped, known difference 6). */
int usp__default_sndbuf(void)
{
	int v = usp__default_sndbuf_shown();
	return v > (int)USP_MAX_SNDBUF ? (int)USP_MAX_SNDBUF : v;
}

int usp__default_rcvbuf(void)
{
	long v = cached_sysctl(&rmem_default_cache,
			       "/proc/sys/net/core/rmem_default", 212992);
	return v > INT32_MAX ? INT32_MAX : (int)v;
}

/* tipc_buf_acquire(): a linear skb with BUF_HEADROOM in front of the
 * message (header included) and BUF_TAILROOM behind it, as Debian's 6.1
 * builds them (CONFIG_TIPC_CRYPTO, LL_MAX_HEADER 128).  TIPC charges
 * truesize to the receiver (sk_rmem_alloc) against its queue limits. */
#define TIPC_BUF_OVERHEAD 224u
uint32_t usp__tipc_truesize(size_t msg_size)
{
	return skb_truesize(TIPC_BUF_OVERHEAD + msg_size, 0);
}
