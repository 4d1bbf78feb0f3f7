/*
 * Random operation sequences for differential testing (test/random_diff.c
 * and fuzz/diff_fuzz.c).
 *
 * A sequence is a socket type, a creation mode (blocking or SOCK_NONBLOCK)
 * and a list of operations.  opseq_compare() applies it to a kernel
 * socketpair and then to a uspair pair, through the usp_* calls, and
 * compares every result: return value, errno, received bytes, msg_flags,
 * name and control lengths, poll revents, ioctl and option values, SIGPIPEs.
 *
 * The executor never blocks forever.  A call that may block (blocking
 * descriptor, no MSG_DONTWAIT) is preceded by queries whose answers are
 * part of the compared result (poll(0), FIONREAD, SO_PEEK_OFF, SIOCOUTQ,
 * SO_SNDBUF), and the call is made only when those answers say the kernel
 * cannot block; otherwise the step is recorded as skipped.  Both runs
 * therefore take the same path, and the uspair run stops at its first
 * result that differs from the kernel's.  A per-run timer interrupts
 * (EINTR) any call that still blocks, which shows as a divergence.
 *
 * An operation is five numbers, so that a reproducer can be pasted into a
 * regression table as C: { op, side, size, flags, aux }.
 */
#ifndef T_OPSEQ_H
#define T_OPSEQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opseq_kind {
	OP_NONE = 0,
	OP_SEND,	/* send(side, size bytes, flags); aux: payload offset, NULL when size 0 and aux odd */
	OP_SENDTO,	/* sendto(side, size, flags, address chosen by aux % 8) */
	OP_SENDMSG,	/* sendmsg(side, iovec shape (size, aux), flags); aux bit 8: a control buffer with no cmsg */
	OP_WRITE,	/* write(side, size) */
	OP_WRITEV,	/* writev(side, iovec shape (size, aux)) */
	OP_RECV,	/* recv(side, capacity size, flags) */
	OP_RECVFROM,	/* recvfrom(side, size, flags, address buffer chosen by aux % 4) */
	OP_RECVMSG,	/* recvmsg(side, iovec shape (size, aux), flags); name/control capacities from aux */
	OP_READ,	/* read(side, size) */
	OP_READV,	/* readv(side, iovec shape (size, aux)) */
	OP_SHUTDOWN,	/* shutdown(side, size) (size may be a bad how) */
	OP_CLOSE,	/* usp_close(side); later operations on that side are skipped */
	OP_POLL,	/* poll(side, events = flags, 0) */
	OP_FIONREAD,	/* ioctl(side, FIONREAD) */
	OP_SIOCOUTQ,	/* ioctl(side, SIOCOUTQ) */
	OP_SETSOCKOPT,	/* setsockopt(side, aux ? SO_RCVBUF : SO_SNDBUF, size), then getsockopt of it */
	OP_GETSOCKOPT,	/* getsockopt(side, option number aux % count) */
	OP_SETFL,	/* fcntl(side, F_SETFL, size ? O_NONBLOCK : 0), then F_GETFL */
	OP_FIONBIO,	/* ioctl(side, FIONBIO, size) */
	OP_PEEK_OFF,	/* setsockopt(side, SO_PEEK_OFF, size), then getsockopt */
	OP_SO_ERROR,	/* getsockopt(side, SO_ERROR) */
	OP_GETPEERNAME,	/* getpeername(side, buffer length chosen by aux % 4) */
	OP_GETSOCKNAME,	/* getsockname(side, buffer length chosen by aux % 4) */
	/*
	 * Ancillary data and batches (see t_opseq.c for the exact encoding):
	 * OP_SENDMSG_SCM: sendmsg(side, size bytes, flags) with a control
	 *   buffer: aux bits 0-7 descriptors (0..254), 8-10 layout (one or
	 *   two SCM_RIGHTS, malformed headers, unknown type, other level,
	 *   short buffer, rounded-down cmsg_len), 11-12 explicit credentials
	 *   (none, ours, no such pid, pid 1), 13 credentials first, 14-15 the
	 *   descriptor pool (files; + the pair's ends; + bad numbers; all),
	 *   16-31 seed of the descriptor choice and payload.
	 * OP_RECVMSG_SCM: recvmsg(side, capacity size, flags); aux bits 0-2
	 *   control buffer (NULL, 0, tiny, exactly fitting, one short, large,
	 *   CMSG_SPACE(k fds), credentials only), 3-7 its parameter.
	 * OP_PASSOPT: setsockopt(side, aux & 1 ? SO_PASSPIDFD : SO_PASSCRED,
	 *   size), then getsockopt of it.
	 * OP_SENDMMSG: sendmmsg(side, (aux & 7) + 1 entries, flags); entry
	 *   sizes from size and aux bits 3-5 and 16-31; bit 6: odd entries
	 *   carry a descriptor; bit 7: entry 0 carries a bad one.
	 * OP_RECVMMSG: recvmmsg(side, (aux & 7) + 1 entries of capacity size,
	 *   flags, timeout chosen by aux bits 3-5); bits 6-7: control buffers.
	 */
	OP_SENDMSG_SCM,
	OP_RECVMSG_SCM,
	OP_PASSOPT,
	OP_SENDMMSG,
	OP_RECVMMSG,
	OP_FDCOUNT,	/* final step only: close both ends, count open descriptors */
	OP__COUNT
};

struct opseq_op {
	int op;		/* enum opseq_kind */
	int side;	/* 0: sv[0], 1: sv[1] */
	int size;	/* bytes, capacity, or the operation's value */
	int flags;	/* MSG_* flags, or poll events */
	unsigned aux;	/* iovec shape, address choice, option choice, payload offset */
};

#define OPSEQ_MAX_OPS 64

struct opseq {
	int type;	/* SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM */
	int nonblock;	/* pair created with SOCK_NONBLOCK */
	int nops;
	struct opseq_op ops[OPSEQ_MAX_OPS];
};

/* Largest size the generator uses (bytes). */
#define OPSEQ_MAX_SIZE (400 * 1024)

/* Call once before anything else: SIGPIPE counter, per-run timer, data. */
void opseq_init(void);

/* A random sequence of type `type` from `seed`. */
void opseq_generate(struct opseq *s, uint64_t seed, int type);
/* A sequence decoded from fuzzer input (type and mode included). */
void opseq_decode(struct opseq *s, const uint8_t *data, size_t size);

/*
 * Runs s on a kernel pair and on a uspair pair.  Returns 0 when every
 * result agrees, 1 on a divergence (and then *where is the step index:
 * 0..nops-1 for an operation, nops.. for the final state checks).
 * *steps gets the number of operations executed in the kernel run.
 */
int opseq_compare(const struct opseq *s, int *where, unsigned long *steps);

/* Shrinks a diverging sequence in place (delta debugging); returns the
 * number of runs it took. */
unsigned opseq_shrink(struct opseq *s);

/* Prints s as C initialisers and both traces (kernel and uspair) up to a
 * few steps past the first divergence. */
void opseq_print_repro(FILE *f, const struct opseq *s, const char *title);

/* Per operation kind: executed, skipped (would block, known difference)
 * in the kernel runs of opseq_compare(), and how many received
 * descriptors or control messages; printed by opseq_print_stats(). */
void opseq_print_stats(FILE *f);

const char *opseq_op_name(int op);
const char *opseq_type_name(int type);
uint64_t opseq_splitmix64(uint64_t *state);

#endif /* T_OPSEQ_H */
