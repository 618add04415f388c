#!/usr/bin/env python3
"""Idle SSE sessions: opens N event streams to a gateway, holds them, and
prints the gateway's memory per session (its RSS after, less before).

    bench/sse-idle.py --port 29005 --pid $(pgrep -f 'gateway --listen 127.0.0.1:29005') -c 5000
"""
import argparse
import asyncio


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_stream(port, held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
    await writer.drain()
    seen = b""
    while b"event: session" not in seen or not seen.endswith(b"\n\n"):
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError(f"stream closed: {seen[:200]!r}")
        seen += chunk
    held.append((reader, writer))


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("-c", type=int, default=5000)
    args = parser.parse_args()
    held = []
    before = rss_kib(args.pid)
    for start in range(0, args.c, 500):
        await asyncio.gather(*(open_stream(args.port, held) for _ in range(min(500, args.c - start))))
    await asyncio.sleep(2)
    after = rss_kib(args.pid)
    print(f"{len(held)} SSE sessions: gateway RSS {before} KiB -> {after} KiB, "
          f"{(after - before) * 1024 / len(held):.0f} B per session")


asyncio.run(main())
