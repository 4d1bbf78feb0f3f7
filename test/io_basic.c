/*
 * io_basic: data transfer through every I/O call, compared step by step
 * between a kernel pair and a uspair pair, for every socket type, blocking
 * and non-blocking, in both directions.
 *
 * Covers sizes (0, 1, 100, 4096, 70000), iovec shapes, message boundaries,
 * zero-length records, truncation (MSG_TRUNC in msg_flags and as a flag),
 * MSG_PEEK and SO_PEEK_OFF, MSG_WAITALL with the data already queued,
 * MSG_DONTWAIT on a blocking socket, EAGAIN on empty non-blocking sockets,
 * FIONREAD/SIOCINQ/SIOCOUTQ, msg_namelen/msg_flags/msg_controllen after
 * recvmsg, sendto with a destination address, MSG_OOB, NULL buffers with
 * length 0, and (in an isolated child) bad buffer pointers.
 */
#include "t_helpers.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BIG_RECEIVE 80000

/* Receives everything queued on fd without blocking (bounded). */
static void drain(struct t_ctx *c, int fd)
{
	for (int i = 0; i < 40; i++) {
		ssize_t r = t_recv(c, fd, BIG_RECEIVE, MSG_DONTWAIT);
		if (r < 0)
			break;
		if (r == 0 && c->type == SOCK_STREAM)
			break;
	}
}

static void scenario_sizes(struct t_ctx *c)
{
	static const size_t sizes[] = { 0, 1, 100, 4096, 70000 };
	for (size_t i = 0; i < 5; i++) {
		t_send_pattern(c, c->a, sizes[i], (unsigned)i + 1, 0);
		t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
		t_poll1(c, c->b, POLLIN | POLLOUT);
		t_recv(c, c->b, BIG_RECEIVE, 0);
		t_recv(c, c->b, BIG_RECEIVE, MSG_DONTWAIT);
	}
	/* the same through write()/read() */
	for (size_t i = 0; i < 5; i++) {
		unsigned char *buf = malloc(sizes[i] + 1);
		t_fill_pattern(buf, sizes[i], 100 + (unsigned)i, 0);
		t_write(c, c->a, buf, sizes[i]);
		free(buf);
		t_read(c, c->b, BIG_RECEIVE);
		t_read(c, c->b, BIG_RECEIVE);
	}
	/* several sizes queued, then received with small and large buffers */
	for (size_t i = 0; i < 5; i++)
		t_send_pattern(c, c->a, sizes[i], 200 + (unsigned)i, MSG_DONTWAIT);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 50, 0);
	t_recv(c, c->b, 5000, 0);
	t_recv(c, c->b, 1, 0);
	drain(c, c->b);
}

static void scenario_iovecs(struct t_ctx *c)
{
	static const size_t shape_mixed[] = { 3, 0, 5, 1 };
	static const size_t shape_empty[] = { 0 };
	static const size_t shape_split_big[] = { 4096, 70000 - 4096 };
	size_t ones[1025];
	for (size_t i = 0; i < 1025; i++)
		ones[i] = 1;

	t_writev(c, c->a, shape_mixed, 4, 1);
	t_writev(c, c->a, shape_empty, 1, 2);
	t_writev(c, c->a, ones, 20, 3);
	t_writev(c, c->a, shape_mixed, 0, 4);
	t_writev(c, c->a, shape_mixed, -1, 5);
	t_writev(c, c->a, ones, 1025, 6);
	t_writev(c, c->a, ones, 1024, 7);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");

	static const size_t rshape_a[] = { 2, 0, 4, 100 };
	static const size_t rshape_b[] = { 1, 1, 1 };
	static const size_t rshape_c[] = { 0 };
	static const size_t rshape_d[] = { 100000 };
	t_readv(c, c->b, rshape_a, 4);
	t_readv(c, c->b, rshape_b, 3);
	t_readv(c, c->b, rshape_c, 1);
	t_readv(c, c->b, rshape_c, 0);
	t_readv(c, c->b, rshape_a, -1);
	t_readv(c, c->b, ones, 1025);
	t_readv(c, c->b, rshape_d, 1);
	t_readv(c, c->b, ones, 1024);
	drain(c, c->b);

	t_writev(c, c->a, shape_split_big, 2, 8);
	t_readv(c, c->b, rshape_b, 3);
	drain(c, c->b);

	/* sendmsg / recvmsg with several pieces */
	t_sendmsg(c, c->a, shape_mixed, 4, 9, 0);
	t_sendmsg(c, c->a, shape_empty, 0, 10, 0);
	t_sendmsg(c, c->a, shape_split_big, 2, 11, MSG_DONTWAIT);
	t_sendmsg(c, c->a, ones, 1025, 12, 0);
	t_sendmsg(c, c->a, ones, 1024, 13, 0);
	t_recvmsg(c, c->b, rshape_a, 4, 0, 0, 0);
	t_recvmsg(c, c->b, rshape_b, 3, 0, 0, MSG_DONTWAIT);
	t_recvmsg(c, c->b, rshape_d, 1, 0, 0, 0);
	t_recvmsg(c, c->b, ones, 1025, 0, 0, MSG_DONTWAIT);
	t_recvmsg(c, c->b, ones, 1024, 0, 0, MSG_DONTWAIT);
	drain(c, c->b);
}

static void scenario_boundaries(struct t_ctx *c)
{
	t_send(c, c->a, "abc", 3, 0);
	t_send(c, c->a, "defg", 4, 0);
	t_send(c, c->a, "hi", 2, 0);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 100, 0);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);

	t_send(c, c->a, "hello world", 11, 0);
	t_recv(c, c->b, 5, 0);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 100, MSG_DONTWAIT);

	/* boundaries in the other direction too */
	t_send(c, c->b, "12", 2, 0);
	t_send(c, c->b, "345", 3, 0);
	t_recv(c, c->a, 4, 0);
	t_recv(c, c->a, 4, MSG_DONTWAIT);
	t_recv(c, c->a, 4, MSG_DONTWAIT);
}

static void scenario_zero_length(struct t_ctx *c)
{
	t_send(c, c->a, "", 0, 0);
	t_send(c, c->a, NULL, 0, MSG_DONTWAIT);
	t_write(c, c->a, NULL, 0);
	t_sendmsg(c, c->a, NULL, 0, 1, 0);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	t_queues(c);
	t_recv(c, c->b, 10, MSG_DONTWAIT);
	t_recv(c, c->b, 10, 0);
	t_recvmsg(c, c->b, NULL, 0, 0, 0, MSG_DONTWAIT);
	t_recv(c, c->b, 10, MSG_DONTWAIT);
	t_recv(c, c->b, 10, MSG_DONTWAIT);

	/* zero-length record among data */
	t_send(c, c->a, "x", 1, 0);
	t_send(c, c->a, "", 0, 0);
	t_send(c, c->a, "y", 1, 0);
	t_recv(c, c->b, 10, 0);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_poll1(c, c->b, POLLIN);
	t_recv(c, c->b, 10, 0);
	t_recv(c, c->b, 10, 0);
	t_recv(c, c->b, 10, MSG_DONTWAIT);

	/* zero-capacity receives consume (or not) a record */
	t_send(c, c->a, "xyz", 3, 0);
	t_recv(c, c->b, 0, MSG_DONTWAIT);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_read(c, c->b, 0);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recvmsg(c, c->b, NULL, 0, 0, 0, MSG_DONTWAIT);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	drain(c, c->b);
	/* read(fd, buf, 0) on an empty socket */
	t_read(c, c->b, 0);
	t_readv(c, c->b, NULL, 0);
}

/* NULL buffers with length 0 must not fault. */
static void scenario_null_buffers(struct t_ctx *c)
{
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	T_RECORD(c, "send(a,NULL,0,0)", usp_send(c->a, NULL, 0, 0));
	T_RECORD(c, "sendto(a,NULL,0,MSG_DONTWAIT,NULL,0)",
		 usp_sendto(c->a, NULL, 0, MSG_DONTWAIT, NULL, 0));
	T_RECORD(c, "write(a,NULL,0)", usp_write(c->a, NULL, 0));
	T_RECORD(c, "writev(a,NULL,0)", usp_writev(c->a, NULL, 0));
	T_RECORD(c, "sendmsg(a,{iov=NULL,0},0)", usp_sendmsg(c->a, &msg, 0));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	T_RECORD(c, "recv(b,NULL,0,MSG_DONTWAIT)",
		 usp_recv(c->b, NULL, 0, MSG_DONTWAIT));
	T_RECORD(c, "recvfrom(b,NULL,0,MSG_DONTWAIT,NULL,NULL)",
		 usp_recvfrom(c->b, NULL, 0, MSG_DONTWAIT, NULL, NULL));
	T_RECORD(c, "read(b,NULL,0)", usp_read(c->b, NULL, 0));
	T_RECORD(c, "readv(b,NULL,0)", usp_readv(c->b, NULL, 0));
	memset(&msg, 0, sizeof(msg));
	T_RECORD(c, "recvmsg(b,{iov=NULL,0},MSG_DONTWAIT)", usp_recvmsg(c->b, &msg, MSG_DONTWAIT));
	t_log(c, "  msg_flags=0x%x", (unsigned)msg.msg_flags);
	drain(c, c->b);

	/* the classic "how big is the next datagram" idiom */
	t_send(c, c->a, "0123456789", 10, 0);
	T_RECORD(c, "recv(b,NULL,0,MSG_PEEK|MSG_TRUNC|MSG_DONTWAIT)",
		 usp_recv(c->b, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	T_RECORD(c, "recv(b,NULL,0,MSG_TRUNC|MSG_DONTWAIT)",
		 usp_recv(c->b, NULL, 0, MSG_TRUNC | MSG_DONTWAIT));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	drain(c, c->b);
}

static void scenario_truncation(struct t_ctx *c)
{
	static const size_t iov4[] = { 4 };
	static const size_t iov22[] = { 2, 2 };
	t_send(c, c->a, "0123456789", 10, 0);
	t_recv(c, c->b, 4, 0);
	t_send(c, c->a, "abcdefghij", 10, 0);
	t_recv(c, c->b, 4, MSG_TRUNC);
	t_send(c, c->a, "ABCDEFGHIJ", 10, 0);
	t_recvmsg(c, c->b, iov4, 1, 0, 0, 0);
	t_send(c, c->a, "klmnopqrst", 10, 0);
	t_recvmsg(c, c->b, iov4, 1, 0, 0, MSG_TRUNC);
	t_send(c, c->a, "KLMNOPQRST", 10, 0);
	t_recvmsg(c, c->b, iov22, 2, 0, 0, MSG_PEEK | MSG_TRUNC);
	t_recvmsg(c, c->b, iov22, 2, 0, 0, MSG_DONTWAIT);
	t_recvfrom(c, c->b, 3, MSG_TRUNC | MSG_DONTWAIT, sizeof(struct sockaddr_un));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	drain(c, c->b);
	/* truncating a large record */
	t_send_pattern(c, c->a, 70000, 7, 0);
	t_recvmsg(c, c->b, iov22, 2, 0, 0, MSG_TRUNC);
	drain(c, c->b);
}

static void scenario_peek(struct t_ctx *c)
{
	t_send(c, c->a, "hello", 5, 0);
	t_send(c, c->a, "world", 5, 0);
	t_recv(c, c->b, 3, MSG_PEEK);
	t_recv(c, c->b, 100, MSG_PEEK);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 2, 0);
	t_recv(c, c->b, 100, MSG_PEEK);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 100, 0);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	/* peek with recvmsg and several iovecs */
	static const size_t shape[] = { 1, 2, 3 };
	t_send(c, c->a, "abcdefgh", 8, 0);
	t_recvmsg(c, c->b, shape, 3, 0, 0, MSG_PEEK);
	t_recvmsg(c, c->b, shape, 3, 0, 0, 0);
	drain(c, c->b);
}

static void scenario_peek_offset(struct t_ctx *c)
{
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF");
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, 2, "SO_PEEK_OFF");
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF");
	t_send(c, c->a, "0123456789", 10, 0);
	t_send(c, c->a, "abcdef", 6, 0);
	t_recv(c, c->b, 3, MSG_PEEK);
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF");
	t_recv(c, c->b, 3, MSG_PEEK);
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF");
	t_recv(c, c->b, 4, 0);
	t_getsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF");
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PEEK_OFF, -1, "SO_PEEK_OFF");
	t_recv(c, c->b, 100, MSG_PEEK | MSG_DONTWAIT);
	drain(c, c->b);
}

static void scenario_waitall(struct t_ctx *c)
{
	t_send(c, c->a, "abcd", 4, 0);
	t_send(c, c->a, "efgh", 4, 0);
	t_send(c, c->a, "ijkl", 4, 0);
	t_recv(c, c->b, 12, MSG_WAITALL | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_WAITALL | MSG_DONTWAIT);
	t_send(c, c->a, "xy", 2, 0);
	t_recv(c, c->b, 10, MSG_WAITALL | MSG_DONTWAIT);
	t_send(c, c->a, "1234", 4, 0);
	t_send(c, c->a, "5678", 4, 0);
	/* blocking variant: exactly as much as asked is already there */
	if (c->type == SOCK_STREAM)
		t_recv(c, c->b, 8, MSG_WAITALL);
	else
		t_recv(c, c->b, 100, MSG_WAITALL);
	drain(c, c->b);
}

static void scenario_empty_receives(struct t_ctx *c)
{
	static const size_t shape[] = { 10 };
	t_recv(c, c->b, 10, MSG_DONTWAIT);
	t_recv(c, c->b, 10, 0);
	t_recvfrom(c, c->b, 10, MSG_DONTWAIT, sizeof(struct sockaddr_un));
	t_recvmsg(c, c->b, shape, 1, 0, 0, MSG_DONTWAIT);
	t_read(c, c->b, 10);
	t_readv(c, c->b, shape, 1);
	t_recv(c, c->a, 10, MSG_DONTWAIT);
	t_recv(c, c->b, 10, MSG_PEEK | MSG_DONTWAIT);
	t_recv(c, c->b, 10, MSG_WAITALL | MSG_DONTWAIT);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP | POLLPRI);
}

static void scenario_message_names(struct t_ctx *c)
{
	static const size_t shape[] = { 100 };
	t_send(c, c->a, "one", 3, 0);
	t_recvmsg(c, c->b, shape, 1, sizeof(struct sockaddr_un), 0, 0);
	t_send(c, c->a, "two", 3, 0);
	t_recvmsg(c, c->b, shape, 1, sizeof(struct sockaddr_un), 64, 0);
	t_send(c, c->a, "three", 5, 0);
	t_recvfrom(c, c->b, 100, 0, sizeof(struct sockaddr_un));
	t_send(c, c->a, "four", 4, 0);
	t_recvfrom(c, c->b, 100, 0, 0);
	t_send(c, c->a, "five", 4, 0);
	t_recvfrom(c, c->b, 100, 0, 1);
	t_send(c, c->a, "six", 3, 0);
	t_recvmsg(c, c->b, shape, 1, 1, 1, 0);
	t_send(c, c->a, "seven", 5, 0);
	T_RECORD(c, "recvfrom(b,buf,100,0,NULL,NULL)",
		 usp_recvfrom(c->b, (char[100]){ 0 }, 100, 0, NULL, NULL));
	drain(c, c->b);
}

static void scenario_sendto_addresses(struct t_ctx *c)
{
	struct sockaddr_un missing_path, abstract, short_un;
	struct sockaddr_storage inet;
	memset(&missing_path, 0, sizeof(missing_path));
	missing_path.sun_family = AF_UNIX;
	strcpy(missing_path.sun_path, "/nonexistent-dir/uspair-test-socket");
	memset(&abstract, 0, sizeof(abstract));
	abstract.sun_family = AF_UNIX;
	memcpy(abstract.sun_path, "\0uspair-test-no-such-name", 26);
	memset(&short_un, 0, sizeof(short_un));
	short_un.sun_family = AF_UNIX;
	memset(&inet, 0, sizeof(inet));
	inet.ss_family = AF_INET;

	t_sendto(c, c->a, "n0", 2, 0, NULL, 0, "NULL");
	t_sendto(c, c->a, "n1", 2, 0, NULL, 16, "NULL");
	t_sendto(c, c->a, "p1", 2, MSG_DONTWAIT, (struct sockaddr *)&missing_path,
		 sizeof(missing_path), "/nonexistent-dir/uspair-test-socket");
	t_sendto(c, c->a, "p2", 2, MSG_DONTWAIT, (struct sockaddr *)&abstract,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 26),
		 "@uspair-test-no-such-name");
	t_sendto(c, c->a, "p3", 2, MSG_DONTWAIT, (struct sockaddr *)&short_un,
		 sizeof(sa_family_t), "{AF_UNIX} (autobind name)");
	t_sendto(c, c->a, "p4", 2, MSG_DONTWAIT, (struct sockaddr *)&short_un, 1,
		 "1-byte address");
	t_sendto(c, c->a, "p5", 2, MSG_DONTWAIT, (struct sockaddr *)&inet, 16,
		 "{AF_INET}");
	t_sendto(c, c->a, "p6", 2, MSG_DONTWAIT, (struct sockaddr *)&missing_path,
		 sizeof(missing_path) + 100, "oversized addrlen");
	t_sendto(c, c->a, "p7", 2, MSG_DONTWAIT, (struct sockaddr *)&missing_path,
		 (socklen_t)-1, "addrlen -1");

	struct msghdr msg;
	struct iovec iov = { .iov_base = "m1", .iov_len = 2 };
	memset(&msg, 0, sizeof(msg));
	msg.msg_name = &missing_path;
	msg.msg_namelen = sizeof(missing_path);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	T_RECORD(c, "sendmsg(a,{name=/nonexistent-dir/...,\"m1\"},MSG_DONTWAIT)",
		 usp_sendmsg(c->a, &msg, MSG_DONTWAIT));
	drain(c, c->b);
	t_getsockopt_int(c, c->a, SOL_SOCKET, SO_ERROR, "SO_ERROR");
}

static void scenario_oob(struct t_ctx *c)
{
	t_recv(c, c->b, 1, MSG_OOB | MSG_DONTWAIT);
	t_send(c, c->a, "abc", 3, 0);
	t_send(c, c->a, "X", 1, MSG_OOB | MSG_DONTWAIT);
	t_send(c, c->a, "def", 3, 0);
	t_poll1(c, c->b, POLLIN | POLLPRI | POLLRDBAND);
	t_ioctl_int(c, c->b, SIOCATMARK, "SIOCATMARK");
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_ioctl_int(c, c->b, SIOCATMARK, "SIOCATMARK");
	t_recv(c, c->b, 100, MSG_OOB | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_OOB | MSG_DONTWAIT);
	t_poll1(c, c->b, POLLIN | POLLPRI);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_send(c, c->a, "long", 4, MSG_OOB | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_OOB | MSG_DONTWAIT);
	drain(c, c->b);
}

/* Address-length arguments: negative as an int, or a NULL length pointer
 * (EFAULT after the data was taken). */
static void scenario_name_lengths(struct t_ctx *c)
{
	struct sockaddr_storage ss;
	char buf[16];
	socklen_t len = (socklen_t)-5;
	t_send(c, c->a, "one", 3, 0);
	T_RECORD(c, "recvfrom(b, addr, NULL length)",
		 usp_recvfrom(c->b, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss, NULL));
	t_send(c, c->a, "two", 3, 0);
	T_RECORD(c, "recvfrom(b, addr, length -5)",
		 usp_recvfrom(c->b, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss, &len));
	t_recv(c, c->b, 16, MSG_DONTWAIT);
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr m = { .msg_name = &ss, .msg_namelen = 0x80000000u, .msg_iov = &iov,
			    .msg_iovlen = 1 };
	t_send(c, c->a, "three", 5, 0);
	T_RECORD(c, "recvmsg(b, namelen 2^31)", usp_recvmsg(c->b, &m, MSG_DONTWAIT));
	m.msg_namelen = 0x80000000u;
	T_RECORD(c, "sendmsg(a, namelen 2^31)", usp_sendmsg(c->a, &m, MSG_DONTWAIT));
	m.msg_name = NULL;
	T_RECORD(c, "recvmsg(b, no name, namelen 2^31)", usp_recvmsg(c->b, &m, MSG_DONTWAIT));
	drain(c, c->b);
}

/* Flags the kernel accepts, ignores or refuses on each socket type. */
static void scenario_flags(struct t_ctx *c)
{
	static const struct {
		int flag;
		const char *name;
	} send_flags[] = {
		{ MSG_EOR, "MSG_EOR" },
		{ MSG_MORE, "MSG_MORE" },
		{ MSG_CONFIRM, "MSG_CONFIRM" },
		{ MSG_DONTROUTE, "MSG_DONTROUTE" },
		{ MSG_PEEK, "MSG_PEEK" },
		{ MSG_WAITALL, "MSG_WAITALL" },
		{ MSG_TRUNC, "MSG_TRUNC" },
		{ MSG_ERRQUEUE, "MSG_ERRQUEUE" },
		{ MSG_CMSG_CLOEXEC, "MSG_CMSG_CLOEXEC" },
		{ MSG_FASTOPEN, "MSG_FASTOPEN" },
		{ (int)0x80000000u, "0x80000000" },
		{ 0x10000000, "0x10000000" },
	};
	for (size_t i = 0; i < sizeof(send_flags) / sizeof(send_flags[0]); i++) {
		char data[8];
		snprintf(data, sizeof(data), "f%zu", i);
		t_send(c, c->a, data, strlen(data), send_flags[i].flag | MSG_DONTWAIT);
	}
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_recv(c, c->b, 100, MSG_ERRQUEUE | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_EOR | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_MORE | MSG_DONTWAIT);
	t_recv(c, c->b, 100, MSG_NOSIGNAL | MSG_DONTWAIT);
	t_recv(c, c->b, 100, (int)0x80000000u | MSG_DONTWAIT);
	static const size_t shape[] = { 100 };
	t_recvmsg(c, c->b, shape, 1, 0, 0, MSG_DONTWAIT);
	drain(c, c->b);
	/* MSG_EOR through sendmsg on a record type */
	t_sendmsg(c, c->a, shape, 1, 3, MSG_EOR);
	t_recvmsg(c, c->b, shape, 1, 0, 0, MSG_DONTWAIT);
	drain(c, c->b);
}

/* The largest record: sk_sndbuf - 32 for DGRAM/SEQPACKET. */
static void scenario_size_limits(struct t_ctx *c)
{
	int sndbuf = t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	if (sndbuf > 0) {
		for (int delta = -33; delta <= -31; delta++)
			t_send_pattern(c, c->a, (size_t)(sndbuf + delta), 1, MSG_DONTWAIT);
		drain(c, c->b);
	}
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 4608, "SO_SNDBUF");
	sndbuf = t_getsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF");
	if (sndbuf > 0) {
		for (int delta = -33; delta <= -31; delta++) {
			t_send_pattern(c, c->a, (size_t)(sndbuf + delta), 2, MSG_DONTWAIT);
			t_queues(c);
			drain(c, c->b);
		}
		t_send_pattern(c, c->a, (size_t)sndbuf * 3, 3, MSG_DONTWAIT);
		t_queues(c);
		drain(c, c->b);
	}
	/* and a receiver whose own SO_SNDBUF is tiny does not matter */
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_SNDBUF, 1, "SO_SNDBUF");
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_RCVBUF, 1, "SO_RCVBUF");
	t_send_pattern(c, c->a, 4000, 4, MSG_DONTWAIT);
	t_send_pattern(c, c->a, 4000, 5, MSG_DONTWAIT);
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	drain(c, c->b);
}

/* Descriptors that are not (or no longer) uspair endpoints. */
static void scenario_bad_descriptors(struct t_ctx *c)
{
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		t_die("pipe2: %s", strerror(errno));
	char buf[16];
	int one = 1;
	socklen_t len = sizeof(one);
	T_RECORD(c, "send(-1,\"x\",1,0)", usp_send(-1, "x", 1, 0));
	T_RECORD(c, "recv(-1,16,MSG_DONTWAIT)", usp_recv(-1, buf, sizeof(buf), MSG_DONTWAIT));
	T_RECORD(c, "send(pipe_w,\"x\",1,0)", usp_send(pipefd[1], "x", 1, 0));
	T_RECORD(c, "recv(pipe_r,16,MSG_DONTWAIT)", usp_recv(pipefd[0], buf, sizeof(buf), MSG_DONTWAIT));
	T_RECORD(c, "write(pipe_w,\"y\",1)", usp_write(pipefd[1], "y", 1));
	T_RECORD(c, "read(pipe_r,16)", usp_read(pipefd[0], buf, sizeof(buf)));
	T_RECORD(c, "shutdown(pipe_r,SHUT_RDWR)", usp_shutdown(pipefd[0], SHUT_RDWR));
	T_RECORD(c, "getsockopt(pipe_r,SO_TYPE)", usp_getsockopt(pipefd[0], SOL_SOCKET, SO_TYPE, &one, &len));
	T_RECORD(c, "is_uspair(pipe_r)", usp_is_uspair(pipefd[0]));
	close(pipefd[0]);
	close(pipefd[1]);

	/* an endpoint used after usp_close */
	int a = c->a;
	t_close(c, a);
	T_RECORD(c, "send(closed a,\"x\",1,MSG_DONTWAIT)", usp_send(a, "x", 1, MSG_DONTWAIT));
	T_RECORD(c, "recv(closed a,16,MSG_DONTWAIT)", usp_recv(a, buf, sizeof(buf), MSG_DONTWAIT));
	T_RECORD(c, "shutdown(closed a,SHUT_WR)", usp_shutdown(a, SHUT_WR));
	T_RECORD(c, "fcntl(closed a,F_GETFL)", usp_fcntl(a, F_GETFL));
	T_RECORD(c, "dup(closed a)", usp_dup(a));
	T_RECORD(c, "close(closed a)", usp_close(a));
	T_RECORD(c, "is_uspair(closed a)", usp_is_uspair(a));
	struct pollfd p = { .fd = a, .events = POLLIN };
	T_RECORD(c, "poll(closed a,IN,0)", usp_poll(&p, 1, 0));
	t_log(c, "  revents=0x%x", (unsigned)p.revents);
	/* dup2 corner cases on the live end */
	T_RECORD(c, "dup2(b,-1)", usp_dup2(c->b, -1));
	T_RECORD(c, "dup2(-1,b)", usp_dup2(-1, c->b));
	T_RECORD(c, "dup2(b,b) == b", usp_dup2(c->b, c->b) == c->b);
	T_RECORD(c, "dup2(closed a,b)", usp_dup2(a, c->b));
	t_poll1(c, c->b, POLLIN | POLLOUT | POLLRDHUP);
	t_recv(c, c->b, 16, MSG_DONTWAIT);
}

/* Ancillary data: SCM_RIGHTS and SCM_CREDENTIALS. */
static void record_control(struct t_ctx *c, struct msghdr *msg, ssize_t r,
			   int err, const struct stat *expected)
{
	char mfl[200];
	if (r < 0) {
		t_record(c, "recvmsg with a control buffer", r, err);
		return;
	}
	t_fmt_msg_flags(mfl, sizeof(mfl), msg->msg_flags);
	t_log(c, "recvmsg with a control buffer = %zd msg_flags=%s controllen=%zu", r, mfl,
	      (size_t)msg->msg_controllen);
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		t_log(c, "  cmsg level=%d type=%d len=%zu", cm->cmsg_level, cm->cmsg_type,
		      (size_t)cm->cmsg_len);
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < n; i++) {
				int fd;
				struct stat st;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				int same = fstat(fd, &st) == 0 && st.st_ino == expected->st_ino &&
					   st.st_dev == expected->st_dev;
				int cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
				t_log(c, "  fd #%d: same file as sent: %s, FD_CLOEXEC=%d", i,
				      same ? "yes" : "no", cloexec);
				close(fd);
			}
		} else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;
			memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
			t_log(c, "  credentials: pid %s, uid %s, gid %s",
			      cred.pid == getpid() ? "ours" : "NOT ours",
			      cred.uid == getuid() ? "ours" : "NOT ours",
			      cred.gid == getgid() ? "ours" : "NOT ours");
		}
	}
}

static ssize_t send_fds(int fd, const int *fds, int n, const char *data)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} control;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = strlen(data) };
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	memset(&control, 0, sizeof(control));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n);
	return usp_sendmsg(fd, &msg, MSG_DONTWAIT);
}

static void receive_control(struct t_ctx *c, int fd, size_t control_len, int flags,
			    const struct stat *expected)
{
	union {
		struct cmsghdr align;
		char buf[512];
	} control;
	char data[64];
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.buf;
	msg.msg_controllen = control_len;
	errno = 0;
	ssize_t r = usp_recvmsg(fd, &msg, flags | MSG_DONTWAIT);
	record_control(c, &msg, r, errno, expected);
}

static void scenario_scm_rights(struct t_ctx *c)
{
	int pipefd[2];
	struct stat st;
	if (pipe2(pipefd, O_CLOEXEC) < 0 || fstat(pipefd[0], &st) < 0)
		t_die("pipe2: %s", strerror(errno));
	int fds_before = t_count_open_fds();
	T_RECORD(c, "sendmsg(a,\"r1\",SCM_RIGHTS{pipe_r})", send_fds(c->a, pipefd, 1, "r1"));
	T_RECORD(c, "sendmsg(a,\"r2\",SCM_RIGHTS{pipe_r,pipe_r})",
		 send_fds(c->a, (int[2]){ pipefd[0], pipefd[0] }, 2, "r2"));
	T_RECORD(c, "sendmsg(a,\"r3\",SCM_RIGHTS{-1})", send_fds(c->a, (int[1]){ -1 }, 1, "r3"));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	receive_control(c, c->b, 512, MSG_CMSG_CLOEXEC, &st);
	receive_control(c, c->b, CMSG_LEN(sizeof(int)), 0, &st); /* room for one of two */
	receive_control(c, c->b, 512, 0, &st);
	close(pipefd[0]);
	close(pipefd[1]);
	t_log(c, "descriptors left open by the transfers: %d", t_count_open_fds() - fds_before + 2);
	drain(c, c->b);
}

static void scenario_scm_credentials(struct t_ctx *c)
{
	struct stat st;
	memset(&st, 0, sizeof(st));
	t_setsockopt_int(c, c->b, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	t_send(c, c->a, "cred", 4, 0);
	receive_control(c, c->b, 512, 0, &st);
	t_send(c, c->a, "cred", 4, 0);
	receive_control(c, c->b, 4, 0, &st);
	t_send(c, c->a, "nocontrol", 9, 0);
	t_recv(c, c->b, 100, MSG_DONTWAIT);
	drain(c, c->b);
}

/*
 * The kernel charges each queued skb's truesize (slab-rounded head, the
 * sk_buff, whole pages for the paged part); SIOCOUTQ shows it.  A sweep of
 * sizes across the allocation size classes, one message at a time.
 */
static void scenario_truesize_sweep(struct t_ctx *c)
{
	static const size_t marks[] = { 0, 1, 64, 127, 128, 129, 191, 192, 255, 256, 257,
					447, 448, 511, 512, 513, 959, 960, 1023, 1024, 1025,
					1983, 1984, 2047, 2048, 2049, 3071, 3072, 3776, 3777,
					3800, 3840, 3904, 4031, 4032, 4033, 4095, 4096, 4097,
					6000, 8191, 8192, 8193, 12288, 16383, 16384, 16385,
					32767, 32768, 32769, 65535, 65536, 65537, 100000,
					106431, 106432, 106433, 150000, 200000 };
	char line[1400];
	size_t used = 0;
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		size_t len = marks[i];
		unsigned char *buf = malloc(len ? len : 1);
		memset(buf, 'x', len);
		errno = 0;
		ssize_t r = usp_send(c->a, buf, len, MSG_DONTWAIT);
		int err = errno;
		int outq = -1, inq = -1;
		usp_ioctl(c->a, SIOCOUTQ, &outq);
		usp_ioctl(c->b, FIONREAD, &inq);
		if (r >= 0)
			used += (size_t)snprintf(line + used, sizeof(line) - used, " %zu:%zd/%d/%d",
						 len, r, outq, inq);
		else
			used += (size_t)snprintf(line + used, sizeof(line) - used, " %zu:%s", len,
						 t_errno_name(err));
		while (usp_recv(c->b, buf, len ? len : 1, MSG_DONTWAIT) > 0)
			;
		free(buf);
		if (used > 1000 || i + 1 == sizeof(marks) / sizeof(marks[0])) {
			t_log(c, "size:sent/SIOCOUTQ/FIONREAD%s", line);
			used = 0;
			line[0] = 0;
		}
	}
	/* and with a small send buffer, where STREAM cuts sends into smaller skbs */
	t_setsockopt_int(c, c->a, SOL_SOCKET, SO_SNDBUF, 20000, "SO_SNDBUF");
	for (size_t len = 1000; len <= 64000; len += 7000) {
		errno = 0;
		unsigned char *buf = malloc(len);
		memset(buf, 'y', len);
		ssize_t r = usp_send(c->a, buf, len, MSG_DONTWAIT);
		int err = errno;
		int outq = -1;
		usp_ioctl(c->a, SIOCOUTQ, &outq);
		char res[64];
		t_fmt_result(res, sizeof(res), r, err);
		t_log(c, "SO_SNDBUF 20000: send %zu %s, SIOCOUTQ %d", len, res, outq);
		while (usp_recv(c->b, buf, len, MSG_DONTWAIT) > 0)
			;
		free(buf);
	}
}

/* FIONREAD/SIOCINQ and SIOCOUTQ of both ends after each step. */
static void scenario_queue_lengths(struct t_ctx *c)
{
	t_queues(c);
	t_ioctl_int(c, c->b, SIOCINQ, "SIOCINQ");
	t_send_pattern(c, c->a, 1, 1, 0);
	t_queues(c);
	t_send_pattern(c, c->a, 100, 2, 0);
	t_queues(c);
	t_send_pattern(c, c->a, 0, 3, 0);
	t_queues(c);
	t_send_pattern(c, c->a, 4096, 4, 0);
	t_queues(c);
	t_ioctl_int(c, c->b, SIOCINQ, "SIOCINQ");
	t_send_pattern(c, c->b, 70000, 5, 0);
	t_queues(c);
	t_recv(c, c->b, 50, 0);
	t_queues(c);
	t_recv(c, c->b, 50, MSG_PEEK);
	t_queues(c);
	for (int i = 0; i < 5; i++) {
		if (t_recv(c, c->b, 1000, MSG_DONTWAIT) < 0)
			break;
		t_queues(c);
	}
	t_recv(c, c->a, 100000, MSG_DONTWAIT);
	t_queues(c);
	drain(c, c->b);
	t_queues(c);
}

#ifndef T_SANITIZER_INTERCEPTS
/* Bad pointers with a non-zero length: EFAULT, not a crash. */
static void scenario_bad_pointers(struct t_ctx *c)
{
	void *bad = (void *)8;
	struct iovec iov = { .iov_base = NULL, .iov_len = 5 };
	T_RECORD(c, "send(a,NULL,5,MSG_DONTWAIT)", usp_send(c->a, NULL, 5, MSG_DONTWAIT));
	T_RECORD(c, "send(a,(void*)8,5,MSG_DONTWAIT)", usp_send(c->a, bad, 5, MSG_DONTWAIT));
	T_RECORD(c, "write(a,NULL,5)", usp_write(c->a, NULL, 5));
	T_RECORD(c, "writev(a,{NULL,5},1)", usp_writev(c->a, &iov, 1));
	T_RECORD(c, "writev(a,(void*)8,1)", usp_writev(c->a, bad, 1));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	t_send(c, c->a, "hello", 5, 0);
	T_RECORD(c, "recv(b,NULL,5,MSG_DONTWAIT)", usp_recv(c->b, NULL, 5, MSG_DONTWAIT));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	T_RECORD(c, "recv(b,(void*)8,5,MSG_DONTWAIT)", usp_recv(c->b, bad, 5, MSG_DONTWAIT));
	t_ioctl_int(c, c->b, FIONREAD, "FIONREAD");
	T_RECORD(c, "recvmsg(b,(void*)8,MSG_DONTWAIT)", usp_recvmsg(c->b, bad, MSG_DONTWAIT));
	T_RECORD(c, "sendmsg(a,(void*)8,MSG_DONTWAIT)", usp_sendmsg(c->a, bad, MSG_DONTWAIT));
	drain(c, c->b);
}
#endif

int main(void)
{
	t_init("io_basic");
	t_compare_matrix("sizes", scenario_sizes, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("iovecs", scenario_iovecs, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("boundaries", scenario_boundaries, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("zero_length", scenario_zero_length, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("null_buffers", scenario_null_buffers, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("truncation", scenario_truncation, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("peek", scenario_peek, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("peek_offset", scenario_peek_offset, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("waitall", scenario_waitall, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("empty_receives", scenario_empty_receives, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("message_names", scenario_message_names, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("sendto_addresses", scenario_sendto_addresses, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("oob", scenario_oob, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("name_lengths", scenario_name_lengths, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS,
			 NULL);
	t_compare_matrix("flags", scenario_flags, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("size_limits", scenario_size_limits, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("bad_descriptors", scenario_bad_descriptors, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	/* more ancillary data in test/scm.c */
	t_compare_matrix("scm_rights", scenario_scm_rights, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("scm_credentials", scenario_scm_credentials, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
	t_compare_matrix("truesize_sweep", scenario_truesize_sweep, T_ALL_TYPES, T_ALL_MODES, T_DIR_0_TO_1, NULL);
	t_compare_matrix("queue_lengths", scenario_queue_lengths, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
#ifdef T_SANITIZER_INTERCEPTS
	t_note("bad_pointers scenario not run: sanitizer interceptors dereference bad pointers");
#else
	t_compare_matrix_isolated("bad_pointers", scenario_bad_pointers, T_ALL_TYPES, T_ALL_MODES, T_ALL_DIRS, NULL);
#endif
	return t_finish();
}
