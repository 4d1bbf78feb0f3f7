/*
 * aggregate: one-way 64-byte SEQPACKET throughput summed over K pairs, each
 * with its own sender and receiver process, for K = 1, 2, 4, 8; the
 * kernel's socketpair and uspair alternate in every round (`make
 * aggregate`).  Shows whether the total grows with pairs until the CPUs
 * are busy and does not collapse beyond (spinning sides must yield).
 *   aggregate [ROUNDS]
 * Every message is checked (its first byte is its sequence number).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uspair.h>

#define MSG 64
#define MAX_PAIRS 8

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Messages per second over k pairs, n messages per pair; -1 on failure. */
static double run(int kernel, int k, long n)
{
	int sv[MAX_PAIRS][2];
	for (int i = 0; i < k; i++)
		if ((kernel ? socketpair : usp_socketpair)(AF_UNIX, SOCK_SEQPACKET, 0, sv[i]) < 0) {
			perror("socketpair");
			return -1;
		}
	double t0 = now_s();
	for (int i = 0; i < k; i++) {
		if (fork() == 0) {
			unsigned char b[MSG] = {0};
			for (long j = 0; j < n; j++) {
				b[0] = (unsigned char)j;
				if ((kernel ? send(sv[i][0], b, MSG, 0) : usp_send(sv[i][0], b, MSG, 0)) != MSG)
					_exit(1);
			}
			_exit(0);
		}
		if (fork() == 0) {
			unsigned char b[MSG];
			for (long j = 0; j < n; j++)
				if ((kernel ? recv(sv[i][1], b, MSG, 0) : usp_recv(sv[i][1], b, MSG, 0)) != MSG ||
				    b[0] != (unsigned char)j)
					_exit(1);
			_exit(0);
		}
	}
	int failed = 0;
	for (int i = 0; i < 2 * k; i++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	double t = now_s() - t0;
	for (int i = 0; i < k; i++) {
		(kernel ? close : usp_close)(sv[i][0]);
		(kernel ? close : usp_close)(sv[i][1]);
	}
	return failed ? -1 : (double)k * (double)n / t;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	static const int ks[] = {1, 2, 4, 8};
	printf("aggregate one-way SEQPACKET %d B throughput, M messages/s (%ld CPUs)\n", MSG,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("round pairs   kernel   uspair  x kernel\n");
	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
			int k = ks[i];
			double kr = run(1, k, 400000 / k), ur = run(0, k, 2000000 / k);
			if (kr < 0 || ur < 0) {
				fprintf(stderr, "aggregate: a sender or receiver failed (pairs %d)\n", k);
				return 1;
			}
			printf("%5d %5d %8.2f %8.2f %8.2fx\n", r, k, kr / 1e6, ur / 1e6, ur / kr);
			fflush(stdout);
		}
	return 0;
}
