#!/usr/bin/env bash
# Instructions per one-byte send+recv round, counted by callgrind (`make
# hotpath`): the repeatable measure for hot-path work.  Builds
# scripts/hotpath.c against $BUILD/libuspair.a, with and without
# link-time optimisation at the final link, and against the shared
# library, and prints the counts.
set -eu
build=${BUILD:-build}
rounds=${HOTPATH_ROUNDS:-400000}
cc=${CC:-cc}
if ! command -v valgrind >/dev/null; then
	echo "hotpath: valgrind not installed (apt-get install valgrind)"
	exit 77
fi
# the static library with and without LTO at the final link, then the
# shared library (what the preload's users run: its calls go through the
# PLT and its thread-local data is reached from a shared object)
for link in lto plain shared; do
	case $link in
	lto) bin=$build/hotpath-lto
		$cc -O2 -g -flto=auto -Iinclude scripts/hotpath.c "$build/libuspair.a" -pthread -o "$bin"
		label="LTO link" ;;
	plain) bin=$build/hotpath
		$cc -O2 -g -Iinclude scripts/hotpath.c "$build/libuspair.a" -pthread -o "$bin"
		label="plain link" ;;
	shared) bin=$build/hotpath-shared
		libdir=$(cd "$build" && pwd)
		$cc -O2 -g -Iinclude scripts/hotpath.c -L"$libdir" -luspair -Wl,-rpath,"$libdir" \
			-pthread -o "$bin"
		label="shared lib" ;;
	esac
	types="stream seqpacket dgram"
	# AF_TIPC pairs: their own send and receive paths
	[ "$link" = plain ] && types="$types tipc-stream tipc-seqpacket tipc-rdm"
	for type in $types; do
		# a round that fails (or a binary that does not load) gives no
		# count: say so and fail
		if ! out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$rounds" "$type" 2>&1); then
			printf 'hotpath: %s %s failed:\n%s\n' "$bin" "$type" "$out"
			exit 1
		fi
		refs=$(printf '%s\n' "$out" | sed -n 's/.*I *refs: *//p' | tr -d ,)
		if [ -z "$refs" ]; then
			printf 'hotpath: no count from callgrind for %s:\n%s\n' "$type" "$out"
			exit 1
		fi
		printf 'hotpath %-14s %-10s %6d instructions per send+recv round\n' \
			"$type" "$label" $((refs / rounds))
	done
done
