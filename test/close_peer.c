/*
 * close_peer: one end is closed (a), the survivor (b) is then used.
 * Variants: unread data in the closer's own receive queue (which makes the
 * kernel report ECONNRESET on STREAM/SEQPACKET), unread data in the
 * survivor's queue, and the order in which the survivor looks: receive
 * first, send first, SO_ERROR first, blocking calls, poll only.  Checked:
 * poll masks, the receive sequence (STREAM: data, ECONNRESET, 0;
 * SEQPACKET: ECONNRESET, data, 0), sends (EPIPE with or without SIGPIPE,
 * DGRAM ECONNREFUSED then ENOTCONN), SO_ERROR reading and clearing,
 * getpeername, shutdown of the survivor.
 */
#include "t_helpers.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>

enum order {
	ORDER_RECEIVE_FIRST,
	ORDER_SEND_FIRST,
	ORDER_SO_ERROR_FIRST,
	ORDER_BLOCKING_CALLS,
	ORDER_POLL_ONLY,
};

struct close_case {
	int closer_has_unread;		/* b sent to a before a closes */
	int survivor_has_unread;	/* a sent to b before a closes */
	enum order order;
};

static void survivor_receives(struct t_ctx *c)
{
	for (int i = 0; i < 4; i++)
		t_recv(c, c->b, 100, MSG_DONTWAIT);
}

static void survivor_sends(struct t_ctx *c)
{
	t_send(c, c->b, "s1", 2, MSG_DONTWAIT);
	t_send(c, c->b, "s2", 2, MSG_DONTWAIT);
	t_send(c, c->b, "s3", 2, MSG_DONTWAIT | MSG_NOSIGNAL);
	t_write(c, c->b, "s4", 2);
}

static void survivor_peername(struct t_ctx *c)
{
	struct sockaddr_un addr;
	socklen_t len = sizeof(addr);
	memset(&addr, 0xEE, sizeof(addr));
	errno = 0;
	int r = usp_getpeername(c->b, (struct sockaddr *)&addr, &len);
	int err = errno;
	char desc[96];
	snprintf(desc, sizeof(desc), "getpeername(b) -> addrlen=%u family=%d",
		 (unsigned)len, r == 0 && len >= sizeof(sa_family_t) ? addr.sun_family : -1);
	t_record(c, desc, r, err);
}

static void scenario_close_peer(struct t_ctx *c)
{
	const struct close_case *cc = c->user;

	if (cc->survivor_has_unread) {
		t_send(c, c->a, "for-b-1", 7, 0);
		t_send(c, c->a, "for-b-2", 7, 0);
	}
	if (cc->closer_has_unread)
		t_send(c, c->b, "for-a", 5, 0);
	t_close(c, c->a);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	t_poll1(c, c->b, 0);

	switch (cc->order) {
	case ORDER_RECEIVE_FIRST:
		t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
		survivor_receives(c);
		t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
		survivor_sends(c);
		t_so_error(c, c->b);
		t_so_error(c, c->b);
		break;
	case ORDER_SEND_FIRST:
		survivor_sends(c);
		t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
		t_so_error(c, c->b);
		survivor_receives(c);
		t_so_error(c, c->b);
		break;
	case ORDER_SO_ERROR_FIRST:
		t_so_error(c, c->b);
		t_so_error(c, c->b);
		t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
		survivor_receives(c);
		survivor_sends(c);
		t_so_error(c, c->b);
		break;
	case ORDER_BLOCKING_CALLS:
		t_recv(c, c->b, 100, 0);
		t_recv(c, c->b, 100, 0);
		t_read(c, c->b, 100);
		t_recv(c, c->b, 100, 0);
		t_send(c, c->b, "blk", 3, 0);
		t_send(c, c->b, "blk", 3, 0);
		t_so_error(c, c->b);
		break;
	case ORDER_POLL_ONLY:
		t_poll1(c, c->b, POLLIN);
		t_poll1(c, c->b, POLLOUT);
		t_poll1(c, c->b, POLLRDHUP);
		break;
	}
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	survivor_peername(c);
	t_queues(c);
	t_shutdown(c, c->b, SHUT_RDWR);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
	survivor_receives(c);
	t_send(c, c->b, "after-shutdown", 14, MSG_DONTWAIT);
	t_so_error(c, c->b);
}

/* The closer shut down first, then closed. */
static void scenario_shutdown_then_close(struct t_ctx *c)
{
	t_send(c, c->a, "last words", 10, 0);
	t_shutdown(c, c->a, SHUT_WR);
	t_send(c, c->b, "unread", 6, 0);
	t_close(c, c->a);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	t_so_error(c, c->b);
	survivor_receives(c);
	survivor_sends(c);
	t_so_error(c, c->b);
}

/* Closing with a large amount of unread data in both directions. */
static void scenario_close_with_full_queues(struct t_ctx *c)
{
	for (int i = 0; i < 8; i++)
		t_send_pattern(c, c->a, 4000, (unsigned)i, MSG_DONTWAIT);
	for (int i = 0; i < 8; i++)
		t_send_pattern(c, c->b, 4000, 100 + (unsigned)i, MSG_DONTWAIT);
	t_close(c, c->a);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	for (int i = 0; i < 12; i++)
		if (t_recv(c, c->b, 100000, MSG_DONTWAIT) < 0 && errno == EAGAIN)
			break;
	t_queues(c);
	survivor_sends(c);
}

int main(void)
{
	static const char *const order_names[] = { "receive-first", "send-first",
						   "so_error-first", "blocking-calls",
						   "poll-only" };
	t_init("close_peer");
	for (int closer = 0; closer <= 1; closer++) {
		for (int survivor = 0; survivor <= 1; survivor++) {
			for (int o = ORDER_RECEIVE_FIRST; o <= ORDER_POLL_ONLY; o++) {
				struct close_case cc = { closer, survivor, (enum order)o };
				char name[128];
				snprintf(name, sizeof(name), "%s,%s,%s",
					 closer ? "closer-has-unread" : "closer-queue-empty",
					 survivor ? "survivor-has-unread" : "survivor-queue-empty",
					 order_names[o]);
				t_compare_matrix(name, scenario_close_peer, T_ALL_TYPES,
						 T_ALL_MODES, T_ALL_DIRS, &cc);
			}
		}
	}
	t_compare_matrix("shutdown_then_close", scenario_shutdown_then_close,
			 T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("close_with_full_queues", scenario_close_with_full_queues,
			 T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	return t_finish();
}
