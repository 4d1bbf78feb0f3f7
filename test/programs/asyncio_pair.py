# asyncio over socketpairs: the loop's low-level socket calls, streams,
# and call_soon_threadsafe through the loop's own self-pipe socketpair.
import asyncio, socket, hashlib
async def main():
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False); b.setblocking(False)
    h1 = hashlib.sha256(); h2 = hashlib.sha256()
    async def writer():
        for i in range(3000):
            m = bytes([i % 256]) * (i % 900 + 1)
            h1.update(m)
            await loop.sock_sendall(a, m)
        a.shutdown(socket.SHUT_WR)
    async def reader():
        while True:
            d = await loop.sock_recv(b, 65536)
            if not d: break
            h2.update(d)
    await asyncio.gather(writer(), reader())
    # streams over a socketpair, and call_soon_threadsafe through the self-pipe
    c, d = socket.socketpair()
    rd, wr = await asyncio.open_connection(sock=c)
    rd2, wr2 = await asyncio.open_connection(sock=d)
    wr.write(b'line one\nline two\n'); await wr.drain()
    l1 = await rd2.readline(); l2 = await rd2.readline()
    fut = loop.create_future()
    import threading
    threading.Thread(target=lambda: loop.call_soon_threadsafe(fut.set_result, 42)).start()
    print(h1.hexdigest() == h2.hexdigest(), h1.hexdigest()[:16], l1, l2, await fut)
    wr.close(); wr2.close()
asyncio.run(main())
