/*
 * usp_poll(): readiness of uspair endpoints computed from shared memory,
 * merged with the kernel's answer for every other descriptor.
 *
 * To sleep, a poller arms each uspair endpoint (poll_armed), re-computes
 * the masks, and sleeps in the kernel's poll() with each endpoint's backing
 * socket asked for POLLIN.  A waker that finds poll_armed set sends one
 * token byte through the kernel pair (see wait.c), which makes that
 * backing socket readable; the poller drains tokens when it wakes.  A peer
 * that is released shows up as the backing socket's POLLHUP, which the
 * kernel reports at once, whatever the reason of the release.
 */
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
	int sndbuf = atomic_load_explicit(&s->self->sndbuf, memory_order_relaxed);
	return ((wmem + 1) << 2) <= (uint64_t)(sndbuf < 0 ? 0 : sndbuf);
}

/* unix_poll() for STREAM, unix_dgram_poll() for DGRAM and SEQPACKET. */
short usp__poll_mask(struct usp_sock *s, short events)
{
	unsigned mask = 0;
	uint32_t shut = atomic_load(&s->self->shutdown);
	if (atomic_load_explicit(&s->self->sk_err, memory_order_relaxed))
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
static int scan_uspair(struct pollfd *fds, nfds_t nfds, const unsigned char *is_usp,
		       bool arm)
{
	int ready = 0;
	for (nfds_t i = 0; i < nfds; i++) {
		if (!is_usp[i])
			continue;
		struct usp_sock s;
		if (!usp__lookup(fds[i].fd, &s)) {
			fds[i].revents = POLLNVAL;
			ready++;
			continue;
		}
		if (arm) /* S1-like: pairs with W1 in usp__wake_endpoint */
			atomic_store(&s.self->poll_armed, 1);
		usp__check_peer(&s, false);
		fds[i].revents = usp__poll_mask(&s, fds[i].events);
		if (fds[i].revents)
			ready++;
		usp__put(&s);
	}
	return ready;
}

int usp_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	if (!fds)
		return poll(fds, nfds, timeout); /* the kernel's EFAULT/EINVAL */
	unsigned char small[64];
	unsigned char *is_usp = nfds <= 64 ? small : calloc(nfds, 1);
	if (!is_usp) {
		errno = ENOMEM;
		return -1;
	}
	nfds_t n_usp = 0;
	for (nfds_t i = 0; i < nfds; i++) {
		is_usp[i] = usp_is_uspair(fds[i].fd);
		n_usp += is_usp[i];
	}
	if (n_usp == 0) {
		if (is_usp != small)
			free(is_usp);
		return poll(fds, nfds, timeout);
	}
	struct pollfd kfds_small[64];
	struct pollfd *kfds = nfds <= 64 ? kfds_small : calloc(nfds, sizeof(*kfds));
	if (!kfds) {
		if (is_usp != small)
			free(is_usp);
		errno = ENOMEM;
		return -1;
	}
	int64_t deadline = timeout > 0 ? usp__now_ns() + (int64_t)timeout * 1000000 : 0;
	int result;
	for (;;) {
		/* a poll that will not sleep (timeout 0) asks for no wake
		 * token: an armed endpoint that nobody polls any more gets one
		 * from the next waker, which then sits in the backing queue
		 * and takes room from the peer's kernel records (SO_SNDBUF) */
		int ready = scan_uspair(fds, nfds, is_usp, timeout != 0);
		bool only_uspair_ready = n_usp == nfds && ready;
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
		if (only_uspair_ready) {
			result = ready;
			break;
		}
		for (nfds_t i = 0; i < nfds; i++) {
			kfds[i].fd = fds[i].fd;
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
		ready = scan_uspair(fds, nfds, is_usp, false);
		for (nfds_t i = 0; i < nfds; i++)
			if (!is_usp[i] && fds[i].revents)
				ready++;
		if (ready || timeout == 0 ||
		    (timeout > 0 && usp__now_ns() >= deadline)) {
			result = ready;
			break;
		}
	}
	if (kfds != kfds_small)
		free(kfds);
	if (is_usp != small)
		free(is_usp);
	return result;
}
