/*
 * random_diff: random operation sequences applied to a kernel socketpair and
 * to a uspair pair, every result compared (test/t_opseq.c does the work).
 *
 * First a table of regression sequences (divergences found earlier) runs,
 * then RANDOM_DIFF_SEQUENCES random sequences per socket type from the
 * seed RANDOM_DIFF_SEED.  A divergence is shrunk to a minimal sequence and
 * printed as C for the regression table, with both traces.
 *
 * Environment:
 *   RANDOM_DIFF_SEED=N        base seed (default fixed, printed)
 *   RANDOM_DIFF_SEQUENCES=N   sequences per type (default 20000 in the plain
 *                             build, fewer under sanitizers); 0: unbounded
 *   RANDOM_DIFF_FOREVER=1     unbounded, progress on stderr
 *   RANDOM_DIFF_BUDGET=S      stop a bounded run after S seconds in total
 *                             (default 50 plain, 75 sanitizers), saying so
 *   RANDOM_DIFF_TYPES=list    e.g. "stream,dgram" (default all three)
 *   RANDOM_DIFF_MAX_REPORTS=N stop after N divergences (default 3)
 *   RANDOM_DIFF_FIRST=N       start at sequence N of each type (to rerun one)
 *   RANDOM_DIFF_NO_SHRINK=1   print a divergence as found, unshrunk
 *   RANDOM_DIFF_STATS=1       print per-operation counts at the end
 */
#include "t_helpers.h"
#include "t_opseq.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DEFAULT_SEED 0x75737061697231ull /* "uspair1" */

#if defined(__SANITIZE_ADDRESS__)
#define SAN_NAME "AddressSanitizer"
#define SAN_SEQUENCES 8000
#elif defined(__SANITIZE_THREAD__)
#define SAN_NAME "ThreadSanitizer"
#define SAN_SEQUENCES 2500
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAN_NAME "AddressSanitizer"
#define SAN_SEQUENCES 8000
#elif __has_feature(thread_sanitizer)
#define SAN_NAME "ThreadSanitizer"
#define SAN_SEQUENCES 2500
#endif
#endif
#ifndef SAN_NAME
#define SAN_NAME NULL
/* 20,000 per type does not fit the plain build's minute on this project's
 * 2-vCPU machine (about 1.2 ms a sequence, mostly the pair's mmap/munmap
 * and ring page faults); 12,000 does, with room to spare. */
#define SAN_SEQUENCES 25000
#endif

/*
 * Regression table: minimal sequences from divergences found earlier.
 * Each must agree with the kernel.  A sequence that still diverges because
 * of a bug not fixed yet is listed with `disabled` set and a comment.
 */
struct regression {
	const char *name;
	int type;
	int nonblock;
	int nops;
	struct opseq_op ops[OPSEQ_MAX_OPS];
	int disabled;
};

static const struct regression regressions[] = {
	/* recvmsg EAGAIN: Linux writes nothing back into the msghdr (fixed:
	 * usp_recvmsg writes msg_flags/namelen/controllen only on success) */
	{ "recvmsg_eagain_msghdr", SOCK_STREAM, 0, 1, {
		{ OP_RECVMSG, 0, 0, MSG_DONTWAIT, 0x0 },
	}, 0 },
	/* msg_name NULL, msg_namelen 77: Linux leaves msg_namelen alone */
	{ "recvmsg_null_name_len", SOCK_DGRAM, 1, 2, {
		{ OP_SEND, 0, 3, 0, 0x0 },
		{ OP_RECVMSG, 1, 10, 0, 0x1000 },
	}, 0 },
	/* MSG_CMSG_COMPAT from a native caller: EINVAL (fixed) */
	{ "sendmsg_cmsg_compat", SOCK_STREAM, 0, 1, {
		{ OP_SENDMSG, 0, 0, (int)0x80000000u, 0x0 },
	}, 0 },
	{ "recvmsg_cmsg_compat", SOCK_STREAM, 0, 2, {
		{ OP_SEND, 0, 1, 0, 0x0 },
		{ OP_RECVMSG, 1, 0, (int)0x80000000u, 0x0 },
	}, 0 },
	/* STREAM: zero-length MSG_PEEK with the peek offset past the data
	 * says EAGAIN (fixed) */
	{ "stream_peek_len0_past_offset", SOCK_STREAM, 1, 3, {
		{ OP_PEEK_OFF, 0, 1, 0, 0x0 },
		{ OP_SEND, 1, 1, 0, 0x0 },
		{ OP_RECV, 0, 0, MSG_PEEK, 0x0 },
	}, 0 },
	/* SEQPACKET EOF through recvmsg sets msg_flags (fixed) */
	{ "seqpacket_eof_msg_flags", SOCK_SEQPACKET, 0, 2, {
		{ OP_SHUTDOWN, 1, SHUT_WR, 0, 0x0 },
		{ OP_RECVMSG, 0, 0, 0, 0x0 },
	}, 0 },
	/* a lone empty record left unread: no ECONNRESET for the peer (fixed) */
	{ "seqpacket_close_lone_empty_record", SOCK_SEQPACKET, 0, 2, {
		{ OP_WRITE, 0, 0, 0, 0x0 },
		{ OP_CLOSE, 1, 0, 0, 0x0 },
	}, 0 },
	{ "seqpacket_close_two_empty_records", SOCK_SEQPACKET, 0, 3, {
		{ OP_WRITE, 0, 0, 0, 0x0 },
		{ OP_SEND, 0, 0, 0, 0x0 },
		{ OP_CLOSE, 1, 0, 0, 0x0 },
	}, 0 },
	/* SEQPACKET send: the pending ECONNRESET before EOPNOTSUPP/EMSGSIZE (fixed) */
	{ "seqpacket_send_error_first_oob", SOCK_SEQPACKET, 0, 3, {
		{ OP_WRITE, 1, 1, 0, 0x0 },
		{ OP_CLOSE, 0, 0, 0, 0x0 },
		{ OP_SEND, 1, 0, MSG_OOB, 0x0 },
	}, 0 },
	{ "seqpacket_send_error_first_msgsize", SOCK_SEQPACKET, 0, 4, {
		{ OP_WRITEV, 0, 1, 0, 0x0 },
		{ OP_CLOSE, 1, 0, 0, 0x0 },
		{ OP_SETSOCKOPT, 0, 0, 0, 0x0 },
		{ OP_SENDMSG, 0, 6153, 0, 0x0 },
	}, 0 },
	/* with SO_PEEK_OFF enabled, Linux skips a zero-length SEQPACKET/DGRAM
	 * message that an earlier MSG_PEEK returned (skb->peeked in
	 * __skb_try_recv_from_queue); fixed with a per-record peeked mark */
	{ "peeked_empty_record", SOCK_SEQPACKET, 0, 5, {
		{ OP_PEEK_OFF, 1, 0, 0, 0x0 },
		{ OP_SEND, 0, 0, 0, 0x0 },
		{ OP_WRITEV, 0, 1, 0, 0x0 },
		{ OP_RECVMSG, 1, 0, MSG_PEEK, 0x0 },
		{ OP_RECVFROM, 1, 1, MSG_PEEK, 0x0 },
	}, 0 },
	/* explicit credentials are checked where __scm_send() meets them:
	 * a bad pid before a bad descriptor that follows it (fixed) */
	{ "scm_creds_checked_before_bad_fd", SOCK_STREAM, 0, 1, {
		{ OP_SENDMSG_SCM, 1, 0, 0, 0xb102 },
	}, 0 },
	/* ... and by a STREAM send of no data too (fixed) */
	{ "stream_len0_explicit_creds_checked", SOCK_STREAM, 0, 1, {
		{ OP_SENDMSG_SCM, 1, 0, 0, 0x3001 },
	}, 0 },
	/* STREAM: a read of length 0 takes a kernel record's descriptors, and
	 * the rest of the record stays readable (fixed: it was EIO) */
	{ "stream_read0_takes_ancillary_data", SOCK_STREAM, 0, 2, {
		{ OP_SENDMSG_SCM, 0, 1, 0, 0x6803 },
		{ OP_RECVMSG_SCM, 1, 0, 0, 0x0 },
	}, 0 },
	/* STREAM: the rest of a kernel record read in part is never taken
	 * for wake tokens when its next byte is 'w' (fixed: it was EIO) */
	{ "stream_partial_kernel_record_token_byte", SOCK_STREAM, 0, 3, {
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_WRITE, 0, 25, 0, 0xe7a50000 },
		{ OP_RECVMSG_SCM, 1, 24, 0, 0x0 },
	}, 0 },
	/* STREAM: a peek goes on past a full buffer to the descriptors of a
	 * later record; a read of length 0 with SO_PASSCRED reports the
	 * record's credentials, not the end-of-file cookie (fixed) */
	{ "stream_peek_full_buffer_takes_next_fds", SOCK_STREAM, 0, 3, {
		{ OP_SENDMSG, 0, 1, 0, 0x0 },
		{ OP_SENDMSG_SCM, 0, 1, 0, 0x6803 },
		{ OP_RECVMSG_SCM, 1, 0, 0, 0x3 },
	}, 0 },
	{ "stream_read0_passcred_reports_record_creds", SOCK_STREAM, 0, 3, {
		{ OP_SENDTO, 0, 1, 0, 0x0 },
		{ OP_PASSOPT, 1, 1, 0, 0x0 },
		{ OP_RECVMSG_SCM, 1, 0, 0, 0x4 },
	}, 0 },
	/* STREAM with SO_PASSCRED set after the fact: a record sent without
	 * credentials glues with a kernel record sent without them (fixed) */
	{ "stream_passcred_glues_uncredited_records", SOCK_STREAM, 0, 3, {
		{ OP_WRITEV, 0, 1, 0, 0x0 },
		{ OP_SENDMSG_SCM, 0, 1, 0, 0x503 },
		{ OP_PASSOPT, 1, 1, 0, 0x0 },
	}, 0 },
	/* SO_PASSPIDFD and a control buffer too short for SCM_PIDFD:
	 * MSG_CTRUNC and nothing written, with or without a sender pid
	 * (fixed) */
	{ "passpidfd_short_control", SOCK_STREAM, 0, 3, {
		{ OP_PASSOPT, 0, 1, 0, 0x1 },
		{ OP_WRITEV, 1, 1, 0, 0x0 },
		{ OP_RECVMSG, 0, 0, 0, 0x1700 },
	}, 0 },
	{ "passpidfd_no_pid_short_control", SOCK_STREAM, 0, 3, {
		{ OP_SEND, 1, 1, 0, 0x0 },
		{ OP_PASSOPT, 0, 1, 0, 0x1 },
		{ OP_RECVMSG, 0, 0, 0, 0xe03 },
	}, 0 },
	{ "passpidfd_no_pid_short_control_seqpacket", SOCK_SEQPACKET, 0, 3, {
		{ OP_SEND, 1, 1, 0, 0x0 },
		{ OP_PASSOPT, 0, 1, 0, 0x1 },
		{ OP_RECVMSG, 0, 0, 0, 0xe03 },
	}, 0 },
	/* STREAM with SO_PASSCRED: a failed read (EAGAIN) still writes the
	 * credentials into the control buffer, not its length (fixed) */
	{ "stream_eagain_passcred_writes_creds", SOCK_STREAM, 1, 2, {
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_RECVMSG, 0, 0, 0, 0x400 },
	}, 0 },
	/* MSG_CMSG_COMPAT from a native caller: sendmmsg/recvmmsg EINVAL
	 * (fixed) */
	{ "sendmmsg_cmsg_compat", SOCK_STREAM, 0, 1, {
		{ OP_SENDMMSG, 1, 0, (int)0x80000000u, 0x0 },
	}, 0 },
	{ "recvmmsg_cmsg_compat", SOCK_DGRAM, 0, 1, {
		{ OP_RECVMMSG, 1, 0, (int)0x80000000u | MSG_DONTWAIT, 0x0 },
	}, 0 },
	/* SEQPACKET: a lone empty message with descriptors left unread does
	 * not reset the peer either (fixed) */
	{ "seqpacket_close_lone_empty_kernel_record", SOCK_SEQPACKET, 0, 2, {
		{ OP_SENDMSG_SCM, 0, 0, 0, 0x2d03 },
		{ OP_CLOSE, 1, 0, 0, 0x0 },
	}, 0 },
	/* SEQPACKET/DGRAM: a sender with SO_PASSCRED is autobound (even by a
	 * send that fails), and receivers see its name; the liveness probe's
	 * autobind is not shown, and an unnamed peer is not our own name
	 * (fixed) */
	{ "seqpacket_passcred_sender_name", SOCK_SEQPACKET, 0, 3, {
		{ OP_PASSOPT, 1, 1, 0, 0x0 },
		{ OP_WRITE, 1, 0, 0, 0x0 },
		{ OP_RECVMSG, 0, 0, 0, 0x701 },
	}, 0 },
	{ "seqpacket_passcred_recvfrom_name", SOCK_SEQPACKET, 0, 3, {
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_SENDMMSG, 0, 0, 0, 0x0 },
		{ OP_RECVFROM, 1, 0, 0, 0x100 },
	}, 0 },
	{ "seqpacket_autobind_before_epipe", SOCK_SEQPACKET, 0, 5, {
		{ OP_WRITE, 0, 0, 0, 0x0 },
		{ OP_SHUTDOWN, 1, SHUT_RD, 0, 0x0 },
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_SENDTO, 0, 0, 0, 0x0 },
		{ OP_RECVMSG, 1, 0, 0, 0x1704 },
	}, 0 },
	{ "dgram_probe_autobind_not_shown", SOCK_DGRAM, 0, 3, {
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_READV, 0, 0, 0, 0x0 },
		{ OP_GETPEERNAME, 0, 0, 0, 0x0 },
	}, 0 },
	{ "dgram_unnamed_peer_not_own_name", SOCK_DGRAM, 0, 3, {
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_SEND, 0, 0, 0, 0x0 },
		{ OP_GETPEERNAME, 0, 0, 0, 0x0 },
	}, 0 },
	{ "dgram_autobind_when_unconnected", SOCK_DGRAM, 0, 5, {
		{ OP_CLOSE, 1, 0, 0, 0x0 },
		{ OP_SEND, 0, 0, 0, 0x0 },
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_SEND, 0, 0, 0, 0x0 },
		{ OP_GETSOCKNAME, 0, 0, 0, 0x0 },
	}, 0 },
	/* SEQPACKET: the backing socket's ECONNRESET (the peer released with
	 * a kernel part unread, where the pair had only a lone empty
	 * message) is not the pair's: the queued message reads (fixed: EIO) */
	{ "seqpacket_backing_reset_not_an_error", SOCK_SEQPACKET, 0, 5, {
		{ OP_PASSOPT, 1, 1, 0, 0x0 },
		{ OP_SEND, 0, 0, 0, 0x0 },
		{ OP_WRITE, 1, 0, 0, 0x0 },
		{ OP_CLOSE, 0, 0, 0, 0x0 },
		{ OP_RECV, 1, 0, 0, 0x0 },
	}, 0 },
	/* recvmmsg: a pair's own end that comes back and is dropped (no
	 * control buffer) is released when the system call returns, so the
	 * rest of the batch sees EAGAIN, not the end of file (fixed) */
	{ "recvmmsg_dropped_end_released_at_return", SOCK_STREAM, 0, 3, {
		{ OP_SENDMSG_SCM, 0, 1, 0, 0x610a },
		{ OP_CLOSE, 0, 0, 0, 0x0 },
		{ OP_RECVMMSG, 1, 1, MSG_DONTWAIT, 0x5 },
	}, 0 },
	{ "recvmmsg_dropped_end_released_at_return_seqpacket", SOCK_SEQPACKET, 0, 3, {
		{ OP_SENDMSG_SCM, 1, 0, 0, 0x5803 },
		{ OP_CLOSE, 1, 0, 0, 0x0 },
		{ OP_RECVMMSG, 0, 0, MSG_WAITFORONE, 0x7 },
	}, 0 },
	/*
	 * A kernel record's part carries one mark byte more than the message
	 * through the backing socket: (1) its sk_wmem_alloc outgrew the
	 * ring's accounting (the byte can cost a slab step or a page of
	 * truesize: 3776 bytes is SKB_MAX_HEAD(0)), so kernel-path sends said
	 * EAGAIN early (26 messages instead of 49 here); (2) a SEQPACKET/DGRAM
	 * message of exactly SO_SNDBUF - 32 bytes was EMSGSIZE.  Fixed: the
	 * backing socket gets twice the user's SO_SNDBUF
	 * (usp__backing_sndbuf), and getsockopt answers the user's.
	 */
	{ "kernel_part_mark_fills_backing", SOCK_SEQPACKET, 1, 28, {
		{ OP_PASSOPT, 0, 1, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
		{ OP_SEND, 0, 3776, 0, 0x0 },
	}, 0 },
	{ "kernel_part_mark_msgsize", SOCK_SEQPACKET, 0, 2, {
		{ OP_PASSOPT, 1, 1, 0, 0x0 },
		{ OP_SEND, 1, 212960, 0, 0x0 },
	}, 0 },
	/* SEQPACKET end of file: no control data (found after the
	 * ancillary-data merge; fixed) */
	{ "seqpacket_eof_controllen", SOCK_SEQPACKET, 0, 2, {
		{ OP_CLOSE, 1, 0, 0, 0x0 },
		{ OP_RECVMSG, 0, 0, 0, 0x402 },
	}, 0 },
	/* STREAM MSG_OOB: the skipped out-of-band byte is not counted in the
	 * peek offset (manage_oob() runs before the offset's walk; fixed) */
	{ "stream_oob_peek_offset", SOCK_STREAM, 1, 5, {
		{ OP_SENDMSG_SCM, 1, 2, MSG_OOB, 0x0 },
		{ OP_WRITE, 1, 1, 0, 0x0 },
		{ OP_RECVMSG_SCM, 0, 1, 0, 0x0 },
		{ OP_PEEK_OFF, 0, 1, 0, 0x0 },
		{ OP_RECVMSG_SCM, 0, 1, MSG_PEEK, 0x0 },
	}, 0 },
	/* recvmmsg returns right after an out-of-band entry (found by
	 * diff_fuzz; fixed) */
	{ "recvmmsg_oob_returns", SOCK_STREAM, 1, 3, {
		{ OP_SENDMMSG, 0, 0, MSG_OOB, 0x0 },
		{ OP_RECVMMSG, 1, 0, MSG_OOB, 0x7 },
		{ OP_POLL, 1, 0, POLLIN | POLLPRI | POLLOUT, 0x0 },
	}, 0 },
	/* a kernel record's part costs the backing socket a mark byte more
	 * (here a 4 KiB slab step) and the liveness probe sits in the peer's
	 * queue: with a backing SO_SNDBUF of only twice the user's, the kernel
	 * pair sent where uspair said EAGAIN (found by diff_fuzz; fixed) */
	{ "kernel_record_backing_room", SOCK_DGRAM, 0, 4, {
		{ OP_PASSOPT, 0, 1, 0, 0x1 },
		{ OP_WRITEV, 1, 3776, 0, 0xf45800c8 },
		{ OP_SETSOCKOPT, 1, 1000, 0, 0x0 },
		{ OP_SENDMSG_SCM, 1, 95, MSG_DONTWAIT, 0x34492000 },
	}, 0 },
	/* recvmmsg with MSG_ERRQUEUE skips __sys_recvmmsg()'s first look at
	 * the pending error: the data comes first, the error is kept for
	 * the next call (found by diff_fuzz; fixed) */
	{ "recvmmsg_errqueue_error_later", SOCK_STREAM, 0, 4, {
		{ OP_SEND, 0, 1, 0, 0x0 },
		{ OP_SEND, 1, 1, 0, 0x0 },
		{ OP_CLOSE, 0, 0, 0, 0x0 },
		{ OP_RECVMMSG, 1, 0, MSG_ERRQUEUE, 0x0 },
	}, 0 },
	/* sendmmsg with MSG_OOB whose second entry is one byte with
	 * SCM_RIGHTS: known difference 3 (EOPNOTSUPP), which the executor
	 * skips; it used to compare it (found by diff_fuzz) */
	{ "sendmmsg_oob_scm_one_byte_skipped", SOCK_STREAM, 0, 1, {
		{ OP_SENDMMSG, 1, 0, MSG_OOB, 0xa62c0043 },
	}, 0 },
	/* a smoke sequence: both directions, a peek, a shutdown */
	{ "smoke", SOCK_STREAM, 0, 6, {
		{ OP_SEND, 0, 100, MSG_DONTWAIT, 0x0 },
		{ OP_RECV, 1, 10, MSG_PEEK, 0x0 },
		{ OP_RECV, 1, 1000, 0, 0x0 },
		{ OP_SHUTDOWN, 0, SHUT_WR, 0, 0x0 },
		{ OP_RECV, 1, 10, 0, 0x0 },
		{ OP_SEND, 1, 5, MSG_NOSIGNAL, 0x0 },
	}, 0 },
};

static int run_regressions(int unfixed)
{
	int bad = 0;
	for (size_t i = 0; i < sizeof(regressions) / sizeof(regressions[0]); i++) {
		const struct regression *g = &regressions[i];
		if (g->disabled != unfixed)
			continue;
		struct opseq s;
		memset(&s, 0, sizeof(s));
		s.type = g->type;
		s.nonblock = g->nonblock;
		s.nops = g->nops;
		memcpy(s.ops, g->ops, sizeof(s.ops));
		int where;
		if (opseq_compare(&s, &where, NULL)) {
			bad++;
			if (unfixed)
				printf("unfixed bug %s still diverges:\n", g->name);
			else
				t_fail("regression sequence %s diverges", g->name);
			opseq_print_repro(stdout, &s, g->name);
		}
	}
	return bad;
}

static unsigned long env_ulong(const char *name, unsigned long dflt, int *set)
{
	const char *v = getenv(name);
	if (set)
		*set = v && *v;
	if (!v || !*v)
		return dflt;
	return strtoul(v, NULL, 0);
}

int main(void)
{
	static const struct {
		int type;
		const char *name;
	} types[] = {
		{ SOCK_STREAM, "stream" },
		{ SOCK_SEQPACKET, "seqpacket" },
		{ SOCK_DGRAM, "dgram" },
	};
	t_init("random_diff");
	opseq_init();

	int seed_set, seq_set;
	uint64_t seed = env_ulong("RANDOM_DIFF_SEED", DEFAULT_SEED, &seed_set);
	unsigned long per_type = env_ulong("RANDOM_DIFF_SEQUENCES", SAN_SEQUENCES, &seq_set);
	int forever = env_ulong("RANDOM_DIFF_FOREVER", 0, NULL) != 0 || (seq_set && per_type == 0);
	double budget = (double)env_ulong("RANDOM_DIFF_BUDGET", SAN_NAME ? 75 : 50, NULL);
	unsigned long max_reports = env_ulong("RANDOM_DIFF_MAX_REPORTS", 3, NULL);
	const char *type_list = getenv("RANDOM_DIFF_TYPES");
	unsigned long first = env_ulong("RANDOM_DIFF_FIRST", 0, NULL);

	printf("random_diff: seed 0x%" PRIx64 "%s\n", seed,
	       seed_set ? " (RANDOM_DIFF_SEED)" : " (default; RANDOM_DIFF_SEED=N to change)");
	if (forever)
		printf("random_diff: unbounded run, progress on stderr\n");
	else
		printf("random_diff: %lu sequences per type%s%s, time budget %.0f s\n", per_type,
		       SAN_NAME && !seq_set ? ", scaled down for " : "",
		       SAN_NAME && !seq_set ? SAN_NAME : "", budget);

	if (getenv("RANDOM_DIFF_UNFIXED")) {
		int n = run_regressions(1);
		printf("random_diff: %d unfixed regression sequences still diverge\n", n);
	}
	if (run_regressions(0))
		printf("random_diff: regression table FAILED\n");
	else
		printf("random_diff: regression table: every enabled sequence agrees\n");

	/* bounded runs never get here after the runtests timeout */
	if (!forever)
		t_watchdog((unsigned)budget + 100, "random_diff");

	double start = t_now();
	unsigned long reports = 0;
	int out_of_time = 0;
	if (forever) {
		/* round robin over the types, forever */
		unsigned long n[3] = { 0 }, ops[3] = { 0 }, divs[3] = { 0 };
		double last = start;
		for (uint64_t i = 0;; i++) {
			for (int t = 0; t < 3; t++) {
				if (type_list && !strstr(type_list, types[t].name))
					continue;
				uint64_t st = seed ^ ((uint64_t)(t + 1) << 56) ^ i;
				uint64_t sseed = opseq_splitmix64(&st);
				struct opseq s;
				opseq_generate(&s, sseed, types[t].type);
				unsigned long steps = 0;
				int where;
				n[t]++;
				if (opseq_compare(&s, &where, &steps)) {
					divs[t]++;
					char title[160];
					snprintf(title, sizeof(title), "%s seed 0x%" PRIx64 " sequence %" PRIu64,
						 types[t].name, seed, i);
					opseq_shrink(&s);
					opseq_print_repro(stdout, &s, title);
					fflush(stdout);
				}
				ops[t] += steps;
			}
			double now = t_now();
			if (now - last >= 10) {
				last = now;
				fprintf(stderr, "random_diff: %.0f s: stream %lu seq %lu ops %lu div; seqpacket %lu %lu %lu; dgram %lu %lu %lu\n",
					now - start, n[0], ops[0], divs[0], n[1], ops[1], divs[1],
					n[2], ops[2], divs[2]);
			}
		}
	}

	for (int t = 0; t < 3; t++) {
		if (type_list && !strstr(type_list, types[t].name))
			continue;
		unsigned long n = 0, ops = 0, divs = 0;
		double t0 = t_now();
		for (unsigned long i = first; i < first + per_type; i++) {
			/* each type gets its share of what is left of the budget */
			if (((i - first) & 63) == 0) {
				double now = t_now();
				double share = (budget - (t0 - start)) / (double)(3 - t);
				if (now - t0 > share) {
					out_of_time = 1;
					break;
				}
			}
			uint64_t st = seed ^ ((uint64_t)(t + 1) << 56) ^ i;
			uint64_t sseed = opseq_splitmix64(&st);
			struct opseq s;
			opseq_generate(&s, sseed, types[t].type);
			unsigned long steps = 0;
			int where;
			n++;
			if (opseq_compare(&s, &where, &steps)) {
				divs++;
				char title[200];
				snprintf(title, sizeof(title),
					 "%s RANDOM_DIFF_SEED=0x%" PRIx64 " sequence %lu", types[t].name,
					 seed, i);
				t_fail("divergence: %s (op %d of %d)", title, where + 1, s.nops);
				unsigned runs = getenv("RANDOM_DIFF_NO_SHRINK") ? 0 : opseq_shrink(&s);
				printf("shrunk in %u runs to %d ops\n", runs, s.nops);
				opseq_print_repro(stdout, &s, title);
				if (++reports >= max_reports)
					break;
			}
			ops += steps;
		}
		printf("random_diff: %s %lu sequences, %lu ops, %lu divergences (%.1f s)\n",
		       opseq_type_name(types[t].type), n, ops, divs, t_now() - t0);
		if (reports >= max_reports) {
			printf("random_diff: stopping after %lu divergences\n", reports);
			break;
		}
	}
	if (getenv("RANDOM_DIFF_STATS"))
		opseq_print_stats(stdout);
	if (out_of_time)
		printf("random_diff: note: the time budget (%.0f s) ended some types early; "
		       "the counts above are what ran\n", budget);
	return t_finish();
}
