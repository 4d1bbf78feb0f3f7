/*
 * Ancillary data, compared with a kernel socketpair step by step:
 * SCM_RIGHTS (1 to SCM_MAX_FD descriptors and the errors beyond, several
 * control messages in one, short control buffers and MSG_CTRUNC with the
 * descriptors that did not fit closed, MSG_CMSG_CLOEXEC, MSG_PEEK copies,
 * where a STREAM read stops around descriptors), descriptors of every
 * kind including uspair endpoints and the pair's own other end, in-flight
 * descriptors closed with the pair and in a cycle, SO_PASSCRED and
 * SCM_CREDENTIALS (explicit ones with the kernel's permission answer),
 * SO_PEERCRED, and descriptors passed between processes.
 *
 * A received descriptor is described by what it is (which of the
 * scenario's files, its FD_CLOEXEC flag), never by its number.
 */
#include "t_helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#define MAX_FDS 253
#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

/* Is fd a pidfd of this process? */
static const char *pidfd_owner(int fd)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return "not open";
	const char *what = "not a pidfd";
	while (fgets(line, sizeof(line), f)) {
		int pid;
		if (sscanf(line, "Pid: %d", &pid) == 1) {
			what = pid == getpid() ? "pidfd of ours" : "pidfd of another";
			break;
		}
	}
	fclose(f);
	return what;
}

/* ---- helpers ---- */

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Files a scenario sends, so that received descriptors can be named. */
struct known {
	int count;
	struct {
		dev_t dev;
		ino_t ino;
		char name[24];
	} f[8];
};

static void know(struct known *k, int fd, const char *name)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || k->count == 8)
		t_die("fstat: %s", strerror(errno));
	k->f[k->count].dev = st.st_dev;
	k->f[k->count].ino = st.st_ino;
	snprintf(k->f[k->count].name, sizeof(k->f[k->count].name), "%s", name);
	k->count++;
}

static const char *name_of(const struct known *k, int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return "not open";
	for (int i = 0; k && i < k->count; i++)
		if (k->f[i].dev == st.st_dev && k->f[i].ino == st.st_ino)
			return k->f[i].name;
	return "unknown";
}

union control {
	struct cmsghdr align;
	unsigned char buf[CMSG_SPACE(sizeof(int) * (MAX_FDS + 8)) + 256];
};

/* Builds control messages one after another. */
struct ctl_builder {
	union control c;
	size_t len;
};

static void add_cmsg(struct ctl_builder *b, int level, int type, const void *data,
		     size_t len, size_t cmsg_len)
{
	struct cmsghdr h = { .cmsg_len = cmsg_len ? cmsg_len : CMSG_LEN(len),
			     .cmsg_level = level,
			     .cmsg_type = type };
	memcpy(b->c.buf + b->len, &h, sizeof(h));
	if (len)
		memcpy(b->c.buf + b->len + CMSG_LEN(0), data, len);
	b->len += CMSG_SPACE(len);
}

static void add_fds(struct ctl_builder *b, const int *fds, int n)
{
	add_cmsg(b, SOL_SOCKET, SCM_RIGHTS, fds, sizeof(int) * (size_t)n, 0);
}

static ssize_t send_ctl(int fd, const char *data, const void *ctl, size_t ctllen,
			int flags)
{
	struct iovec iov = { (void *)data, strlen(data) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = (void *)ctl, .msg_controllen = ctllen };
	return usp_sendmsg(fd, &msg, flags | MSG_DONTWAIT);
}

static void record_send(struct t_ctx *c, const char *what, int fd, const char *data,
			const struct ctl_builder *b, int flags)
{
	errno = 0;
	ssize_t r = send_ctl(fd, data, b ? b->c.buf : NULL, b ? b->len : 0, flags);
	t_record(c, what, r, errno);
}

/*
 * recvmsg with a data buffer of `cap` bytes and a control buffer of
 * `ctl_cap` bytes (SIZE_MAX: no control buffer at all); records the
 * result, the data, msg_flags, msg_controllen and every control message.
 * Received descriptors are closed unless keep is given (then the first
 * one is returned there).
 */
static ssize_t recv_ctl(struct t_ctx *c, int fd, size_t cap, size_t ctl_cap, int flags,
			const struct known *k, int *keep)
{
	union control ctl;
	char data[512];
	memset(&ctl, 0x5a, sizeof(ctl));
	struct iovec iov = { data, cap < sizeof(data) ? cap : sizeof(data) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl_cap == SIZE_MAX ? NULL : ctl.buf,
			      .msg_controllen = ctl_cap == SIZE_MAX ? 0 : ctl_cap };
	errno = 0;
	ssize_t r = usp_recvmsg(fd, &msg, flags | MSG_DONTWAIT);
	int err = errno;
	char res[64], fl[128], bytes[160];
	t_fmt_result(res, sizeof(res), r, err);
	if (r < 0) {
		t_log(c, "recvmsg(%s, cap %zu, control %zd) %s", t_fd_name(c, fd), cap,
		      ctl_cap == SIZE_MAX ? (ssize_t)-1 : (ssize_t)ctl_cap, res);
		return r;
	}
	t_fmt_msg_flags(fl, sizeof(fl), msg.msg_flags);
	t_fmt_bytes(bytes, sizeof(bytes), data, (size_t)r < sizeof(data) ? (size_t)r : sizeof(data));
	t_log(c, "recvmsg(%s, cap %zu, control %zd) %s data %s flags %s controllen %zu",
	      t_fd_name(c, fd), cap, ctl_cap == SIZE_MAX ? (ssize_t)-1 : (ssize_t)ctl_cap,
	      res, bytes, fl, (size_t)msg.msg_controllen);
	if (keep)
		*keep = -1;
	if (!msg.msg_control || msg.msg_controllen < sizeof(struct cmsghdr))
		return r;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		t_log(c, "  cmsg level %d type %d len %zu", cm->cmsg_level, cm->cmsg_type,
		      (size_t)cm->cmsg_len);
		if (cm->cmsg_level != SOL_SOCKET)
			continue;
		if (cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len >= CMSG_LEN(0)) {
			size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < n; i++) {
				int rfd;
				memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				int fdfl = fcntl(rfd, F_GETFD);
				if (i < 4 || i + 2 >= n)
					t_log(c, "  fd #%zu: %s, FD_CLOEXEC %d", i, name_of(k, rfd),
					      fdfl < 0 ? -1 : (fdfl & FD_CLOEXEC) != 0);
				if (keep && *keep < 0)
					*keep = rfd;
				else
					usp_close(rfd);
			}
		} else if (cm->cmsg_type == SCM_PIDFD && cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
			int pfd;
			memcpy(&pfd, CMSG_DATA(cm), sizeof(pfd));
			t_log(c, "  SCM_PIDFD: %s", pidfd_owner(pfd));
			close(pfd);
		} else if (cm->cmsg_type == SCM_CREDENTIALS &&
			   cm->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(cm), sizeof(cr));
			t_log(c, "  credentials pid %s uid %d gid %d",
			      cr.pid == getpid() ? "ours" : cr.pid == 0 ? "0" : "other",
			      (int)cr.uid, (int)cr.gid);
		}
	}
	return r;
}

static void drain(struct t_ctx *c, int fd)
{
	for (int i = 0; i < 300; i++)
		if (recv_ctl(c, fd, 512, sizeof(union control), 0, NULL, NULL) < 0)
			break;
}

static void make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		t_die("pipe2: %s", strerror(errno));
}

/* ---- SCM_RIGHTS ---- */

static void scenario_counts(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct known k = { 0 };
	know(&k, p[0], "pipe_r");
	know(&k, p[1], "pipe_w");
	int fds[MAX_FDS + 1];
	for (int i = 0; i <= MAX_FDS; i++)
		fds[i] = p[i & 1];
	int before = open_fds();
	const int counts[] = { 1, 2, 10, MAX_FDS - 1, MAX_FDS, MAX_FDS + 1 };
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct ctl_builder b = { .len = 0 };
		add_fds(&b, fds, counts[i]);
		char what[64];
		snprintf(what, sizeof(what), "sendmsg(a, %d fds)", counts[i]);
		record_send(c, what, c->a, "n", &b, 0);
		recv_ctl(c, c->b, 16, sizeof(union control), 0, &k, NULL);
	}
	/* split over several control messages: at most SCM_MAX_FD in all */
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, fds, 200);
	add_fds(&b, fds, 53);
	record_send(c, "sendmsg(a, 200+53 fds)", c->a, "split", &b, 0);
	recv_ctl(c, c->b, 16, sizeof(union control), 0, &k, NULL);
	b.len = 0;
	add_fds(&b, fds, 200);
	add_fds(&b, fds, 54);
	record_send(c, "sendmsg(a, 200+54 fds)", c->a, "split", &b, 0);
	recv_ctl(c, c->b, 16, sizeof(union control), 0, &k, NULL);
	t_log(c, "descriptors left open: %d", open_fds() - before);
	close(p[0]);
	close(p[1]);
}

static void scenario_errors(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, (int[]){ p[0], 1000000 }, 2);
	record_send(c, "sendmsg(a, SCM_RIGHTS{pipe_r, bad})", c->a, "x", &b, 0);
	b.len = 0;
	add_fds(&b, (int[]){ -1 }, 1);
	record_send(c, "sendmsg(a, SCM_RIGHTS{-1})", c->a, "x", &b, 0);
	b.len = 0;
	add_fds(&b, NULL, 0);
	record_send(c, "sendmsg(a, SCM_RIGHTS{})", c->a, "empty rights", &b, 0);
	b.len = 0;
	add_cmsg(&b, SOL_SOCKET, SCM_RIGHTS, (int[]){ p[0] }, sizeof(int), 8);
	record_send(c, "sendmsg(a, cmsg_len 8)", c->a, "x", &b, 0);
	b.len = 0;
	add_cmsg(&b, SOL_SOCKET, SCM_RIGHTS, (int[]){ p[0] }, sizeof(int), 4096);
	record_send(c, "sendmsg(a, cmsg_len past the buffer)", c->a, "x", &b, 0);
	b.len = 0;
	add_cmsg(&b, SOL_SOCKET, 77, (int[]){ 0 }, sizeof(int), 0);
	record_send(c, "sendmsg(a, unknown SOL_SOCKET type)", c->a, "x", &b, 0);
	b.len = 0;
	add_cmsg(&b, SOL_IP, 77, (int[]){ 0 }, sizeof(int), 0);
	record_send(c, "sendmsg(a, other level, ignored)", c->a, "other level", &b, 0);
	b.len = 0;
	add_cmsg(&b, SOL_SOCKET, SCM_CREDENTIALS, (int[]){ 0 }, sizeof(int), 0);
	record_send(c, "sendmsg(a, short SCM_CREDENTIALS)", c->a, "x", &b, 0);
	/* a short control buffer is no control message at all */
	add_fds(&b, (int[]){ p[0] }, 1);
	errno = 0;
	t_record(c, "sendmsg(a, controllen 8)", send_ctl(c->a, "short ctl", b.c.buf, 8, 0), errno);
	errno = 0;
	t_record(c, "sendmsg(a, control NULL, controllen 16)", send_ctl(c->a, "x", NULL, 16, 0),
		 errno);
	errno = 0;
	t_record(c, "sendmsg(a, controllen > INT_MAX)",
		 send_ctl(c->a, "x", b.c.buf, (size_t)INT_MAX + 1, 0), errno);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, NULL, NULL);
	drain(c, c->b);
	/* the control buffer is checked before the socket's state */
	t_shutdown(c, c->a, SHUT_WR);
	b.len = 0;
	add_fds(&b, (int[]){ 1000000 }, 1);
	record_send(c, "sendmsg(a shut down, bad fd)", c->a, "x", &b, MSG_NOSIGNAL);
	b.len = 0;
	add_fds(&b, (int[]){ p[0] }, 1);
	record_send(c, "sendmsg(a shut down, good fd)", c->a, "x", &b, MSG_NOSIGNAL);
	close(p[0]);
	close(p[1]);
}

static void scenario_truncation(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct known k = { 0 };
	know(&k, p[0], "pipe_r");
	know(&k, p[1], "pipe_w");
	int before = open_fds();
	const size_t caps[] = { SIZE_MAX, 0, 8, sizeof(struct cmsghdr), CMSG_LEN(0) + 3,
				CMSG_LEN(sizeof(int)), CMSG_SPACE(sizeof(int)) - 1,
				CMSG_SPACE(sizeof(int)), CMSG_LEN(2 * sizeof(int)),
				CMSG_SPACE(3 * sizeof(int)) };
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		struct ctl_builder b = { .len = 0 };
		add_fds(&b, (int[]){ p[0], p[1], p[0] }, 3);
		record_send(c, "sendmsg(a, 3 fds)", c->a, "three", &b, 0);
		recv_ctl(c, c->b, 64, caps[i], 0, &k, NULL);
	}
	t_log(c, "descriptors left open: %d", open_fds() - before);
	close(p[0]);
	close(p[1]);
}

static void scenario_cloexec_and_peek(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct known k = { 0 };
	know(&k, p[0], "pipe_r");
	int before = open_fds();
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, (int[]){ p[0] }, 1);
	record_send(c, "sendmsg(a, fd)", c->a, "one", &b, 0);
	record_send(c, "sendmsg(a, fd)", c->a, "two", &b, 0);
	recv_ctl(c, c->b, 64, sizeof(union control), MSG_PEEK, &k, NULL);
	recv_ctl(c, c->b, 64, sizeof(union control), MSG_PEEK | MSG_CMSG_CLOEXEC, &k, NULL);
	recv_ctl(c, c->b, 2, sizeof(union control), MSG_CMSG_CLOEXEC, &k, NULL);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, &k, NULL);
	recv_ctl(c, c->b, 64, sizeof(union control), MSG_PEEK, &k, NULL);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, &k, NULL);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, &k, NULL);
	t_log(c, "descriptors left open: %d", open_fds() - before);
	close(p[0]);
	close(p[1]);
}

/* Where a read stops: after descriptors, never gluing across them. */
static void scenario_boundaries(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct known k = { 0 };
	know(&k, p[0], "pipe_r");
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, (int[]){ p[0] }, 1);
	t_send(c, c->a, "plain1", 6, 0);
	record_send(c, "sendmsg(a, fd)", c->a, "withfd", &b, 0);
	t_send(c, c->a, "plain2", 6, 0);
	t_send(c, c->a, "plain3", 6, 0);
	record_send(c, "sendmsg(a, fd)", c->a, "fdA", &b, 0);
	record_send(c, "sendmsg(a, fd)", c->a, "fdB", &b, 0);
	t_send(c, c->a, "", 0, 0);
	t_send(c, c->a, "tail", 4, 0);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_queues(c);
	for (int i = 0; i < 9; i++)
		recv_ctl(c, c->b, 100, sizeof(union control), 0, &k, NULL);
	/* a large message with descriptors, read in pieces */
	char big[300];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	record_send(c, "sendmsg(a, 299 bytes + fd)", c->a, big, &b, 0);
	t_send(c, c->a, "after", 5, 0);
	recv_ctl(c, c->b, 100, sizeof(union control), MSG_PEEK, &k, NULL);
	recv_ctl(c, c->b, 100, sizeof(union control), 0, &k, NULL);
	recv_ctl(c, c->b, 100, sizeof(union control), 0, &k, NULL);
	recv_ctl(c, c->b, 512, sizeof(union control), 0, &k, NULL);
	recv_ctl(c, c->b, 512, sizeof(union control), 0, &k, NULL);
	/* t_recv with plain recv(): the descriptors are dropped */
	record_send(c, "sendmsg(a, fd)", c->a, "dropped", &b, 0);
	t_recv(c, c->b, 64, MSG_DONTWAIT);
	close(p[0]);
	close(p[1]);
}

/* A descriptor larger than a STREAM skb: it goes in pieces. */
static void scenario_large(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct known k = { 0 };
	know(&k, p[0], "pipe_r");
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 1 << 20, "SO_SNDBUF");
	size_t len = 100000;
	char *buf = malloc(len);
	t_fill_pattern(buf, len, 7, 0);
	union control ctl;
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, (int[]){ p[0] }, 1);
	memcpy(&ctl, &b.c, sizeof(ctl));
	struct iovec iov = { buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = b.len };
	errno = 0;
	t_record(c, "sendmsg(a, 100000 bytes + fd)", usp_sendmsg(c->a, &msg, MSG_DONTWAIT), errno);
	size_t total = 0;
	for (int i = 0; i < 8 && total < len; i++) {
		char *rbuf = malloc(len);
		union control rctl;
		struct iovec riov = { rbuf, len };
		struct msghdr rmsg = { .msg_iov = &riov, .msg_iovlen = 1,
				       .msg_control = rctl.buf, .msg_controllen = sizeof(rctl) };
		errno = 0;
		ssize_t r = usp_recvmsg(c->b, &rmsg, MSG_DONTWAIT);
		int nfds = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&rmsg); cm; cm = CMSG_NXTHDR(&rmsg, cm))
			if (cm->cmsg_type == SCM_RIGHTS) {
				nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				for (int j = 0; j < nfds; j++) {
					int fd;
					memcpy(&fd, CMSG_DATA(cm) + j * sizeof(int), sizeof(fd));
					close(fd);
				}
			}
		bool same = r > 0 && memcmp(rbuf, buf + total, (size_t)r) == 0;
		/* STREAM: the kernel part of a record is one skb, a byte shorter
		 * than the kernel's (docs/DESIGN.md) - so record only that the
		 * descriptors come with the first piece and the bytes add up */
		if (c->type == SOCK_STREAM)
			t_log(c, "recvmsg: %s, %d fds, data intact %d", r > 0 ? "data" : "none",
			      nfds, same);
		else
			t_log(c, "recvmsg = %zd, %d fds, data intact %d, flags %x", r, nfds, same,
			      rmsg.msg_flags);
		free(rbuf);
		if (r <= 0)
			break;
		total += (size_t)r;
	}
	t_log(c, "total %zu", total);
	free(buf);
	close(p[0]);
	close(p[1]);
}

/* ---- uspair endpoints and the pair's own ends in flight ---- */

static void scenario_own_ends(struct t_ctx *c)
{
	struct known k = { 0 };
	know(&k, c->a, "a");
	know(&k, c->b, "b");
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, (int[]){ c->b, c->a }, 2);
	record_send(c, "sendmsg(a, {b, a})", c->a, "ends", &b, 0);
	int got = -1;
	recv_ctl(c, c->b, 64, sizeof(union control), 0, &k, &got);
	/* the received copy of b is b: close the original, use the copy */
	if (got >= 0) {
		t_name_fd(c, got, "b'");
		int old_b = c->b;
		t_close(c, old_b);
		c->b = got;
		t_send(c, c->a, "to b'", 5, 0);
		t_recv(c, c->b, 64, MSG_DONTWAIT);
		t_send(c, c->b, "from b'", 7, 0);
		t_recv(c, c->a, 64, MSG_DONTWAIT);
		t_poll_both(c);
		t_close(c, c->b);
		c->b = -1;
		t_sleep_ms(20);
		t_poll1(c, c->a, POLLIN | POLLOUT);
		t_recv(c, c->a, 64, MSG_DONTWAIT);
	}
}

/* An endpoint of another pair, sent, then closed by the sender: the
 * copy in flight keeps it open; the receiver's copy works. */
static void scenario_other_pair(struct t_ctx *c)
{
	int o[2];
	if (t_make_pair(c->kind, c->type, o) < 0)
		t_die("pair: %s", strerror(errno));
	t_name_fd(c, o[0], "o0");
	struct known k = { 0 };
	know(&k, o[1], "o1");
	t_send(c, o[0], "queued before", 13, MSG_DONTWAIT);
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, &o[1], 1);
	record_send(c, "sendmsg(a, {o1})", c->a, "other", &b, 0);
	usp_close(o[1]);
	t_log(c, "closed the sender's o1");
	t_sleep_ms(20);
	t_poll1(c, o[0], POLLIN | POLLOUT);
	int got = -1;
	recv_ctl(c, c->b, 64, sizeof(union control), 0, &k, &got);
	if (got >= 0) {
		t_name_fd(c, got, "o1'");
		t_recv(c, got, 64, MSG_DONTWAIT);
		t_send(c, o[0], "after", 5, MSG_DONTWAIT);
		t_recv(c, got, 64, MSG_DONTWAIT);
		t_send(c, got, "back", 4, MSG_DONTWAIT);
		t_recv(c, o[0], 64, MSG_DONTWAIT);
		t_close(c, got);
		t_sleep_ms(20);
		t_poll1(c, o[0], POLLIN | POLLOUT);
	}
}

/* Descriptors in unread messages are closed with the pair, also when an
 * endpoint is sent over itself (a cycle only the garbage collector sees). */
static void scenario_in_flight_closed(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, &p[1], 1);
	record_send(c, "sendmsg(a, {pipe_w})", c->a, "w", &b, 0);
	close(p[1]);
	t_close(c, c->a);
	t_close(c, c->b);
	c->a = c->b = -1;
	struct pollfd pf = { p[0], POLLIN, 0 };
	int r = poll(&pf, 1, 2000);
	t_log(c, "pipe read end after the pair closed: poll %d revents %x", r, pf.revents);
	close(p[0]);

	/* the cycle: b and a pipe's write end in b's own queue */
	int sv[2];
	if (t_make_pair(c->kind, c->type, sv) < 0)
		t_die("pair: %s", strerror(errno));
	make_pipe(p);
	b.len = 0;
	add_fds(&b, (int[]){ sv[1], p[1] }, 2);
	errno = 0;
	t_record(c, "sendmsg(sv0, {sv1, pipe_w})", send_ctl(sv[0], "cycle", b.c.buf, b.len, 0),
		 errno);
	close(p[1]);
	usp_close(sv[1]);
	usp_close(sv[0]);
	pf = (struct pollfd){ p[0], POLLIN, 0 };
	r = poll(&pf, 1, 2000);
	t_log(c, "pipe read end after the cycle closed: poll %d revents %x", r, pf.revents);
	close(p[0]);
}

/* ---- credentials ---- */

static void scenario_credentials(struct t_ctx *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	errno = 0;
	int r = usp_getsockopt(c->a, SOL_SOCKET, SO_PEERCRED, &cr, &len);
	t_log(c, "SO_PEERCRED = %d len %u pid %s uid %d gid %d", r, (unsigned)len,
	      cr.pid == getpid() ? "ours" : "other", (int)cr.uid, (int)cr.gid);
	t_send(c, c->a, "before", 6, 0);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED");
	t_send(c, c->a, "after1", 6, 0);
	t_send(c, c->a, "after2", 6, 0);
	struct ctl_builder b = { .len = 0 };
	struct ucred mine = { getpid(), getuid(), getgid() };
	add_cmsg(&b, SOL_SOCKET, SCM_CREDENTIALS, &mine, sizeof(mine), 0);
	record_send(c, "sendmsg(a, SCM_CREDENTIALS ours)", c->a, "explicit", &b, 0);
	b.len = 0;
	struct ucred nobody = { getpid(), 65534, 65534 };
	add_cmsg(&b, SOL_SOCKET, SCM_CREDENTIALS, &nobody, sizeof(nobody), 0);
	record_send(c, "sendmsg(a, SCM_CREDENTIALS uid 65534)", c->a, "nobody", &b, 0);
	b.len = 0;
	struct ucred nopid = { 0x3fffffff, getuid(), getgid() };
	add_cmsg(&b, SOL_SOCKET, SCM_CREDENTIALS, &nopid, sizeof(nopid), 0);
	record_send(c, "sendmsg(a, SCM_CREDENTIALS no such pid)", c->a, "nopid", &b, 0);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	for (int i = 0; i < 7; i++)
		recv_ctl(c, c->b, 100, sizeof(union control), 0, NULL, NULL);
	/* a short control buffer, and none */
	t_send(c, c->a, "short", 5, 0);
	recv_ctl(c, c->b, 100, CMSG_LEN(4), 0, NULL, NULL);
	t_send(c, c->a, "none", 4, 0);
	recv_ctl(c, c->b, 100, SIZE_MAX, 0, NULL, NULL);
	t_send(c, c->a, "peek", 4, 0);
	recv_ctl(c, c->b, 100, sizeof(union control), MSG_PEEK, NULL, NULL);
	recv_ctl(c, c->b, 2, sizeof(union control), 0, NULL, NULL);
	recv_ctl(c, c->b, 100, sizeof(union control), 0, NULL, NULL);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSCRED, 0, "SO_PASSCRED");
	t_send(c, c->a, "off", 3, 0);
	recv_ctl(c, c->b, 100, sizeof(union control), 0, NULL, NULL);
	/* the sender's own SO_PASSCRED (a DGRAM sender gets a name) */
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	t_send(c, c->a, "sender", 6, 0);
	recv_ctl(c, c->b, 100, sizeof(union control), 0, NULL, NULL);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	errno = 0;
	r = usp_getsockname(c->a, (struct sockaddr *)&ss, &sl);
	t_log(c, "getsockname(a) = %d, length %s", r, sl > sizeof(sa_family_t) ? "named" : "unnamed");
}

/* The other options that ask for or describe ancillary data. */
static void scenario_options(struct t_ctx *c)
{
	struct linger lg = { 1, 5 };
	errno = 0;
	t_record(c, "setsockopt(a, SO_LINGER {1,5})",
		 usp_setsockopt(c->a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), errno);
	memset(&lg, 0, sizeof(lg));
	socklen_t len = sizeof(lg);
	errno = 0;
	int r = usp_getsockopt(c->a, SOL_SOCKET, SO_LINGER, &lg, &len);
	t_log(c, "getsockopt(a, SO_LINGER) = %d {%d,%d} len %u", r, lg.l_onoff, lg.l_linger,
	      (unsigned)len);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSSEC, 1, "SO_PASSSEC");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PASSSEC, "SO_PASSSEC");
	t_send(c, c->a, "sec", 3, 0);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, NULL, NULL);
	char label[256];
	len = sizeof(label);
	errno = 0;
	r = usp_getsockopt(c->a, SOL_SOCKET, SO_PEERSEC, label, &len);
	t_record(c, "getsockopt(a, SO_PEERSEC)", r, errno);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSSEC, 0, "SO_PASSSEC");
	int pfd = -1;
	len = sizeof(pfd);
	errno = 0;
	r = usp_getsockopt(c->a, SOL_SOCKET, SO_PEERPIDFD, &pfd, &len);
	t_log(c, "getsockopt(a, SO_PEERPIDFD) = %d%s %s", r, r < 0 ? t_errno_name(errno) : "",
	      r == 0 ? pidfd_owner(pfd) : "-");
	if (r == 0)
		close(pfd);
	t_send(c, c->a, "before", 6, 0);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSPIDFD, 1, "SO_PASSPIDFD");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PASSPIDFD, "SO_PASSPIDFD");
	t_send(c, c->a, "after", 5, 0);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, NULL, NULL);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, NULL, NULL);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	t_send(c, c->a, "both", 4, 0);
	recv_ctl(c, c->b, 64, sizeof(union control), 0, NULL, NULL);
}

/* Permission answers for a process without privileges: the FORCE buffer
 * options and explicit credentials that are not its own. */
static void scenario_unprivileged(struct t_ctx *c)
{
	if (getuid() != 0) {
		t_log(c, "not root: nothing to drop");
		return;
	}
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	int out[2];
	if (pipe(out) < 0)
		t_die("pipe: %s", strerror(errno));
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(10);
		close(out[0]);
		FILE *f = fdopen(out[1], "w");
		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		int v = 100000;
		errno = 0;
		int r = usp_setsockopt(c->a, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v));
		fprintf(f, "SO_SNDBUFFORCE = %d %s\n", r, r < 0 ? t_errno_name(errno) : "");
		errno = 0;
		r = usp_setsockopt(c->a, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v));
		fprintf(f, "SO_RCVBUFFORCE = %d %s\n", r, r < 0 ? t_errno_name(errno) : "");
		const struct ucred tries[] = { { getpid(), 65534, 65534 },
					       { getpid(), 0, 65534 },
					       { getpid(), 65534, 0 },
					       { 1, 65534, 65534 } };
		for (size_t i = 0; i < 4; i++) {
			struct ctl_builder b = { .len = 0 };
			add_cmsg(&b, SOL_SOCKET, SCM_CREDENTIALS, &tries[i], sizeof(tries[i]), 0);
			errno = 0;
			ssize_t n = send_ctl(c->a, "cred", b.c.buf, b.len, 0);
			fprintf(f, "SCM_CREDENTIALS #%zu = %zd %s\n", i, n,
				n < 0 ? t_errno_name(errno) : "");
		}
		errno = 0;
		ssize_t n = send_ctl(c->a, "plain", NULL, 0, 0);
		fprintf(f, "plain send = %zd\n", n);
		fclose(f);
		_exit(0);
	}
	close(out[1]);
	FILE *f = fdopen(out[0], "r");
	char line[128];
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		t_log(c, "child: %s", line);
	}
	if (f)
		fclose(f);
	int status = 0;
	waitpid(pid, &status, 0);
	t_log(c, "child exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	for (int i = 0; i < 3; i++) {
		/* the child's pid is not ours: record only pid/uid/gid classes */
		recv_ctl(c, c->b, 64, sizeof(union control), 0, NULL, NULL);
	}
}

/* ---- several writers at once ---- */

#define STRESS_WRITERS 3
#define STRESS_MESSAGES 300

struct stress_writer {
	int fd;
	int id;
	int pipe_fd; /* the descriptor this writer passes */
	int use_rights;
};

struct stress_tag {
	int writer;
	int seq;
	ino_t ino;
};

static void *stress_write(void *arg)
{
	struct stress_writer *w = arg;
	struct stat st;
	fstat(w->pipe_fd, &st);
	for (int i = 0; i < STRESS_MESSAGES; i++) {
		struct stress_tag tag = { w->id, i, st.st_ino };
		struct iovec iov = { &tag, sizeof(tag) };
		struct ctl_builder b = { .len = 0 };
		add_fds(&b, &w->pipe_fd, 1);
		bool rights = w->use_rights && i % 2 == 0;
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = rights ? b.c.buf : NULL,
				      .msg_controllen = rights ? b.len : 0 };
		for (;;) {
			ssize_t r = usp_sendmsg(w->fd, &msg, 0);
			if (r == (ssize_t)sizeof(tag))
				break;
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EAGAIN) {
				/* non-blocking pair: wait for room */
				struct pollfd pf = { w->fd, POLLOUT, 0 };
				usp_poll(&pf, 1, 100);
				continue;
			}
			return (void *)1;
		}
	}
	return NULL;
}

/*
 * Writers in several threads (and a forked process) send tagged messages,
 * every other one with its own pipe's descriptor; one reader checks that
 * each descriptor arrives with the message it was sent with, in each
 * writer's order.  SEQPACKET and DGRAM (a STREAM read may glue messages).
 */
static void scenario_stress(struct t_ctx *c)
{
	int pipes[STRESS_WRITERS][2];
	struct stress_writer w[STRESS_WRITERS];
	pthread_t th[STRESS_WRITERS];
	for (int i = 0; i < STRESS_WRITERS; i++) {
		make_pipe(pipes[i]);
		w[i] = (struct stress_writer){ c->a, i, pipes[i][0], 1 };
	}
	bool fork_one = !t_thread_sanitizer();
	pid_t child = -1;
	if (fork_one) {
		fflush(stdout);
		child = fork();
		if (child == 0) {
			alarm(20);
			_exit(stress_write(&w[0]) ? 1 : 0);
		}
	}
	for (int i = fork_one ? 1 : 0; i < STRESS_WRITERS; i++)
		t_thread_start(&th[i], stress_write, &w[i]);
	int next[STRESS_WRITERS] = { 0 };
	int got = 0, bad = 0, with_fd = 0, leaked = 0;
	int before = open_fds();
	while (got < STRESS_WRITERS * STRESS_MESSAGES) {
		struct stress_tag tag;
		union control ctl;
		struct iovec iov = { &tag, sizeof(tag) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl) };
		struct pollfd pf = { c->b, POLLIN, 0 };
		if (usp_poll(&pf, 1, 5000) != 1)
			break;
		ssize_t r = usp_recvmsg(c->b, &msg, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r != (ssize_t)sizeof(tag) || tag.writer < 0 || tag.writer >= STRESS_WRITERS) {
			bad++;
			break;
		}
		got++;
		if (tag.seq != next[tag.writer]++)
			bad++;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		bool want = tag.seq % 2 == 0;
		if (want != (cm != NULL))
			bad++;
		if (cm) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
			struct stat st;
			if (fstat(fd, &st) < 0 || st.st_ino != tag.ino)
				bad++;
			with_fd++;
			close(fd);
		}
	}
	for (int i = fork_one ? 1 : 0; i < STRESS_WRITERS; i++)
		t_thread_join(th[i]);
	int status = 0;
	if (child > 0)
		waitpid(child, &status, 0);
	leaked = open_fds() - before;
	t_log(c, "received %d of %d, %d with a descriptor, %d wrong, descriptors left %d, "
		 "child %d",
	      got, STRESS_WRITERS * STRESS_MESSAGES, with_fd, bad, leaked,
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	for (int i = 0; i < STRESS_WRITERS; i++) {
		close(pipes[i][0]);
		close(pipes[i][1]);
	}
}

/* ---- across processes ---- */

static void scenario_fork(struct t_ctx *c)
{
	int p[2];
	make_pipe(p);
	struct known k = { 0 };
	know(&k, p[0], "pipe_r");
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(10);
		/* the child sends its pipe's read end and a fresh pipe's write
		 * end, then credentials-bearing data */
		int q[2];
		if (pipe(q) < 0)
			_exit(2);
		struct ctl_builder b = { .len = 0 };
		add_fds(&b, (int[]){ p[0], q[1] }, 2);
		if (send_ctl(c->a, "from child", b.c.buf, b.len, 0) != 10)
			_exit(3);
		close(q[1]);
		if (write(p[1], "x", 1) != 1)
			_exit(4);
		char ch;
		/* the parent writes into q through the received write end */
		if (read(q[0], &ch, 1) != 1 || ch != 'y')
			_exit(5);
		_exit(0);
	}
	struct pollfd pf = { c->b, POLLIN, 0 };
	usp_poll(&pf, 1, 5000);
	int got = -1;
	union control ctl;
	char data[64];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl) };
	ssize_t r = usp_recvmsg(c->b, &msg, MSG_DONTWAIT);
	int fds[2] = { -1, -1 }, n = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n < 2; i++)
				memcpy(&fds[n++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	t_log(c, "parent received %zd bytes and %d fds: %s, %s", r, n, name_of(&k, fds[0]),
	      n > 1 ? "a write end" : "-");
	(void)got;
	if (n == 2 && write(fds[1], "y", 1) != 1)
		t_log(c, "write to the child's pipe failed");
	int status = 0;
	waitpid(pid, &status, 0);
	t_log(c, "child exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	char ch = 0;
	if (fds[0] >= 0)
		t_log(c, "read through the received pipe end: %zd '%c'", read(fds[0], &ch, 1), ch);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(p[0]);
	close(p[1]);
}

/* Known difference 11 (docs/DESIGN.md), by hand: a STREAM message with a
 * descriptor that needs several skbs comes out with its first piece one
 * byte shorter than Linux's (the kernel part carries the mark byte). */
static ssize_t first_piece(enum t_pair_kind kind)
{
	int sv[2], p[2];
	if (t_make_pair(kind, SOCK_STREAM | SOCK_NONBLOCK, sv) < 0 || pipe(p) < 0)
		t_die("setup: %s", strerror(errno));
	int big = 1 << 20;
	usp_setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	static char buf[100000];
	struct ctl_builder b = { .len = 0 };
	add_fds(&b, &p[0], 1);
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = b.c.buf, .msg_controllen = b.len };
	ssize_t r = -1;
	if (usp_sendmsg(sv[0], &msg, 0) == (ssize_t)sizeof(buf)) {
		union control ctl;
		struct msghdr rm = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl) };
		r = usp_recvmsg(sv[1], &rm, 0);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&rm);
		if (!cm || cm->cmsg_type != SCM_RIGHTS)
			r = -2;
		else
			close(*(int *)CMSG_DATA(cm));
	}
	usp_close(sv[0]);
	usp_close(sv[1]);
	close(p[0]);
	close(p[1]);
	return r;
}

static void check_large_stream_difference(void)
{
	ssize_t k = first_piece(T_KERNEL), u = first_piece(T_USPAIR);
	if (k <= 0 || u != k - 1)
		t_fail("large STREAM message with a descriptor: first piece kernel %zd, "
		       "uspair %zd; want uspair = kernel - 1 (known difference 11)", k, u);
}

int main(void)
{
	t_init("scm");
	t_watchdog(100, "scm");
	t_compare_matrix("counts", scenario_counts, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("errors", scenario_errors, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("truncation", scenario_truncation, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
			 NULL);
	t_compare_matrix("cloexec_and_peek", scenario_cloexec_and_peek, T_ALL_TYPES, T_ALL_MODES,
			 T_ALL_DIRS, NULL);
	t_compare_matrix("boundaries", scenario_boundaries, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
			 NULL);
	t_compare_matrix("large", scenario_large, T_ALL_TYPES, T_NONBLOCKING, T_ALL_DIRS, NULL);
	t_compare_matrix("own_ends", scenario_own_ends, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("other_pair", scenario_other_pair, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
			 NULL);
	t_compare_matrix("in_flight_closed", scenario_in_flight_closed, T_ALL_TYPES, T_NONBLOCKING,
			 T_DIR_0_TO_1, NULL);
	t_compare_matrix("credentials", scenario_credentials, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
			 NULL);
	t_compare_matrix("options", scenario_options, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("unprivileged", scenario_unprivileged, T_ALL_TYPES, T_NONBLOCKING,
			 T_ALL_DIRS, NULL);
	t_compare_matrix("fork", scenario_fork, T_ALL_TYPES, T_ALL_MODES, T_DIR_0_TO_1, NULL);
	check_large_stream_difference();
	t_compare_matrix("stress", scenario_stress, T_SEQPACKET | T_DGRAM, T_ALL_MODES, T_DIR_0_TO_1,
			 NULL);
	return t_finish();
}
