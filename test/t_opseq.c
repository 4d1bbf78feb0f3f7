/* Random operation sequences, applied to a kernel pair and a uspair pair;
 * see t_opseq.h. */
#include "t_opseq.h"
#include "t_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif
#define SCM_MAX_FD 253
#define MMSG_MAX 8

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* ------------------------------------------------------------------ */
/* results                                                             */

enum { SKIP_NONE, SKIP_CLOSED, SKIP_WOULD_BLOCK, SKIP_KNOWN_DIFFERENCE };

/* Everything one step observed; compared with memcmp (always zeroed first). */
struct opseq_res {
	int32_t skipped;	/* SKIP_* */
	int32_t pre[3];		/* queries made before a call that may block */
	int64_t ret;
	int32_t err;
	int32_t msg_flags;	/* recvmsg */
	int32_t namelen;	/* recvmsg msg_namelen, recvfrom/getpeername addrlen */
	int32_t controllen;	/* recvmsg msg_controllen */
	int32_t val[2];		/* revents, ioctl/option values, optlen, F_GETFL */
	uint32_t data_len;	/* bytes received (min(ret, capacity)) */
	uint32_t guard_bad;	/* a receive wrote outside its buffers */
	uint64_t hash;		/* of the received bytes, or of a returned address */
	uint32_t sigpipes;	/* SIGPIPEs during the call */
	uint32_t interrupted;	/* the per-run timer fired during the call */
	int32_t kd_pre[2];	/* queries made for a known-difference rule */
	int32_t post;		/* poll(POLLIN) after a receive, when tracked */
	/* ancillary data received (recvmsg, recvmmsg): what, never numbers */
	struct {
		uint16_t ncmsg;		/* control messages seen */
		uint16_t nfds;		/* descriptors received */
		int32_t first[4][3];	/* level, type, len of the first four */
		uint16_t cls[8];	/* descriptors per class (FDC_*) */
		uint16_t cloexec;	/* of which with FD_CLOEXEC */
		uint16_t bad;		/* malformed or truncated entries seen */
		uint64_t fdhash;	/* the sequence of (class, FD_CLOEXEC) */
		int32_t cred[3];	/* last SCM_CREDENTIALS: pid class, uid, gid */
		int32_t pidfd;		/* SCM_PIDFD: 1 ours, 2 another, 3 not a pidfd */
	} c;
	/* sendmmsg/recvmmsg entries */
	uint32_t mm_len[MMSG_MAX];
	int32_t mm_flags[MMSG_MAX];
	int32_t mm_clen[MMSG_MAX];
	int32_t mm_timeout;	/* recvmmsg: 1 time left, 0 none, -1 no timeout */
};

/* classes of a received descriptor */
enum { FDC_PIPE_R, FDC_PIPE_W, FDC_NULL, FDC_END0, FDC_END1, FDC_UNKNOWN,
       FDC_PIDFD, FDC_NOT_NEW };

#define FINAL_STEPS_PER_SIDE 5
#define MAX_STEPS (OPSEQ_MAX_OPS + 2 * FINAL_STEPS_PER_SIDE + 1)

/* ------------------------------------------------------------------ */
/* process-wide state                                                  */

#define PATTERN_BYTES (OPSEQ_MAX_SIZE + 65536 + 4096)
#define MAX_IOV 1025
#define GUARD_BYTE 0xA5
#define TAIL_GUARD 64
#define RBUF_BYTES (OPSEQ_MAX_SIZE + 2 * MAX_IOV + TAIL_GUARD + 4096)

static unsigned char *pattern;
static unsigned char *rbuf;	/* receive buffer, pieces separated by guard bytes */
static unsigned char *gbuf;	/* received bytes gathered in order */
static int initialised;

/* Descriptors sent with SCM_RIGHTS: opened once per process. */
enum { POOL_PIPE_R, POOL_PIPE_W, POOL_NULL, POOL_COUNT };
static int pool_fd[POOL_COUNT] = { -1, -1, -1 };
static struct stat pool_st[POOL_COUNT];

static timer_t run_timer;
static int run_timer_ready;
static atomic_int run_timer_fired;

static void run_timer_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&run_timer_fired, 1);
}

void opseq_init(void)
{
	if (initialised)
		return;
	initialised = 1;
	pattern = malloc(PATTERN_BYTES);
	rbuf = malloc(RBUF_BYTES);
	gbuf = malloc(OPSEQ_MAX_SIZE + 4096);
	if (!pattern || !rbuf || !gbuf) {
		fprintf(stderr, "opseq: out of memory\n");
		abort();
	}
	t_fill_pattern(pattern, PATTERN_BYTES, 0x5eed, 0);

	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("opseq: pipe2");
		abort();
	}
	pool_fd[POOL_PIPE_R] = p[0];
	pool_fd[POOL_PIPE_W] = p[1];
	pool_fd[POOL_NULL] = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < POOL_COUNT; i++)
		if (pool_fd[i] < 0 || fstat(pool_fd[i], &pool_st[i]) < 0) {
			perror("opseq: descriptor pool");
			abort();
		}

	/* SIGPIPE counted, compared per step */
	t_init_sigpipe_counter();

	/* A timer per run: interrupts (EINTR, no SA_RESTART) a call that
	 * blocks although the executor decided it could not. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = run_timer_handler;
	sigaction(SIGRTMIN + 3, &sa, NULL);
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGRTMIN + 3;
	sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, &run_timer) == 0)
		run_timer_ready = 1;
}

static void run_timer_set(int seconds)
{
	if (!run_timer_ready)
		return;
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = seconds;
	its.it_interval.tv_sec = seconds ? 1 : 0;
	timer_settime(run_timer, 0, &its, NULL);
}

/* ------------------------------------------------------------------ */
/* names                                                               */

static const char *const op_names[OP__COUNT] = {
	[OP_NONE] = "OP_NONE", [OP_SEND] = "OP_SEND", [OP_SENDTO] = "OP_SENDTO",
	[OP_SENDMSG] = "OP_SENDMSG", [OP_WRITE] = "OP_WRITE",
	[OP_WRITEV] = "OP_WRITEV", [OP_RECV] = "OP_RECV",
	[OP_RECVFROM] = "OP_RECVFROM", [OP_RECVMSG] = "OP_RECVMSG",
	[OP_READ] = "OP_READ", [OP_READV] = "OP_READV",
	[OP_SHUTDOWN] = "OP_SHUTDOWN", [OP_CLOSE] = "OP_CLOSE",
	[OP_POLL] = "OP_POLL", [OP_FIONREAD] = "OP_FIONREAD",
	[OP_SIOCOUTQ] = "OP_SIOCOUTQ", [OP_SETSOCKOPT] = "OP_SETSOCKOPT",
	[OP_GETSOCKOPT] = "OP_GETSOCKOPT", [OP_SETFL] = "OP_SETFL",
	[OP_FIONBIO] = "OP_FIONBIO", [OP_PEEK_OFF] = "OP_PEEK_OFF",
	[OP_SO_ERROR] = "OP_SO_ERROR", [OP_GETPEERNAME] = "OP_GETPEERNAME",
	[OP_GETSOCKNAME] = "OP_GETSOCKNAME", [OP_SENDMSG_SCM] = "OP_SENDMSG_SCM",
	[OP_RECVMSG_SCM] = "OP_RECVMSG_SCM", [OP_PASSOPT] = "OP_PASSOPT",
	[OP_SENDMMSG] = "OP_SENDMMSG", [OP_RECVMMSG] = "OP_RECVMMSG",
	[OP_FDCOUNT] = "OP_FDCOUNT",
};

const char *opseq_op_name(int op)
{
	return op >= 0 && op < OP__COUNT ? op_names[op] : "OP_?";
}

const char *opseq_type_name(int type)
{
	return t_type_name(type);
}

struct bit_name {
	int bit;
	const char *name;
};

static const struct bit_name msg_flag_names[] = {
	{ MSG_OOB, "MSG_OOB" }, { MSG_PEEK, "MSG_PEEK" },
	{ MSG_DONTROUTE, "MSG_DONTROUTE" }, { MSG_CTRUNC, "MSG_CTRUNC" },
	{ MSG_TRUNC, "MSG_TRUNC" }, { MSG_DONTWAIT, "MSG_DONTWAIT" },
	{ MSG_EOR, "MSG_EOR" }, { MSG_WAITALL, "MSG_WAITALL" },
	{ MSG_CONFIRM, "MSG_CONFIRM" }, { MSG_ERRQUEUE, "MSG_ERRQUEUE" },
	{ MSG_NOSIGNAL, "MSG_NOSIGNAL" }, { MSG_MORE, "MSG_MORE" },
	{ MSG_ZEROCOPY, "MSG_ZEROCOPY" }, { MSG_FASTOPEN, "MSG_FASTOPEN" },
	{ MSG_WAITFORONE, "MSG_WAITFORONE" }, { MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC" },
};

static const struct bit_name poll_names[] = {
	{ POLLIN, "POLLIN" }, { POLLPRI, "POLLPRI" }, { POLLOUT, "POLLOUT" },
	{ POLLERR, "POLLERR" }, { POLLHUP, "POLLHUP" }, { POLLNVAL, "POLLNVAL" },
	{ POLLRDNORM, "POLLRDNORM" }, { POLLRDBAND, "POLLRDBAND" },
	{ POLLWRNORM, "POLLWRNORM" }, { POLLWRBAND, "POLLWRBAND" },
	{ POLLMSG, "POLLMSG" }, { POLLRDHUP, "POLLRDHUP" },
};

static void fmt_bits(char *out, size_t size, unsigned value,
		     const struct bit_name *names, size_t count)
{
	size_t used = 0;
	unsigned rest = value;
	out[0] = 0;
	for (size_t i = 0; i < count && used < size; i++) {
		if (rest & (unsigned)names[i].bit) {
			used += (size_t)snprintf(out + used, size - used, "%s%s",
						 used ? "|" : "", names[i].name);
			rest &= ~(unsigned)names[i].bit;
		}
	}
	if (rest && used < size)
		used += (size_t)snprintf(out + used, size - used, "%s0x%x",
					 used ? "|" : "", rest);
	if (!used)
		snprintf(out, size, "0");
}

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* getsockopt choices (OP_GETSOCKOPT aux % count) */
static const struct {
	int opt;
	const char *name;
} getopts[] = {
	{ SO_TYPE, "SO_TYPE" }, { SO_SNDBUF, "SO_SNDBUF" },
	{ SO_RCVBUF, "SO_RCVBUF" }, { SO_ERROR, "SO_ERROR" },
	{ SO_PEEK_OFF, "SO_PEEK_OFF" }, { SO_RCVLOWAT, "SO_RCVLOWAT" },
	{ SO_ACCEPTCONN, "SO_ACCEPTCONN" }, { SO_DOMAIN, "SO_DOMAIN" },
	{ SO_PROTOCOL, "SO_PROTOCOL" }, { SO_PASSCRED, "SO_PASSCRED" },
	{ SO_SNDLOWAT, "SO_SNDLOWAT" }, { SO_KEEPALIVE, "SO_KEEPALIVE" },
};

/* Prints an operation as a C initialiser. */
static void fmt_op(char *out, size_t size, const struct opseq_op *o)
{
	char fl[300];
	switch (o->op) {
	case OP_POLL:
		fmt_bits(fl, sizeof(fl), (unsigned)o->flags, poll_names, N_ELEMS(poll_names));
		break;
	default:
		fmt_bits(fl, sizeof(fl), (unsigned)o->flags, msg_flag_names,
			 N_ELEMS(msg_flag_names));
		break;
	}
	char sz[32];
	if (o->op == OP_SHUTDOWN && o->size >= SHUT_RD && o->size <= SHUT_RDWR)
		snprintf(sz, sizeof(sz), "%s", o->size == SHUT_RD ? "SHUT_RD"
			 : o->size == SHUT_WR ? "SHUT_WR" : "SHUT_RDWR");
	else
		snprintf(sz, sizeof(sz), "%d", o->size);
	snprintf(out, size, "{ %s, %d, %s, %s, 0x%x }", opseq_op_name(o->op),
		 o->side, sz, fl, o->aux);
}

static void fmt_res(char *out, size_t size, const struct opseq_op *o,
		    const struct opseq_res *r)
{
	size_t used = 0;
#define ADD(...)                                                                 \
	do {                                                                     \
		if (used < size)                                                 \
			used += (size_t)snprintf(out + used, size - used, __VA_ARGS__); \
	} while (0)
	if (r->pre[0] || r->pre[1] || r->pre[2])
		ADD("pre={%d,%d,%d} ", r->pre[0], r->pre[1], r->pre[2]);
	if (r->kd_pre[0] || r->kd_pre[1])
		ADD("kd_pre={%d,%d} ", r->kd_pre[0], r->kd_pre[1]);
	if (r->skipped) {
		ADD("skipped (%s)", r->skipped == SKIP_CLOSED ? "descriptor closed"
		    : r->skipped == SKIP_WOULD_BLOCK ? "could block"
		    : "known difference");
		return;
	}
	if (r->ret < 0)
		ADD("= %lld %s", (long long)r->ret, t_errno_name(r->err));
	else
		ADD("= %lld", (long long)r->ret);
	if (o->op == OP_POLL) {
		char ev[300];
		fmt_bits(ev, sizeof(ev), (unsigned)r->val[0], poll_names, N_ELEMS(poll_names));
		ADD(" revents=%s", ev);
	} else if (r->val[0] || r->val[1]) {
		ADD(" val={%d,%d}", r->val[0], r->val[1]);
	}
	if (r->data_len || r->hash)
		ADD(" data=%u:%016llx", r->data_len, (unsigned long long)r->hash);
	if (o->op == OP_SENDMMSG || o->op == OP_RECVMMSG) {
		for (int i = 0; i < MMSG_MAX; i++) {
			if (!r->mm_len[i] && !r->mm_flags[i] && !r->mm_clen[i])
				continue;
			char fl[300];
			fmt_bits(fl, sizeof(fl), (unsigned)r->mm_flags[i], msg_flag_names,
				 N_ELEMS(msg_flag_names));
			ADD(" [%d: len=%u", i, r->mm_len[i]);
			if (o->op == OP_RECVMMSG)
				ADD(" flags=%s controllen=%d", fl, r->mm_clen[i]);
			ADD("]");
		}
		if (o->op == OP_RECVMMSG)
			ADD(" timeout_left=%d", r->mm_timeout);
	}
	if (r->c.ncmsg || r->c.nfds || r->c.bad) {
		ADD(" cmsgs=%u", r->c.ncmsg);
		for (int i = 0; i < 4 && i < r->c.ncmsg; i++)
			ADD(" {%d,%d,%d}", r->c.first[i][0], r->c.first[i][1], r->c.first[i][2]);
		if (r->c.nfds) {
			static const char *const cn[8] = { "pipe_r", "pipe_w", "null", "end0",
							   "end1", "unknown", "pidfd", "NOT-NEW" };
			ADD(" fds=%u(", r->c.nfds);
			for (int i = 0; i < 8; i++)
				if (r->c.cls[i])
					ADD("%s*%u ", cn[i], r->c.cls[i]);
			ADD("cloexec*%u hash %08x)", r->c.cloexec, (unsigned)r->c.fdhash);
		}
		if (r->c.cred[0] || r->c.cred[1] || r->c.cred[2])
			ADD(" cred={pid %s, uid %d, gid %d}",
			    r->c.cred[0] == 1 ? "ours" : r->c.cred[0] == 2 ? "0"
			    : r->c.cred[0] == 3 ? "1" : "other",
			    r->c.cred[1], r->c.cred[2]);
		if (r->c.pidfd)
			ADD(" pidfd=%s", r->c.pidfd == 1 ? "ours" : r->c.pidfd == 2 ? "another"
			    : "not a pidfd");
		if (r->c.bad)
			ADD(" partial=%u", r->c.bad);
	}
	if (r->post)
		ADD(" post_poll=%d", r->post);
	if (o->op == OP_RECVMSG || o->op == OP_RECVMSG_SCM) {
		char fl[300];
		fmt_bits(fl, sizeof(fl), (unsigned)r->msg_flags, msg_flag_names,
			 N_ELEMS(msg_flag_names));
		ADD(" msg_flags=%s controllen=%d", fl, r->controllen);
	}
	if (r->namelen != -1 && r->namelen)
		ADD(" namelen=%d", r->namelen);
	if (r->guard_bad)
		ADD(" !!WROTE-OUTSIDE-BUFFER");
	if (r->sigpipes)
		ADD(" +SIGPIPE*%u", r->sigpipes);
	if (r->interrupted)
		ADD(" [interrupted by the run timer: the call blocked]");
#undef ADD
}

/* ------------------------------------------------------------------ */
/* data helpers                                                        */

uint64_t opseq_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t hash_bytes(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static const unsigned char *payload_of(unsigned aux)
{
	return pattern + ((aux >> 16) * 131u) % 65536u;
}

/*
 * The iovec shape for (size, aux): aux bits 0-2 choose the kind, bits 3-7
 * a parameter, bits 16-31 seed the split.  Returns the number of pieces.
 */
static int shape_lens(int size, unsigned aux, size_t *lens)
{
	size_t sz = size < 0 ? 0 : (size_t)size;
	unsigned kind = aux & 7, param = (aux >> 3) & 31;
	uint64_t st = ((uint64_t)(aux >> 16) << 32) ^ sz;
	switch (kind) {
	case 0:
		lens[0] = sz;
		return 1;
	case 1: {
		size_t a = sz ? opseq_splitmix64(&st) % (sz + 1) : 0;
		lens[0] = a;
		lens[1] = sz - a;
		return 2;
	}
	case 2: {
		int k = 2 + (int)(param % 15);
		size_t rem = sz;
		for (int i = 0; i < k - 1; i++) {
			uint64_t x = opseq_splitmix64(&st);
			size_t piece = rem && (x & 3) ? (x >> 8) % (rem + 1) : 0;
			lens[i] = piece;
			rem -= piece;
		}
		lens[k - 1] = rem;
		return k;
	}
	case 3:
		lens[0] = 0;
		lens[1] = sz;
		lens[2] = 0;
		return 3;
	case 4: {
		int k = 2 + (int)(param % 8);
		for (int i = 0; i < k; i++)
			lens[i] = 0;
		lens[(param >> 3) % (unsigned)k] = sz;
		return k;
	}
	case 5:
	case 6: {
		/* UIO_MAXIOV pieces, and one too many */
		int k = kind == 5 ? 1024 : 1025;
		size_t base = sz / (size_t)k;
		for (int i = 0; i < k; i++)
			lens[i] = base;
		lens[k - 1] += sz - base * (size_t)k;
		return k;
	}
	default:
		return 0;
	}
}

static size_t sum_lens(const size_t *lens, int n)
{
	size_t t = 0;
	for (int i = 0; i < n; i++)
		t += lens[i];
	return t;
}

/* Send iovecs over the pattern. */
static int send_iov(int size, unsigned aux, struct iovec *iov, size_t *total)
{
	static size_t lens[MAX_IOV];
	int n = shape_lens(size, aux, lens);
	const unsigned char *p = payload_of(aux);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = (void *)(p + off);
		iov[i].iov_len = lens[i];
		off += lens[i];
	}
	*total = off;
	return n;
}

/* Receive iovecs in rbuf, a guard byte after each piece. */
static int recv_iov(int size, unsigned aux, struct iovec *iov, size_t *total,
		    size_t *span)
{
	static size_t lens[MAX_IOV];
	int n = shape_lens(size, aux, lens);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = rbuf + off;
		iov[i].iov_len = lens[i];
		rbuf[off + lens[i]] = GUARD_BYTE; /* only the guards are checked */
		off += lens[i] + 1;
	}
	*total = sum_lens(lens, n);
	*span = off + TAIL_GUARD;
	memset(rbuf + off, GUARD_BYTE, TAIL_GUARD);
	return n;
}

/* Gathers min(ret, total) received bytes, hashes them, checks guards. */
static void finish_recv_iov(struct opseq_res *r, const struct iovec *iov, int n,
			    size_t total, size_t span)
{
	size_t left = r->ret > 0 ? (size_t)r->ret : 0;
	if (left > total)
		left = total;
	size_t got = 0;
	for (int i = 0; i < n && left; i++) {
		size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
		memcpy(gbuf + got, iov[i].iov_base, take);
		got += take;
		left -= take;
	}
	r->data_len = (uint32_t)got;
	r->hash = hash_bytes(gbuf, got);
	for (int i = 0; i < n; i++)
		if (((unsigned char *)iov[i].iov_base)[iov[i].iov_len] != GUARD_BYTE)
			r->guard_bad = 1;
	size_t end = n ? (size_t)((unsigned char *)iov[n - 1].iov_base - rbuf) +
				 iov[n - 1].iov_len + 1
		       : 0;
	for (size_t i = end; i < span; i++)
		if (rbuf[i] != GUARD_BYTE)
			r->guard_bad = 1;
}

/* ------------------------------------------------------------------ */
/* the executor                                                        */

struct run_state {
	int type;
	/* STREAM: MSG_OOB was used: an out-of-band byte a read skips makes
	 * "POLLIN and FIONREAD > 0" no promise that a blocking read returns */
	int oob_ever;
	int fd[2];
	int closed[2];
	int nb[2];	  /* O_NONBLOCK as set by this sequence (results compared) */
	int peek_set[2];  /* SO_PEEK_OFF was set successfully once */
	/* ancillary data (all from compared results, so the same in both runs) */
	int pass[2];	  /* bit 0 SO_PASSCRED, bit 1 SO_PASSPIDFD set on this end */
	int krec_to[2];	  /* kernel records (ancillary data) that may be queued at this end */
	int self_in_own_queue[2]; /* this end may be in flight in its own queue */
	struct stat end_st[2]; /* what the two ends are (dev, ino) */
	int fd_base;	  /* open descriptors before the pair was made */
};

static int query_int_ioctl(int fd, unsigned long req)
{
	int v = 0;
	if (usp_ioctl(fd, req, &v) < 0)
		return -1000 - errno;
	return v;
}

static int query_sockopt(int fd, int opt)
{
	int v = 0;
	socklen_t len = sizeof(v);
	if (usp_getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0)
		return -1000 - errno;
	return v;
}

static int may_block(const struct run_state *st, int side, int flags)
{
	return !(flags & MSG_DONTWAIT) && !st->nb[side];
}

/*
 * Before a receive that may block: 1 when the kernel surely returns at
 * once.  The answers used are recorded in r->pre and so compared.
 */
static int receive_cannot_block(struct run_state *st, int side, int flags,
				size_t len, struct opseq_res *r)
{
	int fd = st->fd[side];
	if (!may_block(st, side, flags))
		return 1;
	if (st->oob_ever)
		return 0;
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	int pr = usp_poll(&p, 1, 0);
	r->pre[0] = pr < 0 ? -1000 - errno : p.revents;
	if (pr < 0)
		return 0;
	if (p.revents & POLLRDHUP)
		return 1; /* receive shut down: EOF (or the queued data) at once */
	if (!(p.revents & POLLIN))
		return 0;
	int q = query_int_ioctl(fd, FIONREAD);
	r->pre[1] = q;
	if (q < 0)
		return 0;
	int off = -1;
	if ((flags & MSG_PEEK) && st->peek_set[side]) {
		off = query_sockopt(fd, SO_PEEK_OFF);
		r->pre[2] = off;
		if (off < -1)
			return 0;
	}
	if (st->type == SOCK_STREAM) {
		/* a peek waits when nothing lies past the peek offset; a
		 * MSG_WAITALL receive waits for len bytes */
		long avail = (long)q - (off > 0 ? off : 0);
		if (avail <= 0)
			return 0;
		if ((flags & MSG_WAITALL) && !(flags & MSG_PEEK) && (size_t)q < len)
			return 0;
		return 1;
	}
	/* SEQPACKET: FIONREAD is every queued byte; DGRAM: the next message.
	 * A peek at an offset skips whole messages and may then wait. */
	if (off >= 0 && q <= off)
		return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* ancillary data                                                      */

/*
 * Known differences (docs/DESIGN.md item 11) the executor never produces,
 * each by an explicit rule on state that both runs share:
 *
 * kd_stream_big: a STREAM message that takes the kernel path (it carries
 *   ancillary data, or either end has SO_PASSCRED/SO_PASSPIDFD) and does
 *   not fit one skb (min(SO_SNDBUF/2 - 64, SKB_MAX_HEAD(0) + 32 KiB)
 *   bytes) is cut one byte earlier by uspair (its kernel part carries the
 *   mark byte).  Such a send is skipped; SO_SNDBUF is asked first and
 *   the answer compared.
 * kd_stream_peek: on STREAM, MSG_PEEK stops before a second kernel record
 *   in uspair, and a peek at SO_PEEK_OFF that passes over a kernel record
 *   into another says EAGAIN.  Linux's peek goes on past a full buffer
 *   (with chunks of 0 bytes) to the first record with descriptors, so any
 *   peek may reach any record: a STREAM peek is skipped while two or more
 *   kernel records may be queued at that end (krec_to counts them).  On
 *   SEQPACKET and DGRAM, a peek at SO_PEEK_OFF skips whole messages and
 *   says EAGAIN when it skips a kernel record into another: the same
 *   rule, for an end that has SO_PEEK_OFF set.
 * kd_dgram_dead: DGRAM ancillary data from a peer that has died may be
 *   dropped by uspair's probe.  Closing a DGRAM end while kernel records
 *   it sent may be queued at its peer is skipped.
 *
 * And one kernel timing effect that is not uspair's: an end that is in
 * flight in its own receive queue and closed forms a cycle that only the
 * kernel's asynchronous garbage collector releases, so the peer's view
 * depends on when that runs.  Closing such an end is skipped.
 *
 * krec_to[end] counts the successful sends that may be kernel records
 * towards that end, and is cleared when a receive there leaves nothing
 * readable (a poll for POLLIN right after it, compared as r->post).
 */
static int kernel_path(const struct run_state *st)
{
	return st->pass[0] || st->pass[1];
}

static int stream_skb_cap(int sndbuf)
{
	long half = (sndbuf >> 1) - 64;
	long cap = half > 0 ? half : 1;
	return cap > 3776 + 32768 ? 3776 + 32768 : (int)cap;
}

/* 1 when a STREAM send of these lengths hits kd_stream_big. */
static int kd_stream_big(const struct run_state *st, int side, int has_scm,
			 const size_t *lens, int n, struct opseq_res *r)
{
	if (st->type != SOCK_STREAM || (!has_scm && !kernel_path(st)))
		return 0;
	size_t max = 0;
	for (int i = 0; i < n; i++)
		if (lens[i] > max)
			max = lens[i];
	if (max <= 1)
		return 0;
	int sndbuf = query_sockopt(st->fd[side], SO_SNDBUF);
	r->kd_pre[0] = sndbuf;
	if (sndbuf <= 0)
		return 1;
	return max >= (size_t)stream_skb_cap(sndbuf);
}

static int kd_stream_peek(const struct run_state *st, int side, int flags)
{
	if (!(flags & MSG_PEEK) || st->krec_to[side] < 2)
		return 0;
	/* SEQPACKET/DGRAM: only a peek at an offset skips messages */
	return st->type == SOCK_STREAM || st->peek_set[side];
}

/* After `records` successful sends from side: what may now be queued at
 * the peer. */
static void note_sent(struct run_state *st, int side, int scm, int records)
{
	if (scm || kernel_path(st))
		st->krec_to[side ^ 1] += records;
}

/* After a successful receive (not a peek) on side: is anything left? */
static void note_received(struct run_state *st, int side, struct opseq_res *r)
{
	if (!st->krec_to[side] && !st->self_in_own_queue[side])
		return;
	struct pollfd p = { .fd = st->fd[side], .events = POLLIN };
	int pr = usp_poll(&p, 1, 0);
	r->post = pr < 0 ? -1000 - errno : 0x10000 | p.revents;
	if (pr == 0) {
		st->krec_to[side] = 0;
		st->self_in_own_queue[side] = 0;
	}
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int fd_class(const struct run_state *st, int fd)
{
	/* a number the run still uses cannot be a new descriptor (a closed
	 * end's number can: the kernel gives the lowest free one) */
	for (int e = 0; e < 2; e++)
		if (fd == st->fd[e] && !st->closed[e])
			return FDC_NOT_NEW;
	for (int i = 0; i < POOL_COUNT; i++)
		if (fd == pool_fd[i])
			return FDC_NOT_NEW;
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return FDC_NOT_NEW;
	for (int i = 0; i < POOL_COUNT; i++)
		if (same_file(&sb, &pool_st[i]))
			return FDC_PIPE_R + i;
	for (int e = 0; e < 2; e++)
		if (same_file(&sb, &st->end_st[e]))
			return FDC_END0 + e;
	return FDC_UNKNOWN;
}

static int pidfd_class(int fd)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "re");
	if (!f)
		return 3;
	int what = 3;
	while (fgets(line, sizeof(line), f)) {
		int pid;
		if (sscanf(line, "Pid: %d", &pid) == 1) {
			what = pid == getpid() ? 1 : 2;
			break;
		}
	}
	fclose(f);
	return what;
}

/*
 * Describes the control messages the call returned (controllen bytes of
 * control) into r->c, closes every received descriptor (usp_close: a
 * received end of the pair is a uspair descriptor), and overwrites the
 * descriptor numbers and the pid in the buffer with their classes, so
 * that a hash of the buffer compares what, not which number.
 */
static void take_control(const struct run_state *st, unsigned char *control,
			 size_t controllen, struct opseq_res *r)
{
	size_t off = 0;
	while (control && off + sizeof(struct cmsghdr) <= controllen) {
		struct cmsghdr h;
		memcpy(&h, control + off, sizeof(h));
		if (r->c.ncmsg < 4) {
			r->c.first[r->c.ncmsg][0] = h.cmsg_level;
			r->c.first[r->c.ncmsg][1] = h.cmsg_type;
			r->c.first[r->c.ncmsg][2] = (int32_t)h.cmsg_len;
		}
		r->c.ncmsg++;
		if (h.cmsg_len < sizeof(struct cmsghdr)) {
			r->c.bad++;
			break;
		}
		size_t avail = controllen - off;
		size_t len = h.cmsg_len < avail ? h.cmsg_len : avail;
		if (len < h.cmsg_len)
			r->c.bad++;
		unsigned char *data = control + off + CMSG_LEN(0);
		size_t dlen = len > CMSG_LEN(0) ? len - CMSG_LEN(0) : 0;
		if (h.cmsg_level == SOL_SOCKET && h.cmsg_type == SCM_RIGHTS) {
			for (size_t i = 0; i + sizeof(int) <= dlen; i += sizeof(int)) {
				int fd;
				memcpy(&fd, data + i, sizeof(fd));
				int cls = fd_class(st, fd);
				int fl = cls == FDC_NOT_NEW ? 0 : fcntl(fd, F_GETFD);
				int cloexec = fl >= 0 && (fl & FD_CLOEXEC);
				r->c.nfds++;
				r->c.cls[cls]++;
				r->c.cloexec += (uint16_t)cloexec;
				r->c.fdhash = (r->c.fdhash ^ (uint64_t)(cls * 2 + cloexec + 1)) *
					      0x100000001b3ull;
				if (cls != FDC_NOT_NEW)
					usp_close(fd);
				int code = cls * 2 + cloexec;
				memcpy(data + i, &code, sizeof(code));
			}
		} else if (h.cmsg_level == SOL_SOCKET && h.cmsg_type == SCM_PIDFD &&
			   dlen >= sizeof(int)) {
			int fd;
			memcpy(&fd, data, sizeof(fd));
			int cls = fd_class(st, fd);
			if (cls == FDC_NOT_NEW) {
				r->c.pidfd = 4;
			} else {
				r->c.pidfd = pidfd_class(fd);
				int fl = fcntl(fd, F_GETFD);
				r->c.cloexec += (uint16_t)(fl >= 0 && (fl & FD_CLOEXEC));
				close(fd);
			}
			int code = r->c.pidfd;
			memcpy(data, &code, sizeof(code));
		} else if (h.cmsg_level == SOL_SOCKET && h.cmsg_type == SCM_CREDENTIALS &&
			   dlen >= sizeof(struct ucred)) {
			struct ucred cr;
			memcpy(&cr, data, sizeof(cr));
			r->c.cred[0] = cr.pid == getpid() ? 1 : cr.pid == 0 ? 2 : cr.pid == 1 ? 3 : 4;
			r->c.cred[1] = (int32_t)cr.uid;
			r->c.cred[2] = (int32_t)cr.gid;
			cr.pid = r->c.cred[0];
			memcpy(data, &cr, sizeof(cr));
		}
		off += CMSG_ALIGN(h.cmsg_len);
	}
}

/* An autobound name ("\0" and five hex digits) differs from run to run:
 * its digits are masked before the name is hashed. */
static void mask_autobind(unsigned char *addr, size_t cap, size_t len)
{
	size_t base = offsetof(struct sockaddr_un, sun_path);
	if (len != base + 6 || cap <= base || addr[base] != 0)
		return;
	for (size_t i = base + 1; i < base + 6 && i < cap; i++)
		addr[i] = 'X';
}

/* Room for any control buffer the ops build or receive into. */
#define CONTROL_ROOM (CMSG_SPACE(sizeof(int) * (SCM_MAX_FD + 1)) + 4 * CMSG_SPACE(sizeof(struct ucred)) + 256)
union control_buf {
	struct cmsghdr align;
	unsigned char buf[CONTROL_ROOM];
};

/* One descriptor of the pool chosen by v. */
static int pick_fd(const struct run_state *st, unsigned mix, uint64_t v)
{
	unsigned choices = mix == 0 ? 3 : mix == 1 ? 5 : mix == 2 ? 5 : 7;
	unsigned c = (unsigned)(v % choices);
	if (c < 3)
		return pool_fd[c];
	if (mix == 2)
		c += 2; /* bad numbers */
	switch (c) {
	case 3:
	case 4: {
		int e = (int)c - 3;
		/* a closed end's number may be reused: send a bad number */
		return st->closed[e] ? 1000000 : st->fd[e];
	}
	case 5:
		return -1;
	default:
		return 1000000;
	}
}

static void put_cmsg_hdr(unsigned char *at, size_t cmsg_len, int level, int type)
{
	struct cmsghdr h;
	memset(&h, 0, sizeof(h));
	h.cmsg_len = cmsg_len;
	h.cmsg_level = level;
	h.cmsg_type = type;
	memcpy(at, &h, sizeof(h));
}

/*
 * Builds the control buffer of OP_SENDMSG_SCM (encoding in t_opseq.h).
 * Returns its length; *has_scm is set when it carries anything the
 * kernel path would take; ends[e] when end e is among the descriptors.
 */
static size_t build_scm(const struct run_state *st, unsigned aux, unsigned char *buf,
			int *has_scm, int ends[2])
{
	unsigned nfds = aux & 0xff;
	if (nfds > SCM_MAX_FD + 1)
		nfds = SCM_MAX_FD + 1;
	unsigned layout = (aux >> 8) & 7, creds = (aux >> 11) & 3, creds_first = (aux >> 13) & 1;
	unsigned mix = (aux >> 14) & 3;
	uint64_t seed = (uint64_t)(aux >> 16) * 0x9e3779b97f4a7c15ull + nfds;
	int fds[SCM_MAX_FD + 1];
	ends[0] = ends[1] = 0;
	for (unsigned i = 0; i < nfds; i++) {
		fds[i] = pick_fd(st, mix, opseq_splitmix64(&seed) >> 7);
		for (int e = 0; e < 2; e++)
			if (fds[i] == st->fd[e] && !st->closed[e])
				ends[e] = 1;
	}
	size_t len = 0;
	*has_scm = nfds > 0 || creds != 0;
	if (creds && creds_first) {
		struct ucred cr = { getpid(), getuid(), getgid() };
		if (creds == 2)
			cr.pid = 0x3fffffff;
		else if (creds == 3)
			cr.pid = 1;
		put_cmsg_hdr(buf + len, CMSG_LEN(sizeof(cr)), SOL_SOCKET, SCM_CREDENTIALS);
		memcpy(buf + len + CMSG_LEN(0), &cr, sizeof(cr));
		len += CMSG_SPACE(sizeof(cr));
	}
	size_t rights_at = len;
	unsigned first = layout == 1 ? (unsigned)(opseq_splitmix64(&seed) % (nfds + 1)) : nfds;
	put_cmsg_hdr(buf + len, CMSG_LEN(first * sizeof(int)), SOL_SOCKET, SCM_RIGHTS);
	memcpy(buf + len + CMSG_LEN(0), fds, first * sizeof(int));
	len += CMSG_SPACE(first * sizeof(int));
	if (layout == 1) {
		unsigned second = nfds - first;
		put_cmsg_hdr(buf + len, CMSG_LEN(second * sizeof(int)), SOL_SOCKET, SCM_RIGHTS);
		memcpy(buf + len + CMSG_LEN(0), fds + first, second * sizeof(int));
		len += CMSG_SPACE(second * sizeof(int));
	}
	if (creds && !creds_first) {
		struct ucred cr = { getpid(), getuid(), getgid() };
		if (creds == 2)
			cr.pid = 0x3fffffff;
		else if (creds == 3)
			cr.pid = 1;
		put_cmsg_hdr(buf + len, CMSG_LEN(sizeof(cr)), SOL_SOCKET, SCM_CREDENTIALS);
		memcpy(buf + len + CMSG_LEN(0), &cr, sizeof(cr));
		len += CMSG_SPACE(sizeof(cr));
	}
	switch (layout) {
	case 2: /* cmsg_len smaller than a header */
		put_cmsg_hdr(buf + rights_at, 8, SOL_SOCKET, SCM_RIGHTS);
		break;
	case 3: /* cmsg_len past the buffer */
		put_cmsg_hdr(buf + rights_at, len - rights_at + 8, SOL_SOCKET, SCM_RIGHTS);
		break;
	case 4: /* an unknown SOL_SOCKET type after the rest */
		put_cmsg_hdr(buf + len, CMSG_LEN(sizeof(int)), SOL_SOCKET, 77);
		memset(buf + len + CMSG_LEN(0), 0, sizeof(int));
		len += CMSG_SPACE(sizeof(int));
		break;
	case 5: /* another level: ignored */
		put_cmsg_hdr(buf + len, CMSG_LEN(sizeof(int)), SOL_IP, 1);
		memset(buf + len + CMSG_LEN(0), 0, sizeof(int));
		len += CMSG_SPACE(sizeof(int));
		break;
	case 6: /* a buffer too short for any header: no control data */
		len = 8;
		*has_scm = 0;
		ends[0] = ends[1] = 0;
		break;
	case 7: /* cmsg_len not a whole number of descriptors (rounded down) */
		if (first)
			put_cmsg_hdr(buf + rights_at, CMSG_LEN(first * sizeof(int)) - 2,
				     SOL_SOCKET, SCM_RIGHTS);
		break;
	default:
		break;
	}
	return len;
}

/* Before a batch of sends that may block: 1 when every entry surely
 * finds room (or fails at once), as sock_alloc_send_pskb waits while
 * sk_wmem_alloc >= sk_sndbuf.  unix_stream_sendmsg makes skbs of at most
 * stream_skb_cap() bytes; each skb costs at most its size plus 12 KiB of
 * truesize (an upper bound). */
static int batch_cannot_block(struct run_state *st, int side, int flags,
			      const size_t *lens, int n, struct opseq_res *r)
{
	int fd = st->fd[side];
	if (!may_block(st, side, flags))
		return 1;
	int q = query_int_ioctl(fd, SIOCOUTQ);
	int sndbuf = query_sockopt(fd, SO_SNDBUF);
	r->pre[0] = q;
	r->pre[1] = sndbuf;
	if (q < 0 || sndbuf <= 0)
		return 0;
	long w = q;
	size_t cap = (size_t)stream_skb_cap(sndbuf);
	for (int i = 0; i < n; i++) {
		if (st->type == SOCK_STREAM) {
			size_t rem = lens[i];
			while (rem > 0) {
				if (w >= sndbuf)
					return 0;
				size_t chunk = rem < cap ? rem : cap;
				w += (long)chunk + 12288;
				rem -= chunk;
			}
			continue;
		}
		if (lens[i] > (size_t)sndbuf - 32)
			return 1; /* EMSGSIZE ends the batch */
		if (w >= sndbuf)
			return 0;
		w += (long)lens[i] + 12288;
	}
	return 1;
}

/* Before one send that may block: a batch of one. */
static int send_cannot_block(struct run_state *st, int side, int flags,
			     size_t len, struct opseq_res *r)
{
	return batch_cannot_block(st, side, flags, &len, 1, r);
}

static void exec_op(struct run_state *st, const struct opseq_op *o,
		    struct opseq_res *r)
{
	static struct iovec iov[MAX_IOV + 1];
	int side = o->side & 1;
	int fd = st->fd[side];
	int size = o->size;
	size_t usize = size < 0 ? 0 : (size_t)size;
	unsigned aux = o->aux;
	int flags = o->flags;
	long ret = 0;
	int err = 0;

	/* Known difference 3 (docs/DESIGN.md): uspair's out-of-band record
	 * carries no ancillary data, so a STREAM MSG_OOB send while a SO_PASS*
	 * option is set (Linux puts credentials on the out-of-band skb) or
	 * with one byte and a control message is sent without MSG_OOB, in
	 * both runs alike. */
	if (st->type == SOCK_STREAM && (flags & MSG_OOB) &&
	    (kernel_path(st) || (o->op == OP_SENDMSG_SCM && size <= 1)))
		flags &= ~MSG_OOB;
	if (st->type == SOCK_STREAM && (flags & MSG_OOB))
		st->oob_ever = 1;
	/* Known difference 3: a zero-length STREAM MSG_PEEK that Linux
	 * continues past an out-of-band byte it skips (EAGAIN); OP_RECVMSG's
	 * iovec shape can make any size zero-length, so all its peeks */
	if (st->oob_ever && (flags & MSG_PEEK) && (usize == 0 || o->op == OP_RECVMSG) &&
	    (o->op == OP_RECV || o->op == OP_RECVFROM || o->op == OP_RECVMSG ||
	     o->op == OP_RECVMSG_SCM || o->op == OP_RECVMMSG)) {
		r->skipped = SKIP_KNOWN_DIFFERENCE;
		return;
	}
	r->namelen = -1;
	if (o->op == OP_FDCOUNT) {
		for (int e = 0; e < 2; e++)
			if (!st->closed[e]) {
				usp_close(st->fd[e]);
				st->closed[e] = 1;
			}
		r->ret = t_count_open_fds() - st->fd_base;
		return;
	}
	if (st->closed[side]) {
		r->skipped = SKIP_CLOSED;
		return;
	}
	if (usize > OPSEQ_MAX_SIZE)
		usize = OPSEQ_MAX_SIZE;

	unsigned long pipes0 = t_sigpipe_count();
	int fired0 = atomic_load(&run_timer_fired);
	errno = 0;

	switch (o->op) {
	case OP_SEND:
	case OP_WRITE: {
		const void *buf = usize == 0 && (aux & 1) ? NULL : payload_of(aux);
		if (kd_stream_big(st, side, 0, &usize, 1, r)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		if (!send_cannot_block(st, side, o->op == OP_SEND ? flags : 0, usize, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		ret = o->op == OP_SEND ? usp_send(fd, buf, usize, flags)
				       : usp_write(fd, buf, usize);
		err = errno;
		break;
	}
	case OP_SENDTO: {
		struct sockaddr_storage ss;
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		socklen_t alen = 0;
		const struct sockaddr *addr = (const struct sockaddr *)&ss;
		memset(&ss, 0, sizeof(ss));
		un->sun_family = AF_UNIX;
		unsigned kind = (aux >> 8) & 7;
		switch (kind) {
		case 0: addr = NULL; break;
		case 1: alen = 0; break;
		case 2:
			strcpy(un->sun_path, "/nonexistent/uspair-random-diff");
			alen = sizeof(*un);
			break;
		case 3: alen = 1; break;
		case 4: {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			in->sin_family = AF_INET;
			in->sin_port = htons(9);
			alen = sizeof(*in);
			break;
		}
		case 5: alen = sizeof(ss) + 1; break;
		case 6: alen = sizeof(sa_family_t); break;
		default:
			memcpy(un->sun_path, "\0uspair-rd-none", 15);
			alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 15);
			break;
		}
		/*
		 * Expected difference (docs/DESIGN.md, known difference 9): a
		 * DGRAM sendto with a well-formed address goes out through
		 * uspair's backing kernel socket, which holds none of the
		 * pair's queued data, so its send-buffer check (made before
		 * the address lookup) differs from the kernel pair's.
		 * Malformed addresses are refused before that and compared.
		 */
		if (st->type == SOCK_DGRAM && (kind == 2 || kind == 6 || kind == 7)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		if (kd_stream_big(st, side, 0, &usize, 1, r)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		if (!send_cannot_block(st, side, flags, usize, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		const void *buf = usize == 0 && (aux & 1) ? NULL : payload_of(aux);
		ret = usp_sendto(fd, buf, usize, flags, addr, alen);
		err = errno;
		break;
	}
	case OP_SENDMSG:
	case OP_WRITEV: {
		size_t total;
		int n = send_iov(size, aux, iov, &total);
		if (kd_stream_big(st, side, 0, &total, 1, r)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		if (!send_cannot_block(st, side, o->op == OP_SENDMSG ? flags : 0, total, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		if (o->op == OP_WRITEV) {
			ret = usp_writev(fd, iov, n);
		} else {
			/* A control buffer too short for a cmsghdr carries no
			 * ancillary data (real control data: known difference 3,
			 * not generated). */
			unsigned char control[16];
			struct msghdr msg;
			memset(&msg, 0, sizeof(msg));
			memset(control, 0, sizeof(control));
			msg.msg_iov = iov;
			msg.msg_iovlen = (size_t)n;
			if (aux & 0x100) {
				msg.msg_control = control;
				msg.msg_controllen = (aux & 0x200) ? 8 : 0;
			}
			ret = usp_sendmsg(fd, &msg, flags);
		}
		err = errno;
		break;
	}
	case OP_RECV:
	case OP_READ:
	case OP_RECVFROM: {
		int fl = o->op == OP_READ ? 0 : flags;
		if (kd_stream_peek(st, side, fl)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		if (!receive_cannot_block(st, side, fl, usize, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		memset(rbuf + usize, GUARD_BYTE, TAIL_GUARD);
		void *buf = usize == 0 && (aux & 1) ? NULL : rbuf;
		if (o->op == OP_RECV) {
			ret = usp_recv(fd, buf, usize, fl);
		} else if (o->op == OP_READ) {
			ret = usp_read(fd, buf, usize);
		} else {
			struct sockaddr_un from;
			memset(&from, 0xEE, sizeof(from));
			static const socklen_t caps[4] = { 0, sizeof(struct sockaddr_un), 2, 0 };
			unsigned kind = (aux >> 8) & 3;
			socklen_t alen = caps[kind];
			ret = usp_recvfrom(fd, buf, usize, fl, kind ? (struct sockaddr *)&from : NULL,
					   kind ? &alen : NULL);
			err = errno;
			r->namelen = kind ? (int32_t)alen : -1;
			if (kind && ret >= 0)
				mask_autobind((unsigned char *)&from, caps[kind], alen);
			if (kind)
				r->val[1] = (int32_t)hash_bytes((unsigned char *)&from, sizeof(from));
		}
		err = errno;
		size_t got = ret > 0 ? ((size_t)ret < usize ? (size_t)ret : usize) : 0;
		r->data_len = (uint32_t)got;
		r->hash = hash_bytes(rbuf, got);
		for (size_t i = usize; i < usize + TAIL_GUARD; i++)
			if (rbuf[i] != GUARD_BYTE)
				r->guard_bad = 1;
		if (ret >= 0 && !(fl & MSG_PEEK))
			note_received(st, side, r);
		break;
	}
	case OP_RECVMSG:
	case OP_READV: {
		size_t total, span;
		int n = recv_iov(size, aux, iov, &total, &span);
		int fl = o->op == OP_READV ? 0 : flags;
		if (kd_stream_peek(st, side, fl)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		if (!receive_cannot_block(st, side, fl, total, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		if (o->op == OP_READV) {
			ret = usp_readv(fd, iov, n);
			err = errno;
		} else {
			static const socklen_t name_caps[4] = { 0, 2, 110, 128 };
			static const size_t control_caps[4] = { 0, 16, 64, 7 };
			unsigned char name[128], control[64];
			memset(name, 0xEE, sizeof(name));
			memset(control, 0xEE, sizeof(control));
			struct msghdr msg;
			memset(&msg, 0, sizeof(msg));
			unsigned nk = (aux >> 8) & 3, ck = (aux >> 10) & 3;
			msg.msg_name = nk ? name : NULL;
			/* with msg_name NULL the length is ignored by the kernel */
			msg.msg_namelen = nk ? name_caps[nk] : ((aux & 0x1000) ? 77 : 0);
			msg.msg_iov = iov;
			msg.msg_iovlen = (size_t)n;
			msg.msg_control = ck ? control : NULL;
			msg.msg_controllen = control_caps[ck];
			msg.msg_flags = 0x7eadbeef & ~MSG_CMSG_CLOEXEC;
			ret = usp_recvmsg(fd, &msg, fl);
			err = errno;
			r->msg_flags = msg.msg_flags;
			r->namelen = (int32_t)msg.msg_namelen;
			r->controllen = (int32_t)msg.msg_controllen;
			if (ret >= 0) {
				mask_autobind(name, nk ? name_caps[nk] : 0, msg.msg_namelen);
				take_control(st, msg.msg_control,
					     msg.msg_controllen < sizeof(control) ? msg.msg_controllen
					     : sizeof(control), r);
			}
			r->val[0] = (int32_t)hash_bytes(name, sizeof(name));
			r->val[1] = (int32_t)hash_bytes(control, sizeof(control));
		}
		finish_recv_iov(r, iov, n, total, span);
		if (ret >= 0 && !(fl & MSG_PEEK))
			note_received(st, side, r);
		break;
	}
	case OP_SHUTDOWN:
		ret = usp_shutdown(fd, size);
		err = errno;
		break;
	case OP_CLOSE:
		/* kd_dgram_dead, and the kernel's asynchronous cycle collection
		 * (see the rules above kernel_path()) */
		if ((st->type == SOCK_DGRAM && st->krec_to[side ^ 1]) ||
		    st->self_in_own_queue[side]) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		ret = usp_close(fd);
		err = errno;
		st->closed[side] = 1; /* the number may be reused: never touch it again */
		break;
	case OP_POLL: {
		struct pollfd p = { .fd = fd, .events = (short)flags, .revents = 0x5a5a };
		ret = usp_poll(&p, 1, 0);
		err = errno;
		r->val[0] = (unsigned short)p.revents;
		break;
	}
	case OP_FIONREAD:
	case OP_SIOCOUTQ: {
		int v = 0x5a5a5a5a;
		ret = usp_ioctl(fd, o->op == OP_FIONREAD ? FIONREAD : SIOCOUTQ, &v);
		err = errno;
		r->val[0] = v;
		break;
	}
	case OP_SETSOCKOPT:
	case OP_PEEK_OFF: {
		int opt = o->op == OP_PEEK_OFF ? SO_PEEK_OFF : (aux & 1) ? SO_RCVBUF : SO_SNDBUF;
		int v = size;
		ret = usp_setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
		err = errno;
		if (ret == 0 && opt == SO_PEEK_OFF)
			st->peek_set[side] = 1;
		int g = 0x5a5a5a5a;
		socklen_t gl = sizeof(g);
		errno = 0;
		r->pre[0] = usp_getsockopt(fd, SOL_SOCKET, opt, &g, &gl) < 0 ? -1000 - errno : 0;
		r->val[0] = g;
		r->val[1] = (int32_t)gl;
		break;
	}
	case OP_GETSOCKOPT:
	case OP_SO_ERROR: {
		int opt = o->op == OP_SO_ERROR ? SO_ERROR : getopts[aux % N_ELEMS(getopts)].opt;
		unsigned char buf[8];
		memset(buf, 0x5a, sizeof(buf));
		socklen_t len = (o->op == OP_GETSOCKOPT && (aux & 0x100)) ? 2 : sizeof(int);
		ret = usp_getsockopt(fd, SOL_SOCKET, opt, buf, &len);
		err = errno;
		memcpy(&r->val[0], buf, 4);
		r->val[1] = (int32_t)len;
		break;
	}
	case OP_SETFL: {
		ret = usp_fcntl(fd, F_SETFL, (long)(size ? O_NONBLOCK : 0));
		err = errno;
		if (ret == 0)
			st->nb[side] = size ? 1 : 0;
		r->val[0] = usp_fcntl(fd, F_GETFL);
		break;
	}
	case OP_FIONBIO: {
		int v = size;
		ret = usp_ioctl(fd, FIONBIO, &v);
		err = errno;
		if (ret == 0)
			st->nb[side] = v != 0;
		r->val[0] = usp_fcntl(fd, F_GETFL);
		break;
	}
	case OP_GETPEERNAME:
	case OP_GETSOCKNAME: {
		static const socklen_t caps[4] = { sizeof(struct sockaddr_un), 2, 0, 1 };
		struct sockaddr_un a;
		memset(&a, 0xEE, sizeof(a));
		socklen_t len = caps[aux & 3];
		ret = o->op == OP_GETPEERNAME ? usp_getpeername(fd, (struct sockaddr *)&a, &len)
					      : usp_getsockname(fd, (struct sockaddr *)&a, &len);
		err = errno;
		if (ret == 0)
			mask_autobind((unsigned char *)&a, caps[aux & 3], len);
		r->namelen = (int32_t)len;
		r->hash = hash_bytes((unsigned char *)&a, sizeof(a));
		break;
	}
	case OP_SENDMSG_SCM: {
		static union control_buf ctl;
		int has_scm, ends[2];
		memset(&ctl, 0, sizeof(ctl));
		size_t clen = build_scm(st, aux, ctl.buf, &has_scm, ends);
		if (kd_stream_big(st, side, has_scm, &usize, 1, r)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		if (!send_cannot_block(st, side, flags, usize, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		struct iovec one = { (void *)payload_of(aux), usize };
		struct msghdr msg;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &one;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = clen;
		ret = usp_sendmsg(fd, &msg, flags);
		err = errno;
		if (ret >= 0) {
			note_sent(st, side, has_scm, 1);
			/* an end sent on the other side lands in its own queue */
			if (ends[side ^ 1])
				st->self_in_own_queue[side ^ 1] = 1;
		}
		break;
	}
	case OP_RECVMSG_SCM: {
		static union control_buf ctl;
		if (kd_stream_peek(st, side, flags)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		unsigned ck = aux & 7, param = (aux >> 3) & 31;
		size_t cap = sizeof(ctl.buf);
		int null_control = 0;
		if (ck == 3 || ck == 4) {
			/* exactly what the next message needs, or one byte less:
			 * ask with a one-byte peek (no SO_PEEK_OFF on this end, so
			 * the peek neither moves an offset nor crosses a record);
			 * its answers are compared */
			if (st->peek_set[side] || kd_stream_peek(st, side, MSG_PEEK)) {
				cap = CMSG_SPACE(sizeof(int));
			} else {
				unsigned char one;
				struct iovec pv = { &one, 1 };
				struct msghdr pm;
				memset(&pm, 0, sizeof(pm));
				pm.msg_iov = &pv;
				pm.msg_iovlen = 1;
				pm.msg_control = ctl.buf;
				pm.msg_controllen = sizeof(ctl.buf);
				struct opseq_res pr;
				memset(&pr, 0, sizeof(pr));
				ssize_t pret = usp_recvmsg(fd, &pm, MSG_PEEK | MSG_DONTWAIT);
				r->kd_pre[0] = pret < 0 ? -1000 - errno : (int32_t)pret;
				r->kd_pre[1] = pret < 0 ? 0 : (int32_t)pm.msg_controllen;
				if (pret >= 0)
					take_control(st, ctl.buf, pm.msg_controllen, &pr);
				cap = pret < 0 ? 0 : pm.msg_controllen;
				if (ck == 4 && cap > 0)
					cap--;
			}
		} else if (ck == 0) {
			null_control = 1;
			cap = (param & 1) ? 64 : 0;
		} else if (ck == 1) {
			cap = 0;
		} else if (ck == 2) {
			static const size_t tiny[4] = { 1, 8, sizeof(struct cmsghdr),
							CMSG_LEN(0) + 3 };
			cap = tiny[param & 3];
		} else if (ck == 6) {
			cap = CMSG_SPACE(sizeof(int) * (param % 16));
			if (param & 16)
				cap = CMSG_LEN(sizeof(int) * (param % 16)) + 1;
		} else if (ck == 7) {
			cap = CMSG_SPACE(sizeof(struct ucred)) + ((param & 1) ? CMSG_SPACE(sizeof(int)) : 0);
		}
		if (!receive_cannot_block(st, side, flags, usize, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		memset(ctl.buf, 0xEE, sizeof(ctl.buf));
		memset(rbuf + usize, GUARD_BYTE, TAIL_GUARD);
		struct iovec one = { rbuf, usize };
		struct msghdr msg;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &one;
		msg.msg_iovlen = 1;
		msg.msg_control = null_control ? NULL : ctl.buf;
		msg.msg_controllen = cap;
		msg.msg_flags = 0x7eadbeef & ~MSG_CMSG_CLOEXEC;
		ret = usp_recvmsg(fd, &msg, flags);
		err = errno;
		r->msg_flags = msg.msg_flags;
		r->controllen = (int32_t)msg.msg_controllen;
		if (ret >= 0 && !null_control) {
			size_t used = msg.msg_controllen < cap ? msg.msg_controllen : cap;
			take_control(st, ctl.buf, used, r);
			r->val[1] = (int32_t)hash_bytes(ctl.buf, cap + 16 < sizeof(ctl.buf) ? cap + 16 : cap);
		}
		size_t got = ret > 0 ? ((size_t)ret < usize ? (size_t)ret : usize) : 0;
		r->data_len = (uint32_t)got;
		r->hash = hash_bytes(rbuf, got);
		for (size_t i = usize; i < usize + TAIL_GUARD; i++)
			if (rbuf[i] != GUARD_BYTE)
				r->guard_bad = 1;
		if (ret >= 0 && !(flags & MSG_PEEK))
			note_received(st, side, r);
		break;
	}
	case OP_PASSOPT: {
		int opt = (aux & 1) ? SO_PASSPIDFD : SO_PASSCRED;
		int v = size;
		ret = usp_setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
		err = errno;
		if (ret == 0) {
			int bit = (aux & 1) ? 2 : 1;
			st->pass[side] = v ? (st->pass[side] | bit) : (st->pass[side] & ~bit);
		}
		int g = 0x5a5a5a5a;
		socklen_t gl = sizeof(g);
		errno = 0;
		r->pre[0] = usp_getsockopt(fd, SOL_SOCKET, opt, &g, &gl) < 0 ? -1000 - errno : 0;
		r->val[0] = g;
		r->val[1] = (int32_t)gl;
		break;
	}
	case OP_SENDMMSG: {
		static union control_buf ctls[MMSG_MAX];
		struct mmsghdr m[MMSG_MAX];
		struct iovec miov[MMSG_MAX];
		size_t lens[MMSG_MAX];
		int oob_scm_one = 0;
		unsigned vlen = (aux & 7) + 1, sk = (aux >> 3) & 7;
		uint64_t seed = (uint64_t)(aux >> 16) * 0x9e3779b97f4a7c15ull + 7;
		int has_scm = (aux & 0xc0) != 0;
		size_t sum = 0;
		memset(m, 0, sizeof(m));
		for (unsigned i = 0; i < vlen; i++) {
			uint64_t v = opseq_splitmix64(&seed);
			switch (sk) {
			case 0: lens[i] = v % 101; break;
			case 1: lens[i] = usize; break;
			case 2: lens[i] = (v & 1) ? usize : v % 16; break;
			case 3: lens[i] = v % 6000; break;
			default: lens[i] = v % (usize + 1); break;
			}
			if (lens[i] > 65536)
				lens[i] = 65536;
			miov[i].iov_base = (void *)(payload_of(aux) + i * 97);
			miov[i].iov_len = lens[i];
			m[i].msg_hdr.msg_iov = &miov[i];
			m[i].msg_hdr.msg_iovlen = 1;
			m[i].msg_len = 12345;
			int fdv = -2;
			if ((aux & 0x80) && i == 0)
				fdv = 1000000;
			else if ((aux & 0x40) && (i & 1))
				fdv = pool_fd[(v >> 20) % POOL_COUNT];
			if (fdv != -2) {
				memset(&ctls[i], 0, sizeof(ctls[i]));
				put_cmsg_hdr(ctls[i].buf, CMSG_LEN(sizeof(int)), SOL_SOCKET, SCM_RIGHTS);
				memcpy(ctls[i].buf + CMSG_LEN(0), &fdv, sizeof(fdv));
				m[i].msg_hdr.msg_control = ctls[i].buf;
				m[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(int));
				/* known difference 3: a one-byte out-of-band
				 * send with ancillary data says EOPNOTSUPP */
				if (lens[i] == 1 && (flags & MSG_OOB) && st->type == SOCK_STREAM)
					oob_scm_one = 1;
			}
			sum += lens[i];
		}
		if (oob_scm_one || kd_stream_big(st, side, has_scm, lens, (int)vlen, r)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		/* a blocking batch: every entry must find room (SIOCOUTQ and
		 * SO_SNDBUF asked, as for a single send of the sum plus the
		 * per-record overheads) */
		if (!batch_cannot_block(st, side, flags, lens, (int)vlen, r)) {
			r->skipped = SKIP_WOULD_BLOCK;
			return;
		}
		ret = usp_sendmmsg(fd, m, vlen, flags);
		err = errno;
		for (unsigned i = 0; i < vlen; i++)
			r->mm_len[i] = m[i].msg_len;
		if (ret > 0) {
			note_sent(st, side, has_scm, (int)ret);
		}
		break;
	}
	case OP_RECVMMSG: {
		static union control_buf ctls[MMSG_MAX];
		struct mmsghdr m[MMSG_MAX];
		struct iovec miov[MMSG_MAX];
		unsigned vlen = (aux & 7) + 1, tk = (aux >> 3) & 7, ck = (aux >> 6) & 3;
		const size_t slot = RBUF_BYTES / MMSG_MAX;
		size_t cap = usize < slot - TAIL_GUARD - 1 ? usize : slot - TAIL_GUARD - 1;
		if (kd_stream_peek(st, side, flags)) {
			r->skipped = SKIP_KNOWN_DIFFERENCE;
			return;
		}
		/* a timeout only where nothing blocks (it is looked at only
		 * between messages); a blocking batch only when its first
		 * entry cannot block and the rest cannot either (one entry,
		 * or MSG_WAITFORONE) */
		struct timespec ts = { 0, 0 };
		struct timespec *tsp = NULL;
		if (tk) {
			if (may_block(st, side, flags)) {
				r->skipped = SKIP_WOULD_BLOCK;
				return;
			}
			static const struct timespec tv[8] = { { 0, 0 }, { 0, 0 }, { 0, 1 },
				{ 10, 0 }, { 0, 2000000000L }, { -1, 0 }, { 0, 999999999L }, { 3, 5 } };
			ts = tv[tk];
			tsp = &ts;
		} else if (may_block(st, side, flags)) {
			if (vlen > 1 && !(flags & MSG_WAITFORONE)) {
				r->skipped = SKIP_WOULD_BLOCK;
				return;
			}
			if (!receive_cannot_block(st, side, flags, cap, r)) {
				r->skipped = SKIP_WOULD_BLOCK;
				return;
			}
		}
		static const size_t ccaps[4] = { 0, sizeof(ctls[0].buf), CMSG_SPACE(sizeof(int)), 16 };
		memset(m, 0, sizeof(m));
		for (unsigned i = 0; i < vlen; i++) {
			unsigned char *b = rbuf + i * slot;
			memset(b + cap, GUARD_BYTE, TAIL_GUARD);
			miov[i].iov_base = b;
			miov[i].iov_len = cap;
			m[i].msg_hdr.msg_iov = &miov[i];
			m[i].msg_hdr.msg_iovlen = 1;
			m[i].msg_len = 12345;
			if (ck) {
				memset(ctls[i].buf, 0xEE, ccaps[ck]);
				m[i].msg_hdr.msg_control = ctls[i].buf;
				m[i].msg_hdr.msg_controllen = ccaps[ck];
			}
		}
		ret = usp_recvmmsg(fd, m, vlen, flags, tsp);
		err = errno;
		uint64_t h = 0;
		for (long i = 0; i < ret; i++) {
			unsigned char *b = rbuf + i * slot;
			size_t got = m[i].msg_len < cap ? m[i].msg_len : cap;
			r->mm_len[i] = m[i].msg_len;
			r->mm_flags[i] = m[i].msg_hdr.msg_flags;
			r->mm_clen[i] = (int32_t)m[i].msg_hdr.msg_controllen;
			h = (h ^ hash_bytes(b, got)) * 0x100000001b3ull;
			r->data_len += (uint32_t)got;
			if (ck)
				take_control(st, ctls[i].buf,
					     m[i].msg_hdr.msg_controllen < ccaps[ck]
					     ? m[i].msg_hdr.msg_controllen : ccaps[ck], r);
		}
		for (unsigned i = 0; i < vlen; i++)
			for (size_t k = cap; k < cap + TAIL_GUARD; k++)
				if (rbuf[i * slot + k] != GUARD_BYTE)
					r->guard_bad = 1;
		r->hash = h;
		r->mm_timeout = !tsp ? -1 : (ts.tv_sec != 0 || ts.tv_nsec != 0);
		if (ret > 0 && !(flags & MSG_PEEK))
			note_received(st, side, r);
		break;
	}
	default:
		ret = 0;
		break;
	}
	if (o->op >= OP_SEND && o->op <= OP_WRITEV && ret >= 0)
		note_sent(st, side, 0, 1);
	r->ret = ret;
	r->err = ret < 0 ? err : 0;
	r->sigpipes = (uint32_t)(t_sigpipe_count() - pipes0);
	r->interrupted = atomic_load(&run_timer_fired) != fired0;
}

/* The operations of s followed by the final state checks of each end. */
static int all_steps(const struct opseq *s, struct opseq_op *steps)
{
	int n = s->nops < 0 ? 0 : s->nops > OPSEQ_MAX_OPS ? OPSEQ_MAX_OPS : s->nops;
	memcpy(steps, s->ops, (size_t)n * sizeof(*steps));
	for (int side = 0; side < 2; side++) {
		steps[n++] = (struct opseq_op){ OP_POLL, side, 0,
			POLLIN | POLLPRI | POLLOUT | POLLRDHUP | POLLRDNORM | POLLRDBAND |
			POLLWRNORM | POLLWRBAND | POLLMSG, 0 };
		steps[n++] = (struct opseq_op){ OP_FIONREAD, side, 0, 0, 0 };
		steps[n++] = (struct opseq_op){ OP_SIOCOUTQ, side, 0, 0, 0 };
		steps[n++] = (struct opseq_op){ OP_SO_ERROR, side, 0, 0, 0 };
		steps[n++] = (struct opseq_op){ OP_RECV, side, OPSEQ_MAX_SIZE, MSG_DONTWAIT, 0 };
	}
	steps[n++] = (struct opseq_op){ OP_FDCOUNT, 0, 0, 0, 0 };
	return n;
}

/*
 * One run on one kind of pair.  With ref (the kernel run's results), stops
 * after the first step whose result differs and returns its index;
 * returns -1 when all agree.  *count gets the steps recorded.
 */
static int run_one(const struct opseq *s, enum t_pair_kind kind,
		   struct opseq_res *res, const struct opseq_res *ref, int *count,
		   int *create_err)
{
	struct opseq_op steps[MAX_STEPS];
	int n = all_steps(s, steps);
	struct run_state st;
	int sv[2];
	memset(&st, 0, sizeof(st));
	st.type = s->type;
	*count = 0;
	*create_err = 0;
	st.fd_base = t_count_open_fds();
	int tf = s->type | (s->nonblock ? SOCK_NONBLOCK : 0);
	if (t_make_pair(kind, tf, sv) < 0) {
		*create_err = errno;
		return ref ? 0 : -1;
	}
	st.fd[0] = sv[0];
	st.fd[1] = sv[1];
	fstat(sv[0], &st.end_st[0]);
	fstat(sv[1], &st.end_st[1]);
	st.nb[0] = st.nb[1] = s->nonblock ? 1 : 0;
	int diverged = -1;
	run_timer_set(5);
	for (int i = 0; i < n; i++) {
		memset(&res[i], 0, sizeof(res[i]));
		exec_op(&st, &steps[i], &res[i]);
		*count = i + 1;
		if (ref && memcmp(&res[i], &ref[i], sizeof(res[i])) != 0) {
			diverged = i;
			break;
		}
	}
	run_timer_set(0);
	for (int side = 0; side < 2; side++)
		if (!st.closed[side])
			usp_close(st.fd[side]);
	return diverged;
}

static struct opseq_res kres[MAX_STEPS], ures[MAX_STEPS];
static int kcount, ucount;
static unsigned long stat_run[OP__COUNT], stat_skip[OP__COUNT][4], stat_cmsg[OP__COUNT],
	stat_fds[OP__COUNT];

void opseq_print_stats(FILE *f)
{
	fprintf(f, "%-16s %10s %10s %10s %10s %10s %10s\n", "op", "executed", "closed",
		"could-block", "known-diff", "with-cmsg", "fds-recv");
	for (int op = 1; op < OP__COUNT; op++)
		if (stat_run[op] || stat_skip[op][1] || stat_skip[op][2] || stat_skip[op][3])
			fprintf(f, "%-16s %10lu %10lu %10lu %10lu %10lu %10lu\n", opseq_op_name(op),
				stat_run[op], stat_skip[op][1], stat_skip[op][2], stat_skip[op][3],
				stat_cmsg[op], stat_fds[op]);
}

int opseq_compare(const struct opseq *s, int *where, unsigned long *steps)
{
	int kerr, uerr;
	opseq_init();
	run_one(s, T_KERNEL, kres, NULL, &kcount, &kerr);
	if (kerr) {
		fprintf(stderr, "opseq: kernel socketpair: %s\n", strerror(kerr));
		abort();
	}
	int d = run_one(s, T_USPAIR, ures, kres, &ucount, &uerr);
	if (uerr) {
		fprintf(stderr, "opseq: usp_socketpair: %s\n", strerror(uerr));
		if (where)
			*where = 0;
		return 1;
	}
	for (int i = 0; i < kcount && i < s->nops; i++) {
		int op = s->ops[i].op;
		if (op <= 0 || op >= OP__COUNT)
			continue;
		if (kres[i].skipped)
			stat_skip[op][kres[i].skipped & 3]++;
		else
			stat_run[op]++;
		stat_cmsg[op] += kres[i].c.ncmsg != 0;
		stat_fds[op] += kres[i].c.nfds;
	}
	if (steps) {
		unsigned long executed = 0;
		for (int i = 0; i < kcount && i < s->nops; i++)
			executed += kres[i].skipped == SKIP_NONE;
		*steps = executed;
	}
	if (where)
		*where = d;
	return d >= 0;
}

/* ------------------------------------------------------------------ */
/* shrinking                                                           */

static int still_diverges(const struct opseq *s, unsigned *runs)
{
	(*runs)++;
	return opseq_compare(s, NULL, NULL);
}

static void remove_ops(struct opseq *s, int at, int count)
{
	memmove(&s->ops[at], &s->ops[at + count],
		(size_t)(s->nops - at - count) * sizeof(s->ops[0]));
	s->nops -= count;
}

unsigned opseq_shrink(struct opseq *s)
{
	unsigned runs = 0;
	struct opseq trial;
	int where;
	/* the ops after the first divergence do not matter */
	if (opseq_compare(s, &where, NULL) && where + 1 < s->nops)
		s->nops = where + 1;
	for (int round = 0; round < 8; round++) {
		int changed = 0;
		/* remove chunks, halving their size down to single ops */
		for (int chunk = s->nops / 2; chunk >= 1; chunk /= 2) {
			for (int at = 0; at + chunk <= s->nops;) {
				trial = *s;
				remove_ops(&trial, at, chunk);
				if (still_diverges(&trial, &runs)) {
					*s = trial;
					changed = 1;
				} else {
					at += chunk;
				}
			}
		}
		/* simplify each op: sizes, flags, aux */
		for (int i = 0; i < s->nops; i++) {
			struct opseq_op *o = &s->ops[i];
			int sizes[4] = { 0, 1, o->size / 2, o->size - 1 };
			for (int k = 0; k < 4; k++) {
				if (o->op == OP_SHUTDOWN || o->op == OP_POLL)
					break;
				if (sizes[k] >= o->size || sizes[k] < 0)
					continue;
				trial = *s;
				trial.ops[i].size = sizes[k];
				if (still_diverges(&trial, &runs)) {
					*s = trial;
					changed = 1;
					break;
				}
			}
			for (int bit = 0; bit < 32; bit++) {
				int f = (int)(1u << bit);
				if (!(o->flags & f))
					continue;
				trial = *s;
				trial.ops[i].flags &= ~f;
				if (still_diverges(&trial, &runs)) {
					*s = trial;
					changed = 1;
				}
			}
			if (o->aux) {
				unsigned auxes[3] = { 0, o->aux & 0xffff, o->aux & 0xff07 };
				for (int k = 0; k < 3; k++) {
					if (auxes[k] == o->aux)
						continue;
					trial = *s;
					trial.ops[i].aux = auxes[k];
					if (still_diverges(&trial, &runs)) {
						*s = trial;
						changed = 1;
						break;
					}
				}
			}
		}
		if (s->nonblock) {
			trial = *s;
			trial.nonblock = 0;
			if (still_diverges(&trial, &runs)) {
				*s = trial;
				changed = 1;
			}
		}
		if (!changed)
			break;
	}
	return runs;
}

/* ------------------------------------------------------------------ */
/* reproducer                                                          */

void opseq_print_repro(FILE *f, const struct opseq *s, const char *title)
{
	int where = -1;
	int d = opseq_compare(s, &where, NULL);
	int flaky = 0;
	for (int i = 0; i < 4; i++)
		flaky += opseq_compare(s, NULL, NULL);
	/* the last compare left kres/ures; re-run once more for the print */
	d = opseq_compare(s, &where, NULL);
	struct opseq_op steps[MAX_STEPS];
	int n = all_steps(s, steps);
	char line[600], kr[600], ur[600];

	fprintf(f, "\n==== random_diff reproducer: %s\n", title);
	fprintf(f, "%s in this run; it diverged in %d of 4 more runs\n",
		d ? "diverges" : "did NOT diverge", flaky);
	fprintf(f, "/* paste into the regression table of test/random_diff.c */\n");
	fprintf(f, "{ \"%s\", %s, %d, %d, {\n", title, opseq_type_name(s->type),
		s->nonblock, s->nops);
	for (int i = 0; i < s->nops; i++) {
		fmt_op(line, sizeof(line), &s->ops[i]);
		fprintf(f, "\t%s,\n", line);
	}
	fprintf(f, "} },\n");
	fprintf(f, "---- trace (%s %s); steps after the op list are the final state checks\n",
		opseq_type_name(s->type), s->nonblock ? "SOCK_NONBLOCK" : "blocking");
	for (int i = 0; i < n && i < kcount; i++) {
		fmt_op(line, sizeof(line), &steps[i]);
		fmt_res(kr, sizeof(kr), &steps[i], &kres[i]);
		fprintf(f, "%s%3d %s\n", i == where ? ">>" : "  ", i + 1, line);
		fprintf(f, "        kernel: %s\n", kr);
		if (i < ucount) {
			fmt_res(ur, sizeof(ur), &steps[i], &ures[i]);
			fprintf(f, "        uspair: %s%s\n", ur,
				i == where ? "    <-- first divergence" : "");
		}
		if (i == where) {
			if (i + 1 < n)
				fprintf(f, "        (uspair run stopped at the first divergence)\n");
			break;
		}
	}
	fprintf(f, "====\n");
}

/* ------------------------------------------------------------------ */
/* generation                                                          */

/* Random numbers from a seed, or from fuzzer bytes (then zeros past the
 * end, and `exhausted` set). */
struct rng {
	uint64_t state;
	const uint8_t *data;
	size_t len, pos;
	int exhausted;
};

static unsigned below(struct rng *r, unsigned n)
{
	if (n <= 1)
		return 0;
	if (!r->data)
		return (unsigned)((opseq_splitmix64(&r->state) >> 11) % n);
	unsigned bytes = n <= 256 ? 1 : n <= 65536 ? 2 : 4;
	uint32_t v = 0;
	for (unsigned i = 0; i < bytes; i++) {
		v = v << 8 | (r->pos < r->len ? r->data[r->pos] : 0);
		if (r->pos >= r->len)
			r->exhausted = 1;
		r->pos++;
	}
	return v % n;
}

static int gen_size(struct rng *r)
{
	/* skb and buffer boundaries: SKB_MAX_HEAD(0), a page, the smallest
	 * SO_SNDBUF's record limit, the STREAM skb limit (SKB_MAX_HEAD(0) +
	 * 32 KiB), half the default SO_SNDBUF less 64, its record limit */
	static const int small_boundaries[] = {
		3776, 4096, 4608 - 32, 8192, 16384, 32768, 36544, 2240, 1024, 64, 256,
	};
	static const int large_boundaries[] = { 65536, 106432, 131072, 212960, 212992 };
	/* Large sizes are rarer: every page they touch in the ring costs its
	 * fault and its release at munmap, which dominate a run's time. */
	unsigned c = below(r, 1000);
	if (c < 100)
		return 0;
	if (c < 480)
		return 1 + (int)below(r, 100);
	if (c < 680) {
		int b = small_boundaries[below(r, N_ELEMS(small_boundaries))] + (int)below(r, 9) - 4;
		return b < 0 ? 0 : b;
	}
	if (c < 700) {
		int b = large_boundaries[below(r, N_ELEMS(large_boundaries))] + (int)below(r, 9) - 4;
		return b < 0 ? 0 : b;
	}
	if (c < 970)
		return (int)below(r, 65536);
	return 65536 + (int)below(r, OPSEQ_MAX_SIZE - 65536);
}

static unsigned gen_shape(struct rng *r)
{
	unsigned c = below(r, 100), kind;
	kind = c < 40 ? 0 : c < 55 ? 1 : c < 75 ? 2 : c < 83 ? 3 : c < 90 ? 4
	       : c < 94 ? 5 : c < 97 ? 6 : 7;
	return kind | below(r, 32) << 3;
}

/* Unusual flags, occasionally, MSG_OOB included (on STREAM an out-of-band
 * byte; exec_op() leaves it out where known difference 3 applies). */
static int odd_flag(struct rng *r, int type, int sending)
{
	static const int odd[] = {
		MSG_CONFIRM, MSG_DONTROUTE, MSG_ERRQUEUE, MSG_FASTOPEN, MSG_ZEROCOPY,
		MSG_CMSG_CLOEXEC, MSG_EOR, MSG_MORE, MSG_NOSIGNAL, MSG_PEEK, MSG_TRUNC,
		MSG_WAITALL, (int)0x80000000u, 0x10000000, 0x00800000, MSG_OOB,
	};
	(void)type;
	(void)sending;
	return odd[below(r, N_ELEMS(odd))];
}

static int gen_send_flags(struct rng *r, int type)
{
	int f = 0;
	if (below(r, 2))
		f |= MSG_DONTWAIT;
	if (below(r, 3) == 0)
		f |= MSG_NOSIGNAL;
	if (below(r, 10) == 0)
		f |= MSG_EOR;
	if (below(r, 20) == 0)
		f |= MSG_MORE;
	if (below(r, 25) == 0)
		f |= odd_flag(r, type, 1);
	return f;
}

static int gen_recv_flags(struct rng *r, int type)
{
	int f = 0;
	if (below(r, 2))
		f |= MSG_DONTWAIT;
	if (below(r, 4) == 0)
		f |= MSG_PEEK;
	if (below(r, 7) == 0)
		f |= MSG_TRUNC;
	if (below(r, 7) == 0)
		f |= MSG_WAITALL;
	if (below(r, 10) == 0)
		f |= MSG_CMSG_CLOEXEC;
	if (below(r, 25) == 0)
		f |= odd_flag(r, type, 0);
	return f;
}

static int gen_poll_events(struct rng *r)
{
	static const int ev[] = { POLLIN, POLLPRI, POLLOUT, POLLRDHUP, POLLRDNORM,
				  POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLMSG,
				  POLLERR, POLLHUP };
	if (below(r, 3) == 0)
		return POLLIN | POLLOUT | POLLRDHUP | POLLPRI;
	int e = 0;
	unsigned n = below(r, 5);
	for (unsigned i = 0; i < n; i++)
		e |= ev[below(r, N_ELEMS(ev))];
	return e;
}

static int gen_buf_size(struct rng *r)
{
	static const int v[] = { 0, 1, 100, 1000, 2304, 2305, 4096, 4608, 10000,
				 65536, 106496, 212992, 1 << 20, 4 << 20, 0x7fffffff, -1, -4096 };
	if (below(r, 4) == 0)
		return (int)below(r, 300000);
	return v[below(r, N_ELEMS(v))];
}

static void gen_op(struct rng *r, int type, int dir, struct opseq_op *o)
{
	/* weights of each operation */
	static const struct {
		int op;
		unsigned weight;
	} table[] = {
		{ OP_SEND, 12 }, { OP_SENDTO, 4 }, { OP_SENDMSG, 8 }, { OP_WRITE, 6 },
		{ OP_WRITEV, 6 }, { OP_RECV, 12 }, { OP_RECVFROM, 4 },
		{ OP_RECVMSG, 8 }, { OP_READ, 6 }, { OP_READV, 6 }, { OP_POLL, 6 },
		{ OP_FIONREAD, 3 }, { OP_SIOCOUTQ, 3 }, { OP_SETSOCKOPT, 3 },
		{ OP_GETSOCKOPT, 3 }, { OP_SETFL, 2 }, { OP_FIONBIO, 1 },
		{ OP_PEEK_OFF, 2 }, { OP_SO_ERROR, 2 }, { OP_GETPEERNAME, 1 },
		{ OP_GETSOCKNAME, 1 }, { OP_SHUTDOWN, 2 }, { OP_CLOSE, 1 },
		/* ancillary data and batches: about a fifth of the mix */
		{ OP_SENDMSG_SCM, 8 }, { OP_RECVMSG_SCM, 7 }, { OP_PASSOPT, 3 },
		{ OP_SENDMMSG, 3 }, { OP_RECVMMSG, 4 },
	};
	unsigned total = 0;
	for (size_t i = 0; i < N_ELEMS(table); i++)
		total += table[i].weight;
	unsigned pick = below(r, total);
	size_t k = 0;
	while (pick >= table[k].weight) {
		pick -= table[k].weight;
		k++;
	}
	memset(o, 0, sizeof(*o));
	o->op = table[k].op;
	int sending = (o->op >= OP_SEND && o->op <= OP_WRITEV) || o->op == OP_SENDMSG_SCM ||
		      o->op == OP_SENDMMSG;
	int receiving = (o->op >= OP_RECV && o->op <= OP_READV) || o->op == OP_RECVMSG_SCM ||
			o->op == OP_RECVMMSG;
	/* mostly one direction, sometimes the other */
	int other = below(r, 5) == 0;
	o->side = sending ? (dir ^ other) : receiving ? (1 - dir) ^ other : (int)below(r, 2);
	unsigned payload = below(r, 65536) << 16;
	switch (o->op) {
	case OP_SEND:
	case OP_WRITE:
		o->size = gen_size(r);
		o->flags = o->op == OP_SEND ? gen_send_flags(r, type) : 0;
		o->aux = payload | below(r, 2);
		break;
	case OP_SENDTO: {
		o->size = gen_size(r);
		o->flags = gen_send_flags(r, type);
		unsigned kind = below(r, 4) ? 0 : below(r, 8);
		/* DGRAM: well-formed addresses are not generated (see exec_op) */
		if (type == SOCK_DGRAM && (kind == 2 || kind == 6 || kind == 7))
			kind = 3;
		o->aux = payload | kind << 8 | below(r, 2);
		break;
	}
	case OP_SENDMSG:
	case OP_WRITEV:
		o->size = gen_size(r);
		o->flags = o->op == OP_SENDMSG ? gen_send_flags(r, type) : 0;
		o->aux = payload | gen_shape(r) | (below(r, 8) == 0 ? 0x100 | below(r, 2) << 9 : 0);
		break;
	case OP_RECV:
	case OP_READ:
	case OP_RECVFROM:
		o->size = gen_size(r);
		o->flags = o->op == OP_READ ? 0 : gen_recv_flags(r, type);
		o->aux = below(r, 2) | (o->op == OP_RECVFROM ? below(r, 4) << 8 : 0);
		break;
	case OP_RECVMSG:
	case OP_READV:
		o->size = gen_size(r);
		o->flags = o->op == OP_READV ? 0 : gen_recv_flags(r, type);
		o->aux = gen_shape(r) | (o->op == OP_RECVMSG ? below(r, 32) << 8 : 0) | payload;
		break;
	case OP_SHUTDOWN: {
		static const int how[] = { SHUT_RD, SHUT_WR, SHUT_RDWR, SHUT_RD, SHUT_WR,
					   SHUT_RDWR, 3, -1, 100 };
		o->size = how[below(r, N_ELEMS(how))];
		break;
	}
	case OP_POLL:
		o->flags = gen_poll_events(r);
		break;
	case OP_SETSOCKOPT:
		o->size = gen_buf_size(r);
		o->aux = below(r, 2);
		break;
	case OP_GETSOCKOPT:
		o->aux = below(r, N_ELEMS(getopts)) | (below(r, 10) == 0 ? 0x100 : 0);
		break;
	case OP_SETFL:
		o->size = (int)below(r, 2);
		break;
	case OP_FIONBIO:
		o->size = below(r, 4) == 0 ? 42 : (int)below(r, 2);
		break;
	case OP_PEEK_OFF: {
		static const int v[] = { 0, 0, 1, 3, 10, 100, 5000, 70000, -1, -1, -7 };
		o->size = v[below(r, N_ELEMS(v))];
		break;
	}
	case OP_GETPEERNAME:
	case OP_GETSOCKNAME:
		o->aux = below(r, 4);
		break;
	case OP_SENDMSG_SCM: {
		o->size = below(r, 10) < 7 ? (int)below(r, 101) : gen_size(r);
		o->flags = gen_send_flags(r, type);
		unsigned c = below(r, 100), nfds;
		nfds = c < 20 ? 0 : c < 65 ? 1 + below(r, 3) : c < 85 ? 4 + below(r, 13)
		       : c < 93 ? 17 + below(r, 236) : c < 97 ? SCM_MAX_FD : SCM_MAX_FD + 1;
		unsigned l = below(r, 100);
		unsigned layout = l < 55 ? 0 : l < 75 ? 1 : 2 + below(r, 6);
		unsigned cr = below(r, 100);
		unsigned creds = cr < 70 ? 0 : cr < 88 ? 1 : cr < 95 ? 2 : 3;
		unsigned m = below(r, 100);
		unsigned mix = m < 60 ? 0 : m < 80 ? 1 : m < 92 ? 2 : 3;
		o->aux = nfds | layout << 8 | creds << 11 | below(r, 2) << 13 | mix << 14 | payload;
		break;
	}
	case OP_RECVMSG_SCM: {
		o->size = below(r, 10) < 7 ? (int)below(r, 200) : gen_size(r);
		o->flags = gen_recv_flags(r, type);
		if (below(r, 3) == 0)
			o->flags |= MSG_CMSG_CLOEXEC;
		unsigned c = below(r, 100);
		unsigned ck = c < 8 ? 0 : c < 14 ? 1 : c < 24 ? 2 : c < 40 ? 3 : c < 52 ? 4
			      : c < 75 ? 5 : c < 90 ? 6 : 7;
		o->aux = ck | below(r, 32) << 3;
		break;
	}
	case OP_PASSOPT: {
		static const int v[] = { 1, 1, 1, 0, 0, 5 };
		o->size = v[below(r, N_ELEMS(v))];
		o->aux = below(r, 3) == 0;
		break;
	}
	case OP_SENDMMSG:
		o->size = gen_size(r);
		o->flags = gen_send_flags(r, type);
		o->aux = below(r, 8) | below(r, 8) << 3 | (below(r, 4) == 0) << 6 |
			 (below(r, 12) == 0) << 7 | payload;
		break;
	case OP_RECVMMSG: {
		o->size = below(r, 10) < 7 ? (int)below(r, 200) : gen_size(r);
		o->flags = gen_recv_flags(r, type);
		if (below(r, 3) == 0)
			o->flags |= MSG_WAITFORONE;
		unsigned t = below(r, 100);
		unsigned tk = t < 55 ? 0 : 1 + below(r, 7);
		o->aux = below(r, 8) | tk << 3 | below(r, 4) << 6;
		break;
	}
	default:
		break;
	}
}

static void generate(struct opseq *s, struct rng *r, int type)
{
	memset(s, 0, sizeof(*s));
	s->type = type;
	s->nonblock = (int)below(r, 2);
	int dir = (int)below(r, 2);
	int n = 5 + (int)below(r, 36);
	for (int i = 0; i < n && !r->exhausted; i++) {
		gen_op(r, type, dir, &s->ops[s->nops]);
		if (r->exhausted && r->data)
			break;
		s->nops++;
	}
}

void opseq_generate(struct opseq *s, uint64_t seed, int type)
{
	struct rng r;
	memset(&r, 0, sizeof(r));
	r.state = seed;
	generate(s, &r, type);
}

void opseq_decode(struct opseq *s, const uint8_t *data, size_t size)
{
	static const int types[3] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM };
	struct rng r;
	memset(&r, 0, sizeof(r));
	r.data = data;
	r.len = size;
	int type = types[below(&r, 3)];
	generate(s, &r, type);
}
