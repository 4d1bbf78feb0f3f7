#!/usr/bin/env bash
# Instructions per one-byte send+recv round, counted by callgrind (`make
# hotpath`): the repeatable measure for hot-path work.  Builds
# scripts/hotpath.c against $BUILD/libuspair.a twice, with and without
# link-time optimisation at the final link, and prints both counts.
set -eu
build=${BUILD:-build}
rounds=${HOTPATH_ROUNDS:-400000}
cc=${CC:-cc}
if ! command -v valgrind >/dev/null; then
	echo "hotpath: valgrind not installed (apt-get install valgrind)"
	exit 77
fi
for lto in "-flto=auto" ""; do
	bin=$build/hotpath${lto:+-lto}
	$cc -O2 -g $lto -Iinclude scripts/hotpath.c "$build/libuspair.a" -pthread -o "$bin"
	for type in stream seqpacket dgram; do
		out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$rounds" "$type" 2>&1)
		refs=$(printf '%s\n' "$out" | sed -n 's/.*I *refs: *//p' | tr -d ,)
		if [ -z "$refs" ]; then
			printf 'hotpath: no count from callgrind for %s:\n%s\n' "$type" "$out"
			exit 1
		fi
		if [ -n "$lto" ]; then link="LTO link"; else link="plain link"; fi
		printf 'hotpath %-9s %-10s %6d instructions per send+recv round\n' \
			"$type" "$link" $((refs / rounds))
	done
done
