/* Shared helpers for the uspair differential tests; see t_helpers.h. */
#include "t_helpers.h"
#include "internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* ------------------------------------------------------------------ */
/* program state                                                       */

static const char *test_name = "test";
static int failure_count;
static int compared_count;
static int mismatch_count;
static int verbose;

static atomic_ulong sigpipes_received;

static char watchdog_message[256];
static char guard_message[256];
static timer_t guard_timer;
static int guard_timer_ready;
static atomic_int guard_fires;
static pid_t main_thread_tid;

static pid_t current_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void write_stderr(const char *s)
{
	size_t len = strlen(s);
	while (len > 0) {
		ssize_t n = write(2, s, len);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void count_sigpipe(int sig)
{
	(void)sig;
	atomic_fetch_add(&sigpipes_received, 1);
}

static void watchdog_expired(int sig)
{
	(void)sig;
	write_stderr("\nWATCHDOG: ");
	write_stderr(watchdog_message);
	write_stderr(" did not finish in time; giving up\n");
	_exit(T_EXIT_FAIL);
}

static void guard_expired(int sig)
{
	(void)sig;
	int fires = atomic_fetch_add(&guard_fires, 1) + 1;
	if (fires == 1) {
		write_stderr("step guard: call blocked too long, interrupting: ");
		write_stderr(guard_message);
		write_stderr("\n");
		return;
	}
	write_stderr("\nWATCHDOG: call still blocked after interruption: ");
	write_stderr(guard_message);
	write_stderr("\n");
	_exit(T_EXIT_FAIL);
}

#ifndef T_SANITIZER_INTERCEPTS
#define T_CRASH_HANDLER 1
/* Names the step that was running when the program crashed. */
static void report_crash(int sig)
{
	write_stderr(sig == SIGSEGV ? "\nCRASH (SIGSEGV)" : sig == SIGBUS ? "\nCRASH (SIGBUS)"
		     : "\nCRASH");
	write_stderr(" during or after: ");
	write_stderr(guard_message);
	write_stderr("\n");
	raise(sig); /* SA_RESETHAND: the default action now */
}
#endif

static int guard_signal(void)
{
	return SIGRTMIN + 1;
}

void t_init(const char *name)
{
	struct sigaction sa;
	struct sigevent sev;

	test_name = name;
	setvbuf(stdout, NULL, _IOLBF, 0);
	verbose = getenv("T_VERBOSE") && atoi(getenv("T_VERBOSE")) > 0;
	main_thread_tid = current_tid();

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = count_sigpipe;
	sa.sa_flags = 0;
	sigaction(SIGPIPE, &sa, NULL);

	sa.sa_handler = watchdog_expired;
	sigaction(SIGALRM, &sa, NULL);

	sa.sa_handler = guard_expired;
	sa.sa_flags = 0; /* no SA_RESTART: a blocked call returns EINTR */
	sigaction(guard_signal(), &sa, NULL);

#ifdef T_CRASH_HANDLER
	sa.sa_handler = report_crash;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sa.sa_flags = 0;
#endif

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = guard_signal();
	sev.sigev_notify_thread_id = main_thread_tid;
	if (timer_create(CLOCK_MONOTONIC, &sev, &guard_timer) == 0)
		guard_timer_ready = 1;
	else
		fprintf(stderr, "%s: timer_create: %s (no step guard)\n", name,
			strerror(errno));

	/*
	 * Warm-up: let uspair create whatever process-wide state it creates
	 * lazily, so that per-scenario descriptor accounting sees only what a
	 * pair itself costs.
	 */
	int sv[2];
	if (usp_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
		usp_close(sv[0]);
		usp_close(sv[1]);
	}
}

int t_failures(void)
{
	return failure_count + mismatch_count;
}

int t_finish(void)
{
	printf("%s: %d scenario runs compared, %d mismatched, %d other failures\n",
	       test_name, compared_count, mismatch_count, failure_count);
	if (t_failures() > 0) {
		printf("%s: FAIL\n", test_name);
		return T_EXIT_FAIL;
	}
	printf("%s: ok\n", test_name);
	return T_EXIT_PASS;
}

void t_fail(const char *fmt, ...)
{
	va_list ap;
	failure_count++;
	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

void t_note(const char *fmt, ...)
{
	va_list ap;
	printf("note: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

void t_skip(const char *fmt, ...)
{
	va_list ap;
	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(T_EXIT_SKIP);
}

void t_die(const char *fmt, ...)
{
	va_list ap;
	printf("ERROR (test machinery): ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(T_EXIT_FAIL);
}

void t_watchdog(unsigned seconds, const char *what)
{
	alarm(0);
	snprintf(watchdog_message, sizeof(watchdog_message), "%s: %s",
		 test_name, what);
	alarm(seconds);
}

void t_guard_arm(const char *what)
{
	struct itimerspec its;
	if (!guard_timer_ready || current_tid() != main_thread_tid)
		return;
	snprintf(guard_message, sizeof(guard_message), "%s", what);
	atomic_store(&guard_fires, 0);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = T_STEP_GUARD_SECONDS;
	its.it_interval.tv_sec = T_STEP_GUARD_SECONDS;
	timer_settime(guard_timer, 0, &its, NULL);
}

void t_guard_disarm(void)
{
	struct itimerspec its;
	if (!guard_timer_ready || current_tid() != main_thread_tid)
		return;
	memset(&its, 0, sizeof(its));
	timer_settime(guard_timer, 0, &its, NULL);
}

int t_guard_fired(void)
{
	return atomic_load(&guard_fires) > 0;
}

void t_init_sigpipe_counter(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = count_sigpipe;
	sigaction(SIGPIPE, &sa, NULL);
}

unsigned long t_sigpipe_count(void)
{
	return atomic_load(&sigpipes_received);
}

/* ------------------------------------------------------------------ */
/* names                                                               */

const char *t_kind_name(enum t_pair_kind kind)
{
	return kind == T_KERNEL ? "kernel" : "uspair";
}

const char *t_type_name(int type)
{
	switch (type) {
	case SOCK_STREAM: return "SOCK_STREAM";
	case SOCK_SEQPACKET: return "SOCK_SEQPACKET";
	case SOCK_DGRAM: return "SOCK_DGRAM";
	case SOCK_RAW: return "SOCK_RAW";
	case SOCK_RDM: return "SOCK_RDM";
	default: return "SOCK_?";
	}
}

const char *t_errno_name(int err)
{
	static _Thread_local char buf[32];
	const char *name = strerrorname_np(err);
	if (name)
		return name;
	snprintf(buf, sizeof(buf), "errno%d", err);
	return buf;
}

void t_fmt_result(char *out, size_t size, long ret, int err)
{
	if (ret < 0)
		snprintf(out, size, "= %ld %s", ret, t_errno_name(err));
	else
		snprintf(out, size, "= %ld", ret);
}

struct bit_name {
	int bit;
	const char *name;
};

static void fmt_bits(char *out, size_t size, int value,
		     const struct bit_name *names, size_t count, int hex)
{
	size_t used = 0;
	int rest = value;
	if (hex)
		used += (size_t)snprintf(out, size, "0x%x(", (unsigned)value);
	else
		out[0] = 0;
	int first = 1;
	for (size_t i = 0; i < count; i++) {
		if ((rest & names[i].bit) && used < size) {
			used += (size_t)snprintf(out + used, size - used, "%s%s",
						 first ? "" : "|", names[i].name);
			rest &= ~names[i].bit;
			first = 0;
		}
	}
	if (rest && used < size)
		used += (size_t)snprintf(out + used, size - used, "%s0x%x",
					 first ? "" : "|", (unsigned)rest);
	else if (first && !hex && used < size)
		used += (size_t)snprintf(out + used, size - used, "0");
	if (hex && used < size)
		snprintf(out + used, size - used, ")");
}

void t_fmt_msg_flags(char *out, size_t size, int flags)
{
	static const struct bit_name names[] = {
		{ MSG_OOB, "MSG_OOB" },
		{ MSG_PEEK, "MSG_PEEK" },
		{ MSG_DONTROUTE, "MSG_DONTROUTE" },
		{ MSG_CTRUNC, "MSG_CTRUNC" },
		{ MSG_TRUNC, "MSG_TRUNC" },
		{ MSG_DONTWAIT, "MSG_DONTWAIT" },
		{ MSG_EOR, "MSG_EOR" },
		{ MSG_WAITALL, "MSG_WAITALL" },
		{ MSG_CONFIRM, "MSG_CONFIRM" },
		{ MSG_ERRQUEUE, "MSG_ERRQUEUE" },
		{ MSG_NOSIGNAL, "MSG_NOSIGNAL" },
		{ MSG_MORE, "MSG_MORE" },
		{ MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC" },
	};
	fmt_bits(out, size, flags, names, sizeof(names) / sizeof(names[0]), 0);
}

void t_fmt_poll_events(char *out, size_t size, int events)
{
	static const struct bit_name names[] = {
		{ POLLIN, "IN" },
		{ POLLPRI, "PRI" },
		{ POLLOUT, "OUT" },
		{ POLLERR, "ERR" },
		{ POLLHUP, "HUP" },
		{ POLLNVAL, "NVAL" },
		{ POLLRDNORM, "RDNORM" },
		{ POLLRDBAND, "RDBAND" },
		{ POLLWRNORM, "WRNORM" },
		{ POLLWRBAND, "WRBAND" },
		{ POLLMSG, "MSG" },
		{ POLLRDHUP, "RDHUP" },
	};
	fmt_bits(out, size, events, names, sizeof(names) / sizeof(names[0]), 1);
}

uint64_t t_fnv1a(const void *buf, size_t len, uint64_t hash)
{
	const unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ull;
	}
	return hash;
}

static size_t escape_bytes(char *out, size_t size, const unsigned char *p,
			   size_t len)
{
	size_t used = 0;
	for (size_t i = 0; i < len && used + 5 < size; i++) {
		unsigned char ch = p[i];
		if (ch == '"' || ch == '\\')
			used += (size_t)snprintf(out + used, size - used, "\\%c", ch);
		else if (isprint(ch))
			out[used++] = (char)ch;
		else
			used += (size_t)snprintf(out + used, size - used, "\\x%02x", ch);
	}
	out[used] = 0;
	return used;
}

void t_fmt_bytes(char *out, size_t size, const void *buf, size_t len)
{
	char text[200];
	if (buf == NULL) {
		snprintf(out, size, "NULL");
		return;
	}
	if (len <= 40) {
		escape_bytes(text, sizeof(text), buf, len);
		snprintf(out, size, "\"%s\"", text);
		return;
	}
	escape_bytes(text, sizeof(text), buf, 12);
	snprintf(out, size, "<%zu bytes \"%s\"... fnv=%016" PRIx64 ">", len, text,
		 t_fnv1a(buf, len, T_FNV_INIT));
}

void t_fill_pattern(void *buf, size_t len, unsigned seed, size_t offset)
{
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i++) {
		uint32_t x = (uint32_t)(offset + i) * 2654435761u ^ (seed * 0x9e3779b9u);
		x ^= x >> 15;
		x *= 0x2c1b3c6du;
		x ^= x >> 12;
		p[i] = (unsigned char)(x >> 8);
	}
}

/* ------------------------------------------------------------------ */
/* traces                                                              */

void t_trace_init(struct t_trace *t)
{
	memset(t, 0, sizeof(*t));
}

void t_trace_free(struct t_trace *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->lines[i]);
	free(t->lines);
	memset(t, 0, sizeof(*t));
}

void t_trace_add(struct t_trace *t, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		t_die("out of memory");
	va_end(ap);
	if (t->count == t->capacity) {
		t->capacity = t->capacity ? t->capacity * 2 : 64;
		t->lines = realloc(t->lines, t->capacity * sizeof(*t->lines));
		if (!t->lines)
			t_die("out of memory");
	}
	t->lines[t->count++] = line;
}

static void print_trace_window(const char *label, const struct t_trace *t,
			       size_t mark, size_t from, size_t to)
{
	printf("  --- %s trace (%zu steps)\n", label, t->count);
	if (from > 0)
		printf("        ...\n");
	for (size_t i = from; i < to && i < t->count; i++)
		printf("  %s%4zu  %s\n", i == mark ? ">>" : "  ", i + 1, t->lines[i]);
	if (to < t->count)
		printf("        ... (%zu more)\n", t->count - to);
	if (mark >= t->count)
		printf("  >>      (trace ends here)\n");
}

int t_trace_compare(const struct t_trace *kernel, const struct t_trace *uspair,
		    const char *heading)
{
	size_t n = kernel->count < uspair->count ? kernel->count : uspair->count;
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(kernel->lines[i], uspair->lines[i]) != 0)
			break;
	if (i == n && kernel->count == uspair->count)
		return 0;
	printf("\nMISMATCH %s at step %zu\n", heading, i + 1);
	printf("  kernel: %s\n", i < kernel->count ? kernel->lines[i] : "(end of trace)");
	printf("  uspair: %s\n", i < uspair->count ? uspair->lines[i] : "(end of trace)");
	size_t from = i > 60 ? i - 60 : 0;
	print_trace_window("kernel", kernel, i, from, i + 4);
	print_trace_window("uspair", uspair, i, from, i + 4);
	printf("\n");
	return 1;
}

/* ------------------------------------------------------------------ */
/* pairs and scenario runs                                             */

int t_make_pair(enum t_pair_kind kind, int type_and_flags, int sv[2])
{
	if (kind == T_KERNEL)
		return socketpair(AF_UNIX, type_and_flags, 0, sv);
	return usp_socketpair(AF_UNIX, type_and_flags, 0, sv);
}

void t_log(struct t_ctx *c, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;
	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		t_die("out of memory");
	va_end(ap);
	t_trace_add(c->trace, "%s", line);
	if (verbose)
		printf("    [%s] %s\n", t_kind_name(c->kind), line);
	free(line);
}

void t_record(struct t_ctx *c, const char *desc, long ret, int err)
{
	char res[64];
	t_fmt_result(res, sizeof(res), ret, err);
	t_log(c, "%s %s", desc, res);
	errno = err;
}

void t_name_fd(struct t_ctx *c, int fd, const char *name)
{
	for (int i = 0; i < c->nfds; i++) {
		if (c->fds[i].fd == fd) {
			snprintf(c->fds[i].name, sizeof(c->fds[i].name), "%s", name);
			return;
		}
	}
	if (c->nfds == T_MAX_NAMED_FDS)
		t_die("too many named descriptors");
	c->fds[c->nfds].fd = fd;
	snprintf(c->fds[c->nfds].name, sizeof(c->fds[c->nfds].name), "%s", name);
	c->nfds++;
}

void t_forget_fd(struct t_ctx *c, int fd)
{
	for (int i = 0; i < c->nfds; i++) {
		if (c->fds[i].fd == fd) {
			c->fds[i] = c->fds[c->nfds - 1];
			c->nfds--;
			return;
		}
	}
}

const char *t_fd_name(const struct t_ctx *c, int fd)
{
	static _Thread_local char buf[4][24];
	static _Thread_local int next;
	for (int i = 0; i < c->nfds; i++)
		if (c->fds[i].fd == fd)
			return c->fds[i].name;
	char *out = buf[next++ % 4];
	if (fd < 0)
		snprintf(out, sizeof(buf[0]), "%d", fd);
	else
		snprintf(out, sizeof(buf[0]), "fd?");
	return out;
}

static const char *dir_name(int dir)
{
	return dir == 0 ? "sv[0]->sv[1]" : "sv[1]->sv[0]";
}

static void run_scenario_once(struct t_ctx *c, t_scenario_fn fn)
{
	char what[200];
	int sv[2] = { -1, -1 };
	int flags = (c->nonblock ? SOCK_NONBLOCK : 0) | c->extra_flags;

	snprintf(what, sizeof(what), "scenario %s (%s %s %s %s)", c->scenario,
		 t_kind_name(c->kind), t_type_name(c->type),
		 c->nonblock ? "nonblocking" : "blocking", dir_name(c->dir));
	t_watchdog(30, what);

	int fds_before = t_count_open_fds();
	int ret = t_make_pair(c->kind, c->type | flags, sv);
	int err = errno;
	char res[64];
	t_fmt_result(res, sizeof(res), ret, err);
	t_log(c, "socketpair(AF_UNIX,%s%s%s,0) %s", t_type_name(c->type),
	      c->nonblock ? "|SOCK_NONBLOCK" : "",
	      c->extra_flags & SOCK_CLOEXEC ? "|SOCK_CLOEXEC" : "", res);
	if (ret == 0) {
		c->sv[0] = sv[0];
		c->sv[1] = sv[1];
		c->a = sv[c->dir];
		c->b = sv[1 - c->dir];
		t_name_fd(c, c->a, "a");
		t_name_fd(c, c->b, "b");
		fn(c);
		while (c->nfds > 0) {
			usp_close(c->fds[c->nfds - 1].fd);
			c->nfds--;
		}
		int fds_after = t_count_open_fds();
		if (fds_after != fds_before)
			t_log(c, "open descriptors after closing everything: %+d",
			      fds_after - fds_before);
	}
	alarm(0);
}

static int compare_with_flags(const char *name, t_scenario_fn fn, int type,
			      int nonblock, int dir, int extra_flags, void *user)
{
	struct t_trace traces[2];
	/* T_ONLY=text runs only the scenarios whose name contains text */
	const char *only = getenv("T_ONLY");
	if (only && *only && !strstr(name, only))
		return 0;
	for (int k = 0; k < 2; k++) {
		struct t_ctx c;
		memset(&c, 0, sizeof(c));
		t_trace_init(&traces[k]);
		c.scenario = name;
		c.kind = k == 0 ? T_KERNEL : T_USPAIR;
		c.type = type;
		c.nonblock = nonblock;
		c.dir = dir;
		c.extra_flags = extra_flags;
		c.sv[0] = c.sv[1] = c.a = c.b = -1;
		c.prepoll_ms = 0;
		c.user = user;
		c.trace = &traces[k];
		run_scenario_once(&c, fn);
	}
	char heading[256];
	snprintf(heading, sizeof(heading), "[%s: scenario=%s type=%s %s dir=%s]",
		 test_name, name, t_type_name(type),
		 nonblock ? "SOCK_NONBLOCK" : "blocking", dir_name(dir));
	compared_count++;
	int differs = t_trace_compare(&traces[0], &traces[1], heading);
	if (differs)
		mismatch_count++;
	else if (verbose)
		printf("same: %s (%zu steps)\n", heading, traces[0].count);
	t_trace_free(&traces[0]);
	t_trace_free(&traces[1]);
	return differs;
}

int t_compare(const char *name, t_scenario_fn fn, int type, int nonblock,
	      int dir, void *user)
{
	return compare_with_flags(name, fn, type, nonblock, dir, 0, user);
}

int t_compare_matrix(const char *name, t_scenario_fn fn, unsigned types,
		     unsigned modes, unsigned dirs, void *user)
{
	return t_compare_matrix_flags(name, fn, types, modes, dirs, 0, user);
}

int t_compare_matrix_flags(const char *name, t_scenario_fn fn, unsigned types,
			   unsigned modes, unsigned dirs, int extra_flags,
			   void *user)
{
	static const struct {
		unsigned bit;
		int type;
	} type_list[] = {
		{ T_STREAM, SOCK_STREAM },
		{ T_SEQPACKET, SOCK_SEQPACKET },
		{ T_DGRAM, SOCK_DGRAM },
	};
	int mismatches = 0;
	for (size_t t = 0; t < 3; t++) {
		if (!(types & type_list[t].bit))
			continue;
		for (int nonblock = 0; nonblock <= 1; nonblock++) {
			if (!(modes & (nonblock ? T_NONBLOCKING : T_BLOCKING)))
				continue;
			for (int dir = 0; dir <= 1; dir++) {
				if (!(dirs & (dir ? T_DIR_1_TO_0 : T_DIR_0_TO_1)))
					continue;
				mismatches += compare_with_flags(name, fn, type_list[t].type,
								 nonblock, dir, extra_flags, user);
			}
		}
	}
	return mismatches;
}

int t_compare_matrix_isolated(const char *name, t_scenario_fn fn, unsigned types,
			      unsigned modes, unsigned dirs, void *user)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork: %s", strerror(errno));
	if (pid == 0) {
		int m = t_compare_matrix(name, fn, types, modes, dirs, user);
		/* how many ran, how many differed */
		fflush(stdout);
		_exit(m > 100 ? 100 : m);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			t_die("waitpid: %s", strerror(errno));
	int types_n = !!(types & T_STREAM) + !!(types & T_SEQPACKET) + !!(types & T_DGRAM);
	int modes_n = !!(modes & T_BLOCKING) + !!(modes & T_NONBLOCKING);
	int dirs_n = !!(dirs & T_DIR_0_TO_1) + !!(dirs & T_DIR_1_TO_0);
	compared_count += types_n * modes_n * dirs_n;
	if (WIFEXITED(status)) {
		mismatch_count += WEXITSTATUS(status);
		return WEXITSTATUS(status);
	}
	t_fail("scenario %s: the child running it died of signal %d (%s)", name,
	       WTERMSIG(status), strsignal(WTERMSIG(status)));
	return 1;
}

/* ------------------------------------------------------------------ */
/* traced calls                                                        */

static unsigned char *last_data;
static size_t last_len;

const unsigned char *t_last_data(size_t *len)
{
	if (len)
		*len = last_len;
	return last_data;
}

static void keep_last_data(const void *buf, size_t len)
{
	free(last_data);
	last_data = malloc(len ? len : 1);
	if (!last_data)
		t_die("out of memory");
	if (len)
		memcpy(last_data, buf, len);
	last_len = len;
}

/* Common bookkeeping around one call. */
struct call_state {
	unsigned long sigpipes_before;
	char desc[1500];
};

static void call_begin(struct t_ctx *c, struct call_state *cs)
{
	char what[1800];
	snprintf(what, sizeof(what), "%s (%s, scenario %s)", cs->desc,
		 t_kind_name(c->kind), c->scenario);
	cs->sigpipes_before = t_sigpipe_count();
	t_guard_arm(what);
}

/* Finishes the call's line: "<desc> = <result><extra>[ SIGPIPE]". */
static void call_end(struct t_ctx *c, struct call_state *cs, long ret, int err,
		     const char *extra)
{
	char res[64];
	t_guard_disarm();
	t_fmt_result(res, sizeof(res), ret, err);
	unsigned long pipes = t_sigpipe_count() - cs->sigpipes_before;
	char pipe_note[48] = "";
	if (pipes == 1)
		snprintf(pipe_note, sizeof(pipe_note), " +SIGPIPE");
	else if (pipes > 1)
		snprintf(pipe_note, sizeof(pipe_note), " +SIGPIPE*%lu", pipes);
	t_log(c, "%s %s%s%s%s", cs->desc, res, extra ? extra : "", pipe_note,
	      t_guard_fired() ? " [interrupted by step guard]" : "");
	errno = err;
}

static int is_nonblocking(int fd)
{
	int fl = usp_fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

/*
 * For a receive that may block: poll first.  Returns 1 (and records the
 * step as "(would block)") when nothing became readable in time.
 */
static int receive_would_block(struct t_ctx *c, int fd, int flags,
			       const char *desc)
{
	if (c->prepoll_ms < 0 || (flags & MSG_DONTWAIT) || is_nonblocking(fd))
		return 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = usp_poll(&p, 1, c->prepoll_ms);
	if (r == 0) {
		t_log(c, "%s (would block)", desc);
		errno = EAGAIN;
		return 1;
	}
	return 0;
}

static void fmt_data_result(char *out, size_t size, const void *buf,
			    ssize_t ret, size_t cap)
{
	if (ret <= 0) {
		out[0] = 0;
		return;
	}
	size_t got = (size_t)ret < cap ? (size_t)ret : cap;
	char bytes[300];
	t_fmt_bytes(bytes, sizeof(bytes), buf, got);
	snprintf(out, size, " %s", bytes);
}

ssize_t t_send(struct t_ctx *c, int fd, const void *buf, size_t len, int flags)
{
	struct call_state cs;
	char data[300], fl[200];
	t_fmt_bytes(data, sizeof(data), buf, len);
	t_fmt_msg_flags(fl, sizeof(fl), flags);
	snprintf(cs.desc, sizeof(cs.desc), "send(%s,%s,%zu,%s)", t_fd_name(c, fd),
		 data, len, fl);
	call_begin(c, &cs);
	ssize_t r = usp_send(fd, buf, len, flags);
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	return r;
}

ssize_t t_send_pattern(struct t_ctx *c, int fd, size_t len, unsigned seed,
		       int flags)
{
	unsigned char *buf = malloc(len ? len : 1);
	if (!buf)
		t_die("out of memory");
	t_fill_pattern(buf, len, seed, 0);
	ssize_t r = t_send(c, fd, buf, len, flags);
	int err = errno;
	free(buf);
	errno = err;
	return r;
}

ssize_t t_write(struct t_ctx *c, int fd, const void *buf, size_t len)
{
	struct call_state cs;
	char data[300];
	t_fmt_bytes(data, sizeof(data), buf, len);
	snprintf(cs.desc, sizeof(cs.desc), "write(%s,%s,%zu)", t_fd_name(c, fd),
		 data, len);
	call_begin(c, &cs);
	ssize_t r = usp_write(fd, buf, len);
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	return r;
}

ssize_t t_sendto(struct t_ctx *c, int fd, const void *buf, size_t len, int flags,
		 const struct sockaddr *addr, socklen_t addrlen,
		 const char *addr_desc)
{
	struct call_state cs;
	char data[300], fl[200];
	t_fmt_bytes(data, sizeof(data), buf, len);
	t_fmt_msg_flags(fl, sizeof(fl), flags);
	snprintf(cs.desc, sizeof(cs.desc), "sendto(%s,%s,%zu,%s,%s,%u)",
		 t_fd_name(c, fd), data, len, fl, addr_desc, (unsigned)addrlen);
	call_begin(c, &cs);
	ssize_t r = usp_sendto(fd, buf, len, flags, addr, addrlen);
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	return r;
}

/* Builds iovecs of the given lengths over pattern data; returns the buffer. */
static unsigned char *build_iovecs(struct iovec *iov, const size_t *lens,
				   int count, unsigned seed, size_t *total)
{
	size_t sum = 0;
	for (int i = 0; i < count; i++)
		sum += lens[i];
	unsigned char *buf = malloc(sum ? sum : 1);
	if (!buf)
		t_die("out of memory");
	t_fill_pattern(buf, sum, seed, 0);
	size_t off = 0;
	for (int i = 0; i < count; i++) {
		iov[i].iov_base = buf + off;
		iov[i].iov_len = lens[i];
		off += lens[i];
	}
	*total = sum;
	return buf;
}

static void fmt_lens(char *out, size_t size, const size_t *lens, int count)
{
	size_t used = (size_t)snprintf(out, size, "[");
	for (int i = 0; i < count && i < 8 && used < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%s%zu",
					 i ? "," : "", lens[i]);
	if (count > 8 && used < size)
		used += (size_t)snprintf(out + used, size - used, ",...x%d", count);
	if (used < size)
		snprintf(out + used, size - used, "]");
}

#define T_MAX_IOV 1100

ssize_t t_writev(struct t_ctx *c, int fd, const size_t *lens, int count,
		 unsigned seed)
{
	struct call_state cs;
	static struct iovec iov[T_MAX_IOV];
	char shape[200], data[300];
	size_t total;
	int n = count < 0 ? 0 : count > T_MAX_IOV ? T_MAX_IOV : count;
	unsigned char *buf = build_iovecs(iov, lens, n, seed, &total);
	fmt_lens(shape, sizeof(shape), lens, n);
	t_fmt_bytes(data, sizeof(data), buf, total);
	snprintf(cs.desc, sizeof(cs.desc), "writev(%s,%s=%s,%d)", t_fd_name(c, fd),
		 shape, data, count);
	call_begin(c, &cs);
	ssize_t r = usp_writev(fd, iov, count);
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	free(buf);
	errno = err;
	return r;
}

ssize_t t_sendmsg(struct t_ctx *c, int fd, const size_t *lens, int count,
		  unsigned seed, int flags)
{
	struct call_state cs;
	static struct iovec iov[T_MAX_IOV];
	char shape[200], data[300], fl[200];
	size_t total;
	int n = count < 0 ? 0 : count > T_MAX_IOV ? T_MAX_IOV : count;
	unsigned char *buf = build_iovecs(iov, lens, n, seed, &total);
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)count;
	fmt_lens(shape, sizeof(shape), lens, n);
	t_fmt_bytes(data, sizeof(data), buf, total);
	t_fmt_msg_flags(fl, sizeof(fl), flags);
	snprintf(cs.desc, sizeof(cs.desc), "sendmsg(%s,iov%s=%s,%s)",
		 t_fd_name(c, fd), shape, data, fl);
	call_begin(c, &cs);
	ssize_t r = usp_sendmsg(fd, &msg, flags);
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	free(buf);
	errno = err;
	return r;
}

/* Receive buffers get a guard zone that must stay untouched. */
#define GUARD_BYTES 64
#define GUARD_BYTE 0xA5

static unsigned char *alloc_receive_buffer(size_t cap)
{
	unsigned char *buf = malloc(cap + GUARD_BYTES);
	if (!buf)
		t_die("out of memory");
	memset(buf, GUARD_BYTE, cap + GUARD_BYTES);
	return buf;
}

static void check_guard(struct t_ctx *c, const unsigned char *buf, size_t cap)
{
	for (size_t i = 0; i < GUARD_BYTES; i++) {
		if (buf[cap + i] != GUARD_BYTE) {
			t_log(c, "!! bytes written past the end of the %zu-byte buffer", cap);
			return;
		}
	}
}

ssize_t t_recv(struct t_ctx *c, int fd, size_t cap, int flags)
{
	struct call_state cs;
	char fl[200], extra[400];
	t_fmt_msg_flags(fl, sizeof(fl), flags);
	snprintf(cs.desc, sizeof(cs.desc), "recv(%s,%zu,%s)", t_fd_name(c, fd),
		 cap, fl);
	if (receive_would_block(c, fd, flags, cs.desc))
		return -1;
	unsigned char *buf = alloc_receive_buffer(cap);
	call_begin(c, &cs);
	ssize_t r = usp_recv(fd, buf, cap, flags);
	int err = errno;
	fmt_data_result(extra, sizeof(extra), buf, r, cap);
	call_end(c, &cs, r, err, extra);
	check_guard(c, buf, cap);
	keep_last_data(buf, r > 0 ? ((size_t)r < cap ? (size_t)r : cap) : 0);
	free(buf);
	errno = err;
	return r;
}

ssize_t t_read(struct t_ctx *c, int fd, size_t cap)
{
	struct call_state cs;
	char extra[400];
	snprintf(cs.desc, sizeof(cs.desc), "read(%s,%zu)", t_fd_name(c, fd), cap);
	/* read() of 0 bytes returns at once on a socket; no readiness needed */
	if (cap > 0 && receive_would_block(c, fd, 0, cs.desc))
		return -1;
	unsigned char *buf = alloc_receive_buffer(cap);
	call_begin(c, &cs);
	ssize_t r = usp_read(fd, buf, cap);
	int err = errno;
	fmt_data_result(extra, sizeof(extra), buf, r, cap);
	call_end(c, &cs, r, err, extra);
	check_guard(c, buf, cap);
	keep_last_data(buf, r > 0 ? (size_t)r : 0);
	free(buf);
	errno = err;
	return r;
}

static void fmt_address(char *out, size_t size, const struct sockaddr_un *addr,
			socklen_t returned_len, socklen_t cap)
{
	const unsigned char *raw = (const unsigned char *)addr;
	if (returned_len == 0 || cap == 0) {
		snprintf(out, size, "addrlen=%u", (unsigned)returned_len);
		return;
	}
	size_t shown = returned_len < cap ? returned_len : cap;
	char bytes[300];
	t_fmt_bytes(bytes, sizeof(bytes), raw, shown);
	snprintf(out, size, "addrlen=%u addr=%s", (unsigned)returned_len, bytes);
}

ssize_t t_recvfrom(struct t_ctx *c, int fd, size_t cap, int flags,
		   socklen_t addr_cap)
{
	struct call_state cs;
	char fl[200], extra[800], data[400], addr_text[400];
	struct sockaddr_un addr;
	socklen_t addrlen = addr_cap;
	memset(&addr, 0xEE, sizeof(addr));
	t_fmt_msg_flags(fl, sizeof(fl), flags);
	snprintf(cs.desc, sizeof(cs.desc), "recvfrom(%s,%zu,%s,addrlen=%u)",
		 t_fd_name(c, fd), cap, fl, (unsigned)addr_cap);
	if (receive_would_block(c, fd, flags, cs.desc))
		return -1;
	unsigned char *buf = alloc_receive_buffer(cap);
	call_begin(c, &cs);
	ssize_t r = usp_recvfrom(fd, buf, cap, flags, (struct sockaddr *)&addr,
				 &addrlen);
	int err = errno;
	fmt_data_result(data, sizeof(data), buf, r, cap);
	fmt_address(addr_text, sizeof(addr_text), &addr, addrlen,
		    addr_cap < sizeof(addr) ? addr_cap : sizeof(addr));
	snprintf(extra, sizeof(extra), "%s %s", data, r >= 0 ? addr_text : "");
	call_end(c, &cs, r, err, extra);
	check_guard(c, buf, cap);
	keep_last_data(buf, r > 0 ? ((size_t)r < cap ? (size_t)r : cap) : 0);
	free(buf);
	errno = err;
	return r;
}

ssize_t t_readv(struct t_ctx *c, int fd, const size_t *lens, int count)
{
	struct call_state cs;
	static struct iovec iov[T_MAX_IOV];
	char shape[200], extra[400];
	size_t total = 0;
	int n = count < 0 ? 0 : count > T_MAX_IOV ? T_MAX_IOV : count;
	for (int i = 0; i < n; i++)
		total += lens[i];
	/* One buffer; the iovecs leave a one-byte gap between pieces that must
	 * not be written. */
	unsigned char *buf = alloc_receive_buffer(total + (size_t)n);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = buf + off;
		iov[i].iov_len = lens[i];
		off += lens[i] + 1;
	}
	fmt_lens(shape, sizeof(shape), lens, n);
	snprintf(cs.desc, sizeof(cs.desc), "readv(%s,%s,%d)", t_fd_name(c, fd),
		 shape, count);
	/* readv() of 0 bytes returns at once on a socket; no readiness needed */
	if (total > 0 && receive_would_block(c, fd, 0, cs.desc)) {
		free(buf);
		return -1;
	}
	call_begin(c, &cs);
	ssize_t r = usp_readv(fd, iov, count);
	int err = errno;
	/* gather what arrived */
	unsigned char *got = malloc(total ? total : 1);
	size_t got_len = 0, left = r > 0 ? (size_t)r : 0;
	int gaps_ok = 1;
	for (int i = 0; i < n && left > 0; i++) {
		size_t take = lens[i] < left ? lens[i] : left;
		memcpy(got + got_len, iov[i].iov_base, take);
		got_len += take;
		left -= take;
	}
	for (int i = 0; i < n; i++)
		if (((unsigned char *)iov[i].iov_base)[lens[i]] != GUARD_BYTE)
			gaps_ok = 0;
	fmt_data_result(extra, sizeof(extra), got, (ssize_t)got_len, got_len);
	call_end(c, &cs, r, err, extra);
	if (!gaps_ok)
		t_log(c, "!! readv wrote outside an iovec");
	keep_last_data(got, got_len);
	free(got);
	free(buf);
	errno = err;
	return r;
}

ssize_t t_recvmsg(struct t_ctx *c, int fd, const size_t *lens, int count,
		  socklen_t name_cap, size_t control_cap, int flags)
{
	struct call_state cs;
	static struct iovec iov[T_MAX_IOV];
	char shape[200], fl[200], mfl[200], extra[1200], data[400], addr_text[400];
	size_t total = 0;
	int n = count < 0 ? 0 : count > T_MAX_IOV ? T_MAX_IOV : count;
	for (int i = 0; i < n; i++)
		total += lens[i];
	unsigned char *buf = alloc_receive_buffer(total + (size_t)n);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = buf + off;
		iov[i].iov_len = lens[i];
		off += lens[i] + 1;
	}
	struct sockaddr_un name;
	unsigned char control[512];
	memset(&name, 0xEE, sizeof(name));
	memset(control, 0xEE, sizeof(control));
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_name = name_cap ? &name : NULL;
	msg.msg_namelen = name_cap;
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)count;
	msg.msg_control = control_cap ? control : NULL;
	msg.msg_controllen = control_cap < sizeof(control) ? control_cap : sizeof(control);
	msg.msg_flags = 0x7eadbeef & ~MSG_CMSG_CLOEXEC; /* must be overwritten */
	fmt_lens(shape, sizeof(shape), lens, n);
	t_fmt_msg_flags(fl, sizeof(fl), flags);
	snprintf(cs.desc, sizeof(cs.desc),
		 "recvmsg(%s,iov%s,namelen=%u,controllen=%zu,%s)",
		 t_fd_name(c, fd), shape, (unsigned)name_cap, control_cap, fl);
	if (receive_would_block(c, fd, flags, cs.desc)) {
		free(buf);
		return -1;
	}
	call_begin(c, &cs);
	ssize_t r = usp_recvmsg(fd, &msg, flags);
	int err = errno;
	unsigned char *got = malloc(total ? total : 1);
	size_t got_len = 0, left = r > 0 ? (size_t)r : 0;
	for (int i = 0; i < n && left > 0; i++) {
		size_t take = lens[i] < left ? lens[i] : left;
		memcpy(got + got_len, iov[i].iov_base, take);
		got_len += take;
		left -= take;
	}
	fmt_data_result(data, sizeof(data), got, (ssize_t)got_len, got_len);
	if (r >= 0) {
		t_fmt_msg_flags(mfl, sizeof(mfl), msg.msg_flags);
		fmt_address(addr_text, sizeof(addr_text), &name, msg.msg_namelen,
			    name_cap < sizeof(name) ? name_cap : sizeof(name));
		snprintf(extra, sizeof(extra), "%s msg_flags=%s %s controllen=%zu",
			 data, mfl, name_cap ? addr_text : "(no name)",
			 (size_t)msg.msg_controllen);
	} else {
		extra[0] = 0;
	}
	call_end(c, &cs, r, err, extra);
	for (int i = 0; i < n; i++)
		if (((unsigned char *)iov[i].iov_base)[lens[i]] != GUARD_BYTE) {
			t_log(c, "!! recvmsg wrote outside an iovec");
			break;
		}
	keep_last_data(got, got_len);
	free(got);
	free(buf);
	errno = err;
	return r;
}

int t_shutdown(struct t_ctx *c, int fd, int how)
{
	struct call_state cs;
	const char *name = how == SHUT_RD ? "SHUT_RD" : how == SHUT_WR ? "SHUT_WR"
			   : how == SHUT_RDWR ? "SHUT_RDWR" : NULL;
	if (name)
		snprintf(cs.desc, sizeof(cs.desc), "shutdown(%s,%s)", t_fd_name(c, fd), name);
	else
		snprintf(cs.desc, sizeof(cs.desc), "shutdown(%s,%d)", t_fd_name(c, fd), how);
	call_begin(c, &cs);
	int r = usp_shutdown(fd, how);
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	return r;
}

int t_close(struct t_ctx *c, int fd)
{
	struct call_state cs;
	snprintf(cs.desc, sizeof(cs.desc), "close(%s)", t_fd_name(c, fd));
	call_begin(c, &cs);
	int r = usp_close(fd);
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	if (r == 0)
		t_forget_fd(c, fd);
	errno = err;
	return r;
}

/* dup results are descriptor numbers, which differ between the runs. */
static void call_end_descriptor(struct t_ctx *c, struct call_state *cs, int r,
				int err, int expected)
{
	char res[64];
	t_guard_disarm();
	if (r < 0)
		t_fmt_result(res, sizeof(res), r, err);
	else if (expected >= 0)
		snprintf(res, sizeof(res), "= %s", r == expected ? "newfd" : "a different descriptor");
	else
		snprintf(res, sizeof(res), "= new descriptor");
	t_log(c, "%s %s%s", cs->desc, res,
	      t_guard_fired() ? " [interrupted by step guard]" : "");
	errno = err;
}

int t_dup(struct t_ctx *c, int fd, const char *new_name)
{
	struct call_state cs;
	snprintf(cs.desc, sizeof(cs.desc), "dup(%s)", t_fd_name(c, fd));
	call_begin(c, &cs);
	int r = usp_dup(fd);
	int err = errno;
	call_end_descriptor(c, &cs, r, err, -1);
	if (r >= 0)
		t_name_fd(c, r, new_name);
	errno = err;
	return r;
}

int t_dup2(struct t_ctx *c, int fd, int newfd, const char *new_name)
{
	struct call_state cs;
	snprintf(cs.desc, sizeof(cs.desc), "dup2(%s,%s)", t_fd_name(c, fd),
		 newfd == fd ? "same" : t_fd_name(c, newfd));
	call_begin(c, &cs);
	int r = usp_dup2(fd, newfd);
	int err = errno;
	call_end_descriptor(c, &cs, r, err, newfd);
	if (r >= 0 && r != fd)
		t_name_fd(c, r, new_name);
	errno = err;
	return r;
}

int t_poll1(struct t_ctx *c, int fd, int events)
{
	struct call_state cs;
	char ev[200], rev[200], extra[256];
	t_fmt_poll_events(ev, sizeof(ev), events);
	snprintf(cs.desc, sizeof(cs.desc), "poll(%s,%s,0)", t_fd_name(c, fd), ev);
	struct pollfd p = { .fd = fd, .events = (short)events, .revents = 0x5a5a };
	call_begin(c, &cs);
	int r = usp_poll(&p, 1, 0);
	int err = errno;
	t_fmt_poll_events(rev, sizeof(rev), (unsigned short)p.revents);
	snprintf(extra, sizeof(extra), " revents=%s", rev);
	call_end(c, &cs, r, err, r >= 0 ? extra : NULL);
	return r < 0 ? -1 : (unsigned short)p.revents;
}

void t_poll_both(struct t_ctx *c)
{
	const int events = POLLIN | POLLOUT | POLLRDHUP | POLLPRI;
	for (int i = 0; i < c->nfds; i++) {
		const char *n = c->fds[i].name;
		if (strcmp(n, "a") == 0)
			t_poll1(c, c->fds[i].fd, events);
	}
	for (int i = 0; i < c->nfds; i++) {
		const char *n = c->fds[i].name;
		if (strcmp(n, "b") == 0)
			t_poll1(c, c->fds[i].fd, events);
	}
}

int t_ioctl_int(struct t_ctx *c, int fd, unsigned long request, const char *name)
{
	struct call_state cs;
	char extra[64];
	int value = 0x5a5a5a5a;
	snprintf(cs.desc, sizeof(cs.desc), "ioctl(%s,%s)", t_fd_name(c, fd), name);
	call_begin(c, &cs);
	int r = usp_ioctl(fd, request, &value);
	int err = errno;
	snprintf(extra, sizeof(extra), " value=%d", value);
	call_end(c, &cs, r, err, r >= 0 ? extra : NULL);
	return r < 0 ? -1 : value;
}

void t_queues(struct t_ctx *c)
{
	for (int i = 0; i < c->nfds; i++) {
		if (strcmp(c->fds[i].name, "a") == 0 || strcmp(c->fds[i].name, "b") == 0) {
			t_ioctl_int(c, c->fds[i].fd, FIONREAD, "FIONREAD");
			t_ioctl_int(c, c->fds[i].fd, SIOCOUTQ, "SIOCOUTQ");
		}
	}
}

int t_getsockopt_int(struct t_ctx *c, int fd, int level, int opt, const char *name)
{
	struct call_state cs;
	char extra[128];
	int value = 0x5a5a5a5a;
	socklen_t len = sizeof(value);
	snprintf(cs.desc, sizeof(cs.desc), "getsockopt(%s,%s)", t_fd_name(c, fd), name);
	call_begin(c, &cs);
	int r = usp_getsockopt(fd, level, opt, &value, &len);
	int err = errno;
	if (opt == SO_ERROR && level == SOL_SOCKET && value >= 0 && value < 4096)
		snprintf(extra, sizeof(extra), " value=%s optlen=%u",
			 value ? t_errno_name(value) : "0", (unsigned)len);
	else
		snprintf(extra, sizeof(extra), " value=%d optlen=%u", value,
			 (unsigned)len);
	call_end(c, &cs, r, err, r >= 0 ? extra : NULL);
	return r < 0 ? -1 : value;
}

int t_setsockopt_int(struct t_ctx *c, int fd, int level, int opt, int value,
		     const char *name)
{
	struct call_state cs;
	snprintf(cs.desc, sizeof(cs.desc), "setsockopt(%s,%s,%d)", t_fd_name(c, fd),
		 name, value);
	call_begin(c, &cs);
	int r = usp_setsockopt(fd, level, opt, &value, sizeof(value));
	int err = errno;
	call_end(c, &cs, r, err, NULL);
	return r;
}

int t_fcntl(struct t_ctx *c, int fd, int cmd, long arg, const char *name)
{
	struct call_state cs;
	char extra[64] = "";
	snprintf(cs.desc, sizeof(cs.desc), "fcntl(%s,%s,0x%lx)", t_fd_name(c, fd),
		 name, arg);
	call_begin(c, &cs);
	int r = usp_fcntl(fd, cmd, arg);
	int err = errno;
	if (r >= 0 && (cmd == F_GETFL || cmd == F_GETFD))
		snprintf(extra, sizeof(extra), " (0x%x)", (unsigned)r);
	call_end(c, &cs, r, err, extra);
	return r;
}

int t_so_error(struct t_ctx *c, int fd)
{
	return t_getsockopt_int(c, fd, SOL_SOCKET, SO_ERROR, "SO_ERROR");
}

/* ------------------------------------------------------------------ */
/* misc                                                                */

int t_thread_sanitizer(void)
{
#ifdef T_THREAD_SANITIZER
	return 1;
#else
	return 0;
#endif
}

void t_stop_timer_past(double deadline)
{
	if (deadline && t_now() > deadline + 2) {
		struct itimerval off = {{0, 0}, {0, 0}};
		setitimer(ITIMER_REAL, &off, NULL);
	}
}

double t_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void t_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int t_count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			count++;
	closedir(d);
	return count - 1; /* the directory's own descriptor */
}

void *t_blocked_recv_thread(void *arg)
{
	struct t_blocked_recv *br = arg;
	size_t cap = br->cap && br->cap < sizeof(br->buf) ? br->cap : sizeof(br->buf);
	errno = 0;
	br->r = usp_recv(br->fd, br->buf, cap, 0);
	br->err = errno;
	return NULL;
}

void t_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	sigaddset(&block, guard_signal());
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int err = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		t_die("pthread_create: %s", strerror(err));
}

void t_thread_join(pthread_t thread)
{
	int err = pthread_join(thread, NULL);
	if (err)
		t_die("pthread_join: %s", strerror(err));
}

int t_run_in_child(int (*fn)(void *), void *arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(20);
		_exit(fn(arg));
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			t_die("waitpid: %s", strerror(errno));
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

struct usp_shared *t_usp_region(int fd, int *side)
{
	struct usp_sock s;
	if (!usp__lookup(fd, &s))
		return NULL;
	struct usp_shared *shm = s.shm;
	if (side)
		*side = s.side;
	usp__put(&s);
	return shm;
}
