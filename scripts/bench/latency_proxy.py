#!/usr/bin/env python3
"""A TCP relay on loopback that holds every chunk for a fixed one-way delay and counts turns.

    latency_proxy.py --listen 127.0.0.1:6543 --target 127.0.0.1:5432 --delay-ms 5 [--count]

It stands in for the network between a laptop and RDS, so the benchmarks (migrate.py, seed.py)
can measure what a round trip costs on one machine: each direction waits --delay-ms, a round
trip 2 x that. With --count it prints `turns=N` on stderr when it ends (SIGTERM or SIGINT): a
turn is client data that follows server data on one connection (the client's first send counts
as one), which is what a protocol round trip looks like from the wire. Chunks keep their order;
a connection's close is passed on after its last delayed chunk. Loopback addresses only: it
refuses anything else. Tested by tests/tests/bench_proxy.rs.
"""
import argparse
import asyncio
import ipaddress
import signal
import sys
import time


def address(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(f"{text}: loopback addresses only")
    return host, int(port)


class Connection:
    """One client connection: who spoke last, to count the client's turns."""

    def __init__(self, counter):
        self.counter = counter
        self.server_spoke_last = True

    def client_sent(self):
        if self.server_spoke_last:
            self.counter["turns"] += 1
        self.server_spoke_last = False

    def server_sent(self):
        self.server_spoke_last = True


async def relay(reader, writer, delay, on_data):
    """Copies reader to writer, each chunk held `delay` seconds from when it arrived."""
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, chunk = await queue.get()
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            if chunk is None:
                break
            writer.write(chunk)
            await writer.drain()
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            on_data()
            queue.put_nowait((time.monotonic() + delay, chunk))
    except ConnectionError:
        pass
    queue.put_nowait((time.monotonic() + delay, None))
    try:
        await sender
    except ConnectionError:
        pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=address, required=True)
    ap.add_argument("--target", type=address, required=True)
    ap.add_argument("--delay-ms", type=float, default=0)
    ap.add_argument("--count", action="store_true", help="print turns=N on stderr at exit")
    a = ap.parse_args()
    delay = a.delay_ms / 1000
    counter = {"turns": 0}

    async def accept(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*a.target)
        except OSError:
            client_writer.close()
            return
        conn = Connection(counter)
        await asyncio.gather(
            relay(client_reader, server_writer, delay, conn.client_sent),
            relay(server_reader, client_writer, delay, conn.server_sent),
        )
        for w in (client_writer, server_writer):
            w.close()

    server = await asyncio.start_server(accept, *a.listen)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print("listening", file=sys.stderr, flush=True)
    await stop.wait()
    server.close()
    if a.count:
        print(f"turns={counter['turns']}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
