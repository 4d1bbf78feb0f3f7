/*
 * shutdown: SHUT_RD / SHUT_WR / SHUT_RDWR on either end, with and without
 * data queued in either direction, then poll masks (IN|OUT|RDHUP|PRI),
 * sends (EPIPE with SIGPIPE counted, and MSG_NOSIGNAL), receives (data,
 * 0 or EAGAIN), shutdown twice, invalid `how`.  Compared step by step
 * between a kernel pair and a uspair pair.
 */
#include "t_helpers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

enum queued {
	QUEUED_NONE,
	QUEUED_TO_SHUTTER,	/* b sent to a (unread in a) */
	QUEUED_FROM_SHUTTER,	/* a sent to b (unread in b) */
	QUEUED_BOTH,
};

struct shutdown_case {
	int how;
	enum queued queued;
	int shutter_is_b;	/* the receiving end shuts instead of the sender */
};

static void all_sends(struct t_ctx *c, int fd)
{
	struct msghdr msg;
	struct iovec iov = { .iov_base = "m", .iov_len = 1 };
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	t_send(c, fd, "x", 1, MSG_DONTWAIT);
	t_send(c, fd, "n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	t_send(c, fd, "z", 1, 0);
	t_write(c, fd, "w", 1);
	char desc[64];
	snprintf(desc, sizeof(desc), "sendmsg(%s,\"m\",MSG_NOSIGNAL)", t_fd_name(c, fd));
	T_RECORD(c, desc, usp_sendmsg(fd, &msg, MSG_NOSIGNAL));
	t_sendto(c, fd, "t", 1, MSG_DONTWAIT, NULL, 0, "NULL");
}

static void all_receives(struct t_ctx *c, int fd)
{
	for (int i = 0; i < 3; i++)
		t_recv(c, fd, 100, MSG_DONTWAIT);
	t_recv(c, fd, 100, 0);
	t_read(c, fd, 100);
}

static void scenario_shutdown(struct t_ctx *c)
{
	const struct shutdown_case *sc = c->user;
	int shutter = sc->shutter_is_b ? c->b : c->a;
	int other = sc->shutter_is_b ? c->a : c->b;

	if (sc->queued == QUEUED_TO_SHUTTER || sc->queued == QUEUED_BOTH)
		t_send(c, other, "to-shutter", 10, 0);
	if (sc->queued == QUEUED_FROM_SHUTTER || sc->queued == QUEUED_BOTH)
		t_send(c, shutter, "from-shutter", 12, 0);

	t_shutdown(c, shutter, sc->how);
	t_poll_both(c);
	t_queues(c);
	all_sends(c, shutter);
	all_sends(c, other);
	t_poll_both(c);
	all_receives(c, shutter);
	all_receives(c, other);
	t_poll_both(c);
	t_so_error(c, shutter);
	t_so_error(c, other);

	/* the same again, then the other end too */
	t_shutdown(c, shutter, sc->how);
	t_poll_both(c);
	t_shutdown(c, other, SHUT_RDWR);
	t_poll_both(c);
	all_sends(c, shutter);
	all_receives(c, other);
	t_poll_both(c);
	t_shutdown(c, shutter, SHUT_RDWR);
	t_shutdown(c, shutter, 7);
	t_poll_both(c);
	t_so_error(c, shutter);
	t_so_error(c, other);
}

static void scenario_invalid_how(struct t_ctx *c)
{
	t_shutdown(c, c->a, -1);
	t_shutdown(c, c->a, 3);
	t_shutdown(c, c->a, 99);
	t_shutdown(c, c->a, 0x10000 | SHUT_WR);
	t_poll_both(c);
	t_send(c, c->a, "ok", 2, 0);
	t_recv(c, c->b, 10, 0);
	/* shut down piecewise, each twice */
	t_shutdown(c, c->a, SHUT_RD);
	t_shutdown(c, c->a, SHUT_RD);
	t_poll_both(c);
	t_shutdown(c, c->a, SHUT_WR);
	t_shutdown(c, c->a, SHUT_WR);
	t_poll_both(c);
	t_shutdown(c, c->a, SHUT_RDWR);
	t_shutdown(c, c->a, -1);
	t_poll_both(c);
	t_shutdown(c, c->b, SHUT_RDWR);
	t_shutdown(c, c->b, SHUT_RDWR);
	t_poll_both(c);
}

/* Shutdown while data is in flight, then the data is still delivered. */
static void scenario_data_after_shut_wr(struct t_ctx *c)
{
	t_send_pattern(c, c->a, 5000, 1, 0);
	t_send(c, c->a, "tail", 4, 0);
	t_shutdown(c, c->a, SHUT_WR);
	t_poll_both(c);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 1000, 0);
	t_recv(c, c->b, 10000, 0);
	t_poll_both(c);
	t_recv(c, c->b, 10000, 0);
	t_recv(c, c->b, 10000, 0);
	t_recv(c, c->b, 10000, MSG_PEEK);
	t_poll_both(c);
	/* the reverse direction still works */
	t_send(c, c->b, "reply", 5, 0);
	t_recv(c, c->a, 100, 0);
	t_shutdown(c, c->b, SHUT_RD);
	t_send(c, c->a, "late", 4, MSG_NOSIGNAL);
	t_poll_both(c);
}

/*
 * SIGPIPE with the default action kills the sender; blocked, it stays
 * pending.  Run in a child so that the default action can be taken.
 */
struct sigpipe_probe {
	struct t_ctx *c;
	int blocked;
};

static int send_after_shutdown_in_child(void *arg)
{
	const struct sigpipe_probe *sp = arg;
	sigset_t set;
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(sp->blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
	errno = 0;
	ssize_t r = usp_send(sp->c->a, "x", 1, MSG_DONTWAIT);
	int err = errno;
	sigset_t pending;
	sigpending(&pending);
	/* exit status: 10 + errno class, +50 if SIGPIPE is pending */
	int code = r == -1 && err == EPIPE ? 10 : r == -1 ? 20 : 30;
	if (sigismember(&pending, SIGPIPE))
		code += 50;
	return code;
}

static void scenario_sigpipe_disposition(struct t_ctx *c)
{
	t_shutdown(c, c->a, SHUT_WR);
	struct sigpipe_probe sp = { c, 0 };
	t_log(c, "child, SIGPIPE default: status %d (141 = killed by SIGPIPE)",
	      t_run_in_child(send_after_shutdown_in_child, &sp));
	sp.blocked = 1;
	t_log(c, "child, SIGPIPE blocked: status %d (60 = EPIPE and SIGPIPE pending)",
	      t_run_in_child(send_after_shutdown_in_child, &sp));
	/* ignored: EPIPE only */
	signal(SIGPIPE, SIG_IGN);
	unsigned long before = t_sigpipe_count();
	t_send(c, c->a, "y", 1, MSG_DONTWAIT);
	t_log(c, "handler ran while ignored: %s", t_sigpipe_count() != before ? "yes" : "no");
	t_init_sigpipe_counter();
}

int main(void)
{
	static const int hows[] = { SHUT_RD, SHUT_WR, SHUT_RDWR };
	static const char *const how_names[] = { "SHUT_RD", "SHUT_WR", "SHUT_RDWR" };
	static const char *const queued_names[] = { "nothing-queued", "queued-to-shutter",
						    "queued-from-shutter", "queued-both-ways" };
	t_init("shutdown");
	for (int h = 0; h < 3; h++) {
		for (int q = QUEUED_NONE; q <= QUEUED_BOTH; q++) {
			for (int who = 0; who <= 1; who++) {
				struct shutdown_case sc = { hows[h], (enum queued)q, who };
				char name[128];
				snprintf(name, sizeof(name), "%s-by-%s,%s", how_names[h],
					 who ? "b" : "a", queued_names[q]);
				t_compare_matrix(name, scenario_shutdown, T_ALL_TYPES,
						 T_ALL_MODES, T_ALL_DIRS, &sc);
			}
		}
	}
	t_compare_matrix("invalid_how_and_twice", scenario_invalid_how, T_ALL_TYPES,
			 T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("sigpipe_disposition", scenario_sigpipe_disposition, T_ALL_TYPES,
			 T_ALL_MODES, T_DIR_0_TO_1, NULL);
	t_compare_matrix("data_after_shut_wr", scenario_data_after_shut_wr, T_ALL_TYPES,
			 T_ALL_MODES, T_ALL_DIRS, NULL);
	return t_finish();
}
