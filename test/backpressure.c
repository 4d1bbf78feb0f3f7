/*
 * backpressure: fill one direction without blocking until EAGAIN, with
 * send sizes 1, 16, 256, 4096 and 65536, at the default buffer size and
 * after SO_SNDBUF 0, 4608, 100000 and 10000000 (and one SO_RCVBUF case).
 * Compared between kernel and uspair: how many sends succeed, every partial
 * write, after which send POLLOUT drops, SIOCOUTQ/FIONREAD when full, after
 * how much draining POLLOUT comes back, that every byte arrives in order,
 * and that a second fill behaves like the first.
 */
#include "t_helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SENDS 200000

struct fill_case {
	size_t size;
	int sndbuf;	/* -1: leave the default */
	int rcvbuf;	/* -1: leave the default (set on the receiver) */
	int rounds;	/* fill/drain rounds: 1 or 2 */
};

static int writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	return usp_poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/* Fills a -> b; returns the number of bytes accepted. */
static size_t fill(struct t_ctx *c, const struct fill_case *fc, const char *round)
{
	int flags = c->nonblock ? 0 : MSG_DONTWAIT;
	unsigned char *buf = malloc(fc->size);
	size_t offset = 0;
	long sends = 0;
	long dropped_at = -1;
	ssize_t r = 0;
	int err = 0;

	if (!buf)
		t_die("out of memory");
	t_log(c, "%s: POLLOUT before filling: %d", round, writable(c->a));
	for (;;) {
		if (sends == MAX_SENDS) {
			t_log(c, "%s: still accepting after %d sends (%zu bytes)", round,
			      MAX_SENDS, offset);
			break;
		}
		t_fill_pattern(buf, fc->size, 1, offset);
		errno = 0;
		r = usp_send(c->a, buf, fc->size, flags);
		err = errno;
		if (r < 0)
			break;
		sends++;
		offset += (size_t)r;
		if ((size_t)r != fc->size)
			t_log(c, "%s: send #%ld of %zu wrote %zd (partial)", round, sends,
			      fc->size, r);
		if (dropped_at < 0 && !writable(c->a))
			dropped_at = sends;
	}
	char res[64];
	t_fmt_result(res, sizeof(res), r, err);
	t_log(c, "%s: %ld sends of %zu succeeded, %zu bytes, then send %s; POLLOUT dropped after send #%ld",
	      round, sends, fc->size, offset, r < 0 ? res : "(not tried)", dropped_at);
	free(buf);
	return offset;
}

/* Drains b; checks the bytes; notes when a becomes writable again. */
static void drain(struct t_ctx *c, const struct fill_case *fc, size_t expected,
		  const char *round, int check_content)
{
	size_t chunk = fc->size < 4096 ? 4096 : fc->size;
	unsigned char *buf = malloc(chunk);
	unsigned char *want = malloc(chunk);
	size_t offset = 0;
	long receives = 0;
	long writable_after = writable(c->a) ? 0 : -1;
	size_t writable_after_bytes = 0;
	long bad_at = -1;
	ssize_t r;
	int err;

	if (!buf || !want)
		t_die("out of memory");
	/* receive in the sender's unit so that POLLOUT's return is precise */
	size_t unit = c->type == SOCK_STREAM ? fc->size : chunk;
	for (;;) {
		errno = 0;
		r = usp_recv(c->b, buf, unit, MSG_DONTWAIT);
		err = errno;
		if (r <= 0)
			break;
		t_fill_pattern(want, (size_t)r, 1, offset);
		if (check_content && bad_at < 0 && memcmp(buf, want, (size_t)r) != 0)
			bad_at = (long)offset;
		offset += (size_t)r;
		receives++;
		if (writable_after < 0 && writable(c->a)) {
			writable_after = receives;
			writable_after_bytes = offset;
		}
		if (receives > 2 * MAX_SENDS)
			break;
	}
	char res[64];
	t_fmt_result(res, sizeof(res), r, err);
	t_log(c, "%s: drained %zu of %zu bytes in %ld receives, then recv %s; "
	      "POLLOUT back after %ld receives (%zu bytes); first bad byte at %ld",
	      round, offset, expected, receives, res, writable_after,
	      writable_after_bytes, bad_at);
	free(buf);
	free(want);
}

static void scenario_fill(struct t_ctx *c)
{
	const struct fill_case *fc = c->user;
	if (fc->sndbuf >= 0) {
		t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, fc->sndbuf, "SO_SNDBUF");
		t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	}
	if (fc->rcvbuf >= 0) {
		t_setsockopt_int(c, c->b, SOL_SOCKET, SO_RCVBUF, fc->rcvbuf, "SO_RCVBUF");
		t_getsockopt_int(c, c->b, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF");
	}
	size_t sent = fill(c, fc, "fill 1");
	t_queues(c);
	t_poll1(c, c->a, POLLOUT);
	t_poll1(c, c->b, POLLIN | POLLOUT);
	/* the reverse direction is unaffected */
	t_send(c, c->b, "rev", 3, MSG_DONTWAIT);
	t_recv(c, c->a, 10, MSG_DONTWAIT);
	drain(c, fc, sent, "drain 1", 1);
	t_queues(c);
	t_poll1(c, c->a, POLLOUT);
	if (fc->rounds < 2)
		return;
	sent = fill(c, fc, "fill 2");
	drain(c, fc, sent, "drain 2", 1);
	t_queues(c);
}

/* Filling with mixed sizes, then draining part way and filling again. */
static void scenario_refill(struct t_ctx *c)
{
	int flags = c->nonblock ? 0 : MSG_DONTWAIT;
	static const size_t sizes[] = { 1, 700, 3000, 20000 };
	long ok = 0;
	for (int i = 0; i < 100000; i++) {
		errno = 0;
		ssize_t r = usp_send(c->a, (char[20000]){ 0 }, sizes[i % 4], flags);
		if (r < 0) {
			t_log(c, "mixed fill: %ld sends ok, then -1 %s", ok, t_errno_name(errno));
			break;
		}
		if ((size_t)r != sizes[i % 4])
			t_log(c, "mixed fill: send #%d of %zu wrote %zd", i + 1, sizes[i % 4], r);
		ok++;
	}
	t_queues(c);
	for (int i = 0; i < 6; i++)
		t_recv(c, c->b, 5000, MSG_DONTWAIT);
	t_queues(c);
	t_poll1(c, c->a, POLLOUT);
	for (int i = 0; i < 10; i++)
		t_send_pattern(c, c->a, 1000, (unsigned)i, flags);
	t_queues(c);
}

/* Changing SO_SNDBUF while the queue is full moves the limit at once. */
static void scenario_resize_while_full(struct t_ctx *c)
{
	int flags = c->nonblock ? 0 : MSG_DONTWAIT;
	struct fill_case fc = { 1000, -1, -1, 1 };
	size_t sent = fill(c, &fc, "fill at default");
	t_queues(c);
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 1000000, "SO_SNDBUF");
	t_poll1(c, c->a, POLLOUT);
	sent += fill(c, &fc, "fill after growing");
	t_queues(c);
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 4608, "SO_SNDBUF");
	t_poll1(c, c->a, POLLOUT);
	t_send_pattern(c, c->a, 1000, 9, flags);
	/* drain part: still above the new, small limit */
	for (int i = 0; i < 20; i++)
		usp_recv(c->b, (char[1000]){ 0 }, 1000, MSG_DONTWAIT);
	t_poll1(c, c->a, POLLOUT);
	t_send_pattern(c, c->a, 1000, 10, flags);
	t_queues(c);
	/* two fills restarted the pattern: no content check here */
	drain(c, &fc, sent - 20 * 1000, "drain", 0);
	t_poll1(c, c->a, POLLOUT);
	t_send_pattern(c, c->a, 1000, 11, flags);
	t_queues(c);
}

int main(void)
{
	static const size_t sizes[] = { 1, 16, 256, 4096, 65536 };
	static const int sndbufs[] = { -1, 0, 4608, 100000, 10000000 };
	t_init("backpressure");
	for (size_t b = 0; b < sizeof(sndbufs) / sizeof(sndbufs[0]); b++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			/* The largest buffer takes ~10^4 small sends to fill: one
			 * round, one direction, to keep the test fast. */
			int huge = sndbufs[b] >= 1000000;
			struct fill_case fc = { sizes[s], sndbufs[b], -1, huge ? 1 : 2 };
			char name[96];
			if (sndbufs[b] < 0)
				snprintf(name, sizeof(name), "fill size=%zu default SO_SNDBUF",
					 sizes[s]);
			else
				snprintf(name, sizeof(name), "fill size=%zu SO_SNDBUF=%d",
					 sizes[s], sndbufs[b]);
			t_compare_matrix(name, scenario_fill, T_ALL_TYPES, T_ALL_MODES,
					 huge && sizes[s] < 256 ? T_DIR_0_TO_1 : T_ALL_DIRS, &fc);
		}
	}
	static const struct fill_case rcvbuf_case = { 4096, -1, 4608, 2 };
	t_compare_matrix("fill size=4096 receiver SO_RCVBUF=4608", scenario_fill,
			 T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, (void *)&rcvbuf_case);
	t_compare_matrix("resize while full", scenario_resize_while_full, T_ALL_TYPES,
			 T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("mixed refill", scenario_refill, T_ALL_TYPES, T_ALL_MODES,
			 T_ALL_DIRS, NULL);
	return t_finish();
}
