/*
 * `uspair run [--] CMD [ARGS...]`: runs CMD with libuspair-preload.so in
 * LD_PRELOAD, so that its socketpair(AF_UNIX and AF_TIPC) pairs are uspair's.
 * The preload follows CMD's children through the environment.
 *
 * The preload is looked for in $USPAIR_PRELOAD, then beside this program
 * (the build directory), then in ../lib relative to it (an install).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

#define PRELOAD_NAME "libuspair-preload.so"

void print_run_usage(FILE *out)
{
	fprintf(out,
		"usage: uspair run [--] COMMAND [ARGS...]\n"
		"\n"
		"Runs COMMAND with its socketpair(AF_UNIX and AF_TIPC) pairs on uspair (through\n"
		"LD_PRELOAD=" PRELOAD_NAME "); its children inherit it.\n"
		"\n"
		"Environment:\n"
		"  USPAIR_STATS=FILE   each process appends 'pid= pairs= fast_bytes=\n"
		"                      fallback_bytes= sleeps=' to FILE at exit\n"
		"  USPAIR_DISABLE=1    leave socketpair to the kernel (a pass-through)\n"
		"  USPAIR_PRELOAD=PATH the preload library to use\n"
		"\n"
		"Statically linked programs and raw syscall(2) callers are not affected.\n");
}

/* dir/name if it is readable */
static bool try_path(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	return n > 0 && (size_t)n < cap && access(out, R_OK) == 0;
}

static bool find_preload(char *out, size_t cap)
{
	const char *env = getenv("USPAIR_PRELOAD");
	if (env && *env) {
		snprintf(out, cap, "%s", env);
		return access(out, R_OK) == 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return false;
	*slash = 0;
	if (try_path(out, cap, exe, PRELOAD_NAME))
		return true;
	char lib[PATH_MAX + 8];
	snprintf(lib, sizeof(lib), "%s/../lib", exe);
	return try_path(out, cap, lib, PRELOAD_NAME);
}

int command_run(int argc, char **argv)
{
	int first = 1;
	if (first < argc && (strcmp(argv[first], "-h") == 0 || strcmp(argv[first], "--help") == 0)) {
		print_run_usage(stdout);
		return 0;
	}
	if (first < argc && strcmp(argv[first], "--") == 0)
		first++;
	if (first >= argc) {
		print_run_usage(stderr);
		return 2;
	}
	char preload[PATH_MAX];
	if (!find_preload(preload, sizeof(preload))) {
		fprintf(stderr, "uspair run: cannot find " PRELOAD_NAME
				" (set USPAIR_PRELOAD to its path)\n");
		return 127;
	}
	/* an absolute path: the command may change directory */
	char abs[PATH_MAX];
	if (realpath(preload, abs))
		snprintf(preload, sizeof(preload), "%s", abs);
	const char *old = getenv("LD_PRELOAD");
	size_t len = strlen(preload) + (old ? strlen(old) + 1 : 0) + 1;
	char *value = malloc(len);
	if (!value)
		return 127;
	snprintf(value, len, "%s%s%s", preload, old && *old ? ":" : "", old ? old : "");
	setenv("LD_PRELOAD", value, 1);
	free(value);
	execvp(argv[first], argv + first);
	int err = errno;
	fprintf(stderr, "uspair run: %s: %s\n", argv[first], strerror(err));
	return err == ENOENT ? 127 : 126;
}
