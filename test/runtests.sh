#!/bin/sh
# Runs each test binary given as an argument, each under a time limit.
# Prints one line per test (PASS/FAIL/SKIP and seconds), the output of every
# test that did not pass, and finally "N passed, N failed, N skipped".
# Exit status 1 if any test failed.
#
# Environment: TEST_TIMEOUT (seconds per test, default 120),
# VERBOSE=1 (print every test's output), SAN and BUILD (informational).

timeout_s=${TEST_TIMEOUT:-120}
if [ -n "$SAN" ]; then
	echo "sanitizer build: SAN=$SAN${BUILD:+ (BUILD=$BUILD)}"
fi

passed=0
failed=0
skipped=0
log=$(mktemp "${TMPDIR:-/tmp}/uspair-test.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT INT TERM

now() {
	date +%s.%N
}

for t in "$@"; do
	name=$(basename "$t")
	start=$(now)
	if command -v timeout >/dev/null 2>&1; then
		timeout -k 5 "$timeout_s" "$t" >"$log" 2>&1
	else
		"$t" >"$log" 2>&1
	fi
	rc=$?
	end=$(now)
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
	case $rc in
	0)
		passed=$((passed + 1))
		printf 'PASS %-20s %7ss\n' "$name" "$secs"
		[ "${VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$log"
		;;
	77)
		skipped=$((skipped + 1))
		reason=$(grep -m1 '^SKIP' "$log" | cut -c1-200)
		printf 'SKIP %-20s %7ss  %s\n' "$name" "$secs" "$reason"
		[ "${VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$log"
		;;
	*)
		failed=$((failed + 1))
		why="exit $rc"
		[ $rc = 124 ] && why="timed out after ${timeout_s}s"
		[ $rc = 137 ] && why="killed (timeout -k or SIGKILL)"
		[ $rc -gt 128 ] && [ $rc != 137 ] && why="exit $rc (signal $((rc - 128))?)"
		printf 'FAIL %-20s %7ss  (%s)\n' "$name" "$secs" "$why"
		lines=$(wc -l <"$log")
		if [ "${VERBOSE:-0}" != 1 ] && [ "$lines" -gt 400 ]; then
			head -n 300 "$log" | sed 's/^/    /'
			echo "    ... ($((lines - 300)) more lines; last 50:)"
			tail -n 50 "$log" | sed 's/^/    /'
		else
			sed 's/^/    /' "$log"
		fi
		;;
	esac
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
