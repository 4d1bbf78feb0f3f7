/*
 * socketpair_args: the call contract of usp_socketpair() against
 * socketpair(2): return value and errno for a table of arguments, what the
 * created descriptors look like, bad sv pointers, and running out of
 * descriptors.
 *
 * Deliberate difference: on every failure usp_socketpair() leaves sv
 * untouched, while Linux writes sv before some failures; that is checked by
 * hand.
 */
#include "t_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef AF_TIPC
#define AF_TIPC 30
#endif

#define UNTOUCHED (-7)

struct args_case {
	int domain;
	int type;
	int protocol;
	const char *desc;
};

struct outcome {
	int ret;
	int err;
	int sv[2];
};

static struct outcome call_pair(enum t_pair_kind kind, int domain, int type,
				int protocol)
{
	struct outcome o = { .sv = { UNTOUCHED, UNTOUCHED } };
	errno = 0;
	if (kind == T_KERNEL)
		o.ret = socketpair(domain, type, protocol, o.sv);
	else
		o.ret = usp_socketpair(domain, type, protocol, o.sv);
	o.err = o.ret < 0 ? errno : 0;
	return o;
}

static int get_int_opt(int fd, int opt, int *value)
{
	socklen_t len = sizeof(*value);
	*value = -12345;
	return usp_getsockopt(fd, SOL_SOCKET, opt, value, &len);
}

/* Properties of a freshly created pair that must be the same on both kinds. */
static void describe_pair(const int sv[2], char *out, size_t size)
{
	size_t used = 0;
	for (int i = 0; i < 2 && used < size; i++) {
		int type, domain, protocol;
		int rt = get_int_opt(sv[i], SO_TYPE, &type);
		int rd = get_int_opt(sv[i], SO_DOMAIN, &domain);
		int rp = get_int_opt(sv[i], SO_PROTOCOL, &protocol);
		int fd_flags = fcntl(sv[i], F_GETFD);	/* libc: CLOEXEC is real */
		int fl_flags = usp_fcntl(sv[i], F_GETFL);
		used += (size_t)snprintf(out + used, size - used,
			"sv[%d]: SO_TYPE=%d(%d) SO_DOMAIN=%d(%d) SO_PROTOCOL=%d(%d) "
			"F_GETFD=0x%x F_GETFL=0x%x; ",
			i, rt < 0 ? -errno : type, rt, rd < 0 ? -1 : domain, rd,
			rp < 0 ? -1 : protocol, rp, (unsigned)fd_flags,
			(unsigned)fl_flags);
	}
}

static void close_outcome(const struct outcome *o, enum t_pair_kind kind)
{
	if (o->ret != 0)
		return;
	if (kind == T_KERNEL) {
		close(o->sv[0]);
		close(o->sv[1]);
	} else {
		usp_close(o->sv[0]);
		usp_close(o->sv[1]);
	}
}

static void check_case(const struct args_case *tc)
{
	struct outcome k = call_pair(T_KERNEL, tc->domain, tc->type, tc->protocol);
	struct outcome u = call_pair(T_USPAIR, tc->domain, tc->type, tc->protocol);

	if (k.ret != u.ret || k.err != u.err) {
		t_fail("socketpair(%s): kernel = %d %s, uspair = %d %s", tc->desc,
		       k.ret, k.ret < 0 ? t_errno_name(k.err) : "",
		       u.ret, u.ret < 0 ? t_errno_name(u.err) : "");
	}
	if (u.ret < 0 && (u.sv[0] != UNTOUCHED || u.sv[1] != UNTOUCHED))
		t_fail("socketpair(%s) failed with %s but wrote sv = {%d, %d}",
		       tc->desc, t_errno_name(u.err), u.sv[0], u.sv[1]);
	if (k.ret == 0 && u.ret == 0) {
		char dk[600], du[600];
		describe_pair(k.sv, dk, sizeof(dk));
		describe_pair(u.sv, du, sizeof(du));
		if (strcmp(dk, du) != 0)
			t_fail("socketpair(%s) pairs differ:\n  kernel: %s\n  uspair: %s",
			       tc->desc, dk, du);
		if (u.sv[0] < 0 || u.sv[1] < 0 || u.sv[0] == u.sv[1])
			t_fail("socketpair(%s) returned sv = {%d, %d}", tc->desc,
			       u.sv[0], u.sv[1]);
		/* Informational: the flag on the kernel descriptor itself. */
		int libc_fl = fcntl(u.sv[0], F_GETFL);
		int want_nb = (tc->type & SOCK_NONBLOCK) != 0;
		if (libc_fl >= 0 && ((libc_fl & O_NONBLOCK) != 0) != want_nb)
			t_note("socketpair(%s): libc fcntl(F_GETFL) on the uspair "
			       "descriptor says O_NONBLOCK=%d (usp_fcntl is what counts)",
			       tc->desc, (libc_fl & O_NONBLOCK) != 0);
	}
	close_outcome(&k, T_KERNEL);
	close_outcome(&u, T_USPAIR);
}

static void check_argument_table(void)
{
	static const struct {
		int domain;
		const char *name;
	} unix_domains[] = { { AF_UNIX, "AF_UNIX" }, { AF_LOCAL, "AF_LOCAL" } };
	static const struct {
		int type;
		const char *name;
	} unix_types[] = {
		{ SOCK_STREAM, "SOCK_STREAM" },
		{ SOCK_SEQPACKET, "SOCK_SEQPACKET" },
		{ SOCK_DGRAM, "SOCK_DGRAM" },
		{ SOCK_RAW, "SOCK_RAW" },
	};
	static const int protocols[] = { 0, 1, 2, -1 };
	char desc[128];

	for (size_t d = 0; d < 2; d++)
		for (size_t t = 0; t < 4; t++)
			for (size_t p = 0; p < 4; p++) {
				struct args_case tc = { unix_domains[d].domain,
							unix_types[t].type,
							protocols[p], desc };
				snprintf(desc, sizeof(desc), "%s,%s,%d", unix_domains[d].name,
					 unix_types[t].name, protocols[p]);
				check_case(&tc);
			}

	static const struct args_case others[] = {
		{ AF_UNIX, SOCK_RDM, 0, "AF_UNIX,SOCK_RDM,0" },
		{ AF_UNIX, 0, 0, "AF_UNIX,type 0,0" },
		{ AF_UNIX, 99, 0, "AF_UNIX,type 99,0" },
		{ AF_UNIX, -1, 0, "AF_UNIX,type -1,0" },
		{ AF_UNIX, SOCK_STREAM | 0x100000, 0, "AF_UNIX,SOCK_STREAM|0x100000,0" },
		{ AF_UNIX, SOCK_DGRAM | 0x100000, 0, "AF_UNIX,SOCK_DGRAM|0x100000,0" },
		{ AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, "AF_UNIX,SOCK_STREAM|SOCK_CLOEXEC,0" },
		{ AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, "AF_UNIX,SOCK_STREAM|SOCK_NONBLOCK,0" },
		{ AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		  "AF_UNIX,SOCK_SEQPACKET|SOCK_NONBLOCK|SOCK_CLOEXEC,0" },
		{ AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, "AF_UNIX,SOCK_DGRAM|SOCK_NONBLOCK,0" },
		{ AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, "AF_UNIX,SOCK_DGRAM|SOCK_CLOEXEC,0" },
		{ AF_UNIX, SOCK_RAW | SOCK_NONBLOCK, 0, "AF_UNIX,SOCK_RAW|SOCK_NONBLOCK,0" },
		{ AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 2, "AF_UNIX,SOCK_STREAM|SOCK_NONBLOCK,2" },
		{ AF_UNIX, 99 | SOCK_NONBLOCK, 0, "AF_UNIX,99|SOCK_NONBLOCK,0" },
		{ AF_INET, SOCK_STREAM, 0, "AF_INET,SOCK_STREAM,0" },
		{ AF_INET, SOCK_DGRAM, 0, "AF_INET,SOCK_DGRAM,0" },
		{ AF_INET6, SOCK_STREAM, 0, "AF_INET6,SOCK_STREAM,0" },
		{ AF_INET6, SOCK_DGRAM, 0, "AF_INET6,SOCK_DGRAM,0" },
		{ AF_INET, SOCK_RAW, 0, "AF_INET,SOCK_RAW,0" },
		{ AF_INET, SOCK_STREAM, 17, "AF_INET,SOCK_STREAM,17" },
		{ AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, "AF_NETLINK,SOCK_RAW,0" },
		{ 9999, SOCK_STREAM, 0, "9999,SOCK_STREAM,0" },
		{ -1, SOCK_STREAM, 0, "-1,SOCK_STREAM,0" },
		{ AF_UNSPEC, SOCK_STREAM, 0, "AF_UNSPEC,SOCK_STREAM,0" },
		{ AF_UNSPEC, SOCK_DGRAM, 0, "AF_UNSPEC,SOCK_DGRAM,0" },
		/* AF_TIPC is not here: uspair makes TIPC pairs whatever the
		 * running kernel has, and test/tipc_transcript compares them
		 * with a real TIPC kernel's answers instead */
	};
	/* A first call may load a kernel module; do not let that differ. */
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct outcome warm = call_pair(T_KERNEL, others[i].domain,
						others[i].type, others[i].protocol);
		close_outcome(&warm, T_KERNEL);
	}
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		check_case(&others[i]);
}

/* SOCK_RAW in AF_UNIX is an alias for SOCK_DGRAM. */
static void check_raw_is_dgram(void)
{
	int sv[2], type;
	if (usp_socketpair(AF_UNIX, SOCK_RAW, 0, sv) < 0) {
		t_fail("usp_socketpair(AF_UNIX,SOCK_RAW,0): %s", t_errno_name(errno));
		return;
	}
	if (get_int_opt(sv[0], SO_TYPE, &type) < 0 || type != SOCK_DGRAM)
		t_fail("SO_TYPE of a SOCK_RAW pair: %d, want SOCK_DGRAM", type);
	/* and it carries datagrams */
	char buf[8];
	if (usp_send(sv[0], "ab", 2, MSG_DONTWAIT) != 2 ||
	    usp_send(sv[0], "c", 1, MSG_DONTWAIT) != 1 ||
	    usp_recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) != 2)
		t_fail("SOCK_RAW pair does not keep datagram boundaries");
	usp_close(sv[0]);
	usp_close(sv[1]);
}

static void check_bad_sv_pointers(void)
{
	static const struct args_case cases[] = {
		{ AF_UNIX, SOCK_STREAM, 0, "AF_UNIX,SOCK_STREAM,0" },
		{ AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, "AF_UNIX,SOCK_SEQPACKET|SOCK_CLOEXEC,0" },
		{ AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, "AF_UNIX,SOCK_DGRAM|SOCK_NONBLOCK,0" },
		{ AF_UNIX, 99, 0, "AF_UNIX,type 99,0" },
		{ AF_UNIX, SOCK_STREAM, 2, "AF_UNIX,SOCK_STREAM,2" },
		{ 9999, SOCK_STREAM, 0, "9999,SOCK_STREAM,0" },
		{ AF_INET, SOCK_STREAM, 0, "AF_INET,SOCK_STREAM,0" },
	};
	int *const pointers[] = { NULL, (int *)8 };
	const char *const pointer_names[] = { "NULL", "(int*)8" };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t p = 0; p < 2; p++) {
			const struct args_case *tc = &cases[i];
			int before = t_count_open_fds();
			errno = 0;
			int rk = socketpair(tc->domain, tc->type, tc->protocol, pointers[p]);
			int ek = errno;
			int mid = t_count_open_fds();
			errno = 0;
			int ru = usp_socketpair(tc->domain, tc->type, tc->protocol, pointers[p]);
			int eu = errno;
			int after = t_count_open_fds();
			if (rk != ru || ek != eu)
				t_fail("socketpair(%s, sv=%s): kernel = %d %s, uspair = %d %s",
				       tc->desc, pointer_names[p], rk, t_errno_name(ek), ru,
				       t_errno_name(eu));
			if (mid != before)
				t_note("kernel socketpair(%s, sv=%s) changed the descriptor count by %d",
				       tc->desc, pointer_names[p], mid - before);
			if (after != mid)
				t_fail("usp_socketpair(%s, sv=%s) leaked %d descriptors",
				       tc->desc, pointer_names[p], after - mid);
		}
	}
}

/* CLOEXEC and NONBLOCK as the kernel shows them for each flag combination. */
static void check_creation_flags(void)
{
	static const int types[] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM };
	static const int flag_sets[] = { 0, SOCK_CLOEXEC, SOCK_NONBLOCK,
					 SOCK_CLOEXEC | SOCK_NONBLOCK };
	for (size_t t = 0; t < 3; t++) {
		for (size_t f = 0; f < 4; f++) {
			struct outcome k = call_pair(T_KERNEL, AF_UNIX, types[t] | flag_sets[f], 0);
			struct outcome u = call_pair(T_USPAIR, AF_UNIX, types[t] | flag_sets[f], 0);
			if (k.ret != 0 || u.ret != 0) {
				t_fail("socketpair(%s, flags 0x%x) failed: kernel %s, uspair %s",
				       t_type_name(types[t]), (unsigned)flag_sets[f],
				       t_errno_name(k.err), t_errno_name(u.err));
				close_outcome(&k, T_KERNEL);
				close_outcome(&u, T_USPAIR);
				continue;
			}
			for (int i = 0; i < 2; i++) {
				int kfd = fcntl(k.sv[i], F_GETFD);
				int ufd = fcntl(u.sv[i], F_GETFD);
				int kfl = usp_fcntl(k.sv[i], F_GETFL);
				int ufl = usp_fcntl(u.sv[i], F_GETFL);
				if (kfd != ufd)
					t_fail("%s flags 0x%x sv[%d]: fcntl(F_GETFD) kernel 0x%x, uspair 0x%x",
					       t_type_name(types[t]), (unsigned)flag_sets[f], i,
					       (unsigned)kfd, (unsigned)ufd);
				if (kfl != ufl)
					t_fail("%s flags 0x%x sv[%d]: usp_fcntl(F_GETFL) kernel 0x%x, uspair 0x%x",
					       t_type_name(types[t]), (unsigned)flag_sets[f], i,
					       (unsigned)kfl, (unsigned)ufl);
				if (!usp_is_uspair(u.sv[i]))
					t_fail("%s flags 0x%x sv[%d]: usp_is_uspair() is 0 for a new pair",
					       t_type_name(types[t]), (unsigned)flag_sets[f], i);
				if (usp_is_uspair(k.sv[i]))
					t_fail("usp_is_uspair() claims a kernel socketpair descriptor");
			}
			close_outcome(&k, T_KERNEL);
			close_outcome(&u, T_USPAIR);
		}
	}
}

/* ---- running out of descriptors ---- */

#define MAX_PAIRS 600

struct exhaustion {
	int pairs;		/* pairs created before the failure */
	int ret, err;		/* the failing call */
	int sv_untouched;	/* sv of the failing call left alone */
};

static struct exhaustion create_until_failure(enum t_pair_kind kind, int type)
{
	static int fds[MAX_PAIRS][2];
	struct exhaustion ex = { 0, 0, 0, 1 };
	for (;;) {
		if (ex.pairs == MAX_PAIRS)
			t_die("created %d pairs without running out", MAX_PAIRS);
		struct outcome o = call_pair(kind, AF_UNIX, type, 0);
		if (o.ret != 0) {
			ex.ret = o.ret;
			ex.err = o.err;
			ex.sv_untouched = o.sv[0] == UNTOUCHED && o.sv[1] == UNTOUCHED;
			break;
		}
		fds[ex.pairs][0] = o.sv[0];
		fds[ex.pairs][1] = o.sv[1];
		ex.pairs++;
	}
	for (int i = 0; i < ex.pairs; i++) {
		if (kind == T_KERNEL) {
			close(fds[i][0]);
			close(fds[i][1]);
		} else {
			usp_close(fds[i][0]);
			usp_close(fds[i][1]);
		}
	}
	return ex;
}

static void compare_exhaustion(const char *situation, int type)
{
	int before = t_count_open_fds();
	struct exhaustion k = create_until_failure(T_KERNEL, type);
	struct exhaustion u = create_until_failure(T_USPAIR, type);
	int after = t_count_open_fds();
	if (k.pairs != u.pairs || k.ret != u.ret || k.err != u.err)
		t_fail("%s, %s: kernel made %d pairs then %s, uspair made %d pairs then %s",
		       situation, t_type_name(type), k.pairs, t_errno_name(k.err),
		       u.pairs, t_errno_name(u.err));
	if (!u.sv_untouched)
		t_fail("%s, %s: failing usp_socketpair wrote sv", situation,
		       t_type_name(type));
	if (after != before)
		t_fail("%s, %s: descriptor count changed by %d after closing every pair",
		       situation, t_type_name(type), after - before);
}

static void check_descriptor_exhaustion(void)
{
	static const int types[] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM };
	static const int limits[] = { 64, 63, 65 };
	struct rlimit saved, lim;
	char situation[96];

	if (getrlimit(RLIMIT_NOFILE, &saved) < 0)
		t_die("getrlimit: %s", strerror(errno));
	for (size_t l = 0; l < 3; l++) {
		lim = saved;
		lim.rlim_cur = (rlim_t)limits[l];
		if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
			t_die("setrlimit: %s", strerror(errno));
		snprintf(situation, sizeof(situation), "RLIMIT_NOFILE=%d", limits[l]);
		for (size_t t = 0; t < 3; t++)
			compare_exhaustion(situation, types[t]);
	}

	/* Exactly `free_slots` descriptors left under the limit. */
	lim = saved;
	lim.rlim_cur = 64;
	setrlimit(RLIMIT_NOFILE, &lim);
	int fillers[64];
	int nfill = 0;
	for (;;) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
		if (nfill == 64)
			t_die("more than 64 descriptors under RLIMIT_NOFILE 64");
		fillers[nfill++] = fd;
	}
	if (errno != EMFILE)
		t_die("filling the descriptor table: %s", strerror(errno));
	for (int free_slots = 0; free_slots <= 5; free_slots++) {
		/* fillers[nfill - free_slots ..] are closed */
		if (free_slots > 0)
			close(fillers[nfill - free_slots]);
		snprintf(situation, sizeof(situation), "%d free descriptor(s)", free_slots);
		for (size_t t = 0; t < 3; t++)
			compare_exhaustion(situation, types[t]);
	}
	/* a full table: duplicating an endpoint fails the same way */
	for (size_t t = 0; t < 3; t++) {
		struct outcome k = call_pair(T_KERNEL, AF_UNIX, types[t], 0);
		struct outcome u = call_pair(T_USPAIR, AF_UNIX, types[t], 0);
		if (k.ret != 0 || u.ret != 0) {
			t_fail("no room for the dup test pairs");
			close_outcome(&k, T_KERNEL);
			close_outcome(&u, T_USPAIR);
			continue;
		}
		int blockers[8], nblock = 0;
		int fd;
		while (nblock < 8 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
			blockers[nblock++] = fd;
		struct {
			const char *what;
			int kr, ke, ur, ue;
		} calls[3];
		errno = 0;
		calls[0].kr = usp_dup(k.sv[0]); calls[0].ke = errno;
		errno = 0;
		calls[0].ur = usp_dup(u.sv[0]); calls[0].ue = errno;
		calls[0].what = "dup";
		errno = 0;
		calls[1].kr = usp_fcntl(k.sv[0], F_DUPFD, 0); calls[1].ke = errno;
		errno = 0;
		calls[1].ur = usp_fcntl(u.sv[0], F_DUPFD, 0); calls[1].ue = errno;
		calls[1].what = "fcntl(F_DUPFD,0)";
		errno = 0;
		calls[2].kr = usp_dup2(k.sv[0], 100000); calls[2].ke = errno;
		errno = 0;
		calls[2].ur = usp_dup2(u.sv[0], 100000); calls[2].ue = errno;
		calls[2].what = "dup2(fd,100000)";
		for (int i = 0; i < 3; i++)
			if ((calls[i].kr < 0) != (calls[i].ur < 0) || calls[i].ke != calls[i].ue)
				t_fail("%s with a full descriptor table, %s: kernel %s, uspair %s",
				       calls[i].what, t_type_name(types[t]),
				       calls[i].kr < 0 ? t_errno_name(calls[i].ke) : "ok",
				       calls[i].ur < 0 ? t_errno_name(calls[i].ue) : "ok");
		for (int i = 0; i < nblock; i++)
			close(blockers[i]);
		/* the endpoints still work */
		char buf[4];
		if (usp_send(u.sv[0], "ok", 2, MSG_DONTWAIT) != 2 ||
		    usp_recv(u.sv[1], buf, sizeof(buf), MSG_DONTWAIT) != 2)
			t_fail("%s uspair pair broken after failed dups", t_type_name(types[t]));
		close_outcome(&k, T_KERNEL);
		close_outcome(&u, T_USPAIR);
	}
	for (int i = 0; i < nfill - 5; i++)
		close(fillers[i]);
	setrlimit(RLIMIT_NOFILE, &saved);
}

/* Many pairs at once, each carrying its own message. */
static void check_many_pairs(void)
{
	enum { PAIRS = 1000 };
	static int sv[PAIRS][2];
	static const int types[] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM };
	struct rlimit lim;
	getrlimit(RLIMIT_NOFILE, &lim);
	int pairs = PAIRS;
	if (lim.rlim_cur < 2 * PAIRS + 64)
		pairs = ((int)lim.rlim_cur - 64) / 2;
	int made = 0, bad = 0;
	for (int i = 0; i < pairs; i++) {
		if (usp_socketpair(AF_UNIX, types[i % 3] | SOCK_NONBLOCK, 0, sv[i]) != 0) {
			t_fail("usp_socketpair #%d of %d: %s", i + 1, pairs, t_errno_name(errno));
			break;
		}
		made++;
	}
	for (int i = 0; i < made; i++) {
		char msg[16];
		int len = snprintf(msg, sizeof(msg), "pair %d", i);
		bad += usp_send(sv[i][i % 2], msg, (size_t)len, 0) != len;
	}
	for (int i = 0; i < made; i++) {
		char msg[16], buf[16];
		int len = snprintf(msg, sizeof(msg), "pair %d", i);
		bad += usp_recv(sv[i][1 - i % 2], buf, sizeof(buf), 0) != len ||
		       memcmp(buf, msg, (size_t)len) != 0;
	}
	for (int i = 0; i < made; i++) {
		usp_close(sv[i][0]);
		usp_close(sv[i][1]);
	}
	if (bad)
		t_fail("%d of %d simultaneous uspair pairs lost or mixed up their message", bad, made);
}

int main(void)
{
	t_init("socketpair_args");
	t_watchdog(60, "socketpair_args");
	check_argument_table();
	check_raw_is_dgram();
	check_bad_sv_pointers();
	check_creation_flags();
	check_descriptor_exhaustion();
	check_many_pairs();
	alarm(0);
	return t_finish();
}
