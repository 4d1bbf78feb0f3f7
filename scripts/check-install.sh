#!/usr/bin/env bash
# Install into a scratch DESTDIR, then check what a user gets: the header,
# both libraries with a SONAME, uspair.pc, only usp_* exported, a
# program built with pkg-config against the installed copy that runs, and
# the installed `uspair run` finding the installed preload.
set -euo pipefail
build=${1:-build}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
prefix=/opt/uspair-test
make -s install DESTDIR="$dest" PREFIX="$prefix" BUILD="$build" >/dev/null
root=$dest$prefix
fail() { echo "check-install: $*" >&2; exit 1; }
for f in include/uspair.h lib/libuspair.a lib/libuspair.so lib/libuspair.so.0 lib/pkgconfig/uspair.pc bin/uspair lib/libuspair-preload.so; do
	[ -e "$root/$f" ] || fail "missing $f"
done
soname=$(readelf -d "$root/lib/libuspair.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libuspair.so.0 ] || fail "SONAME is '$soname'"
bad=$(nm -D --defined-only "$root/lib/libuspair.so" | awk '{print $3}' | grep -v '^usp_' | grep -v '^USPAIR_' || true)
[ -z "$bad" ] || fail "exports beyond usp_*: $bad"
nm -D --defined-only "$root/lib/libuspair.so" | awk '{print $3}' | grep -q '^usp__' && fail "internal usp__ symbols exported"
cat > "$dest/hello.c" <<'C'
#include <uspair.h>
#include <string.h>
int main(void)
{
	int sv[2];
	char buf[8];
	if (usp_socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0)
		return 1;
	if (usp_send(sv[0], "hi", 2, 0) != 2 || usp_recv(sv[1], buf, sizeof buf, 0) != 2)
		return 1;
	return memcmp(buf, "hi", 2) != 0;
}
C
export PKG_CONFIG_PATH=$root/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
cc $(pkg-config --cflags uspair) "$dest/hello.c" -o "$dest/hello" $(pkg-config --libs uspair) -Wl,-rpath,"$root/lib"
"$dest/hello" || fail "program linked with pkg-config failed"
stats=$dest/stats
USPAIR_STATS=$stats "$root/bin/uspair" run -- python3 -c \
	'import socket; a, b = socket.socketpair(); a.send(b"hi"); assert b.recv(2) == b"hi"' ||
	fail "uspair run with the installed preload failed"
grep -q 'pairs=1 ' "$stats" || fail "the installed preload did not make the pair: $(cat "$stats")"
echo "check-install: ok (header, static and shared library with SONAME $soname, uspair.pc, only usp_* exported, uspair run)"
