/*
 * scale: as many live pairs in one process as RLIMIT_NOFILE permits, up to
 * 10,000, for each socket type, kernel socketpair() against
 * usp_socketpair(): every pair carries one message each way (the pair's
 * index), the next socketpair() at the descriptor limit fails with EMFILE
 * (sv untouched), and closing them all gives every descriptor back.  The
 * two implementations must tell the same story; the uspair run also
 * reports its cost per pair (not checked: timings are no test).
 */
#include "t_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 10000

struct story {
	int created;
	int exchanged;	 /* pairs whose two messages arrived intact */
	int limit_ret;	 /* the socketpair() at the descriptor limit */
	int limit_errno;
	bool limit_sv_untouched;
	int fds_leaked;	 /* open descriptors after closing, minus before */
};

/* How many descriptors are open, and the highest one. */
static int open_fds(int *highest)
{
	int n = 0;
	*highest = -1;
	for (int fd = 0; fd < 4 * MAX_PAIRS + 64; fd++)
		if (usp_fcntl(fd, F_GETFD) >= 0) {
			n++;
			*highest = fd;
		}
	return n;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static struct story run(enum t_pair_kind kind, int type, int npairs, int (*sv)[2])
{
	struct story st = {0};
	int highest_before;
	int before = open_fds(&highest_before);
	double t0 = now_s();
	while (st.created < npairs && t_make_pair(kind, type, sv[st.created]) == 0)
		st.created++;
	double t1 = now_s();
	for (int i = 0; i < st.created; i++) {
		int got = -1, back = -1;
		if (usp_send(sv[i][0], &i, sizeof(i), 0) == (ssize_t)sizeof(i) &&
		    usp_recv(sv[i][1], &got, sizeof(got), 0) == (ssize_t)sizeof(got) &&
		    usp_send(sv[i][1], &got, sizeof(got), 0) == (ssize_t)sizeof(got) &&
		    usp_recv(sv[i][0], &back, sizeof(back), 0) == (ssize_t)sizeof(back) &&
		    got == i && back == i)
			st.exchanged++;
	}
	double t2 = now_s();
	/* one descriptor short of a pair: the next one fails (only where
	 * the open descriptors leave no hole below the limit) */
	int highest;
	int open_now = open_fds(&highest);
	struct rlimit saved, tight;
	getrlimit(RLIMIT_NOFILE, &saved);
	tight = saved;
	tight.rlim_cur = (rlim_t)highest + 2;
	st.limit_ret = 1; /* not tried */
	if (open_now == highest + 1 && tight.rlim_cur <= saved.rlim_cur &&
	    setrlimit(RLIMIT_NOFILE, &tight) == 0) {
		int probe[2] = {-7, -7};
		errno = 0;
		st.limit_ret = kind == T_KERNEL ? socketpair(AF_UNIX, type, 0, probe)
						: usp_socketpair(AF_UNIX, type, 0, probe);
		st.limit_errno = st.limit_ret < 0 ? errno : 0;
		/* Linux writes sv before this failure; uspair promises not to */
		st.limit_sv_untouched = kind == T_KERNEL || (probe[0] == -7 && probe[1] == -7);
		if (st.limit_ret == 0) {
			usp_close(probe[0]);
			usp_close(probe[1]);
		}
		setrlimit(RLIMIT_NOFILE, &saved);
	}
	double t3 = now_s();
	for (int i = 0; i < st.created; i++) {
		usp_close(sv[i][0]);
		usp_close(sv[i][1]);
	}
	double t4 = now_s();
	st.fds_leaked = open_fds(&highest_before) - before;
	if (kind == T_USPAIR && st.created)
		t_note("%s: %d uspair pairs: create %.1f us, one message each way %.1f us, close %.1f us per pair",
		       t_type_name(type), st.created, (t1 - t0) / st.created * 1e6,
		       (t2 - t1) / st.created * 1e6, (t4 - t3) / st.created * 1e6);
	return st;
}

static void check(int type, int npairs, int (*sv)[2])
{
	struct story k = run(T_KERNEL, type, npairs, sv);
	struct story u = run(T_USPAIR, type, npairs, sv);
	if (k.created != u.created || k.exchanged != u.exchanged || k.limit_ret != u.limit_ret ||
	    k.limit_errno != u.limit_errno || !u.limit_sv_untouched ||
	    k.fds_leaked != u.fds_leaked)
		t_fail("%s: kernel created %d, exchanged %d, at the limit %d/%s, leaked %d; "
		       "uspair created %d, exchanged %d, at the limit %d/%s (sv %s), leaked %d",
		       t_type_name(type), k.created, k.exchanged, k.limit_ret,
		       strerror(k.limit_errno), k.fds_leaked, u.created, u.exchanged,
		       u.limit_ret, strerror(u.limit_errno),
		       u.limit_sv_untouched ? "untouched" : "WRITTEN", u.fds_leaked);
	else if (k.created != npairs || k.exchanged != npairs ||
		 (k.limit_ret != 1 && k.limit_errno != EMFILE))
		t_fail("%s: both created %d of %d pairs, exchanged %d, limit errno %s",
		       t_type_name(type), k.created, npairs, k.exchanged, strerror(k.limit_errno));
}

int main(void)
{
	t_init("scale");
	t_watchdog(240, "scale");
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl); /* as high as we may */
	getrlimit(RLIMIT_NOFILE, &rl);
	int highest;
	long room = ((long)rl.rlim_cur - open_fds(&highest) - 8) / 2;
	int npairs = room > MAX_PAIRS ? MAX_PAIRS : (int)room;
	if (npairs < 100)
		t_skip("RLIMIT_NOFILE %ld leaves room for only %d pairs", (long)rl.rlim_cur, npairs);
	if (npairs < MAX_PAIRS)
		t_note("RLIMIT_NOFILE %ld: %d pairs instead of %d", (long)rl.rlim_cur, npairs,
		       MAX_PAIRS);
	int (*sv)[2] = calloc((size_t)npairs, sizeof(*sv));
	if (!sv)
		t_die("out of memory");
	check(SOCK_STREAM, npairs, sv);
	check(SOCK_SEQPACKET, npairs, sv);
	check(SOCK_DGRAM, npairs, sv);
	free(sv);
	return t_finish();
}
