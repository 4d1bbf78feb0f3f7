/*
 * tipc_oracle.h: what the TIPC differential tests share
 * (test/tipc_transcript.c, test/tipc_semantics.c).
 *
 * Each of those programs is built two ways from one source file:
 *
 *  - oracle mode: every call is libc's.  The program is /init of a qemu
 *    machine running Debian's Linux 6.1 (which has the tipc module), made
 *    by /work/shared/tools/tipc-oracle/run.sh with a plain
 *    `gcc -static -O1 PROGRAM.c`; it loads the module with finit_module,
 *    prints one line per step and powers the machine off.  Chosen with
 *    -DUSP_TIPC_ORACLE, and automatically when uspair.h is not on the
 *    include path.  This header is found beside the .c file (a quoted
 *    #include looks in the including file's directory first), so run.sh
 *    still compiles one file.
 *
 *  - test mode (the Makefile's build, -Iinclude -Isrc): every socket call
 *    goes to uspair (usp_*), the lines are kept in memory and compared with
 *    the expected transcript in test/data/ (USP_TIPC_TRANSCRIPT=FILE names
 *    another file; USP_TIPC_ACTUAL=FILE writes this run's lines there as
 *    they are made).  Port ids (`ref=`) are random in TIPC, so both sides
 *    are compared with them masked; how ids relate is still compared
 *    through the `(=sv[0])` tags and the sender names.  Lines only the
 *    oracle can print (uname, [pre-load], finit_module) are skipped.  The
 *    two transcripts are aligned on their steps (the text before " -> "),
 *    so a missing or extra line is one difference, not a shift of all the
 *    rest.  The program's allowlist names the steps where uspair may
 *    answer otherwise, each with its reason.  Exit 0 when everything else
 *    matches, 1 if not (at most 60 lines of differences are printed).
 *
 * A program includes this header once, fills a struct oracle_program and
 * returns oracle_main(&program) from main().  Everything here is static
 * and marked unused: a program uses what it needs.
 */
#ifndef TIPC_ORACLE_H
#define TIPC_ORACLE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#if !defined(USP_TIPC_ORACLE) && defined(__has_include)
#if !__has_include("uspair.h")
#define USP_TIPC_ORACLE 1
#endif
#endif

#include <errno.h>
#include <fcntl.h>
#include <linux/tipc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_TIPC
#define AF_TIPC 30
#endif
#ifndef SOL_TIPC
#define SOL_TIPC 271
#endif

/*
 * SK(fn) is the call under test: libc's in oracle mode, uspair's in test
 * mode.  uspair has no socket(); steps that use it call libc in both modes
 * (see the programs' allowlists).
 */
#ifdef USP_TIPC_ORACLE
#define SK(fn) fn
#else
#include "uspair.h"
#define SK(fn) usp_##fn
#endif

#define ORACLE_FN static __attribute__((unused))
#define ORACLE_DATA static __attribute__((unused))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

#define ORACLE_BUF_ROOM 300000	/* send_buf and recv_buf */
#define UNTOUCHED_FD (-7)
#define NO_REF 0xffffffffu
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The program's name, for its own messages ("tipc_transcript: FAIL..."). */
static const char *oracle_name = "tipc_oracle";

/* ------------------------------------------------------------------ */
/* The transcript                                                      */
/* ------------------------------------------------------------------ */

/* "[SOCK_STREAM] " while a suite runs: every line of it starts so. */
static char line_prefix[96];

/* SIGPIPEs delivered (the handler is installed in both modes).  A step
 * that expects them reads and clears the count before its line; any
 * other becomes a line of its own after the step that raised it. */
static volatile sig_atomic_t sigpipes;

#ifndef USP_TIPC_ORACLE
struct lines {
	char **text;
	size_t count, capacity;
};

static struct lines actual;
static FILE *actual_copy;		/* USP_TIPC_ACTUAL, written as we go */
/* for the alarm handler: a copy that is never freed or moved */
static const char *volatile last_emitted;
#endif

ORACLE_FN void oracle_die(const char *what)
{
	fprintf(stderr, "%s: ", oracle_name);
	perror(what);
	exit(1);
}

static void emit(const char *line)
{
#ifdef USP_TIPC_ORACLE
	printf("%s\n", line);
	fflush(stdout);
#else
	if (actual.count == actual.capacity) {
		actual.capacity = actual.capacity ? 2 * actual.capacity : 2048;
		actual.text = realloc(actual.text, actual.capacity * sizeof(*actual.text));
		if (!actual.text)
			oracle_die("realloc");
	}
	char *copy = strdup(line);
	if (!copy)
		oracle_die("strdup");
	actual.text[actual.count++] = copy;
	last_emitted = copy;
	if (actual_copy) {
		fprintf(actual_copy, "%s\n", line);
		fflush(actual_copy);
	}
#endif
	/* a SIGPIPE no step asked about is a line of its own */
	if (sigpipes) {
		sigpipes = 0;
		emit("!!! SIGPIPE raised during the step above");
	}
}

static void PRINTF_LIKE(1, 2) note(const char *fmt, ...)
{
	char text[4096];
	int n = snprintf(text, sizeof(text), "%s", line_prefix);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - n, fmt, ap);
	va_end(ap);
	emit(text);
}

static const char *errno_name(int err)
{
	static char unknown[32];
	if (err == 0)
		return "OK(errno=0)";
	const char *name = strerrorname_np(err);
	if (name)
		return name;
	snprintf(unknown, sizeof(unknown), "E%d", err);
	return unknown;
}

/* One step's line: "STEP -> RET OK|ERRNAME[ DETAILS]". */
static void PRINTF_LIKE(4, 5) result(const char *step, long ret, int err,
				     const char *fmt, ...)
{
	char details[3000] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(details, sizeof(details), fmt, ap);
		va_end(ap);
	}
	note("%s -> %ld %s%s%s", step, ret, ret < 0 ? errno_name(err) : "OK",
	     details[0] ? " " : "", details);
}

struct flag_name {
	int value;
	const char *name;
};

/* "A|B|0x40": the named bits of mask, then whatever is left in hex. */
static const char *flag_names(char *buf, size_t size, int mask,
			      const struct flag_name *names, size_t count)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		if (!(mask & names[i].value))
			continue;
		n += snprintf(buf + n, size - n, "%s%s", n ? "|" : "", names[i].name);
		mask &= ~names[i].value;
	}
	if (mask)
		n += snprintf(buf + n, size - n, "%s0x%x", n ? "|" : "", mask);
	if (n == 0)
		snprintf(buf, size, "0");
	return buf;
}

ORACLE_FN const char *poll_names(int revents)
{
	static const struct flag_name names[] = {
		{ POLLIN, "IN" }, { POLLPRI, "PRI" }, { POLLOUT, "OUT" },
		{ POLLERR, "ERR" }, { POLLHUP, "HUP" }, { POLLNVAL, "NVAL" },
		{ POLLRDNORM, "RDNORM" }, { POLLRDBAND, "RDBAND" },
		{ POLLWRNORM, "WRNORM" }, { POLLWRBAND, "WRBAND" },
		{ POLLMSG, "MSG" }, { POLLRDHUP, "RDHUP" },
	};
	static char buf[256];
	return flag_names(buf, sizeof(buf), revents, names, ARRAY_LEN(names));
}

ORACLE_FN const char *msg_flag_names(int flags)
{
	static const struct flag_name names[] = {
		{ MSG_OOB, "OOB" }, { MSG_PEEK, "PEEK" }, { MSG_DONTROUTE, "DONTROUTE" },
		{ MSG_CTRUNC, "CTRUNC" }, { MSG_TRUNC, "TRUNC" },
		{ MSG_DONTWAIT, "DONTWAIT" }, { MSG_EOR, "EOR" },
		{ MSG_WAITALL, "WAITALL" }, { MSG_ERRQUEUE, "ERRQUEUE" },
		{ MSG_NOSIGNAL, "NOSIGNAL" }, { MSG_CMSG_CLOEXEC, "CMSG_CLOEXEC" },
	};
	static char buf[256];
	return flag_names(buf, sizeof(buf), flags, names, ARRAY_LEN(names));
}

/* Bytes as a C string; more than 40 are cut to 20 and the length said.
 * One static buffer: at most one call per line. */
ORACLE_FN const char *quoted(const char *data, long len)
{
	static char buf[256];
	long shown = len > 40 ? 20 : len;
	size_t n = 0;
	buf[n++] = '"';
	for (long i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c >= 32 && c < 127 && c != '"' && c != '\\')
			buf[n++] = (char)c;
		else
			n += snprintf(buf + n, sizeof(buf) - n, "\\x%02x", c);
	}
	buf[n++] = '"';
	buf[n] = '\0';
	if (shown < len)
		snprintf(buf + n, sizeof(buf) - n, "...(%ld bytes)", len);
	return buf;
}

/* A duration as the transcripts show it: coarse, so that it is stable. */
ORACLE_FN double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

ORACLE_FN const char *took(const struct timespec *t0)
{
	return seconds_since(t0) >= 0.5 ? ">=0.5s" : "<0.5s";
}

/* ------------------------------------------------------------------ */
/* Port ids: shown raw, and tagged with the end of the pair they name  */
/* ------------------------------------------------------------------ */

/* The port ids of the current pair's ends, NO_REF if unknown. */
static unsigned ref_sv0 = NO_REF, ref_sv1 = NO_REF;

static const char *ref_end(unsigned ref)
{
	return ref == ref_sv0 ? "sv[0]" : ref == ref_sv1 ? "sv[1]" : "other";
}

/* The full form, for getsockname/getpeername: every field and the bytes. */
ORACLE_FN const char *addr_long(const struct sockaddr_tipc *sa, socklen_t len)
{
	static char buf[512];
	const unsigned char *raw = (const unsigned char *)sa;
	char hex[64] = "";
	for (unsigned i = 0; i < len && i < 24; i++)
		snprintf(hex + 2 * i, sizeof(hex) - 2 * i, "%02x", raw[i]);
	unsigned ref = sa->addr.id.ref;
	snprintf(buf, sizeof(buf),
		 "len=%u family=%u addrtype=%u scope=%d ref=%u(%s%s) node=%u(0x%x) name.domain=%u raw=%s",
		 (unsigned)len, sa->family, sa->addrtype, sa->scope, ref,
		 ref == ref_sv0 || ref == ref_sv1 ? "=" : "", ref_end(ref),
		 sa->addr.id.node, sa->addr.id.node, sa->addr.name.domain, hex);
	return buf;
}

/* The short form, for the sender's address a receive reports. */
ORACLE_FN const char *addr_short(const struct sockaddr_tipc *sa, socklen_t len)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "len=%u family=%u addrtype=%u scope=%d ref=%s node=%u",
		 (unsigned)len, sa->family, sa->addrtype, sa->scope,
		 ref_end(sa->addr.id.ref), sa->addr.id.node);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Steps                                                               */
/* ------------------------------------------------------------------ */

ORACLE_DATA char send_buf[ORACLE_BUF_ROOM];
ORACLE_DATA char recv_buf[ORACLE_BUF_ROOM];

/* A name buffer with room to spare, so that an over-long answer shows. */
union name_room {
	struct sockaddr_tipc sa;
	char room[sizeof(struct sockaddr_tipc) + 48];
};

#define POLL_ALL_EVENTS                                                                \
	(POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND | \
	 POLLMSG | POLLRDHUP)

/* poll(fd, events) with a zero timeout; the revents. */
ORACLE_FN int poll_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	SK(poll)(&p, 1, 0);
	return p.revents;
}

ORACLE_FN void step_poll_events(const char *step, int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	errno = 0;
	int r = SK(poll)(&p, 1, 0);
	int err = errno;
	result(step, r, err, "revents=0x%x %s", p.revents, poll_names(p.revents));
}

ORACLE_FN void step_poll(const char *step, int fd)
{
	step_poll_events(step, fd, POLL_ALL_EVENTS);
}

/* getsockname (peer = 0) or getpeername; returns the port id or NO_REF. */
ORACLE_FN unsigned step_name(const char *step, int fd, int peer)
{
	union name_room u;
	memset(&u, 0xAA, sizeof(u));
	socklen_t len = sizeof(u);
	errno = 0;
	int r = peer ? SK(getpeername)(fd, (struct sockaddr *)&u, &len)
		     : SK(getsockname)(fd, (struct sockaddr *)&u, &len);
	int err = errno;
	if (r < 0) {
		result(step, r, err, "len=%u", (unsigned)len);
		return NO_REF;
	}
	result(step, r, err, "%s", addr_long(&u.sa, len));
	return u.sa.addr.id.ref;
}

ORACLE_FN void step_getsockopt(const char *step, int fd, int level, int opt)
{
	int value = -12345;
	socklen_t len = sizeof(value);
	errno = 0;
	int r = SK(getsockopt)(fd, level, opt, &value, &len);
	int err = errno;
	if (r < 0)
		result(step, r, err, "len=%u", (unsigned)len);
	else
		result(step, r, err, "val=%d len=%u", value, (unsigned)len);
}

/* An int option's value, or -1000-errno: for lines that show several. */
ORACLE_FN int sockopt_value(int fd, int level, int opt)
{
	int value = -12345;
	socklen_t len = sizeof(value);
	if (SK(getsockopt)(fd, level, opt, &value, &len) < 0)
		return -1000 - errno;
	return value;
}

ORACLE_FN void step_setsockopt(const char *step, int fd, int level, int opt, int value)
{
	errno = 0;
	int r = SK(setsockopt)(fd, level, opt, &value, sizeof(value));
	int err = errno;
	result(step, r, err, "(val=%d)", value);
}

/* Every send is non-blocking and without SIGPIPE: a step never waits. */
ORACLE_FN long step_send(const char *step, int fd, const void *buf, size_t len, int flags)
{
	errno = 0;
	long r = SK(send)(fd, buf, len, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
	int err = errno;
	result(step, r, err, "(len=%zu)", len);
	return r;
}

/* Appends the ancillary data of m to details, one cmsg{...} each. */
static size_t describe_cmsgs(char *details, size_t size, size_t n, struct msghdr *m,
			     size_t control_room)
{
	/* a wrong msg_controllen must not walk us off the buffer */
	struct msghdr bounded = *m;
	if (bounded.msg_controllen > control_room)
		bounded.msg_controllen = control_room;
	if (!bounded.msg_control)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&bounded); c; c = CMSG_NXTHDR(&bounded, c)) {
		n += snprintf(details + n, size - n, " cmsg{level=%d type=%d len=%zu",
			      c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len);
		const unsigned *words = (const unsigned *)CMSG_DATA(c);
		if (c->cmsg_level == SOL_TIPC && c->cmsg_type == TIPC_ERRINFO)
			n += snprintf(details + n, size - n, " errinfo=%u,%u", words[0], words[1]);
		else if (c->cmsg_level == SOL_TIPC && c->cmsg_type == TIPC_RETDATA)
			n += snprintf(details + n, size - n, " retdata=%s",
				      quoted((const char *)CMSG_DATA(c),
					     (long)(c->cmsg_len - CMSG_LEN(0))));
		else if (c->cmsg_level == SOL_TIPC && c->cmsg_type == TIPC_DESTNAME)
			n += snprintf(details + n, size - n, " destname=%u,%u,%u", words[0],
				      words[1], words[2]);
		else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			n += snprintf(details + n, size - n, " rights");
		else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
			n += snprintf(details + n, size - n, " credentials");
		n += snprintf(details + n, size - n, "}");
	}
	return n;
}

enum recv_mode {
	RECV_DONTWAIT,		/* MSG_DONTWAIT added: the usual receive */
	RECV_BLOCKING,		/* as asked: the caller has set SO_RCVTIMEO */
	RECV_QUIET_DONTWAIT,	/* MSG_DONTWAIT, and no line */
	RECV_QUIET_BLOCKING,	/* as asked, and no line */
};

#define RECV_CONTROL_ROOM 512

/* errno of the last step_recv_with, for a caller that made no line */
static int last_recv_errno;

/*
 * recvmsg into a buffer of buflen bytes, asking for the sender's name
 * (unless with_name is 0: msg_name NULL) and for control_room bytes of
 * ancillary data (0: msg_control NULL), with msg_flags preset to garbage
 * (does the call set it?).
 */
ORACLE_FN long step_recv_with(const char *step, int fd, size_t buflen, int flags,
			      enum recv_mode mode, size_t control_room, int with_name)
{
	union name_room u;
	/* slack past the room we offer: the cmsg walk may look a little
	 * beyond a short last cmsg */
	char control[RECV_CONTROL_ROOM + 64];
	if (control_room > RECV_CONTROL_ROOM)
		control_room = RECV_CONTROL_ROOM;
	memset(&u, 0, sizeof(u));
	memset(control, 0, sizeof(control));
	memset(recv_buf, 0, buflen + 1 < sizeof(recv_buf) ? buflen + 1 : sizeof(recv_buf));
	struct iovec iov = { .iov_base = recv_buf, .iov_len = buflen };
	struct msghdr m = {
		.msg_name = with_name ? &u : NULL,
		.msg_namelen = with_name ? sizeof(u) : 0,
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control_room ? control : NULL,
		.msg_controllen = control_room,
		.msg_flags = 0x7fff0000,
	};
	int dontwait = mode == RECV_DONTWAIT || mode == RECV_QUIET_DONTWAIT;
	errno = 0;
	long r = SK(recvmsg)(fd, &m, flags | (dontwait ? MSG_DONTWAIT : 0));
	int err = errno;
	last_recv_errno = err;
	if (mode == RECV_QUIET_DONTWAIT || mode == RECV_QUIET_BLOCKING)
		return r;
	if (r < 0) {
		result(step, r, err, "(buflen=%zu)", buflen);
		return r;
	}
	char details[2000];
	size_t n = snprintf(details, sizeof(details),
			    "(buflen=%zu) data=%s msg_flags=0x%x[%s] namelen=%u", buflen,
			    quoted(recv_buf, r < (long)buflen ? r : (long)buflen), m.msg_flags,
			    msg_flag_names(m.msg_flags), (unsigned)m.msg_namelen);
	if (with_name && m.msg_namelen > 0)
		n += snprintf(details + n, sizeof(details) - n, " name{%s}",
			      addr_short(&u.sa, m.msg_namelen));
	n += snprintf(details + n, sizeof(details) - n, " controllen=%zu",
		      (size_t)m.msg_controllen);
	describe_cmsgs(details, sizeof(details), n, &m, control_room);
	result(step, r, err, "%s", details);
	return r;
}

ORACLE_FN long step_recv(const char *step, int fd, size_t buflen, int flags, enum recv_mode mode)
{
	return step_recv_with(step, fd, buflen, flags, mode, RECV_CONTROL_ROOM, 1);
}

ORACLE_FN void set_timeout(int fd, int opt, long usec)
{
	struct timeval timeout = { .tv_sec = usec / 1000000, .tv_usec = usec % 1000000 };
	SK(setsockopt)(fd, SOL_SOCKET, opt, &timeout, sizeof(timeout));
}

/* A receive without MSG_DONTWAIT under a 1 s SO_RCVTIMEO: does it wait? */
ORACLE_FN void step_recv_blocking(const char *step, int fd)
{
	struct timespec t0;
	set_timeout(fd, SO_RCVTIMEO, 1000000);
	int fl = SK(fcntl)(fd, F_GETFL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	step_recv(step, fd, 64, 0, RECV_BLOCKING);
	double seconds = seconds_since(&t0);
	note("  (blocking recv above took %s; O_NONBLOCK=%d)",
	     seconds >= 0.5 ? ">=0.5s (timed out)" : "<0.5s (returned immediately)",
	     fl >= 0 && (fl & O_NONBLOCK) ? 1 : 0);
}

/* Receives until an error; lines for the first `shown` and the error. */
ORACLE_FN void step_drain_shown(const char *what, int fd, size_t buflen, int shown)
{
	long total = 0;
	int received = 0;
	char step[160];
	for (int i = 0; i < 100000; i++) {
		snprintf(step, sizeof(step), "drain %s recv(buflen=%zu) #%d", what, buflen, i);
		long r = step_recv(step, fd, buflen, 0,
				   i < shown ? RECV_DONTWAIT : RECV_QUIET_DONTWAIT);
		if (r < 0) {
			if (i >= shown)
				result(step, r, last_recv_errno, NULL);
			break;
		}
		total += r;
		received++;
		if (r == 0 && i > shown)
			break;	/* repeated EOF: it would go on for ever */
	}
	note("drain %s summary: %d successful recvs, total %ld bytes", what, received, total);
}

ORACLE_FN void step_drain(const char *what, int fd, size_t buflen)
{
	step_drain_shown(what, fd, buflen, 3);
}

ORACLE_FN void step_fd_flags(const char *end, int fd)
{
	char step[64];
	snprintf(step, sizeof(step), "fcntl(%s,F_GETFL)", end);
	errno = 0;
	int r = SK(fcntl)(fd, F_GETFL);
	result(step, r, errno, "0x%x O_NONBLOCK=%d O_RDWR=%d", r,
	       r >= 0 && (r & O_NONBLOCK) ? 1 : 0, r >= 0 && (r & O_ACCMODE) == O_RDWR);
	snprintf(step, sizeof(step), "fcntl(%s,F_GETFD)", end);
	errno = 0;
	r = SK(fcntl)(fd, F_GETFD);
	result(step, r, errno, "FD_CLOEXEC=%d", r >= 0 && (r & FD_CLOEXEC) ? 1 : 0);
}

/* Notes the port ids of a new pair's ends, for tagging. */
ORACLE_FN void learn_refs(const int sv[2])
{
	struct sockaddr_tipc sa;
	socklen_t len = sizeof(sa);
	ref_sv0 = ref_sv1 = NO_REF;
	if (SK(getsockname)(sv[0], (struct sockaddr *)&sa, &len) == 0)
		ref_sv0 = sa.addr.id.ref;
	len = sizeof(sa);
	if (SK(getsockname)(sv[1], (struct sockaddr *)&sa, &len) == 0)
		ref_sv1 = sa.addr.id.ref;
}

/* socketpair(AF_TIPC, type, 0), noting the ends' port ids for tagging. */
ORACLE_FN int step_pair(const char *step, int type, int sv[2])
{
	sv[0] = sv[1] = UNTOUCHED_FD;
	errno = 0;
	int r = SK(socketpair)(AF_TIPC, type, 0, sv);
	int err = errno;
	result(step, r, err, "sv={%d,%d}", sv[0], sv[1]);
	ref_sv0 = ref_sv1 = NO_REF;
	if (r == 0)
		learn_refs(sv);
	return r;
}

/* A pair without a line of its own: only a failure makes one. */
ORACLE_FN int quiet_pair(int type, int sv[2])
{
	sv[0] = sv[1] = UNTOUCHED_FD;
	errno = 0;
	int r = SK(socketpair)(AF_TIPC, type, 0, sv);
	ref_sv0 = ref_sv1 = NO_REF;
	if (r < 0) {
		result("socketpair(AF_TIPC,type,0)", r, errno, "sv={%d,%d}", sv[0], sv[1]);
		return r;
	}
	learn_refs(sv);
	return r;
}

/* sv[1] first: TIPC's close of a sender whose window is full waits up to
 * 8 s for the receiver, unless the receiver is gone already. */
ORACLE_FN void close_pair(const int sv[2])
{
	if (sv[1] >= 0)
		SK(close)(sv[1]);
	if (sv[0] >= 0)
		SK(close)(sv[0]);
}

/* ------------------------------------------------------------------ */
/* The program                                                         */
/* ------------------------------------------------------------------ */

/* Steps where uspair may answer otherwise than TIPC.  prefix is matched
 * against the step (the line without its "[TAG] " prefix). */
enum allowance {
	ANY_RESULT,	/* the same step, any result */
	SV_UNTOUCHED,	/* a failure may leave sv={-7,-7} where Linux wrote sv */
};

struct allowed {
	const char *prefix;
	enum allowance kind;
	const char *reason;
	unsigned used;		/* lines it let through in this run */
};

struct oracle_program {
	const char *name;	/* for messages: "tipc_transcript" */
	const char *source;	/* __FILE__ of the program: data/ is beside it */
	const char *expected;	/* the expected transcript's name in data/ */
	const char *begin, *end;	/* the first and last lines */
	unsigned timeout;	/* test mode: seconds before a hang fails */
	/* oracle mode: a newline before the first line.  SeaBIOS's
	 * "Booting from ROM.." may end without one (it depends on the size
	 * of the initramfs), and run.sh drops that whole console line, so
	 * the first line printed after it would go with it; when the
	 * newline is not needed it makes an empty line, which test mode
	 * skips. */
	int newline_first;
	struct allowed *allowlist;
	size_t allowed_count;
	void (*preamble)(void);	/* lines both modes make first */
	void (*before_load)(void);	/* oracle mode: steps before tipc.ko is there */
	void (*steps)(void);
};

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

#ifdef USP_TIPC_ORACLE
/* ------------------------------------------------------------------ */
/* Oracle mode: /init of a qemu machine with the tipc module at hand   */
/* ------------------------------------------------------------------ */

static void load_module(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		result(path, -1, errno, "open failed");
		return;
	}
	errno = 0;
	long r = syscall(SYS_finit_module, fd, "", 0);
	int err = errno;
	char step[256];
	snprintf(step, sizeof(step), "finit_module(%s)", path);
	result(step, r, err, NULL);
	close(fd);
}

ORACLE_FN int oracle_main(struct oracle_program *p)
{
	oracle_name = p->name;
	/* as PID 1 nothing is open yet: the console becomes 0, 1 and 2, so
	 * that the pairs' descriptors are 3 and 4 as anywhere else */
	if (getpid() == 1) {
		int console = open("/dev/console", O_RDWR);
		if (console >= 0) {
			dup2(console, 0);
			dup2(console, 1);
			dup2(console, 2);
			if (console > 2)
				close(console);
		}
		mount("proc", "/proc", "proc", 0, NULL);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* counted, as in test mode (init gets a signal it has a handler for) */
	struct sigaction sa = { .sa_handler = on_sigpipe };
	sigaction(SIGPIPE, &sa, NULL);
	struct utsname u;
	uname(&u);
	if (p->newline_first)
		printf("\n");
	emit(p->begin);
	note("uname: %s %s %s %s", u.sysname, u.release, u.version, u.machine);
	if (p->preamble)
		p->preamble();
	if (p->before_load)
		p->before_load();
	load_module("/udp_tunnel.ko");
	load_module("/ip6_udp_tunnel.ko");
	load_module("/tipc.ko");
	load_module("/tipc.ko");	/* again: EEXIST shows that it is loaded */

	p->steps();
	emit(p->end);
	if (getpid() != 1)
		return 0;
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

#else
/* ------------------------------------------------------------------ */
/* Test mode: run the steps on uspair, compare with the transcript     */
/* ------------------------------------------------------------------ */

static struct oracle_program *the_program;

/* Lines of the expected transcript that only the oracle machine prints
 * (and empty lines: see newline_first). */
static int oracle_only(const char *line)
{
	return line[0] == '\0' || strncmp(line, "uname: ", 7) == 0 || strncmp(line, "[pre-load] ", 11) == 0 ||
	       strncmp(line, "finit_module(", 13) == 0;
}

/* The step of a line: without the "[TAG] " prefix, if it has one. */
static const char *step_of(const char *line)
{
	if (line[0] == '[') {
		const char *end = strstr(line, "] ");
		if (end)
			return end + 2;
	}
	return line;
}

static struct allowed *allowance_for(const char *expected_line)
{
	const char *step = step_of(expected_line);
	for (size_t i = 0; i < the_program->allowed_count; i++) {
		struct allowed *a = &the_program->allowlist[i];
		if (strncmp(step, a->prefix, strlen(a->prefix)) == 0)
			return a;
	}
	return NULL;
}

/*
 * A line with port ids masked: "ref=123" becomes "ref=N", and in
 * "raw=<hex>" the four bytes of the port id (bytes 4..7 of the
 * sockaddr_tipc) become XXXXXXXX.  Returns a new string.
 */
static char *masked(const char *line)
{
	size_t len = strlen(line);
	char *out = malloc(len + 1);
	if (!out)
		oracle_die("malloc");
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		if (strncmp(line + i, "ref=", 4) == 0 && line[i + 4] >= '0' && line[i + 4] <= '9') {
			memcpy(out + o, "ref=N", 5);
			o += 5;
			i += 4;
			while (line[i] >= '0' && line[i] <= '9')
				i++;
			continue;
		}
		if (strncmp(line + i, "raw=", 4) == 0 && strspn(line + i + 4, "0123456789abcdef") >= 16) {
			memcpy(out + o, line + i, 12);
			memcpy(out + o + 12, "XXXXXXXX", 8);
			o += 20;
			i += 20;
			continue;
		}
		out[o++] = line[i++];
	}
	out[o] = '\0';
	return out;
}

/* A line as compared: masked, and the length of its step part. */
struct compared_line {
	char *text;
	size_t key_len;		/* up to " -> ", or the whole line */
	size_t number;		/* line number in its file or in this run, from 1 */
};

static struct compared_line *expected_lines, *actual_lines;
static size_t n_expected;

static void set_compared(struct compared_line *c, const char *line, size_t number)
{
	c->text = masked(line);
	const char *arrow = strstr(c->text, " -> ");
	c->key_len = arrow ? (size_t)(arrow - c->text) : strlen(c->text);
	c->number = number;
}

static int same_key(const struct compared_line *x, const struct compared_line *y)
{
	return x->key_len == y->key_len && memcmp(x->text, y->text, x->key_len) == 0;
}

/* expected_line with its sv={...} replaced by sv={-7,-7}, if it failed. */
static int equal_with_sv_untouched(const char *expected_line, const char *actual_line)
{
	const char *sv = strstr(expected_line, " sv={");
	if (!strstr(expected_line, " -> -1 ") || !sv)
		return 0;
	const char *close_brace = strchr(sv, '}');
	if (!close_brace)
		return 0;
	char variant[4096];
	snprintf(variant, sizeof(variant), "%.*s sv={%d,%d}%s", (int)(sv - expected_line),
		 expected_line, UNTOUCHED_FD, UNTOUCHED_FD, close_brace + 1);
	return strcmp(variant, actual_line) == 0;
}

struct report {
	unsigned differences;	/* lines not equal and not allowed */
	unsigned printed;	/* output lines spent on them */
	unsigned allowed;
};

#define REPORT_LINE_LIMIT 60

static void report_difference(struct report *rep, const struct compared_line *want,
			      const struct compared_line *got)
{
	rep->differences++;
	if (rep->printed + 2 > REPORT_LINE_LIMIT)
		return;
	if (want)
		printf("expected:%zu: %s\n", want->number, want->text);
	else
		printf("expected:-: (no such line)\n");
	if (got)
		printf("actual:%zu:   %s\n", got->number, got->text);
	else
		printf("actual:-:   (no such line)\n");
	rep->printed += 2;
}

/* An expected line against the actual line aligned with it. */
static void compare_pair(struct report *rep, const struct compared_line *want,
			 const struct compared_line *got)
{
	if (strcmp(want->text, got->text) == 0)
		return;
	struct allowed *allowance = allowance_for(want->text);
	if (allowance && same_key(want, got) &&
	    (allowance->kind == ANY_RESULT || equal_with_sv_untouched(want->text, got->text))) {
		allowance->used++;
		rep->allowed++;
		return;
	}
	report_difference(rep, want, got);
}

/*
 * Aligns the two transcripts on their steps (a longest common subsequence
 * of the step parts), so that a missing or extra line is one difference
 * instead of shifting every line after it.  The unaligned lines between
 * two aligned ones are shown side by side.
 */
static void compare_transcripts(struct report *rep, const struct compared_line *want,
				size_t n_want, const struct compared_line *got, size_t n_got)
{
	size_t width = n_got + 1;
	uint16_t *lcs = NULL;
	if (n_want < 65535 && n_got < 65535 && (n_want + 1) * width <= (size_t)64 << 20)
		lcs = calloc((n_want + 1) * width, sizeof(*lcs));
	if (!lcs) {
		/* too big to align: line by line */
		size_t n = n_want > n_got ? n_want : n_got;
		for (size_t i = 0; i < n; i++) {
			if (i < n_want && i < n_got)
				compare_pair(rep, &want[i], &got[i]);
			else
				report_difference(rep, i < n_want ? &want[i] : NULL,
						  i < n_got ? &got[i] : NULL);
		}
		return;
	}
#define LCS(i, j) lcs[(i) * width + (j)]
	/* LCS(i, j): how many steps want[i..] and got[j..] have in common */
	for (size_t i = n_want; i-- > 0;)
		for (size_t j = n_got; j-- > 0;) {
			if (same_key(&want[i], &got[j]))
				LCS(i, j) = (uint16_t)(LCS(i + 1, j + 1) + 1);
			else
				LCS(i, j) = LCS(i + 1, j) >= LCS(i, j + 1) ? LCS(i + 1, j)
									   : LCS(i, j + 1);
		}
	size_t i = 0, j = 0;
	while (i < n_want || j < n_got) {
		if (i < n_want && j < n_got && same_key(&want[i], &got[j])) {
			compare_pair(rep, &want[i++], &got[j++]);
			continue;
		}
		/* the gap before the next aligned pair */
		size_t gap_i = i, gap_j = j;
		while (gap_i < n_want || gap_j < n_got) {
			if (gap_i < n_want && gap_j < n_got && same_key(&want[gap_i], &got[gap_j]))
				break;
			if (gap_j >= n_got ||
			    (gap_i < n_want && LCS(gap_i + 1, gap_j) >= LCS(gap_i, gap_j + 1)))
				gap_i++;
			else
				gap_j++;
		}
		while (i < gap_i || j < gap_j)
			report_difference(rep, i < gap_i ? &want[i++] : NULL,
					  j < gap_j ? &got[j++] : NULL);
	}
#undef LCS
	free(lcs);
}

/*
 * The expected transcript: USP_TIPC_TRANSCRIPT, else data/ beside the
 * program's source file (its __FILE__ is test/NAME.c in the Makefile's
 * build), from the working directory or else from the binary's
 * (build/test/NAME: two levels down from the repository).
 */
static FILE *open_expected(char *path, size_t size)
{
	const char *env = getenv("USP_TIPC_TRANSCRIPT");
	if (env && env[0]) {
		snprintf(path, size, "%s", env);
		return fopen(path, "r");
	}
	const char *source = the_program->source;
	const char *slash = strrchr(source, '/');
	if (slash)
		snprintf(path, size, "%.*s/data/%s", (int)(slash - source), source,
			 the_program->expected);
	else
		snprintf(path, size, "data/%s", the_program->expected);
	FILE *f = fopen(path, "r");
	if (f || path[0] == '/')
		return f;
	int saved = errno;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *exe_slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
	if (exe_slash) {
		char guess[8192];
		*exe_slash = '\0';
		int len = snprintf(guess, sizeof(guess), "%s/../../%s", exe, path);
		if (len > 0 && (size_t)len < size && (f = fopen(guess, "r")))
			memcpy(path, guess, (size_t)len + 1);
	}
	errno = f ? 0 : saved;
	return f;
}

static int load_expected(const char *path, FILE *f)
{
	size_t capacity = 0, number = 0;
	char *line = NULL;
	size_t line_capacity = 0;
	ssize_t len;
	while ((len = getline(&line, &line_capacity, f)) >= 0) {
		number++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (oracle_only(line))
			continue;
		if (n_expected == capacity) {
			capacity = capacity ? 2 * capacity : 2048;
			expected_lines = realloc(expected_lines, capacity * sizeof(*expected_lines));
			if (!expected_lines)
				oracle_die("realloc");
		}
		set_compared(&expected_lines[n_expected++], line, number);
	}
	free(line);
	fclose(f);
	if (n_expected == 0) {
		printf("%s: FAIL: %s has no lines to compare\n", oracle_name, path);
		return -1;
	}
	return 0;
}

static void write_str(const char *s)
{
	ssize_t ignored = write(STDOUT_FILENO, s, strlen(s));
	(void)ignored;
}

/* A hang fails the test here rather than at runtests' timeout, and says
 * where: in the step after the last line made. */
static void on_alarm(int sig)
{
	(void)sig;
	write_str(oracle_name);
	write_str(": FAIL: timed out; the step after this line hangs:\n  ");
	write_str(last_emitted ? last_emitted : "(no line yet)");
	write_str("\n");
	_exit(1);
}

/* The sanitizers report a crash better themselves: leave them the signals. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_HANDLES_CRASHES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_HANDLES_CRASHES 1
#endif
#endif

#ifndef SANITIZER_HANDLES_CRASHES
/* A crash in uspair: say where, then die of the signal as before. */
static void on_crash(int sig)
{
	const char *name = sigabbrev_np(sig);	/* a constant string: safe here */
	write_str(oracle_name);
	write_str(": FAIL: crashed (SIG");
	write_str(name ? name : "?");
	write_str("); the step after this line did it:\n  ");
	write_str(last_emitted ? last_emitted : "(no line yet)");
	write_str("\n");
	signal(sig, SIG_DFL);
	raise(sig);
}
#endif

static void install_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_sigpipe;
	sigaction(SIGPIPE, &sa, NULL);
#ifndef SANITIZER_HANDLES_CRASHES
	static const int deadly[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	sa.sa_handler = on_crash;
	for (size_t i = 0; i < ARRAY_LEN(deadly); i++)
		sigaction(deadly[i], &sa, NULL);
#endif
}

ORACLE_FN int oracle_main(struct oracle_program *p)
{
	the_program = p;
	oracle_name = p->name;
	char path[4096];
	FILE *f = open_expected(path, sizeof(path));
	if (!f) {
		printf("%s: FAIL: cannot open the expected transcript %s: %s\n"
		       "  (run from the repository root, or set USP_TIPC_TRANSCRIPT=FILE)\n",
		       oracle_name, path, strerror(errno));
		return 1;
	}
	if (load_expected(path, f) < 0)
		return 1;

	const char *copy_path = getenv("USP_TIPC_ACTUAL");
	if (copy_path && copy_path[0] && !(actual_copy = fopen(copy_path, "w")))
		printf("%s: cannot write %s: %s\n", oracle_name, copy_path, strerror(errno));

	install_handlers();
	alarm(p->timeout);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	emit(p->begin);
	if (p->preamble)
		p->preamble();
	p->steps();
	emit(p->end);

	alarm(0);
	double seconds = seconds_since(&t0);
	if (actual_copy)
		fclose(actual_copy);

	actual_lines = calloc(actual.count, sizeof(*actual_lines));
	if (!actual_lines)
		oracle_die("calloc");
	for (size_t i = 0; i < actual.count; i++)
		set_compared(&actual_lines[i], actual.text[i], i + 1);

	printf("%s: %zu lines from uspair (%.1f s) against %zu lines of %s, "
	       "port ids masked\n",
	       oracle_name, actual.count, seconds, n_expected, path);
	struct report rep = { 0, 0, 0 };
	compare_transcripts(&rep, expected_lines, n_expected, actual_lines, actual.count);
	if (rep.differences > rep.printed / 2)
		printf("... and %u more differing lines (USP_TIPC_ACTUAL=FILE writes the whole "
		       "run)\n",
		       rep.differences - rep.printed / 2);
	for (size_t i = 0; i < p->allowed_count; i++)
		if (p->allowlist[i].used)
			printf("allowed: %u line(s) \"%s...\": %s\n", p->allowlist[i].used,
			       p->allowlist[i].prefix, p->allowlist[i].reason);
	if (rep.differences) {
		printf("%s: FAIL: %u line(s) differ from Linux 6.1's TIPC "
		       "(and %u allowed differences)\n",
		       oracle_name, rep.differences, rep.allowed);
		return 1;
	}
	printf("%s: PASS: every line matches Linux 6.1's TIPC "
	       "(%u allowed differences)\n",
	       oracle_name, rep.allowed);
	return 0;
}
#endif /* USP_TIPC_ORACLE */

#endif /* TIPC_ORACLE_H */
