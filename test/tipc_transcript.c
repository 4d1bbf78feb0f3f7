/*
 * tipc_transcript: socketpair(AF_TIPC, ...) pairs, uspair against a real
 * TIPC kernel.
 *
 * The kernels we build and test on have no TIPC, so the expected behaviour
 * is a transcript recorded by this same program on Debian's Linux 6.1
 * (which ships the tipc module), run under qemu as /init.  The two ways
 * the program is built (oracle mode, test mode), the masking of port ids,
 * the alignment of the two transcripts and the allowlist are those of
 * tipc_oracle.h, beside this file.  Regenerate the expected transcript,
 * from the repository root, with
 *
 *	/work/shared/tools/tipc-oracle/run.sh "$PWD/test/tipc_transcript.c" \
 *		> test/data/tipc-socketpair-linux-6.1.txt
 *
 * (an absolute path: run.sh changes directory before it compiles).
 *
 * In test mode a run takes about 16 s: 16 receives wait out a 1 s
 * SO_RCVTIMEO as they do on Linux; alarm(60) turns a hang into a failure
 * naming the step.  test/tipc_semantics.c covers what this transcript
 * does not (flow control, returned messages, options, ioctls...).
 *
 * The steps, and the exact format of every line, are those of
 * /work/shared/tools/tipc-oracle/tipctest.c, which produced the reference
 * transcript /work/shared/reference/tipc-socketpair-linux-6.1.txt; the two
 * transcripts are equal once port ids are masked (but for the uname line).
 */
#include "tipc_oracle.h"

#define RECV_BUF_SIZE 200000	/* the receive buffer of the drains */

/* ------------------------------------------------------------------ */
/* The scenario                                                        */
/* ------------------------------------------------------------------ */

/* Arguments socketpair must refuse, before any pair exists. */
static void bad_arguments(void)
{
	static const struct {
		int type;
		const char *name;
	} bad_types[] = {
		{ SOCK_RAW, "SOCK_RAW(3)" },
		{ 0, "type 0" },
		{ SOCK_PACKET, "SOCK_PACKET(10)" },
		{ 11, "type 11" },
		{ 15, "type 15" },
		{ -1, "type -1" },
		{ SOCK_STREAM | 0x10, "SOCK_STREAM|0x10 (bad flag bit)" },
		{ SOCK_STREAM | 0x40000000, "SOCK_STREAM|0x40000000 (bad flag bit)" },
		{ SOCK_RAW | SOCK_NONBLOCK, "SOCK_RAW|SOCK_NONBLOCK" },
		{ SOCK_RDM | 0x10, "SOCK_RDM|0x10 (bad flag bit)" },
	};
	static const struct {
		int type, protocol;
		const char *step;
	} bad_protocols[] = {
		{ SOCK_RAW, 1, "socketpair(AF_TIPC,SOCK_RAW,1)" },
		{ 0, -1, "socketpair(AF_TIPC,0,-1)" },
		{ SOCK_STREAM | 0x10, -1, "socketpair(AF_TIPC,SOCK_STREAM|0x10,-1)" },
	};
	char step[128];
	int sv[2];

	snprintf(line_prefix, sizeof(line_prefix), "[misc] ");
	for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
		snprintf(step, sizeof(step), "socketpair(AF_TIPC,%s,0)", bad_types[i].name);
		if (step_pair(step, bad_types[i].type, sv) == 0)
			close_pair(sv);
	}
	for (size_t i = 0; i < sizeof(bad_protocols) / sizeof(bad_protocols[0]); i++) {
		sv[0] = sv[1] = UNTOUCHED_FD;
		errno = 0;
		int r = SK(socketpair)(AF_TIPC, bad_protocols[i].type, bad_protocols[i].protocol, sv);
		result(bad_protocols[i].step, r, errno, "sv={%d,%d}", sv[0], sv[1]);
		if (r == 0)
			close_pair(sv);
	}
	errno = 0;
	int r = SK(socketpair)(AF_TIPC, SOCK_STREAM, 0, NULL);
	result("socketpair(AF_TIPC,SOCK_STREAM,0,NULL)", r, errno, NULL);
	/* volatile: the compiler must not see that the pointer is bad */
	int *volatile bad_sv = (int *)8;
	errno = 0;
	r = SK(socketpair)(AF_TIPC, SOCK_STREAM, 0, bad_sv);
	result("socketpair(AF_TIPC,SOCK_STREAM,0,(int*)8)", r, errno, NULL);

	/* plain sockets, for comparison: the kernel's, in both modes */
	errno = 0;
	r = socket(AF_TIPC, SOCK_RAW, 0);
	result("socket(AF_TIPC,SOCK_RAW,0)", r, errno, NULL);
	if (r >= 0)
		close(r);
	errno = 0;
	r = socket(AF_TIPC, SOCK_STREAM, 1);
	result("socket(AF_TIPC,SOCK_STREAM,1)", r, errno, NULL);
	if (r >= 0)
		close(r);
	line_prefix[0] = '\0';
}

static void creation(int type)
{
	int sv[2];
	char step[64];
	if (step_pair("socketpair(AF_TIPC,type,0)", type, sv) == 0)
		close_pair(sv);
	if (step_pair("socketpair(AF_TIPC,type|SOCK_NONBLOCK|SOCK_CLOEXEC,0)",
		      type | SOCK_NONBLOCK | SOCK_CLOEXEC, sv) == 0) {
		step_fd_flags("sv[0]", sv[0]);
		step_fd_flags("sv[1]", sv[1]);
		step_getsockopt("getsockopt(sv[0],SO_TYPE)", sv[0], SOL_SOCKET, SO_TYPE);
		close_pair(sv);
	}
	for (int protocol = -1; protocol <= 1; protocol += 2) {
		sv[0] = sv[1] = UNTOUCHED_FD;
		errno = 0;
		int r = SK(socketpair)(AF_TIPC, type, protocol, sv);
		snprintf(step, sizeof(step), "socketpair(AF_TIPC,type,%d)", protocol);
		result(step, r, errno, "sv={%d,%d}", sv[0], sv[1]);
		if (r == 0)
			close_pair(sv);
	}
	errno = 0;
	int fd = socket(AF_TIPC, type, 0);
	result("socket(AF_TIPC,type,0) [plain socket for comparison]", fd, errno, NULL);
	if (fd >= 0)
		close(fd);
}

/* Names and options of a fresh pair. */
static void names_and_options(int a, int b)
{
	unsigned name_a = step_name("getsockname(sv[0])", a, 0);
	unsigned name_b = step_name("getsockname(sv[1])", b, 0);
	unsigned peer_a = step_name("getpeername(sv[0])", a, 1);
	unsigned peer_b = step_name("getpeername(sv[1])", b, 1);
	/* the port ids themselves are random: how they relate is what counts */
	note("rel: name(sv[0]).ref==peer(sv[1]).ref: %s ; name(sv[1]).ref==peer(sv[0]).ref: %s ; name(sv[0]).ref!=name(sv[1]).ref: %s",
	     name_a == peer_b ? "yes" : "no", name_b == peer_a ? "yes" : "no",
	     name_a != name_b ? "yes" : "no");

	struct sockaddr_tipc sa;
	memset(&sa, 0xAA, sizeof(sa));
	socklen_t len = 4;
	errno = 0;
	int r = SK(getsockname)(a, (struct sockaddr *)&sa, &len);
	result("getsockname(sv[0]) with addrlen=4", r, errno, "len_out=%u", (unsigned)len);

	static const struct {
		int end, level, opt;
		const char *step;
	} options[] = {
		{ 0, SOL_SOCKET, SO_TYPE, "getsockopt(sv[0],SOL_SOCKET,SO_TYPE)" },
		{ 0, SOL_SOCKET, SO_DOMAIN, "getsockopt(sv[0],SOL_SOCKET,SO_DOMAIN)" },
		{ 0, SOL_SOCKET, SO_PROTOCOL, "getsockopt(sv[0],SOL_SOCKET,SO_PROTOCOL)" },
		{ 0, SOL_SOCKET, SO_SNDBUF, "getsockopt(sv[0],SOL_SOCKET,SO_SNDBUF)" },
		{ 0, SOL_SOCKET, SO_RCVBUF, "getsockopt(sv[0],SOL_SOCKET,SO_RCVBUF)" },
		{ 1, SOL_SOCKET, SO_SNDBUF, "getsockopt(sv[1],SOL_SOCKET,SO_SNDBUF)" },
		{ 1, SOL_SOCKET, SO_RCVBUF, "getsockopt(sv[1],SOL_SOCKET,SO_RCVBUF)" },
		{ 0, SOL_SOCKET, SO_ACCEPTCONN, "getsockopt(sv[0],SOL_SOCKET,SO_ACCEPTCONN)" },
		{ 0, SOL_SOCKET, SO_ERROR, "getsockopt(sv[0],SOL_SOCKET,SO_ERROR)" },
		{ 0, SOL_TIPC, TIPC_IMPORTANCE, "getsockopt(sv[0],SOL_TIPC,TIPC_IMPORTANCE)" },
		{ 0, SOL_TIPC, TIPC_SRC_DROPPABLE, "getsockopt(sv[0],SOL_TIPC,TIPC_SRC_DROPPABLE)" },
		{ 0, SOL_TIPC, TIPC_DEST_DROPPABLE, "getsockopt(sv[0],SOL_TIPC,TIPC_DEST_DROPPABLE)" },
		{ 0, SOL_TIPC, TIPC_CONN_TIMEOUT, "getsockopt(sv[0],SOL_TIPC,TIPC_CONN_TIMEOUT)" },
		{ 0, SOL_TIPC, TIPC_NODE_RECVQ_DEPTH,
		  "getsockopt(sv[0],SOL_TIPC,TIPC_NODE_RECVQ_DEPTH)" },
		{ 0, SOL_TIPC, TIPC_SOCK_RECVQ_DEPTH,
		  "getsockopt(sv[0],SOL_TIPC,TIPC_SOCK_RECVQ_DEPTH)" },
	};
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		step_getsockopt(options[i].step, options[i].end ? b : a, options[i].level,
				options[i].opt);
	step_fd_flags("sv[0]", a);
	step_fd_flags("sv[1]", b);
	step_poll("poll(sv[0]) initial", a);
	step_poll("poll(sv[1]) initial", b);
}

/* Small messages: boundaries, queue counters, zero length, both ways. */
static void small_messages(int a, int b)
{
	char step[64];
	step_send("send(sv[0],\"hello\")", a, "hello", 5, 0);
	step_send("send(sv[0],\"world!\")", a, "world!", 6, 0);
	step_poll("poll(sv[1]) after 2 sends", b);
	step_poll("poll(sv[0]) after 2 sends", a);
	step_getsockopt("getsockopt(sv[1],SOL_TIPC,TIPC_SOCK_RECVQ_DEPTH) after 2 sends", b,
			SOL_TIPC, TIPC_SOCK_RECVQ_DEPTH);
	int value = -12345;
	errno = 0;
	int r = SK(ioctl)(b, FIONREAD, &value);
	result("ioctl(sv[1],FIONREAD)", r, errno, "val=%d", value);
	value = -12345;
	errno = 0;
	r = SK(ioctl)(a, TIOCOUTQ, &value);
	result("ioctl(sv[0],TIOCOUTQ/SIOCOUTQ)", r, errno, "val=%d", value);
	for (int i = 0; i < 6; i++) {
		snprintf(step, sizeof(step), "recvmsg(sv[1],3-byte buf) #%d", i);
		if (step_recv(step, b, 3, 0, RECV_DONTWAIT) < 0)
			break;
	}
	step_poll("poll(sv[1]) after draining", b);

	note("--- zero-length ---");
	step_send("send(sv[0],\"\",0)", a, "", 0, 0);
	step_poll("poll(sv[1]) after zero-length send", b);
	step_recv("recvmsg(sv[1],64) after zero-length send", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) again", b, 64, 0, RECV_DONTWAIT);
	step_poll("poll(sv[1]) after the recv attempts", b);
	step_send("send(sv[0],\"\",0)", a, "", 0, 0);
	step_send("send(sv[0],\"q\")", a, "q", 1, 0);
	step_recv("recvmsg(sv[1],64) with zero-length msg then \"q\" queued", b, 64, 0,
		  RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) again", b, 64, 0, RECV_DONTWAIT);
	step_send("send(sv[0],\"z\")", a, "z", 1, 0);
	step_recv("recvmsg(sv[1],0-byte buf) with 1 byte pending", b, 0, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) after 0-byte recv", b, 64, 0, RECV_DONTWAIT);

	note("--- reverse direction ---");
	step_send("send(sv[1],\"back\")", b, "back", 4, 0);
	step_recv("recvmsg(sv[0],64)", a, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[0],64) again", a, 64, 0, RECV_DONTWAIT);
}

static void peek_trunc_oob(int a, int b)
{
	note("--- MSG_PEEK / MSG_TRUNC ---");
	step_send("send(sv[0],\"peek\")", a, "peek", 4, 0);
	step_recv("recvmsg(sv[1],64,MSG_PEEK)", b, 64, MSG_PEEK, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],2,MSG_PEEK)", b, 2, MSG_PEEK, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64)", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) again", b, 64, 0, RECV_DONTWAIT);
	step_send("send(sv[0],\"truncate-me\")", a, "truncate-me", 11, 0);
	step_recv("recvmsg(sv[1],3,MSG_TRUNC)", b, 3, MSG_TRUNC, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) after MSG_TRUNC recv", b, 64, 0, RECV_DONTWAIT);
	step_send("send(sv[0],\"abc\")", a, "abc", 3, 0);
	step_send("send(sv[0],\"def\")", a, "def", 3, 0);
	step_recv("recvmsg(sv[1],64) with 2 msgs pending", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) again", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) again2", b, 64, 0, RECV_DONTWAIT);
	step_send("send(sv[0],\"oob\",MSG_OOB)", a, "oob", 3, MSG_OOB);
	step_recv("recvmsg(sv[1],64) after OOB send", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64,MSG_OOB)", b, 64, MSG_OOB, RECV_DONTWAIT);

	struct iovec iov[2] = { { .iov_base = "ab", .iov_len = 2 },
				{ .iov_base = "cde", .iov_len = 3 } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
	errno = 0;
	long r = SK(sendmsg)(a, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	result("sendmsg(sv[0],iov{\"ab\",\"cde\"})", r, errno, NULL);
	step_recv("recvmsg(sv[1],64)", b, 64, 0, RECV_DONTWAIT);
}

/* Messages around TIPC's 66000-byte limit, then filling the receiver. */
static void large_messages(int a, int b)
{
	note("--- large sends ---");
	memset(send_buf, 'x', sizeof(send_buf));
	step_send("send(sv[0],66000 bytes)", a, send_buf, 66000, 0);
	step_drain("sv[1]", b, RECV_BUF_SIZE);
	step_send("send(sv[0],66001 bytes)", a, send_buf, 66001, 0);
	step_drain("sv[1]", b, RECV_BUF_SIZE);
	step_send("send(sv[0],100000 bytes)", a, send_buf, 100000, 0);
	step_drain("sv[1]", b, RECV_BUF_SIZE);
	step_poll("poll(sv[0]) after large sends", a);
	step_poll("poll(sv[1]) after large sends", b);

	/* 1000-byte messages until a send fails (or 20000 of them: RDM and
	 * DGRAM never say EAGAIN, they drop at the receiver) */
	long total = 0, sent = 0, r = 0;
	int err = 0;
	for (int i = 0; i < 20000; i++) {
		errno = 0;
		r = SK(send)(a, send_buf, 1000, MSG_DONTWAIT | MSG_NOSIGNAL);
		err = errno;
		if (r < 0)
			break;
		total += r;
		sent++;
	}
	result("fill: send(sv[0],1000) until error", r, err, "successful=%ld total=%ld", sent,
	       total);
	step_poll("poll(sv[0]) when full", a);
	step_poll("poll(sv[1]) when full", b);
	step_getsockopt("getsockopt(sv[1],SOL_TIPC,TIPC_SOCK_RECVQ_DEPTH) when full", b,
			SOL_TIPC, TIPC_SOCK_RECVQ_DEPTH);
	step_drain("sv[1] (fill)", b, RECV_BUF_SIZE);
	step_drain("sv[0] (anything returned to sender)", a, RECV_BUF_SIZE);
	step_poll("poll(sv[0]) after drain", a);
	step_send("send(sv[0],\"after-fill\")", a, "after-fill", 10, 0);
	step_recv("recvmsg(sv[1],64)", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) again", b, 64, 0, RECV_DONTWAIT);
}

/*
 * connect, listen, accept4 and bind on a paired socket (usp_connect and
 * friends in test mode).  The pair must still carry data afterwards.
 */
static void connection_calls(int a, int b)
{
	note("--- connect/listen/accept on paired socket ---");
	struct sockaddr_tipc peer;
	socklen_t len = sizeof(peer);
	memset(&peer, 0, sizeof(peer));
	SK(getpeername)(a, (struct sockaddr *)&peer, &len);
	if (peer.family != AF_TIPC) {
		len = sizeof(peer);
		SK(getsockname)(b, (struct sockaddr *)&peer, &len);
	}
	errno = 0;
	int r = SK(connect)(a, (struct sockaddr *)&peer, sizeof(peer));
	result("connect(sv[0], addr of sv[1])", r, errno, NULL);
	errno = 0;
	r = SK(listen)(a, 1);
	result("listen(sv[0],1)", r, errno, NULL);
	/* non-blocking, so that an accept that would wait cannot hang us */
	int fl = SK(fcntl)(a, F_GETFL);
	SK(fcntl)(a, F_SETFL, fl | O_NONBLOCK);
	errno = 0;
	r = SK(accept4)(a, NULL, NULL, SOCK_NONBLOCK);
	result("accept4(sv[0]) [made nonblocking]", r, errno, NULL);
	if (r >= 0)
		close(r);
	SK(fcntl)(a, F_SETFL, fl);

	struct sockaddr_tipc service = {
		.family = AF_TIPC,
		.addrtype = TIPC_SERVICE_RANGE,
		.scope = TIPC_NODE_SCOPE,
		.addr.nameseq = { .type = 18888, .lower = 17, .upper = 17 },
	};
	errno = 0;
	r = SK(bind)(b, (struct sockaddr *)&service, sizeof(service));
	result("bind(sv[1], service range 18888:17-17 node scope)", r, errno, NULL);
	step_send("send(sv[0],\"still-ok?\")", a, "still-ok?", 9, 0);
	step_recv("recvmsg(sv[1],64)", b, 64, 0, RECV_DONTWAIT);
	step_getsockopt("getsockopt(sv[0],SOL_SOCKET,SO_ERROR) end", a, SOL_SOCKET, SO_ERROR);
	step_getsockopt("getsockopt(sv[1],SOL_SOCKET,SO_ERROR) end", b, SOL_SOCKET, SO_ERROR);
}

/* shutdown(sv[0], how) with a message queued each way; 0 if no pair. */
static int shutdown_case(int type, int how, const char *how_name)
{
	char step[64];
	int sv[2];
	note("--- shutdown(sv[0],%s) ---", how_name);
	if (step_pair("socketpair(AF_TIPC,type,0)", type, sv) != 0)
		return 0;
	int a = sv[0], b = sv[1];
	step_send("send(sv[0],\"pre\") before shutdown", a, "pre", 3, 0);
	step_send("send(sv[1],\"rev\") before shutdown", b, "rev", 3, 0);
	snprintf(step, sizeof(step), "shutdown(sv[0],%s)", how_name);
	errno = 0;
	int r = SK(shutdown)(a, how);
	result(step, r, errno, NULL);
	step_poll("poll(sv[0])", a);
	step_poll("poll(sv[1])", b);
	step_recv("recvmsg(sv[1],64) #0", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) #1", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) #2", b, 64, 0, RECV_DONTWAIT);
	if (how == SHUT_RDWR)
		step_recv_blocking("recvmsg(sv[1],64) WITHOUT MSG_DONTWAIT, SO_RCVTIMEO=1s", b);
	step_recv("recvmsg(sv[0],64) #0", a, 64, 0, RECV_DONTWAIT);
	if (how == SHUT_RDWR)
		step_recv_blocking("recvmsg(sv[0],64) WITHOUT MSG_DONTWAIT, SO_RCVTIMEO=1s", a);
	step_recv("recvmsg(sv[0],64) #1", a, 64, 0, RECV_DONTWAIT);
	step_send("send(sv[0],\"x\") after shutdown", a, "x", 1, 0);
	step_send("send(sv[1],\"y\") after shutdown", b, "y", 1, 0);
	step_recv("recvmsg(sv[1],64) after sends", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[0],64) after sends", a, 64, 0, RECV_DONTWAIT);
	step_poll("poll(sv[0]) end", a);
	step_poll("poll(sv[1]) end", b);
	step_name("getpeername(sv[0]) after shutdown", a, 1);
	step_name("getpeername(sv[1]) after shutdown", b, 1);
	step_getsockopt("getsockopt(sv[0],SO_ERROR)", a, SOL_SOCKET, SO_ERROR);
	step_getsockopt("getsockopt(sv[1],SO_ERROR)", b, SOL_SOCKET, SO_ERROR);
	snprintf(step, sizeof(step), "shutdown(sv[0],%s) again", how_name);
	errno = 0;
	r = SK(shutdown)(a, how);
	result(step, r, errno, NULL);
	errno = 0;
	r = SK(shutdown)(b, SHUT_RDWR);
	result("shutdown(sv[1],SHUT_RDWR)", r, errno, NULL);
	step_poll("poll(sv[0]) after both", a);
	step_poll("poll(sv[1]) after both", b);
	step_recv("recvmsg(sv[0],64) after both", a, 64, 0, RECV_DONTWAIT);
	close_pair(sv);
	return 1;
}

enum close_variant {
	CLOSE_WITH_DATA_FOR_PEER,	/* sv[0] sent, sv[1] has not read */
	CLOSE_WITH_DATA_UNREAD,		/* sv[1] sent, sv[0] closes unread */
	CLOSE_WITH_NO_DATA,
};

/* close(sv[0]), then what sv[1] sees; 0 if no pair. */
static int close_case(int type, enum close_variant variant)
{
	static const char *const titles[] = {
		[CLOSE_WITH_DATA_FOR_PEER] = "close(sv[0]) with data pending at sv[1] (sent by sv[0])",
		[CLOSE_WITH_DATA_UNREAD] = "close(sv[0]) with unread data in sv[0] (sent by sv[1])",
		[CLOSE_WITH_NO_DATA] = "close(sv[0]) with no data",
	};
	int sv[2];
	note("--- %s ---", titles[variant]);
	if (step_pair("socketpair(AF_TIPC,type,0)", type, sv) != 0)
		return 0;
	int a = sv[0], b = sv[1];
	if (variant == CLOSE_WITH_DATA_FOR_PEER) {
		step_send("send(sv[0],\"pending1\")", a, "pending1", 8, 0);
		step_send("send(sv[0],\"pending2\")", a, "pending2", 8, 0);
	} else if (variant == CLOSE_WITH_DATA_UNREAD) {
		step_send("send(sv[1],\"unread1\")", b, "unread1", 7, 0);
		step_send("send(sv[1],\"unread2\")", b, "unread2", 7, 0);
	}
	errno = 0;
	int r = SK(close)(a);
	result("close(sv[0])", r, errno, NULL);
	step_poll("poll(sv[1]) after close", b);
	step_getsockopt("getsockopt(sv[1],SO_ERROR) after close", b, SOL_SOCKET, SO_ERROR);
	step_recv("recvmsg(sv[1],64) #0", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) #1", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) #2", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) #3", b, 64, 0, RECV_DONTWAIT);
	step_recv_blocking("recvmsg(sv[1],64) WITHOUT MSG_DONTWAIT, SO_RCVTIMEO=1s", b);
	step_send("send(sv[1],\"after\",MSG_NOSIGNAL|MSG_DONTWAIT)", b, "after", 5, 0);
	step_send("send(sv[1],\"after2\",MSG_NOSIGNAL|MSG_DONTWAIT)", b, "after2", 6, 0);
	step_poll("poll(sv[1]) end", b);
	step_recv("recvmsg(sv[1],64) end", b, 64, 0, RECV_DONTWAIT);
	step_recv("recvmsg(sv[1],64) end2", b, 64, 0, RECV_DONTWAIT);
	step_getsockopt("getsockopt(sv[1],SO_ERROR) end", b, SOL_SOCKET, SO_ERROR);
	step_name("getpeername(sv[1]) after peer close", b, 1);
	step_name("getsockname(sv[1]) after peer close", b, 0);
	errno = 0;
	r = SK(shutdown)(b, SHUT_RDWR);
	result("shutdown(sv[1],SHUT_RDWR) after peer close", r, errno, NULL);
	step_poll("poll(sv[1]) after own shutdown", b);
	SK(close)(b);
	return 1;
}

/* Every step for one socket type; the lines start with "[TYPE] ". */
static void suite(const char *type_name, int type)
{
	static const struct {
		int how;
		const char *name;
	} hows[] = {
		{ SHUT_WR, "SHUT_WR" },
		{ SHUT_RD, "SHUT_RD" },
		{ SHUT_RDWR, "SHUT_RDWR" },
		{ 7, "how=7" },
	};
	int sv[2];
	snprintf(line_prefix, sizeof(line_prefix), "[%s] ", type_name);
	creation(type);

	note("--- pair 1: names, options, data ---");
	if (step_pair("socketpair(AF_TIPC,type,0)", type, sv) != 0)
		goto out;
	names_and_options(sv[0], sv[1]);
	small_messages(sv[0], sv[1]);
	peek_trunc_oob(sv[0], sv[1]);
	large_messages(sv[0], sv[1]);
	connection_calls(sv[0], sv[1]);
	close_pair(sv);

	for (size_t h = 0; h < sizeof(hows) / sizeof(hows[0]); h++)
		if (!shutdown_case(type, hows[h].how, hows[h].name))
			goto out;
	for (int v = CLOSE_WITH_DATA_FOR_PEER; v <= CLOSE_WITH_NO_DATA; v++)
		if (!close_case(type, (enum close_variant)v))
			goto out;
out:
	line_prefix[0] = '\0';
}

static void all_steps(void)
{
	bad_arguments();
	suite("SOCK_STREAM", SOCK_STREAM);
	suite("SOCK_SEQPACKET", SOCK_SEQPACKET);
	suite("SOCK_RDM", SOCK_RDM);
	suite("SOCK_DGRAM", SOCK_DGRAM);
}

/* Steps where uspair may answer otherwise than TIPC (test mode). */
static struct allowed allowlist[] = {
	{ .prefix = "socket(AF_TIPC,", .kind = ANY_RESULT,
	  .reason = "a plain socket(), not a pair: the host kernel answers (EAFNOSUPPORT without TIPC)" },
	{ .prefix = "socketpair(AF_TIPC,", .kind = SV_UNTOUCHED,
	  .reason = "DESIGN.md known difference 1: usp_socketpair leaves sv untouched on every failure" },
};

static void preamble(void)
{
	note("sizeof(struct sockaddr_tipc)=%zu", sizeof(struct sockaddr_tipc));
}

/* Oracle mode only: the kernel's answer while TIPC is not loaded yet. */
static void before_load(void)
{
	int sv[2];
	snprintf(line_prefix, sizeof(line_prefix), "[pre-load] ");
	step_pair("socketpair(AF_TIPC,SOCK_STREAM,0) before module load", SOCK_STREAM, sv);
	line_prefix[0] = '\0';
}

int main(void)
{
	static struct oracle_program program = {
		.name = "tipc_transcript",
		.source = __FILE__,
		.expected = "tipc-socketpair-linux-6.1.txt",
		.begin = "=== TIPC SOCKETPAIR TRANSCRIPT BEGIN ===",
		.end = "=== TIPC SOCKETPAIR TRANSCRIPT END ===",
		.timeout = 60,
		.allowlist = allowlist,
		.allowed_count = ARRAY_LEN(allowlist),
		.preamble = preamble,
		.before_load = before_load,
		.steps = all_steps,
	};
	return oracle_main(&program);
}
