/*
 * Internals of the hostile-peer decoder shared by its two files:
 * test/t_region_ops.c (input format, AF_UNIX operations and rules,
 * corruption writes, the driver) and test/t_region_tipc.c (AF_TIPC
 * operations, their model and rules).  Not for other tests.
 */
#ifndef T_REGION_INT_H
#define T_REGION_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "internal.h"
#include "t_region_ops.h"

/* byte 0 of an input: this bit makes the pair AF_TIPC (t_region_ops.c) */
#define TRO_B0_TIPC 0x20
#define TRO_MAX_OPS 200
#define TRO_BUF (256u << 10)
#define TRO_MAX_MSGS 4096

/* ---- input reader: every byte string is valid, reads past the end give 0 */

struct tro_in {
	const uint8_t *p;
	size_t n, pos;
};

static inline uint8_t in8(struct tro_in *in)
{
	return in->pos < in->n ? in->p[in->pos++] : 0;
}

static inline uint16_t in16(struct tro_in *in)
{
	uint16_t v = in8(in);
	return (uint16_t)(v | (uint16_t)in8(in) << 8);
}

static inline uint32_t in32(struct tro_in *in)
{
	uint32_t v = in16(in);
	return v | (uint32_t)in16(in) << 16;
}

static inline uint64_t in64(struct tro_in *in)
{
	uint64_t v = in32(in);
	return v | (uint64_t)in32(in) << 32;
}

/* ---- per-run state ---- */

struct tro_dir {
	/* STREAM: bytes sent to / received by this end */
	uint64_t sent, received;
	/* SEQPACKET/DGRAM: lengths of the messages queued to this end */
	uint32_t msg_len[TRO_MAX_MSGS];
	uint64_t msg_first, msg_count; /* sequence number of msg_len[0 mod N] */
};

struct tro_field {
	const char *name;
	size_t off;
	unsigned size; /* 4 or 8 */
};

struct tro_tipc; /* the AF_TIPC model, t_region_tipc.c */

struct tro_state {
	int type; /* as the user sees it: SOCK_RDM only for AF_TIPC */
	int sv[2];
	bool open[2];
	bool corrupted, dead, model_ok;
	/* a corruption write set ep[i].kernel_mode: the pair may since answer
	 * as its backing AF_UNIX sockets (a fallback, which a real peer can
	 * cause too: docs/DESIGN.md "Falling back to the kernel") */
	bool kernel_seen;
	int peek_off_on[2];
	struct usp_shared *shm;
	struct tro_dir to[2]; /* AF_UNIX: to[i]: what was sent to end i */
	struct tro_tipc *tipc; /* NULL for an AF_UNIX pair */
	/* what corruption writes pick from (AF_TIPC pairs have more) */
	const struct tro_field *fields;
	size_t n_fields;
	const uint64_t *interesting;
	size_t n_interesting;
	/* the sizes tro_in_size() picks at its "edges" (per family) */
	const size_t *size_edges;
	size_t n_size_edges;
	struct tro_stats *stats;
	int violations;
	int step;
	const char *op;
	bool verbose;
};

extern unsigned char tro_sendbuf[TRO_BUF], tro_recvbuf[TRO_BUF];

__attribute__((format(printf, 2, 3))) void tro_violation(struct tro_state *st,
							   const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void tro_trace(struct tro_state *st, const char *fmt,
						       ...);
#define violation(st, ...) tro_violation(st, __VA_ARGS__)
#define trace(st, ...) tro_trace(st, __VA_ARGS__)

/* Pattern bytes: STREAM byte i towards end d; message k towards end d. */
static inline unsigned char stream_byte(int d, uint64_t i)
{
	return (unsigned char)(i * 131u + (i >> 9) * 7u + (unsigned)d * 17u + 1u);
}

static inline unsigned char msg_byte(int d, uint64_t k, size_t j)
{
	return (unsigned char)(k * 31u + j * 7u + (unsigned)d * 101u + (j >> 8));
}

static inline int other(int e)
{
	return e ^ 1;
}

/* The end an op byte names (bit 0), or the other one if that is closed;
 * -1 when both are. */
static inline int pick_end(struct tro_state *st, uint8_t b)
{
	int e = b & 1;
	if (!st->open[e])
		e = other(e);
	return st->open[e] ? e : -1;
}

/* Buffer sizes read from the input, cut so that together they fit
 * TRO_BUF: lens[0..cnt-1]; returns their total. */
size_t tro_in_lens(struct tro_state *st, struct tro_in *in, size_t *lens, int cnt);
/* iov[i] covers lens[i] bytes of buf, one after another. */
void tro_fill_iov(struct iovec *iov, unsigned char *buf, const size_t *lens, int cnt);
/* Closes the end that op byte names, unless that would leave no end open:
 * returns the end closed, or -1. */
int tro_close(struct tro_state *st, struct tro_in *in);
void tro_check_poll_dead(struct tro_state *st);
int tro_poll(struct tro_state *st, struct tro_in *in, unsigned *revents, unsigned *allowed);

/* t_region_tipc.c */
extern const size_t tro_tipc_size_edges[];
extern const size_t tro_tipc_n_size_edges;
void tro_tipc_begin(struct tro_state *st);
/* Runs the op of opcode byte `code` on an AF_TIPC pair; false when it is
 * a corruption write (left to the caller). */
bool tro_tipc_step(struct tro_state *st, struct tro_in *in, uint8_t code);

#endif /* T_REGION_INT_H */
