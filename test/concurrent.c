/*
 * concurrent: many holders of one endpoint at once, and the end state
 * after they all go, compared with a kernel socketpair.
 *
 * test/stress checks blocking traffic in both directions through the two
 * original descriptors.  This test adds what stress does not:
 *  - every writer and reader thread works through its own usp_dup of the
 *    endpoint, and the writer process through a usp_dup made after fork,
 *    so that one endpoint has many descriptors in several processes;
 *  - non-blocking mode: EAGAIN, then usp_poll for POLLIN/POLLOUT, then
 *    retry, with all those threads polling one endpoint at once;
 *  - STREAM record integrity: a single reader reassembles the byte stream
 *    into 64-byte frames; each send carries one to four whole frames,
 *    which Linux queues as one skb (so no other writer's bytes can land
 *    inside it), and every frame must arrive intact (writer, sequence,
 *    checksum) and in per-writer order; a partial non-blocking send of such
 *    a small message is an error;
 *  - SEQPACKET/DGRAM: several readers (threads and a process); every
 *    record intact (checksum), exactly once, and in per-writer order as
 *    each reader sees it;
 *  - the end state: once every writer descriptor is closed, readers see
 *    EOF (STREAM, SEQPACKET); then the reader side sends to the closed
 *    peer from several threads at once: EPIPE for each (STREAM,
 *    SEQPACKET), one SIGPIPE for the one send without MSG_NOSIGNAL, and
 *    for DGRAM exactly one ECONNREFUSED and, for the others, one of the
 *    answers of the race in unix_dgram_sendmsg() (ENOTCONN, ECONNRESET,
 *    or sent), never anything else;
 *  - no deadlock: t_compare's watchdog ends the program (failing it) if a
 *    run does not finish in 30 s; child processes have an alarm too.
 * The same scenario runs on a kernel pair and a uspair pair and the traces
 * (per-writer counts, totals, verdicts, final errnos, SIGPIPE count) must
 * be identical.  Under ThreadSanitizer only threads are used (it cannot
 * see the ordering that another process's release provides).
 */
#include "t_helpers.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WRITERS 3
#define MAX_READERS 3
#define RECORDS 20000 /* per writer */
#define FRAME 64
#define MIN_REC 24
#define MAX_REC 200
#define MAGIC 0xC0C0A5A5u
#define END_MAGIC 0x454E4421u

struct rec {
	uint32_t magic;
	uint16_t writer;
	uint16_t len;
	uint32_t seq;
	uint32_t sum; /* of the payload after this header */
};

struct results {
	_Atomic unsigned char seen[MAX_WRITERS][RECORDS];
	atomic_ulong received[MAX_WRITERS];
	atomic_ulong bad, order, dup, send_err, recv_err, partial;
	atomic_ullong stream_bytes;
	atomic_int eofs;
	atomic_int first_err;
};

static struct results *res;

static void note(atomic_ulong *counter, int err)
{
	atomic_fetch_add(counter, 1);
	int zero = 0;
	atomic_compare_exchange_strong(&res->first_err, &zero, err ? err : -1);
}

static size_t rec_len(int stream, int writer, uint32_t seq)
{
	uint32_t x = (uint32_t)writer * 2654435761u ^ seq * 0x9e3779b9u;
	x ^= x >> 15;
	if (stream)
		return FRAME * (1 + x % 4);
	return MIN_REC + x % (MAX_REC - MIN_REC + 1);
}

static uint32_t payload_sum(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* One record (SEQPACKET/DGRAM) or one frame (STREAM). */
static void make_rec(unsigned char *buf, int writer, uint32_t seq, size_t len)
{
	struct rec h = {MAGIC, (uint16_t)writer, (uint16_t)len, seq, 0};
	t_fill_pattern(buf + sizeof(h), len - sizeof(h), (unsigned)writer * 131u + seq, 0);
	h.sum = payload_sum(buf + sizeof(h), len - sizeof(h));
	memcpy(buf, &h, sizeof(h));
}

/* Checks one record/frame and counts it; last[] is this reader's view. */
static void check_rec(const unsigned char *buf, size_t len, int64_t *last)
{
	struct rec h;
	if (len < sizeof(h)) {
		note(&res->bad, 0);
		return;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != MAGIC || h.writer >= MAX_WRITERS || h.seq >= RECORDS || h.len != len ||
	    h.sum != payload_sum(buf + sizeof(h), len - sizeof(h))) {
		note(&res->bad, 0);
		return;
	}
	if (atomic_fetch_add(&res->seen[h.writer][h.seq], 1) != 0)
		note(&res->dup, 0);
	atomic_fetch_add(&res->received[h.writer], 1);
	if ((int64_t)h.seq <= last[h.writer])
		note(&res->order, 0);
	last[h.writer] = h.seq;
}

struct role {
	int fd;
	int id;
	int type;
	int nonblock;
	bool close_fd; /* usp_close(fd) when done */
};

/* Waits for `events` on fd after EAGAIN; 0 to retry, else an errno. */
static int wait_ready(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int r = usp_poll(&p, 1, 200);
	return r < 0 && errno != EINTR ? errno : 0;
}

static void run_writer(const struct role *r)
{
	int stream = r->type == SOCK_STREAM;
	unsigned char buf[4 * FRAME + MAX_REC];
	for (uint32_t seq = 0; seq < RECORDS; seq++) {
		size_t len = rec_len(stream, r->id, seq);
		if (stream) {
			/* len / FRAME frames, numbered by frame; seq counts frames */
			size_t frames = len / FRAME;
			if (seq + frames > RECORDS)
				frames = RECORDS - seq;
			for (size_t f = 0; f < frames; f++)
				make_rec(buf + f * FRAME, r->id, seq + (uint32_t)f, FRAME);
			len = frames * FRAME;
			seq += (uint32_t)frames - 1;
		} else {
			make_rec(buf, r->id, seq, len);
		}
		for (;;) {
			ssize_t n = usp_send(r->fd, buf, len, MSG_NOSIGNAL);
			if (n == (ssize_t)len)
				break;
			if (n >= 0) {
				note(&res->partial, 0); /* a small send is one skb */
				return;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && r->nonblock) {
				int e = wait_ready(r->fd, POLLOUT);
				if (e) {
					note(&res->send_err, e);
					return;
				}
				continue;
			}
			note(&res->send_err, errno);
			return;
		}
	}
}

static void run_reader(const struct role *r)
{
	int stream = r->type == SOCK_STREAM;
	static _Thread_local unsigned char buf[8192];
	size_t have = 0;
	int64_t last[MAX_WRITERS];
	for (int i = 0; i < MAX_WRITERS; i++)
		last[i] = -1;
	for (;;) {
		ssize_t n = usp_recv(r->fd, buf + have, stream ? sizeof(buf) - have : MAX_REC + 1, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && r->nonblock) {
				int e = wait_ready(r->fd, POLLIN);
				if (e) {
					note(&res->recv_err, e);
					return;
				}
				continue;
			}
			note(&res->recv_err, errno);
			return;
		}
		if (n == 0 && r->type != SOCK_DGRAM) {
			atomic_fetch_add(&res->eofs, 1);
			if (have)
				note(&res->bad, 0); /* a frame cut short */
			return;
		}
		if (stream) {
			atomic_fetch_add(&res->stream_bytes, (unsigned long long)n);
			have += (size_t)n;
			size_t off = 0;
			for (; have - off >= FRAME; off += FRAME)
				check_rec(buf + off, FRAME, last);
			memmove(buf, buf + off, have - off);
			have -= off;
			continue;
		}
		uint32_t m;
		if (n == 4 && (memcpy(&m, buf, 4), m == END_MAGIC))
			return;
		check_rec(buf, (size_t)n, last);
	}
}

static void *writer_thread(void *arg)
{
	const struct role *r = arg;
	run_writer(r);
	if (r->close_fd)
		usp_close(r->fd);
	return NULL;
}

static void *reader_thread(void *arg)
{
	run_reader(arg);
	return NULL;
}

static int wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			t_die("waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Final sends to the closed peer from several threads at once. */
struct final_send {
	int fd;
	int err;
	pthread_barrier_t *start;
};

static void *final_sender(void *arg)
{
	struct final_send *f = arg;
	pthread_barrier_wait(f->start);
	errno = 0;
	ssize_t n = usp_send(f->fd, "late", 4, MSG_NOSIGNAL | MSG_DONTWAIT);
	f->err = n < 0 ? errno : 0;
	return NULL;
}

#if defined(__SANITIZE_ADDRESS__)
/* LeakSanitizer's check at exit stops the process's threads by ptrace;
 * in a child forked from this multi-threaded process it warns "Running
 * thread ... was not suspended" and once hung until the child's alarm (a
 * CI run of 2026-12-06, in the kernel's run, after every record had
 * arrived).  The writer child must leave by exit(), which runs uspair's
 * exit hook, so the check is off for this program; the other tests look
 * for leaks. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

static void scenario(struct t_ctx *c)
{
	const int use_processes = *(const int *)c->user;
	const int stream = c->type == SOCK_STREAM;
	memset(res, 0, sizeof(*res));
	int w_fd = c->sv[0], r_fd = c->sv[1];
	t_forget_fd(c, w_fd); /* closed here, not by the framework */

	int n_writer_threads = use_processes ? MAX_WRITERS - 1 : MAX_WRITERS;
	int n_readers = stream ? 1 : MAX_READERS;
	int n_reader_threads = stream ? 1 : use_processes ? MAX_READERS - 1 : MAX_READERS;
	struct role writers[MAX_WRITERS], readers[MAX_READERS];
	for (int i = 0; i < MAX_WRITERS; i++)
		writers[i] = (struct role){-1, i, c->type, c->nonblock, true};
	for (int i = 0; i < MAX_READERS; i++)
		readers[i] = (struct role){i == 0 ? r_fd : usp_dup(r_fd), i, c->type, c->nonblock,
					   i != 0};
	double start = t_now();

	/* processes first: no thread of ours runs while we fork */
	pid_t wpid = -1, rpid = -1;
	if (use_processes) {
		fflush(stdout);
		wpid = fork();
		if (wpid == 0) {
			alarm(25);
			/* keep only the writer end: the reader end's last
			 * holders must be the readers */
			for (int i = 0; i < MAX_READERS; i++)
				usp_close(readers[i].fd);
			struct role me = writers[MAX_WRITERS - 1];
			me.fd = usp_dup(w_fd); /* one more holder, made in the child */
			run_writer(&me);
			usp_close(me.fd);
			exit(0); /* the library's exit hook drops this process's holders */
		}
		if (!stream) {
			rpid = fork();
			if (rpid == 0) {
				alarm(25);
				/* the writer end's last holders must be the writers */
				usp_close(w_fd);
				for (int i = 0; i < MAX_READERS - 1; i++)
					usp_close(readers[i].fd);
				run_reader(&readers[MAX_READERS - 1]);
				_exit(0);
			}
		}
	}
	pthread_t wt[MAX_WRITERS], rt[MAX_READERS];
	for (int i = 0; i < n_reader_threads; i++)
		t_thread_start(&rt[i], reader_thread, &readers[i]);
	for (int i = 0; i < n_writer_threads; i++) {
		writers[i].fd = usp_dup(w_fd);
		t_thread_start(&wt[i], writer_thread, &writers[i]);
	}
	int child_failures = 0;
	for (int i = 0; i < n_writer_threads; i++)
		t_thread_join(wt[i]);
	if (wpid > 0)
		child_failures += wait_child(wpid) != 0;

	/* every writer descriptor but w_fd is closed now */
	if (c->type == SOCK_DGRAM) {
		uint32_t end = END_MAGIC;
		for (int i = 0; i < n_readers; i++)
			while (usp_send(w_fd, &end, 4, 0) != 4) {
				if (errno != EAGAIN && errno != EINTR) {
					note(&res->send_err, errno);
					break;
				}
				wait_ready(w_fd, POLLOUT);
			}
	} else {
		usp_close(w_fd); /* the last holder: readers see EOF */
	}
	for (int i = 0; i < n_reader_threads; i++)
		t_thread_join(rt[i]);
	if (rpid > 0)
		child_failures += wait_child(rpid) != 0;
	if (c->type == SOCK_DGRAM)
		usp_close(w_fd); /* now the peer of every reader is gone */
	double elapsed = t_now() - start;

	/* End state: send to the closed peer from every reader descriptor at
	 * once, then once more without MSG_NOSIGNAL. */
	pthread_barrier_t barrier;
	pthread_barrier_init(&barrier, NULL, (unsigned)MAX_READERS);
	struct final_send fs[MAX_READERS];
	pthread_t ft[MAX_READERS];
	for (int i = 0; i < MAX_READERS; i++) {
		fs[i] = (struct final_send){readers[i].fd, 0, &barrier};
		t_thread_start(&ft[i], final_sender, &fs[i]);
	}
	int epipe = 0, refused = 0, notconn = 0, reset = 0, other = 0, sent = 0;
	for (int i = 0; i < MAX_READERS; i++) {
		t_thread_join(ft[i]);
		int e = fs[i].err;
		epipe += e == EPIPE;
		refused += e == ECONNREFUSED;
		notconn += e == ENOTCONN;
		reset += e == ECONNRESET;
		sent += e == 0;
		if (e && e != EPIPE && e != ECONNREFUSED && e != ENOTCONN && e != ECONNRESET) {
			other++;
			t_note("concurrent %s %s: a send to the closed peer said %s",
			       t_kind_name(c->kind), t_type_name(c->type), strerror(e));
		}
	}
	pthread_barrier_destroy(&barrier);
	unsigned long pipes = t_sigpipe_count();
	errno = 0;
	ssize_t last = usp_send(r_fd, "last", 4, MSG_DONTWAIT);
	int last_err = errno;
	pipes = t_sigpipe_count() - pipes;
	for (int i = 1; i < MAX_READERS; i++)
		usp_close(readers[i].fd);

	/* the trace: everything that must be the same on both pairs */
	unsigned long missing = 0;
	unsigned long long want_bytes = 0;
	for (int w = 0; w < MAX_WRITERS; w++)
		for (uint32_t q = 0; q < RECORDS; q++) {
			missing += atomic_load(&res->seen[w][q]) == 0;
			if (stream)
				want_bytes += FRAME;
		}
	for (int w = 0; w < MAX_WRITERS; w++)
		t_log(c, "writer %d: %lu of %d records received", w, atomic_load(&res->received[w]),
		      RECORDS);
	t_log(c, "missing %lu, duplicated %lu, bad %lu, out of order %lu, partial sends %lu",
	      missing, atomic_load(&res->dup), atomic_load(&res->bad), atomic_load(&res->order),
	      atomic_load(&res->partial));
	t_log(c, "send errors %lu, receive errors %lu, child processes failed %d",
	      atomic_load(&res->send_err), atomic_load(&res->recv_err), child_failures);
	if (stream)
		t_log(c, "stream bytes %s", atomic_load(&res->stream_bytes) == want_bytes
						    ? "all" : "NOT conserved");
	if (c->type != SOCK_DGRAM)
		t_log(c, "readers that saw EOF: %d of %d", atomic_load(&res->eofs), n_readers);
	if (c->type == SOCK_DGRAM)
		/* Linux: exactly one sender learns ECONNREFUSED (and
		 * disconnects); the others race it in unix_dgram_sendmsg():
		 * ENOTCONN (peer already cleared), ECONNRESET (saw the dead
		 * peer after another sender had cleared it: `restart` with no
		 * peer), or sent into the purged queue.  uspair never says
		 * ECONNRESET there; which race answers come up is timing. */
		t_log(c, "concurrent sends to the closed peer: ECONNREFUSED %d, the %d others "
			 "ENOTCONN, ECONNRESET or sent, anything else %d",
		      refused, notconn + reset + sent + epipe, other);
	else
		t_log(c, "concurrent sends to the closed peer: EPIPE %d, ECONNREFUSED %d, "
			 "ENOTCONN %d, ECONNRESET %d, sent %d, other %d",
		      epipe, refused, notconn, reset, sent, other);
	char lastres[64];
	t_fmt_result(lastres, sizeof(lastres), (long)last, last_err);
	t_log(c, "then send without MSG_NOSIGNAL %s, SIGPIPE %lu", lastres, pipes);
	int ok = missing == 0 && !atomic_load(&res->dup) && !atomic_load(&res->bad) &&
		 !atomic_load(&res->order) && !atomic_load(&res->partial) &&
		 !atomic_load(&res->send_err) && !atomic_load(&res->recv_err) && !child_failures;
	if (!ok) {
		int err = atomic_load(&res->first_err);
		t_fail("concurrent %s %s %s: see the trace (first error: %s)", t_type_name(c->type),
		       c->nonblock ? "nonblocking" : "blocking", t_kind_name(c->kind),
		       err > 0 ? t_errno_name(err) : err ? "data" : "none");
	}
	printf("concurrent %s %s %s%s: %.2f s\n", t_type_name(c->type),
	       c->nonblock ? "nonblocking" : "blocking", t_kind_name(c->kind),
	       use_processes ? "" : " (threads only)", elapsed);
}

int main(void)
{
	t_init("concurrent");
	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		t_die("mmap: %s", strerror(errno));
	static const int threads_only = 0, with_processes = 1;
	/* T_ROUNDS: how many times the whole matrix runs (races are rare) */
	int rounds = getenv("T_ROUNDS") ? atoi(getenv("T_ROUNDS")) : 3;
	if (t_thread_sanitizer())
		t_note("threads and processes: not run under ThreadSanitizer (cross-process ordering is invisible to it)");
	for (int round = 0; round < rounds; round++) {
		if (t_thread_sanitizer())
			t_compare_matrix("threads only", scenario, T_ALL_TYPES, T_ALL_MODES,
					 T_DIR_0_TO_1, (void *)&threads_only);
		else
			t_compare_matrix("threads and processes", scenario, T_ALL_TYPES,
					 T_ALL_MODES, T_DIR_0_TO_1, (void *)&with_processes);
	}
	munmap(res, sizeof(*res));
	return t_finish();
}
