/*
 * MSG_OOB on SOCK_STREAM, compared with the kernel step by step: where a
 * normal read stops (at the out-of-band mark, never gluing across it),
 * reading the byte with MSG_OOB (and MSG_PEEK), a newer byte replacing an
 * unread one (which becomes ordinary data), SO_OOBINLINE, SIOCATMARK,
 * POLLPRI, FIONREAD and SIOCOUTQ (the kernel's own counters, quirks
 * included), a full buffer, shutdown and close with an out-of-band byte
 * queued, and SO_PEEK_OFF.  SEQPACKET and DGRAM refuse MSG_OOB
 * (test/io_basic).
 */
#include "t_helpers.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void state(struct t_ctx *c)
{
	t_ioctl_int(c, c->b, SIOCATMARK, "SIOCATMARK");
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_queues(c);
	t_poll1(c, c->b, POLLIN | POLLPRI | POLLRDNORM | POLLRDBAND);
}

static void oob_recv(struct t_ctx *c, size_t cap, int flags)
{
	t_recv(c, c->b, cap, flags | MSG_OOB | MSG_DONTWAIT);
}

/* send "abc" with MSG_OOB: "ab" is data, 'c' the out-of-band byte */
static void scenario_basic(struct t_ctx *c)
{
	t_send(c, c->a, "abc", 3, MSG_OOB);
	state(c);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	oob_recv(c, 100, MSG_PEEK);
	oob_recv(c, 100, 0);
	state(c);
	oob_recv(c, 100, 0);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
}

static void scenario_oob_first(struct t_ctx *c)
{
	t_send(c, c->a, "abc", 3, MSG_OOB);
	t_send(c, c->a, "de", 2, 0);
	oob_recv(c, 100, 0);
	state(c);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
}

/* never read with MSG_OOB: a normal read skips it */
static void scenario_skipped(struct t_ctx *c)
{
	t_send(c, c->a, "abc", 3, MSG_OOB);
	t_send(c, c->a, "de", 2, 0);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	oob_recv(c, 100, 0);
}

/* a second out-of-band byte makes the first ordinary data */
static void scenario_replaced(struct t_ctx *c)
{
	t_send(c, c->a, "ab", 2, MSG_OOB);
	t_send(c, c->a, "cd", 2, MSG_OOB);
	state(c);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	oob_recv(c, 100, 0);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	/* read, then a new one */
	t_send(c, c->a, "ef", 2, MSG_OOB);
	oob_recv(c, 100, 0);
	t_send(c, c->a, "xyz", 3, MSG_OOB);
	state(c);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	oob_recv(c, 100, 0);
	state(c);
}

static void scenario_sizes(struct t_ctx *c)
{
	t_send(c, c->a, "", 0, MSG_OOB);
	oob_recv(c, 100, 0);
	t_send(c, c->a, "x", 1, MSG_OOB);
	state(c);
	oob_recv(c, 0, 0);
	state(c);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	t_send(c, c->a, "y", 1, MSG_OOB);
	t_recv(c, c->b, 0, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	t_send_pattern(c, c->a, 5000, 3, MSG_OOB);
	state(c);
	t_recv(c, c->b, 1000, MSG_DONTWAIT);
	t_recv(c, c->b, 10000, MSG_DONTWAIT);
	oob_recv(c, 1, 0);
	t_recv(c, c->b, 10000, MSG_DONTWAIT);
	state(c);
}

static void scenario_peek(struct t_ctx *c)
{
	t_send(c, c->a, "abc", 3, MSG_OOB);
	t_send(c, c->a, "de", 2, 0);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 1, MSG_DONTWAIT);
	state(c);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	oob_recv(c, 100, MSG_PEEK);
	state(c);
}

static void scenario_inline(struct t_ctx *c)
{
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_OOBINLINE, 1, "SO_OOBINLINE");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE");
	t_send(c, c->a, "abc", 3, MSG_OOB);
	t_send(c, c->a, "de", 2, 0);
	state(c);
	oob_recv(c, 100, 0);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
	/* switched off with a byte waiting */
	t_send(c, c->a, "fg", 2, MSG_OOB);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_OOBINLINE, 0, "SO_OOBINLINE");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	oob_recv(c, 100, 0);
	state(c);
}

static void scenario_peek_offset(struct t_ctx *c)
{
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF");
	t_send(c, c->a, "ab", 2, 0);
	t_send(c, c->a, "cde", 3, MSG_OOB);
	t_send(c, c->a, "fg", 2, 0);
	t_recv(c, c->b, 1, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	state(c);
}

static void scenario_limits(struct t_ctx *c)
{
	/* into a full buffer, after shutdown, to a closed peer */
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 4608, "SO_SNDBUF");
	for (int i = 0; i < 8; i++)
		t_send(c, c->a, "0123456789", 10, MSG_OOB | MSG_DONTWAIT);
	state(c);
	for (int i = 0; i < 8; i++)
		t_recv(c, c->b, 100, MSG_DONTWAIT);
	oob_recv(c, 100, 0);
	state(c);
	t_shutdown(c, c->b, SHUT_RD);
	t_send(c, c->a, "ab", 2, MSG_OOB | MSG_NOSIGNAL | MSG_DONTWAIT);
	t_send(c, c->a, "a", 1, MSG_OOB | MSG_DONTWAIT);
	t_shutdown(c, c->a, SHUT_WR);
	t_send(c, c->a, "ab", 2, MSG_OOB | MSG_DONTWAIT);
	state(c);
}

/* release with an out-of-band byte queued: unread data, or not */
static void scenario_close(struct t_ctx *c)
{
	t_send(c, c->b, "abc", 3, MSG_OOB);
	t_recv(c, c->a, 100, MSG_DONTWAIT);
	t_recv(c, c->a, 100, MSG_OOB | MSG_DONTWAIT);
	t_close(c, c->a);
	c->a = -1;
	t_sleep_ms(10);
	t_so_error(c, c->b);
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLPRI);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_send(c, c->b, "x", 1, MSG_OOB | MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void scenario_close_unread(struct t_ctx *c)
{
	t_send(c, c->b, "abc", 3, MSG_OOB);
	t_recv(c, c->a, 100, MSG_DONTWAIT);
	t_close(c, c->a);
	c->a = -1;
	t_sleep_ms(10);
	t_so_error(c, c->b);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
}

/* SIOCATMARK on every type: an empty record at the head counts */
static void scenario_atmark_types(struct t_ctx *c)
{
	t_ioctl_int(c, c->b, SIOCATMARK, "SIOCATMARK");
	t_send(c, c->a, "", 0, 0);
	t_send(c, c->a, "x", 1, 0);
	t_ioctl_int(c, c->b, SIOCATMARK, "SIOCATMARK");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_ioctl_int(c, c->b, SIOCATMARK, "SIOCATMARK");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_ioctl_int(c, c->b, SIOCATMARK, "SIOCATMARK");
	t_poll1(c, c->b, POLLIN | POLLPRI);
}

/* Known difference 3, by hand: a one-byte out-of-band send with a
 * descriptor is refused (Linux sends both); nothing is queued. */
static void check_oob_with_rights(void)
{
	int sv[2], p[2];
	if (usp_socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0 || pipe(p) < 0)
		t_die("setup: %s", strerror(errno));
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { "X", 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
	errno = 0;
	if (usp_sendmsg(sv[0], &msg, MSG_OOB) != -1 || errno != EOPNOTSUPP)
		t_fail("one-byte MSG_OOB with SCM_RIGHTS: want -1 EOPNOTSUPP, errno %d", errno);
	char b[4];
	if (usp_recv(sv[1], b, sizeof(b), MSG_DONTWAIT) != -1 || errno != EAGAIN)
		t_fail("a refused MSG_OOB with SCM_RIGHTS queued something");
	iov.iov_base = "YX";
	iov.iov_len = 2;
	if (usp_sendmsg(sv[0], &msg, MSG_OOB) != 2)
		t_fail("two-byte MSG_OOB with SCM_RIGHTS: %s", strerror(errno));
	usp_close(sv[0]);
	usp_close(sv[1]);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	t_init("oob");
	t_watchdog(60, "oob");
	t_compare_matrix("basic", scenario_basic, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("oob_first", scenario_oob_first, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("skipped", scenario_skipped, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("replaced", scenario_replaced, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("sizes", scenario_sizes, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("peek", scenario_peek, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("inline", scenario_inline, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("peek_offset", scenario_peek_offset, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("limits", scenario_limits, T_STREAM, T_NONBLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("close", scenario_close, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("close_unread", scenario_close_unread, T_STREAM, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("atmark_types", scenario_atmark_types, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
			 NULL);
	check_oob_with_rights();
	return t_finish();
}
