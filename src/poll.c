/*
 * usp_poll(): readiness of uspair endpoints computed from shared memory,
 * merged with the kernel's answer for every other descriptor.
 *
 * To sleep, a poller counts itself in each uspair endpoint's `pollers`
 * (seq_cst, pairs with the wakers' W1: usp__wake, usp__unlock_full),
 * re-computes the masks, and sleeps in the kernel's poll() with each
 * endpoint's backing socket asked for POLLIN.  A waker that sees pollers and wins `token_sent` sends
 * one token byte through the kernel pair (wait.c), which makes that
 * backing socket readable; whoever consumes tokens clears token_sent
 * (scm.c skip_tokens), so at most one token is on its way per endpoint and
 * tokens never pile up in a queue nobody drains.  The poller holds a
 * reference on each pair it counted itself in, and leaves every count
 * before it returns, ready or not.  A peer that is released shows up as
 * the backing socket's POLLHUP, which the kernel reports at once, whatever
 * the reason of the release.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define POLL_SLICE_MS 40 /* also bounds a token lost to a concurrent poller */
/* is_usp[i]: 0 a kernel descriptor, 1 a uspair endpoint, or this: one
 * whose backing socket holds a kernel record's part (scm.c) */
#define USP_POLL_QUIET 2

static bool peer_writable(struct usp_sock *s)
{
	/* unix_writable(): (refcount of sk_wmem_alloc << 2) <= sndbuf, and
	 * that refcount is the charge plus the socket's own reference */
	uint64_t wmem = usp__peer_gone(s) ? 0 : usp__ring_wmem(s->pair, s->txq);
	return usp__wmem_writable(wmem, atomic_load_explicit(&s->self->sndbuf,
							     memory_order_relaxed));
}

/* unix_poll() for STREAM, unix_dgram_poll() for DGRAM and SEQPACKET. */
short usp__poll_mask(struct usp_sock *s, short events)
{
	if (s->tipc_type)
		return usp__tipc_poll_mask(s, events);
	unsigned mask = 0;
	uint32_t shut = atomic_load(&s->self->shutdown);
	if (atomic_load_explicit(&s->self->sk_err, memory_order_relaxed) || usp__mmsg_err_pending(s))
		mask |= POLLERR;
	if (shut == USP_SHUTDOWN_MASK)
		mask |= POLLHUP;
	if (shut & USP_RCV_SHUTDOWN)
		mask |= POLLRDHUP | POLLIN | POLLRDNORM;
	if (!usp__ring_empty(s->rxq))
		mask |= POLLIN | POLLRDNORM;
	/* unix_poll(): an out-of-band byte waits (STREAM only) */
	if (s->type == SOCK_STREAM && atomic_load_explicit(&s->self->oob_pos, memory_order_relaxed))
		mask |= POLLPRI;
	if (peer_writable(s))
		mask |= POLLOUT | POLLWRNORM | POLLWRBAND;
	/* last: the checks above may have found the region corrupt */
	if (usp__is_corrupt(s))
		mask = POLLERR | POLLHUP | POLLIN | POLLOUT;
	return (short)(mask & ((unsigned short)events | POLLERR | POLLHUP));
}

/* Fill revents of every uspair entry; returns how many are ready. */
static int scan_uspair(struct pollfd *fds, nfds_t nfds, const unsigned char *is_usp)
{
	int ready = 0;
	for (nfds_t i = 0; i < nfds; i++) {
		if (!is_usp[i])
			continue;
		struct usp_sock s;
		if (!usp__lookup(fds[i].fd, &s)) {
			/* closed, or fallen back to the kernel path meanwhile:
			 * the kernel's answer */
			struct pollfd k = {.fd = fds[i].fd, .events = fds[i].events};
			poll(&k, 1, 0);
			fds[i].revents = k.revents;
			ready += k.revents != 0;
			continue;
		}
		usp__check_peer(&s, false);
		fds[i].revents = usp__poll_mask(&s, fds[i].events);
		if (fds[i].revents)
			ready++;
		usp__put(&s);
	}
	return ready;
}

/* Count this poller in every uspair endpoint of the set (S1-like: pairs
 * with W1 of the wakers), keeping a reference on its pair in
 * armed[i] so that disarm() can leave the count even if the descriptor is
 * closed meanwhile.  An entry listed twice is counted twice. */
static void arm(const struct pollfd *fds, nfds_t nfds, const unsigned char *is_usp,
		struct usp_sock *armed)
{
	for (nfds_t i = 0; i < nfds; i++) {
		armed[i].pair = NULL;
		if (!is_usp[i] || !usp__lookup(fds[i].fd, &armed[i]))
			continue;
		atomic_fetch_add(&armed[i].self->pollers, 1);
	}
}

static void disarm(nfds_t nfds, struct usp_sock *armed)
{
	for (nfds_t i = 0; i < nfds; i++) {
		if (!armed[i].pair)
			continue;
		/* the count is in shared memory a hostile peer can write:
		 * never take it below zero */
		uint32_t n = atomic_load_explicit(&armed[i].self->pollers, memory_order_relaxed);
		while (n && !atomic_compare_exchange_weak(&armed[i].self->pollers, &n, n - 1))
			;
		usp__put(&armed[i]);
	}
}

/* What usp_poll() must undo when it returns or is cancelled. */
struct poll_state {
	nfds_t nfds;
	struct usp_sock *armed;
	const bool *armed_any;
	struct pollfd *kfds, *kfds_small;
	struct usp_sock *armed_small;
	unsigned char *is_usp, *is_usp_small;
};

/* Also the normal exit, and the ENOMEM one (free(NULL) is fine). */
static void poll_cleanup(void *arg)
{
	struct poll_state *st = arg;
	if (*st->armed_any)
		disarm(st->nfds, st->armed);
	if (st->kfds != st->kfds_small)
		free(st->kfds);
	if (st->armed != st->armed_small)
		free(st->armed);
	if (st->is_usp != st->is_usp_small)
		free(st->is_usp);
}

/* A known descriptor still served from shared memory: not one whose pair
 * fell back with its ring drained, which the kernel polls exactly, with
 * the caller's events. */
static bool uspair_path(int fd)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return false;
	usp__put(&s);
	return true;
}

int usp_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	if (!fds)
		return poll(fds, nfds, timeout); /* the kernel's EFAULT/EINVAL */
	unsigned char is_usp_small[64];
	unsigned char *is_usp = nfds <= 64 ? is_usp_small : calloc(nfds, 1);
	if (!is_usp) {
		errno = ENOMEM;
		return -1;
	}
	nfds_t n_usp = 0;
	for (nfds_t i = 0; i < nfds; i++) {
		is_usp[i] = usp_is_uspair(fds[i].fd) && uspair_path(fds[i].fd);
		n_usp += is_usp[i];
	}
	if (n_usp == 0) {
		if (is_usp != is_usp_small)
			free(is_usp);
		return poll(fds, nfds, timeout);
	}
	/* a poll that will not sleep (timeout 0) does not arm: no wake token
	 * is wanted for it */
	int result = scan_uspair(fds, nfds, is_usp);
	if (result && n_usp == nfds) {
		if (is_usp != is_usp_small)
			free(is_usp);
		return result;
	}
	struct pollfd kfds_small[16];
	struct usp_sock armed_small[16];
	struct pollfd *kfds = nfds <= 16 ? kfds_small : calloc(nfds, sizeof(*kfds));
	struct usp_sock *armed = nfds <= 16 ? armed_small : calloc(nfds, sizeof(*armed));
	bool armed_any = false;
	struct poll_state st = {nfds, armed, &armed_any, kfds, kfds_small, armed_small,
				is_usp, is_usp_small};
	if (!kfds || !armed) {
		poll_cleanup(&st); /* frees what was allocated */
		errno = ENOMEM;
		return -1;
	}
	/* poll() is a cancellation point: a cancelled poller must still
	 * leave the counts and drop its references */
	pthread_cleanup_push(poll_cleanup, &st);
	int64_t deadline = timeout > 0 ? usp__now_ns() + (int64_t)timeout * 1000000 : 0;
	int ready = result;
	for (;;) {
		if (!ready && timeout != 0 && !armed_any) {
			/* about to sleep: arm, then look again (the Dekker
			 * pairing with the wakers' W1) */
			arm(fds, nfds, is_usp, armed);
			armed_any = true;
			ready = scan_uspair(fds, nfds, is_usp);
		}
		if (ready && n_usp == nfds) {
			result = ready;
			break;
		}
		int slice = 0;
		if (!ready) {
			if (timeout < 0)
				slice = POLL_SLICE_MS;
			else if (timeout > 0) {
				int64_t left = deadline - usp__now_ns();
				slice = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
				if (slice > POLL_SLICE_MS)
					slice = POLL_SLICE_MS;
			}
		}
		for (nfds_t i = 0; i < nfds; i++) {
			kfds[i].fd = fds[i].fd;
			/* a released peer leaves the backing socket in POLLHUP
			 * for good: where the endpoint's own mask does not say
			 * ready for that (AF_TIPC RDM/DGRAM), the kernel's poll
			 * would return at once, again and again; the slices
			 * look at it instead */
			if (armed_any && is_usp[i] && armed[i].pair && armed[i].tipc_type &&
			    usp__peer_gone(&armed[i]))
				kfds[i].fd = -1;
			kfds[i].events = is_usp[i] == USP_POLL_QUIET ? 0
					 : is_usp[i]		    ? POLLIN
								    : fds[i].events;
			kfds[i].revents = 0;
		}
		int kr = poll(kfds, nfds, slice);
		if (kr < 0) {
			result = -1;
			break;
		}
		for (nfds_t i = 0; i < nfds; i++) {
			if (!is_usp[i]) {
				fds[i].revents = kfds[i].revents;
				continue;
			}
			struct usp_sock s;
			if (!(kfds[i].revents & (POLLIN | POLLHUP)) ||
			    !usp__lookup(kfds[i].fd, &s))
				continue;
			/* A kernel record's part waiting at the head keeps the
			 * backing socket readable until the record is read:
			 * stop asking for POLLIN there, or poll would spin
			 * (the ring says POLLIN for it anyway). */
			if ((kfds[i].revents & POLLIN) && usp__drain_tokens(&s))
				is_usp[i] = USP_POLL_QUIET;
			if (kfds[i].revents & POLLHUP)
				usp__check_peer(&s, true);
			usp__put(&s);
		}
		ready = scan_uspair(fds, nfds, is_usp);
		for (nfds_t i = 0; i < nfds; i++)
			if (!is_usp[i] && fds[i].revents)
				ready++;
		if (ready || timeout == 0 ||
		    (timeout > 0 && usp__now_ns() >= deadline)) {
			result = ready;
			break;
		}
	}
	pthread_cleanup_pop(1);
	return result;
}
