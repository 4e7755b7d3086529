"""A TCP proxy on 127.0.0.1 that adds a round-trip time to every connection,
for benchmarks at a network's latency where `tc qdisc ... netem` is missing.

    delay-proxy.py UPSTREAM_PORT RTT_MS [RTT_MS...]

For each RTT_MS it listens on a port of its own on 127.0.0.1 and prints
"RTT_MS PORT" on a line, then "ready" once all of them listen. Each
connection is forwarded to 127.0.0.1:UPSTREAM_PORT, and every chunk read
from either side is written to the other RTT/2 after it arrived, in order.
The connection's establishment costs one more RTT, as a TCP handshake would:
nothing the client sends reaches the server before one RTT after the
connection was accepted (and so its first answer comes no sooner than two
RTTs after connect, as over a network). End of stream is passed on the same
way (a half-close), after the data before it. Standard library only; it runs
until killed. bench/delay-proxy-check.py measures what it really adds: on
this machine 0.3 to 0.5 ms per round trip over the nominal at 20 and 100 ms,
and about 0.5 ms for a connection and 0.2 ms a round trip at 0 ms.
"""

import asyncio
import socket
import sys

# The connections' tasks. asyncio holds a task only weakly: a handler whose
# two sockets are both closed while it still waits can otherwise be
# collected mid-await ("Task was destroyed but it is pending!").
HANDLERS = set()
# The last stretch of each delay, which the proxy spends yielding to its
# event loop rather than asleep in epoll (see `write`).
SPIN = 0.0015


async def pipe(reader, writer, delay, not_before):
    """Copies reader to writer, each chunk `delay` seconds after it came, and
    none before the loop time `not_before`."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def read():
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((max(loop.time(), not_before) + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            queue.put_nowait((loop.time(), None))

    async def write():
        try:
            while True:
                when, data = await queue.get()
                # epoll's timeout is whole milliseconds, rounded up, so a
                # plain sleep wakes up to 1 ms late, twice per round trip:
                # sleep to 1 ms before, then yield to the loop until then.
                wait = when - loop.time()
                if wait > SPIN:
                    await asyncio.sleep(wait - SPIN)
                while loop.time() < when:
                    await asyncio.sleep(0)
                if data is None:  # the other side broke: break this one too
                    writer.transport.abort()
                    return
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            writer.transport.abort()

    await asyncio.gather(read(), write())


async def handle(client_reader, client_writer, upstream_port, rtt):
    loop = asyncio.get_running_loop()
    accepted = loop.time()
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        client_writer.transport.abort()
        return
    for w in (client_writer, server_writer):
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.gather(
        pipe(client_reader, server_writer, rtt / 2, accepted + rtt),
        pipe(server_reader, client_writer, rtt / 2, 0),
    )
    for w in (client_writer, server_writer):
        w.close()


async def main():
    upstream_port = int(sys.argv[1])
    servers = []
    for arg in sys.argv[2:]:
        rtt = float(arg) / 1000

        async def on_connect(r, w, rtt=rtt):
            task = asyncio.current_task()
            HANDLERS.add(task)
            try:
                await handle(r, w, upstream_port, rtt)
            finally:
                HANDLERS.discard(task)

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0, backlog=512)
        servers.append(server)
        print(arg, server.sockets[0].getsockname()[1], flush=True)
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main())
