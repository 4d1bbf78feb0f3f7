/*
 * hotpath: N one-byte send+recv rounds on one uspair pair in one thread,
 * for counting instructions with callgrind (`make hotpath`), which is
 * repeatable where timings on a shared machine are not.
 *   hotpath [ROUNDS [stream|seqpacket|dgram|tipc-stream|tipc-seqpacket|tipc-rdm]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <uspair.h>

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 400000;
	const char *name = argc > 2 ? argv[2] : "stream";
	int family = AF_UNIX;
	if (strncmp(name, "tipc-", 5) == 0) {
		family = AF_TIPC;
		name += 5;
	}
	int type = SOCK_STREAM;
	if (strcmp(name, "seqpacket") == 0)
		type = SOCK_SEQPACKET;
	else if (strcmp(name, "dgram") == 0)
		type = SOCK_DGRAM;
	else if (strcmp(name, "rdm") == 0)
		type = SOCK_RDM;
	int sv[2];
	if (usp_socketpair(family, type, 0, sv) < 0) {
		perror("usp_socketpair");
		return 1;
	}
	char out = 'x', in;
	for (long i = 0; i < rounds; i++) {
		if (usp_send(sv[0], &out, 1, 0) != 1 || usp_recv(sv[1], &in, 1, 0) != 1 ||
		    in != out) {
			perror("round");
			return 1;
		}
	}
	usp_close(sv[0]);
	usp_close(sv[1]);
	return 0;
}
