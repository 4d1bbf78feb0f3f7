/*
 * cancel: recv, send and poll are pthread cancellation points.  A thread
 * blocked in one of them on the pair is cancelled; it must end with
 * PTHREAD_CANCELED, and the pair must then work as before (the cancelled
 * sleeper left no count, lock or reference behind: a send wakes nobody
 * stale, data goes through, close releases the peer).  Also a cancel
 * that is pending when the call starts.  Blocking sockets, every type,
 * both directions.
 */
#include "t_helpers.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

enum blocked_in { IN_RECV, IN_SEND, IN_POLL };

struct victim {
	int fd;
	enum blocked_in in;
	int pending; /* cancel requested before the call */
	pthread_barrier_t *ready;
};

static void *victim_main(void *arg)
{
	struct victim *v = arg;
	static char big[4096];
	if (v->pending) {
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		pthread_barrier_wait(v->ready); /* the main thread cancels now */
		pthread_barrier_wait(v->ready);
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	} else {
		pthread_barrier_wait(v->ready);
	}
	char buf[64];
	struct pollfd p = {v->fd, POLLIN, 0};
	switch (v->in) {
	case IN_RECV:
		usp_recv(v->fd, buf, sizeof(buf), 0);
		break;
	case IN_SEND:
		for (;;) /* until the buffer is full and it blocks */
			usp_send(v->fd, big, sizeof(big), MSG_NOSIGNAL);
		break;
	case IN_POLL:
		usp_poll(&p, 1, -1);
		break;
	}
	return (void *)1; /* not cancelled */
}

static const char *in_name(enum blocked_in in)
{
	return in == IN_RECV ? "recv" : in == IN_SEND ? "send" : "poll";
}

static void run_case(struct t_ctx *c, enum blocked_in in, int pending)
{
	pthread_barrier_t ready;
	pthread_barrier_init(&ready, NULL, 2);
	struct victim v = {c->b, in, pending, &ready};
	pthread_t th;
	t_thread_start(&th, victim_main, &v);
	pthread_barrier_wait(&ready);
	if (pending) {
		pthread_cancel(th);
		pthread_barrier_wait(&ready);
	} else {
		t_sleep_ms(50); /* asleep in the call by now */
		pthread_cancel(th);
	}
	void *ret = NULL;
	pthread_join(th, &ret);
	pthread_barrier_destroy(&ready);
	t_log(c, "%s%s: cancelled=%d", pending ? "pending cancel, " : "", in_name(in),
	      ret == PTHREAD_CANCELED);
	/* the pair carries on */
	if (in == IN_SEND) {
		/* drain what the victim queued (not traced: only that it
		 * ends, and that nothing is left) */
		static char sink[65536];
		int n = 0;
		while (n < 10000 && usp_recv(c->a, sink, sizeof(sink), MSG_DONTWAIT) > 0)
			n++;
	}
	t_send(c, c->a, "after", 5, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_send(c, c->b, "back", 4, MSG_DONTWAIT);
	t_recv(c, c->a, 100, MSG_DONTWAIT);
	t_poll_both(c);
	t_close(c, c->b);
	t_poll1(c, c->a, POLLIN | POLLOUT | POLLRDHUP);
	t_recv(c, c->a, 100, MSG_DONTWAIT);
}

static void scenario_recv(struct t_ctx *c)
{
	run_case(c, IN_RECV, 0);
}

static void scenario_send(struct t_ctx *c)
{
	run_case(c, IN_SEND, 0);
}

static void scenario_poll(struct t_ctx *c)
{
	run_case(c, IN_POLL, 0);
}

static void scenario_pending(struct t_ctx *c)
{
	run_case(c, IN_RECV, 1);
}

int main(void)
{
	t_init("cancel");
	t_compare_matrix("blocked recv", scenario_recv, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("blocked send", scenario_send, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("blocked poll", scenario_poll, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("pending cancel", scenario_pending, T_ALL_TYPES, T_BLOCKING, T_ALL_DIRS,
			 NULL);
	return t_finish();
}
