# multiprocessing.Pipe (a socketpair) between a parent and a worker, with
# the start method given as the argument: fork (the pair stays on uspair),
# spawn or forkserver (the worker's end goes through exec or SCM_RIGHTS,
# and the pair falls back to the kernel).
import multiprocessing as mp, hashlib, sys
def worker(conn):
    h = hashlib.sha256()
    while True:
        m = conn.recv_bytes()
        if not m: break
        h.update(m)
        conn.send_bytes(m[::-1])
    conn.send(h.hexdigest())
    conn.close()
if __name__ == '__main__':
    mp.set_start_method(sys.argv[1] if len(sys.argv) > 1 else 'fork')
    a, b = mp.Pipe()
    p = mp.Process(target=worker, args=(b,)); p.start(); b.close()
    h = hashlib.sha256()
    for i in range(2000):
        m = bytes([i % 251]) * (i % 700 + 1)
        a.send_bytes(m); r = a.recv_bytes(); assert r == m[::-1]; h.update(m)
    a.send_bytes(b'')
    print(a.recv() == h.hexdigest(), h.hexdigest()[:16])
    p.join(); print(p.exitcode)
