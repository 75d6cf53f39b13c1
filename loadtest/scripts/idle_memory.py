#!/usr/bin/env python3
"""Server memory per idle authenticated IDLE connection.

Usage: idle_memory.py PID HOST PORT USER PASSWORD N — opens one warm-up connection, reads the
server's RSS, opens N more connections that LOGIN, SELECT INBOX and IDLE, reads the RSS again and
prints the difference per connection. Run it with a raised `ulimit -n`.
"""
import asyncio
import os
import sys

PID, HOST, PORT, USER, PASSWORD, N = (
    int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]))


def rss_kib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS for pid %d" % PID)


async def command(r, w, tag, text):
    w.write(b"%s %s\r\n" % (tag, text))
    await w.drain()
    while True:
        line = await r.readline()
        if not line:
            raise SystemExit("connection closed")
        if line.startswith(tag + b" "):
            return line


async def idle_client(ready):
    r, w = await asyncio.open_connection(HOST, PORT)
    await r.readline()
    await command(r, w, b"a", b"LOGIN %s %s" % (USER.encode(), PASSWORD.encode()))
    await command(r, w, b"b", b"SELECT INBOX")
    w.write(b"c IDLE\r\n")
    await w.drain()
    await r.readline()
    ready.append(1)
    await asyncio.sleep(3600)


async def main():
    ready = []
    tasks = [asyncio.create_task(idle_client(ready))]
    while len(ready) < 1:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)
    base = rss_kib()
    for i in range(1, N + 1):
        tasks.append(asyncio.create_task(idle_client(ready)))
        if i % 200 == 0:
            while len(ready) < i + 1:
                await asyncio.sleep(0.05)
    while len(ready) < N + 1:
        await asyncio.sleep(0.05)
    await asyncio.sleep(2)
    after = rss_kib()
    print(f"{N} IDLE connections: RSS {base} KiB -> {after} KiB, "
          f"{(after - base) / N:.1f} KiB per connection")
    os._exit(0)


asyncio.run(main())
