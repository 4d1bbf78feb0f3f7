/*
 * sockopt: getsockopt/setsockopt, getsockname/getpeername, fcntl and
 * ioctl(FIONBIO) on both kinds of pair, compared step by step.
 *
 * SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR, SO_ACCEPTCONN, SO_PEERCRED and
 * other generic options; SO_SNDBUF/SO_RCVBUF set then get (doubling,
 * clamps, negative and tiny values, the FORCE variants); SO_RCVTIMEO and
 * SO_SNDTIMEO (set, get, invalid values, and blocking calls that time out
 * with EAGAIN: errno compared, not time); SO_RCVLOWAT; short and bad
 * optlen, unknown options, bad levels; names of unnamed sockets; F_GETFL/
 * F_SETFL O_NONBLOCK and its effect, shared by dup()s; F_GETFD/F_SETFD.
 */
#include "t_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define UNSET_BYTE 0xEE

/* getsockopt into a pre-filled buffer; records return, optlen, bytes. */
static void raw_getsockopt(struct t_ctx *c, int fd, int level, int opt,
			   const char *name, socklen_t optlen_in, int null_optval,
			   int null_optlen)
{
	unsigned char buf[64];
	socklen_t optlen = optlen_in;
	char desc[160], bytes[300];
	memset(buf, UNSET_BYTE, sizeof(buf));
	errno = 0;
	int r = usp_getsockopt(fd, level, opt, null_optval ? NULL : buf,
			       null_optlen ? NULL : &optlen);
	int err = errno;
	size_t shown = r == 0 && optlen <= 32 ? optlen : 0;
	t_fmt_bytes(bytes, sizeof(bytes), buf, shown);
	snprintf(desc, sizeof(desc), "getsockopt(%s,%s,optval=%s,optlen=%s%d)",
		 t_fd_name(c, fd), name, null_optval ? "NULL" : "buf",
		 null_optlen ? "NULL/" : "", (int)optlen_in);
	t_record(c, desc, r, err);
	if (r == 0)
		t_log(c, "  -> optlen=%d value bytes=%s next byte=0x%02x", (int)optlen,
		      bytes, buf[optlen <= 32 ? optlen : 32]);
}

static void raw_setsockopt(struct t_ctx *c, int fd, int level, int opt,
			   const char *name, const void *val, socklen_t len,
			   const char *val_desc)
{
	char desc[200];
	snprintf(desc, sizeof(desc), "setsockopt(%s,%s,%s,%u)", t_fd_name(c, fd),
		 name, val_desc, (unsigned)len);
	T_RECORD(c, desc, usp_setsockopt(fd, level, opt, val, len));
}

static void get_timeval(struct t_ctx *c, int fd, int opt, const char *name)
{
	struct timeval tv = { -7, -7 };
	socklen_t len = sizeof(tv);
	errno = 0;
	int r = usp_getsockopt(fd, SOL_SOCKET, opt, &tv, &len);
	int err = errno;
	char desc[160];
	snprintf(desc, sizeof(desc), "getsockopt(%s,%s) -> {%ld,%ld} optlen=%u",
		 t_fd_name(c, fd), name, (long)tv.tv_sec, (long)tv.tv_usec,
		 (unsigned)len);
	t_record(c, desc, r, err);
}

static void set_timeval(struct t_ctx *c, int fd, int opt, const char *name,
			long sec, long usec, socklen_t len)
{
	struct timeval tv = { sec, usec };
	char desc[160];
	snprintf(desc, sizeof(desc), "setsockopt(%s,%s,{%ld,%ld},%u)",
		 t_fd_name(c, fd), name, sec, usec, (unsigned)len);
	T_RECORD(c, desc, usp_setsockopt(fd, SOL_SOCKET, opt, &tv, len));
}

static void get_peercred(struct t_ctx *c, int fd)
{
	struct ucred cred = { -7, (uid_t)-7, (gid_t)-7 };
	socklen_t len = sizeof(cred);
	errno = 0;
	int r = usp_getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
	int err = errno;
	char desc[200];
	snprintf(desc, sizeof(desc),
		 "getsockopt(%s,SO_PEERCRED) -> pid %s, uid %s, gid %s, optlen=%u",
		 t_fd_name(c, fd), cred.pid == getpid() ? "is ours" : "is NOT ours",
		 cred.uid == getuid() ? "is ours" : "is NOT ours",
		 cred.gid == getgid() ? "is ours" : "is NOT ours", (unsigned)len);
	t_record(c, desc, r, err);
}

static void scenario_identity(struct t_ctx *c)
{
	static const struct {
		int opt;
		const char *name;
	} options[] = {
		{ SO_TYPE, "SO_TYPE" },
		{ SO_DOMAIN, "SO_DOMAIN" },
		{ SO_PROTOCOL, "SO_PROTOCOL" },
		{ SO_ERROR, "SO_ERROR" },
		{ SO_ACCEPTCONN, "SO_ACCEPTCONN" },
		{ SO_SNDBUF, "SO_SNDBUF" },
		{ SO_RCVBUF, "SO_RCVBUF" },
		{ SO_RCVLOWAT, "SO_RCVLOWAT" },
		{ SO_SNDLOWAT, "SO_SNDLOWAT" },
		{ SO_PASSCRED, "SO_PASSCRED" },
		{ SO_PEEK_OFF, "SO_PEEK_OFF" },
		{ SO_KEEPALIVE, "SO_KEEPALIVE" },
		{ SO_REUSEADDR, "SO_REUSEADDR" },
		{ SO_OOBINLINE, "SO_OOBINLINE" },
		{ SO_PRIORITY, "SO_PRIORITY" },
		{ SO_BROADCAST, "SO_BROADCAST" },
	};
	for (int end = 0; end < 2; end++) {
		int fd = end ? c->b : c->a;
		for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
			t_getsockopt_int(c, fd, SOL_SOCKET, options[i].opt, options[i].name);
		get_timeval(c, fd, SO_RCVTIMEO, "SO_RCVTIMEO");
		get_timeval(c, fd, SO_SNDTIMEO, "SO_SNDTIMEO");
		get_peercred(c, fd);
	}
	/* the peer's settings are not ours */
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 50000, "SO_SNDBUF");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY");
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED");
}

static void scenario_buffer_sizes(struct t_ctx *c)
{
	static const int values[] = { -1, -100, 0, 1, 1000, 2304, 2305, 4608,
				      100000, 212992, 10000000, INT_MAX, 4608 };
	static const struct {
		int set, get;
		const char *set_name, *get_name;
	} options[] = {
		{ SO_SNDBUF, SO_SNDBUF, "SO_SNDBUF", "SO_SNDBUF" },
		{ SO_RCVBUF, SO_RCVBUF, "SO_RCVBUF", "SO_RCVBUF" },
		{ SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUFFORCE", "SO_SNDBUF" },
		{ SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUFFORCE", "SO_RCVBUF" },
	};
	for (size_t o = 0; o < sizeof(options) / sizeof(options[0]); o++) {
		for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
			int fd = v % 2 ? c->a : c->b;
			t_setsockopt_int(c, fd, SOL_SOCKET, options[o].set, values[v],
					 options[o].set_name);
			t_getsockopt_int(c, fd, SOL_SOCKET, options[o].get,
					 options[o].get_name);
		}
	}
	/* a non-int sized value */
	long long wide = 50000;
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", &wide, sizeof(wide),
		       "(long long)50000");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", &wide, 2, "2 bytes");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
}

static void scenario_timeouts(struct t_ctx *c)
{
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, 100000, sizeof(struct timeval));
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 1, 500000, sizeof(struct timeval));
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, 1000000, sizeof(struct timeval));
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, -1, sizeof(struct timeval));
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", -5, 0, sizeof(struct timeval));
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, 100000, 4);
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");
	raw_getsockopt(c, c->b, SOL_SOCKET, SO_RCVTIMEO, "SO_RCVTIMEO", 8, 0, 0);
	raw_getsockopt(c, c->b, SOL_SOCKET, SO_RCVTIMEO, "SO_RCVTIMEO", 4, 0, 0);

	/* a receive that times out: EAGAIN (the kernel's answer), not a hang */
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, 60000, sizeof(struct timeval));
	c->prepoll_ms = -1;
	t_recv(c, c->b, 10, 0);
	t_read(c, c->b, 10);
	/* data that arrives before the timeout */
	t_send(c, c->a, "in time", 7, 0);
	t_recv(c, c->b, 10, 0);
	c->prepoll_ms = 0;
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, 0, sizeof(struct timeval));
	get_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO");

	/* a send that times out on a full socket */
	get_timeval(c, c->a, SO_SNDTIMEO, "SO_SNDTIMEO");
	set_timeval(c, c->a, SO_SNDTIMEO, "SO_SNDTIMEO", 0, 60000, sizeof(struct timeval));
	get_timeval(c, c->a, SO_SNDTIMEO, "SO_SNDTIMEO");
	long sends = 0;
	while (usp_send(c->a, (char[1000]){ 0 }, 1000, MSG_DONTWAIT) == 1000 && sends < 100000)
		sends++;
	t_log(c, "filled with %ld sends of 1000 bytes", sends);
	t_send_pattern(c, c->a, 1000, 1, 0);
	t_send_pattern(c, c->a, 100000, 2, 0);
	set_timeval(c, c->a, SO_SNDTIMEO, "SO_SNDTIMEO", 0, 0, sizeof(struct timeval));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
}

/* The kernel keeps timeouts in jiffies; values come back rounded. */
static void scenario_timeout_rounding(struct t_ctx *c)
{
	static const long usecs[] = { 1, 999, 50000, 50001, 333333, 999999 };
	for (size_t i = 0; i < sizeof(usecs) / sizeof(usecs[0]); i++) {
		set_timeval(c, c->a, SO_RCVTIMEO, "SO_RCVTIMEO", 0, usecs[i], sizeof(struct timeval));
		get_timeval(c, c->a, SO_RCVTIMEO, "SO_RCVTIMEO");
		set_timeval(c, c->a, SO_SNDTIMEO, "SO_SNDTIMEO", 2, usecs[i], sizeof(struct timeval));
		get_timeval(c, c->a, SO_SNDTIMEO, "SO_SNDTIMEO");
	}
	set_timeval(c, c->a, SO_RCVTIMEO, "SO_RCVTIMEO", 100000000, 0, sizeof(struct timeval));
	get_timeval(c, c->a, SO_RCVTIMEO, "SO_RCVTIMEO");
}

static void scenario_rcvlowat(struct t_ctx *c)
{
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT");
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, 5, "SO_RCVLOWAT");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT");
	t_send(c, c->a, "abc", 3, 0);
	t_poll1(c, c->b, POLLIN | POLLRDNORM);
	t_recv(c, c->b, 10, MSG_DONTWAIT);
	t_send(c, c->a, "def", 3, 0);
	/* with a receive timeout, a blocking receive of less than the low
	 * water mark returns what there is when the timeout expires */
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, 60000, sizeof(struct timeval));
	c->prepoll_ms = -1;
	t_recv(c, c->b, 10, 0);
	t_send(c, c->a, "ghijk", 5, 0);
	t_recv(c, c->b, 10, 0);
	t_send(c, c->a, "lmnopqrs", 8, 0);
	t_recv(c, c->b, 4, 0);
	t_recv(c, c->b, 10, 0);
	c->prepoll_ms = 0;
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, 0, "SO_RCVLOWAT");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT");
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, -1, "SO_RCVLOWAT");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT");
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, INT_MAX, "SO_RCVLOWAT");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT");
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_SNDLOWAT, 10, "SO_SNDLOWAT");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_SNDLOWAT, "SO_SNDLOWAT");
}

static void scenario_option_errors(struct t_ctx *c)
{
	int one = 1;
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", 4, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", 8, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", 2, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", 1, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", 0, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", (socklen_t)-1, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_ERROR, "SO_ERROR", 2, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", 3, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_PEERCRED, "SO_PEERCRED", 4, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", 4, 0, 1);
	raw_getsockopt(c, c->a, SOL_SOCKET, 9999, "option 9999", 4, 0, 0);
	raw_getsockopt(c, c->a, 9999, SO_TYPE, "level 9999", 4, 0, 0);
	raw_getsockopt(c, c->a, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", 4, 0, 0);
	raw_getsockopt(c, c->a, IPPROTO_IP, IP_TOS, "IP_TOS", 4, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN", 4, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_PEERSEC, "SO_PEERSEC", 64, 0, 0);
	raw_getsockopt(c, c->a, SOL_SOCKET, SO_PEERNAME, "SO_PEERNAME", 64, 0, 0);

	raw_setsockopt(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", &one, 2, "1");
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", &one, 0, "1");
	raw_setsockopt(c, c->a, SOL_SOCKET, 9999, "option 9999", &one, 4, "1");
	raw_setsockopt(c, c->a, 9999, SO_SNDBUF, "level 9999", &one, 4, "1");
	raw_setsockopt(c, c->a, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", &one, 4, "1");
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_TYPE, "SO_TYPE", &one, 4, "1");
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_ERROR, "SO_ERROR", &one, 4, "1");
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN", &one, 4, "1");
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", NULL, 4, "NULL");
	raw_setsockopt(c, c->a, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", &one, 1, "1 (one byte)");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
}

static void record_name(struct t_ctx *c, int peer, int fd, socklen_t len_in,
			int null_addr)
{
	/* room past a sockaddr_un to see whether anything is written beyond */
	union {
		struct sockaddr_un un;
		unsigned char raw[sizeof(struct sockaddr_un) + 16];
	} addr;
	socklen_t len = len_in;
	char desc[600], bytes[300];
	memset(&addr, UNSET_BYTE, sizeof(addr));
	errno = 0;
	int r = peer ? usp_getpeername(fd, null_addr ? NULL : (struct sockaddr *)&addr.un, &len)
		     : usp_getsockname(fd, null_addr ? NULL : (struct sockaddr *)&addr.un, &len);
	int err = errno;
	size_t cap = len_in < sizeof(addr.un) ? len_in : sizeof(addr.un);
	size_t shown = r == 0 ? (len < cap ? len : cap) : 0;
	t_fmt_bytes(bytes, sizeof(bytes), addr.raw, shown);
	snprintf(desc, sizeof(desc), "%s(%s,%s,addrlen=%d) -> addrlen=%d bytes=%s next=0x%02x",
		 peer ? "getpeername" : "getsockname", t_fd_name(c, fd),
		 null_addr ? "NULL" : "addr", (int)len_in, (int)len, bytes,
		 addr.raw[shown]);
	t_record(c, desc, r, err);
}

static void scenario_names(struct t_ctx *c)
{
	static const socklen_t lens[] = { sizeof(struct sockaddr_un), 0, 1, 2, 3,
					  (socklen_t)-1 };
	for (int peer = 0; peer <= 1; peer++) {
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			record_name(c, peer, c->a, lens[i], 0);
			record_name(c, peer, c->b, lens[i], 0);
		}
		record_name(c, peer, c->a, 0, 1);
	}
}

static void scenario_fcntl_flags(struct t_ctx *c)
{
	t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");
	t_fcntl(c, c->b, F_SETFL, O_NONBLOCK, "F_SETFL");
	t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");
	t_recv(c, c->b, 10, 0);
	t_read(c, c->b, 10);
	t_fcntl(c, c->b, F_SETFL, 0, "F_SETFL");
	t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");
	/* now blocking: a receive waits (bounded by SO_RCVTIMEO) */
	set_timeval(c, c->b, SO_RCVTIMEO, "SO_RCVTIMEO", 0, 20000, sizeof(struct timeval));
	c->prepoll_ms = -1;
	t_recv(c, c->b, 10, 0);
	c->prepoll_ms = 0;
	t_recv(c, c->b, 10, MSG_DONTWAIT);
	t_fcntl(c, c->b, F_SETFL, O_NONBLOCK | O_APPEND, "F_SETFL");
	t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");
	t_fcntl(c, c->b, F_SETFL, O_RDONLY, "F_SETFL");
	t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");

	/* ioctl FIONBIO */
	int on = 1, off = 0;
	T_RECORD(c, "ioctl(b,FIONBIO,1)", usp_ioctl(c->b, FIONBIO, &on));
	t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");
	t_recv(c, c->b, 10, 0);
	T_RECORD(c, "ioctl(b,FIONBIO,0)", usp_ioctl(c->b, FIONBIO, &off));
	t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");

	/* the other end is unaffected */
	t_fcntl(c, c->a, F_GETFL, 0, "F_GETFL");

	/* descriptor flags */
	t_fcntl(c, c->a, F_GETFD, 0, "F_GETFD");
	t_fcntl(c, c->a, F_SETFD, FD_CLOEXEC, "F_SETFD");
	t_fcntl(c, c->a, F_GETFD, 0, "F_GETFD");
	t_fcntl(c, c->a, F_SETFD, 0, "F_SETFD");
	t_fcntl(c, c->a, F_GETFD, 0, "F_GETFD");

	/* file status flags are shared with a dup, descriptor flags are not */
	int d = usp_fcntl(c->b, F_DUPFD_CLOEXEC, 0);
	t_record(c, "fcntl(b,F_DUPFD_CLOEXEC,0) (new descriptor)", d < 0 ? -1 : 0, errno);
	if (d >= 0) {
		t_name_fd(c, d, "b-dup");
		t_fcntl(c, d, F_GETFD, 0, "F_GETFD");
		t_fcntl(c, c->b, F_GETFD, 0, "F_GETFD");
		t_fcntl(c, d, F_SETFL, O_NONBLOCK, "F_SETFL");
		t_fcntl(c, c->b, F_GETFL, 0, "F_GETFL");
		t_recv(c, c->b, 10, 0);
		t_send(c, c->a, "via dup", 7, 0);
		t_recv(c, d, 10, 0);
		t_fcntl(c, c->b, F_SETFL, 0, "F_SETFL");
		t_fcntl(c, d, F_GETFL, 0, "F_GETFL");
		t_close(c, d);
	}
	int d2 = usp_fcntl(c->a, F_DUPFD, 100);
	t_record(c, "fcntl(a,F_DUPFD,100) (new descriptor >= 100)", d2 < 0 ? -1 : d2 >= 100 ? 0 : 1, errno);
	if (d2 >= 0) {
		t_name_fd(c, d2, "a-dup");
		t_fcntl(c, d2, F_GETFD, 0, "F_GETFD");
		t_send(c, d2, "from dup", 8, 0);
		t_recv(c, c->b, 10, MSG_DONTWAIT);
		t_close(c, d2);
	}
	t_fcntl(c, c->a, F_GETFL, 0, "F_GETFL");
}

int main(void)
{
	t_init("sockopt");
	t_compare_matrix("identity", scenario_identity, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("buffer_sizes", scenario_buffer_sizes, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("timeouts", scenario_timeouts, T_ALL_TYPES, T_ALL_MODES, T_DIR_0_TO_1, NULL);
	t_compare_matrix("timeout_rounding", scenario_timeout_rounding, T_ALL_TYPES, T_BLOCKING, T_DIR_0_TO_1, NULL);
	t_compare_matrix("rcvlowat", scenario_rcvlowat, T_ALL_TYPES, T_ALL_MODES, T_DIR_0_TO_1, NULL);
	t_compare_matrix("option_errors", scenario_option_errors, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("names", scenario_names, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("fcntl_flags", scenario_fcntl_flags, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	return t_finish();
}
