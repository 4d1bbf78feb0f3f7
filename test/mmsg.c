/*
 * sendmmsg(2) and recvmmsg(2), compared with a kernel socketpair: batches
 * of records of several sizes, a batch cut short by a full buffer (STREAM
 * stops at the partial entry, an error only when nothing was sent),
 * MSG_WAITFORONE, the timeout (looked at only between messages), vlen 0,
 * a pending SO_ERROR, and EOF after a batch.
 */
#include "t_helpers.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 8

static char bufs[BATCH][70000];

static void send_batch(struct t_ctx *c, int fd, const size_t *lens, unsigned n, int flags)
{
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	memset(m, 0, sizeof(m));
	for (unsigned i = 0; i < n; i++) {
		t_fill_pattern(bufs[i], lens[i], i + 1, 0);
		iov[i] = (struct iovec){ bufs[i], lens[i] };
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
		m[i].msg_len = 12345;
	}
	errno = 0;
	int r = usp_sendmmsg(fd, m, n, flags);
	char res[64];
	t_fmt_result(res, sizeof(res), r, errno);
	t_log(c, "sendmmsg(%s, %u entries, flags %#x) %s", t_fd_name(c, fd), n, flags, res);
	for (unsigned i = 0; i < n; i++)
		t_log(c, "  entry %u msg_len %u", i, m[i].msg_len);
}

static void recv_batch(struct t_ctx *c, int fd, unsigned n, size_t cap, int flags,
		       long timeout_ms)
{
	static char rbufs[BATCH][70000];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];
	memset(m, 0, sizeof(m));
	for (unsigned i = 0; i < n; i++) {
		iov[i] = (struct iovec){ rbufs[i], cap };
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
		m[i].msg_len = 12345;
	}
	struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
	errno = 0;
	int r = usp_recvmmsg(fd, m, n, flags, timeout_ms >= 0 ? &ts : NULL);
	char res[64];
	t_fmt_result(res, sizeof(res), r, errno);
	t_log(c, "recvmmsg(%s, %u entries, cap %zu, flags %#x, timeout %ld) %s", t_fd_name(c, fd),
	      n, cap, flags, timeout_ms, res);
	for (int i = 0; i < r; i++) {
		char fl[96], bytes[160];
		t_fmt_msg_flags(fl, sizeof(fl), m[i].msg_hdr.msg_flags);
		t_fmt_bytes(bytes, sizeof(bytes), rbufs[i], m[i].msg_len < cap ? m[i].msg_len : cap);
		t_log(c, "  entry %d msg_len %u flags %s data %s", i, m[i].msg_len, fl, bytes);
	}
	if (timeout_ms >= 0 && r >= 0)
		t_log(c, "  timeout left: %s", ts.tv_sec == 0 && ts.tv_nsec == 0 ? "none" : "some");
}

static void scenario_batches(struct t_ctx *c)
{
	const size_t lens[BATCH] = { 1, 0, 100, 4096, 3, 60000, 7, 200 };
	send_batch(c, c->a, lens, 5, 0);
	t_queues(c);
	recv_batch(c, c->b, 3, 5000, MSG_DONTWAIT, -1);
	recv_batch(c, c->b, 8, 50, MSG_DONTWAIT, -1);
	recv_batch(c, c->b, 8, 5000, MSG_DONTWAIT, -1);
	send_batch(c, c->a, lens, 0, 0);
	recv_batch(c, c->b, 0, 100, MSG_DONTWAIT, -1);
	send_batch(c, c->a, lens + 5, 3, MSG_DONTWAIT);
	recv_batch(c, c->b, 8, 100000, MSG_WAITFORONE, -1);
	send_batch(c, c->a, lens, 2, 0);
	recv_batch(c, c->b, 8, 100, MSG_DONTWAIT | MSG_PEEK, -1);
	recv_batch(c, c->b, 1, 100, MSG_DONTWAIT, 1000);
	recv_batch(c, c->b, 4, 100, MSG_DONTWAIT, 1000);
	recv_batch(c, c->b, 4, 100, MSG_DONTWAIT, 1000);
}

/* A batch that fills the buffer: the entries that fit, then a short one. */
static void scenario_full(struct t_ctx *c)
{
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 40000, "SO_SNDBUF");
	const size_t lens[BATCH] = { 20000, 20000, 20000, 20000, 20000, 20000, 20000, 20000 };
	send_batch(c, c->a, lens, 8, MSG_DONTWAIT);
	send_batch(c, c->a, lens, 8, MSG_DONTWAIT);
	t_queues(c);
	recv_batch(c, c->b, 8, 70000, MSG_DONTWAIT, -1);
	recv_batch(c, c->b, 8, 70000, MSG_DONTWAIT, -1);
}

static void scenario_end(struct t_ctx *c)
{
	const size_t lens[BATCH] = { 5, 6, 7 };
	send_batch(c, c->a, lens, 3, 0);
	t_close(c, c->a);
	recv_batch(c, c->b, 8, 100, MSG_DONTWAIT, -1);
	recv_batch(c, c->b, 8, 100, MSG_DONTWAIT, -1);
	t_so_error(c, c->b);
	send_batch(c, c->b, lens, 2, MSG_NOSIGNAL);
	send_batch(c, c->b, lens, 2, MSG_NOSIGNAL);
}

int main(void)
{
	t_init("mmsg");
	t_watchdog(60, "mmsg");
	t_compare_matrix("batches", scenario_batches, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("full", scenario_full, T_ALL_TYPES, T_NONBLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("end", scenario_end, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	return t_finish();
}
