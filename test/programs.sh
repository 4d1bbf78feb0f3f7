#!/bin/bash
# programs: real programs nobody here wrote, each run without uspair and
# under `uspair run`, with the same output required, and the USPAIR_STATS
# lines showing that the program's pairs were uspair's.
#
# Python's test_selectors and the socketpair tests of test_socket (Debian's
# libpython3.11-testsuite), multiprocessing.Pipe with the fork, spawn and
# forkserver start methods, asyncio, AF_TIPC pairs from Python (against
# stored answers when the kernel has no TIPC), Node's child_process stdio, and rsync
# (a local copy: rsync talks to its own forked receiver over socketpairs).
# A program that is not installed is skipped with a note; if none is, the
# test is skipped (exit 77).
#
# Environment: BUILD (default build), SAN (set by make for sanitizer
# builds: then skipped, since a sanitizer runtime cannot be preloaded into
# programs built without it).

set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-build}
uspair="$build/uspair"
if [ -n "${SAN:-}" ]; then
	echo "SKIP: real programs run in the plain build (a $SAN runtime cannot be preloaded into them)"
	exit 77
fi
if [ ! -x "$uspair" ] || [ ! -r "$build/libuspair-preload.so" ]; then
	echo "SKIP: $uspair or $build/libuspair-preload.so not built"
	exit 77
fi
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/uspair-programs.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

ran=0
failed=0

# check NAME PATH NORMALIZE CMD...: runs CMD twice, compares the outputs
# (after the sed expression NORMALIZE, for timings), checks the stats:
# pairs made, and bytes on PATH: fast (shared memory) or fallback (the
# pairs went to the kernel: epoll, exec, SCM_RIGHTS).
check() {
	local name=$1 path=$2 normalize=$3
	shift 3
	local stats="$work/stats"
	rm -f "$stats"
	"$@" >"$work/plain.out" 2>&1
	local rc_plain=$?
	USPAIR_STATS="$stats" "$uspair" run -- "$@" >"$work/uspair.out" 2>&1
	local rc_uspair=$?
	sed -i -e "$normalize" "$work/plain.out" "$work/uspair.out"
	ran=$((ran + 1))
	# the process lines that made pairs, summed
	local sum
	sum=$(awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
		END { printf "pairs=%d fast_bytes=%d fallback_bytes=%d sleeps=%d",
		      s["pairs"], s["fast_bytes"], s["fallback_bytes"], s["sleeps"] }' \
		"$stats" 2>/dev/null)
	local pairs bytes
	pairs=$(echo "$sum" | sed 's/^pairs=\([0-9]*\).*/\1/')
	bytes=$(echo "$sum" | sed "s/.* ${path}_bytes=\([0-9]*\).*/\1/")
	if [ "$rc_plain" != 0 ] || [ "$rc_uspair" != 0 ] ||
		! cmp -s "$work/plain.out" "$work/uspair.out" || [ "${pairs:-0}" = 0 ] ||
		[ "${bytes:-0}" = 0 ]; then
		failed=$((failed + 1))
		echo "FAIL $name: exit $rc_plain without uspair, $rc_uspair with; $sum"
		diff "$work/plain.out" "$work/uspair.out" | head -20
		tail -5 "$work/uspair.out"
	else
		echo "ok   $name: same output ($(wc -l <"$work/plain.out") lines); $sum"
	fi
}

skip() {
	echo "skip $1: $2"
}

# AF_TIPC pairs from Python.  A kernel with TIPC answers for itself (the
# usual check); one without says EAFNOSUPPORT, and the output must then be
# the stored one, which is what the TIPC kernels recorded in test/data/
# answer for these steps.
check_tipc_python() {
	local script="$here/programs/tipc_pair.py"
	if "$python" -c 'import socket; socket.socketpair(socket.AF_TIPC, socket.SOCK_RDM)' 2>/dev/null; then
		check "python AF_TIPC pairs" fast "" "$python" "$script"
		return
	fi
	local stats="$work/stats"
	rm -f "$stats"
	ran=$((ran + 1))
	if USPAIR_STATS="$stats" "$uspair" run -- "$python" "$script" >"$work/tipc.out" 2>&1 &&
		cmp -s "$work/tipc.out" "$here/programs/tipc_pair.expected" &&
		grep -q 'pairs=[1-9]' "$stats"; then
		echo "ok   python AF_TIPC pairs: the stored TIPC answers (no TIPC in this kernel)"
	else
		failed=$((failed + 1))
		echo "FAIL python AF_TIPC pairs: not the stored TIPC answers"
		diff "$here/programs/tipc_pair.expected" "$work/tipc.out" | head -20
	fi
}

timing='s/in [0-9.]*s$/in Xs/'
if [ -x "$python" ] && "$python" -c 'import test.test_selectors, test.test_socket' 2>/dev/null; then
	check "python test_selectors" fast "$timing" "$python" -m unittest test.test_selectors
	check "python test_socket (socketpair tests)" fast "$timing" "$python" -m unittest -v \
		-k SocketPair -k test_socketpair -k sendall_interrupted -k SendRecvFds \
		test.test_socket
else
	skip "python test_selectors, test_socket" "no $python with the test package (libpython3.11-testsuite)"
fi
if [ -x "$python" ]; then
	check "multiprocessing.Pipe (fork)" fast "" "$python" "$here/programs/mp_pipe.py" fork
	# the worker's end goes through exec or SCM_RIGHTS: the kernel path
	for method in spawn forkserver; do
		check "multiprocessing.Pipe ($method)" fallback "" "$python" \
			"$here/programs/mp_pipe.py" $method
	done
	check "asyncio" fast "" "$python" "$here/programs/asyncio_pair.py"
	check_tipc_python
else
	skip "multiprocessing, asyncio" "no $python"
fi
if command -v node >/dev/null 2>&1; then
	# libuv's pipes go to the child by exec and into epoll: the kernel path
	check "node child_process stdio" fallback "" node "$here/programs/child_stdio.js"
else
	skip "node child_process" "node is not installed"
fi
if command -v rsync >/dev/null 2>&1; then
	mkdir -p "$work/src/sub"
	for i in $(seq 1 40); do
		head -c $((i * 4099)) /dev/urandom >"$work/src/f$i"
	done
	head -c 3000000 /dev/urandom >"$work/src/sub/big"
	copy_and_compare() {
		rm -rf "$work/dst" && rsync -a "$work/src/" "$work/dst/" && diff -r "$work/src" "$work/dst" &&
			echo "copied and equal"
	}
	export -f copy_and_compare
	export work
	check "rsync local copy" fast "" bash -c copy_and_compare
else
	skip "rsync" "rsync is not installed"
fi

if [ "$ran" = 0 ]; then
	echo "SKIP: none of the programs is installed"
	exit 77
fi
echo "programs: $ran run, $failed failed"
[ "$failed" = 0 ]
