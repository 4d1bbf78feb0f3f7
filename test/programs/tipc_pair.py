"""AF_TIPC socketpair from Python: names, messages, returned data, fork.

Run under `uspair run` (programs.sh): the output must be the one a TIPC
kernel gives (tipc_pair.expected, from the semantics recorded in
test/data/), whether or not the running kernel has TIPC.  Port ids are
random: only their relations are printed.
"""
import errno
import fcntl
import os
import select
import socket
import struct
import termios

SOL_TIPC = 271
TIPC_ERRINFO, TIPC_RETDATA = 1, 2
TIPC_SOCK_RECVQ_DEPTH = 132


def show(label, value):
    print(f"{label}: {value}")


for name in ("SOCK_STREAM", "SOCK_SEQPACKET", "SOCK_RDM", "SOCK_DGRAM"):
    kind = getattr(socket, name)
    a, b = socket.socketpair(socket.AF_TIPC, kind)
    show(name, f"family {a.family} type {a.type == kind}")
    me, peer = a.getsockname(), b.getpeername()
    show("  ends", f"addrtype {me[0]} name(a)==peer(b) {me == peer} "
         f"name(a)!=name(b) {me != b.getsockname()}")
    show("  SO_DOMAIN, SO_RCVBUF",
         (a.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN),
          a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)))
    a.send(b"one")
    a.send(b"")
    a.send(b"two")
    show("  queued", b.getsockopt(SOL_TIPC, TIPC_SOCK_RECVQ_DEPTH))
    try:
        fcntl.ioctl(b, termios.FIONREAD, b"\0\0\0\0")
    except OSError as e:
        show("  FIONREAD", errno.errorcode[e.errno])
    for _ in range(2):
        try:
            data, anc, flags, src = b.recvmsg(64, 256, socket.MSG_DONTWAIT)
            show("  recv", (data, anc, flags, src == me))
        except BlockingIOError:
            show("  recv", "EAGAIN")
    # a child process writes through its inherited end
    pid = os.fork()
    if pid == 0:
        a.send(b"from child")
        os._exit(0)
    os.waitpid(pid, 0)
    show("  from child", b.recv(64))
    b.send(b"unread")
    a.close()
    r, _, _ = select.select([b], [], [], 0)
    show("  readable after close", bool(r))
    b.setblocking(False)
    try:
        data, anc, flags, src = b.recvmsg(64, 256)
        infos = [(lvl, typ, struct.unpack("II", d) if typ == TIPC_ERRINFO else d)
                 for lvl, typ, d in anc]
        show("  after close", (data, infos, src == me))
    except BlockingIOError:
        show("  after close", "EAGAIN")
    try:
        b.send(b"more")
        show("  send after close", "ok")
    except OSError as e:
        show("  send after close", errno.errorcode[e.errno])
    b.close()
