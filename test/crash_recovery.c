/*
 * A holder killed in the middle of an operation: SIGKILL a child that is
 * sending on an endpoint this process also sends on, at random moments,
 * many times.  Afterwards the survivor must (1) still be able to send on
 * that endpoint (the send lock was recovered, no hang), and (2) the
 * reader must only ever see whole records, each intact, never a partial
 * one.  Also: once every holder has closed a pair, its shared memory is
 * unmapped (no region is left in /proc/self/maps).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uspair.h>

#define RECORD 3000 /* big enough that a kill often lands mid-copy */

static int failures;

static void fail(const char *what, int type)
{
	fprintf(stderr, "FAIL (type %d): %s\n", type, what);
	failures++;
}

static void fill_record(unsigned char *buf, unsigned tag)
{
	memcpy(buf, &tag, sizeof(tag));
	for (size_t i = sizeof(tag); i < RECORD; i++)
		buf[i] = (unsigned char)(tag * 31 + i);
}

static int record_ok(const unsigned char *buf, size_t len)
{
	unsigned tag;
	if (len != RECORD)
		return 0;
	memcpy(&tag, buf, sizeof(tag));
	for (size_t i = sizeof(tag); i < RECORD; i++)
		if (buf[i] != (unsigned char)(tag * 31 + i))
			return 0;
	return 1;
}

/* Read and check what is queued, at most max_records (a live sender
 * faster than the checks, under TSan, would keep the queue from ever
 * emptying); returns the number of records. */
static int drain_and_check(int fd, int type, int max_records)
{
	static unsigned char buf[RECORD * 2];
	int n = 0;
	while (n < max_records) {
		ssize_t r = usp_recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0)
			break;
		if (type == SOCK_STREAM) {
			/* a stream has no boundaries; read exact records */
			if (r % RECORD) {
				ssize_t more = RECORD - r % RECORD;
				ssize_t got = usp_recv(fd, buf + r, (size_t)more, MSG_WAITALL);
				if (got != more) {
					fail("partial data visible in the stream", type);
					return n;
				}
				r += more;
			}
			for (ssize_t off = 0; off < r; off += RECORD)
				if (!record_ok(buf + off, RECORD))
					fail("corrupt record in the stream", type);
			n += (int)(r / RECORD);
		} else {
			if (!record_ok(buf, (size_t)r))
				fail("partial or corrupt record", type);
			n++;
		}
	}
	return n;
}

static void kill_senders(int type)
{
	int sv[2];
	if (usp_socketpair(AF_UNIX, type, 0, sv) != 0) {
		fail("usp_socketpair", type);
		return;
	}
	int nonblock = 1;
	usp_ioctl(sv[1], FIONBIO, &nonblock);
	unsigned char rec[RECORD];
	srand(42);
	for (int round = 0; round < 60; round++) {
		pid_t child = fork();
		if (child == 0) {
			for (unsigned tag = 1;; tag++) {
				fill_record(rec, tag);
				if (usp_send(sv[0], rec, RECORD, MSG_NOSIGNAL) != RECORD)
					_exit(1);
			}
		}
		/* let it run into full buffers and copies, then kill it */
		struct timespec ts = {0, (rand() % 2000) * 1000L};
		nanosleep(&ts, NULL);
		drain_and_check(sv[1], type, 200); /* the sender still runs */
		nanosleep(&ts, NULL);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		drain_and_check(sv[1], type, INT_MAX);
		/* the survivor can still send on the same endpoint */
		fill_record(rec, 0xabcd0000u + (unsigned)round);
		alarm(10); /* a lock left held would hang here */
		if (usp_send(sv[0], rec, RECORD, MSG_DONTWAIT | MSG_NOSIGNAL) != RECORD)
			fail("survivor could not send after the kill", type);
		alarm(0);
		if (drain_and_check(sv[1], type, INT_MAX) < 1)
			fail("survivor's record did not arrive", type);
	}
	usp_close(sv[0]);
	usp_close(sv[1]);
}

int usp__region_cache_count(void); /* internal (src/pair.c), for this check */

/* Regions mapped and in use: an idle region stays mapped in the process's
 * region cache for the next pair. */
static int count_shared_regions(void)
{
	/* uspair's regions are the only shared anonymous mappings of this
	 * test larger than 32 MiB */
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int n = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[3] == 's' &&
		    hi - lo > (32ul << 20) && strstr(line, "/dev/zero"))
			n++;
	}
	if (f)
		fclose(f);
	return n - usp__region_cache_count();
}

static void memory_released(void)
{
	int before = count_shared_regions();
	int sv[2];
	usp_socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	if (count_shared_regions() != before + 1)
		fail("a pair's region is not where expected in /proc/self/maps", SOCK_STREAM);
	usp_close(sv[0]);
	if (count_shared_regions() != before + 1)
		fail("region unmapped while one end is still open", SOCK_STREAM);
	usp_close(sv[1]);
	if (count_shared_regions() != before)
		fail("region still mapped after both ends were closed", SOCK_STREAM);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	memory_released();
	const int types[] = {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM};
	for (int i = 0; i < 3; i++)
		kill_senders(types[i]);
	if (failures) {
		fprintf(stderr, "crash_recovery: %d failures\n", failures);
		return 1;
	}
	printf("crash_recovery: 180 SIGKILLs mid-send, survivors sent after each, no partial record\n");
	return 0;
}
