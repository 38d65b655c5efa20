#!/usr/bin/env python3
"""Hostile clients against a running spoor, for docs/security.md (issue 16). Not a test: it
measures. Each scenario prints one JSON line with what it saw and the server's RSS growth.

    bench/attack.sh                      # builds, starts spoor, runs every scenario
    python3 bench/attack.py --port P --key K --pid PID silent|stalled|fragments|deaf

- silent:    100 TCP connections that send nothing; how long until the server closes them.
- stalled:   2,000 connections each sending most of a 512 KiB /v1/batch body (valid key),
             then stalling; plus 200 keyless /v1/overland bodies. RSS growth while they hang.
- fragments: 256 ingest sessions from one IP, each sending a 500 KiB non-final fragment after
             its hello, then pings every 2 s; RSS growth, and how many the server closed.
- deaf:      an ingest client that says hello, then sends a batch every 100 ms and never reads;
             how long until the server closes it.
"""

import argparse
import asyncio
import base64
import json
import os
import struct
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def frame(opcode, payload, fin=True):
    """A masked client frame."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head.append(0x80 | 126)
        head += struct.pack(">H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack(">Q", n)
    mask = os.urandom(4)
    head += mask
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else masked(payload, mask)
    return bytes(head) + body


def masked(payload, mask):
    m = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(len(payload), "big")


async def ws_connect(port, path):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    w.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    return r, w


async def closed(r, limit):
    """Seconds until the server closes (EOF or reset), or None within `limit`."""
    t = time.monotonic()
    try:
        while True:
            chunk = await asyncio.wait_for(r.read(65536), timeout=limit - (time.monotonic() - t))
            if not chunk:
                return time.monotonic() - t
    except (ConnectionError, OSError):
        return time.monotonic() - t
    except asyncio.TimeoutError:
        return None


async def silent(a):
    conns = [await asyncio.open_connection("127.0.0.1", a.port) for _ in range(100)]
    times = await asyncio.gather(*(closed(r, 60) for r, _ in conns))
    open_after = sum(t is None for t in times)
    done = [t for t in times if t is not None]
    return {"connections": 100, "still_open_after_60_s": open_after,
            "closed_after_s_max": round(max(done), 2) if done else None}


async def hold_body(port, path, length, send, results):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {length}\r\n\r\n".encode())
        chunk = b"[" * 16384
        sent = 0
        while sent < send:
            w.write(chunk)
            await w.drain()
            sent += len(chunk)
        line = await asyncio.wait_for(r.readline(), timeout=120)
        results.append(line.decode(errors="replace").split(" ")[1] if line else "eof")
    except asyncio.TimeoutError:
        results.append("hung")
    except (ConnectionError, OSError, IndexError):
        results.append("reset")


async def stalled(a):
    before = rss_mib(a.pid)
    results = []
    tasks = [asyncio.create_task(hold_body(a.port, f"/v1/batch?key={a.key}", 524_000, 500_000, results))
             for _ in range(2000)]
    tasks += [asyncio.create_task(hold_body(a.port, "/v1/overland", 524_000, 500_000, results))
              for _ in range(200)]
    peak = before
    t = time.monotonic()
    while time.monotonic() - t < 60 and len(results) < len(tasks):
        await asyncio.sleep(1)
        peak = max(peak, rss_mib(a.pid))
    held_60s = len(tasks) - len(results)
    await asyncio.gather(*tasks)
    counts = {}
    for x in results:
        counts[x] = counts.get(x, 0) + 1
    return {"bodies": len(tasks), "rss_before_mib": round(before, 1),
            "rss_growth_peak_mib": round(peak - before, 1), "answers": counts,
            "still_unanswered_after_60_s": held_60s, "rss_after_mib": round(rss_mib(a.pid), 1)}


async def hold_fragment(port, results, stop):
    try:
        r, w = await ws_connect(port, "/v1/ingest?key=" + ARGS.key)
        # A session first (else the hello timeout ends it), then the half-sent message.
        sid = "frag-" + os.urandom(6).hex()
        w.write(frame(0x2, pack_map({"t": "hello", "v": 1, "sid": sid, "url": "https://x/"})))
        w.write(frame(0x2, b"\x00" * 500 * 1024, fin=False))
        await w.drain()
        while not stop.is_set():
            w.write(frame(0x9, b"p"))
            await w.drain()
            try:
                data = await asyncio.wait_for(r.read(65536), timeout=2)
                if not data:
                    results.append("closed")
                    return
                if b"busy" in data:
                    results.append("busy")
                    return
            except asyncio.TimeoutError:
                pass
        results.append("open")
    except (ConnectionError, OSError, AssertionError):
        results.append("reset")


async def fragments(a):
    before = rss_mib(a.pid)
    stop = asyncio.Event()
    results = []
    tasks = [asyncio.create_task(hold_fragment(a.port, results, stop)) for _ in range(256)]
    peak = before
    for _ in range(20):
        await asyncio.sleep(1)
        peak = max(peak, rss_mib(a.pid))
    stop.set()
    await asyncio.gather(*tasks)
    counts = {}
    for x in results:
        counts[x] = counts.get(x, 0) + 1
    return {"sockets": 256, "fragment_kib": 500, "rss_before_mib": round(before, 1),
            "rss_growth_peak_mib": round(peak - before, 1), "after_20_s": counts}


def pack_str(s):
    b = s.encode()
    return bytes([0xA0 | len(b)]) + b if len(b) < 32 else bytes([0xD9, len(b)]) + b


def pack_map(d):
    out = bytes([0x80 | len(d)])
    for k, v in d.items():
        out += pack_str(k)
        if isinstance(v, str):
            out += pack_str(v)
        elif isinstance(v, int):
            out += bytes([0xCF]) + struct.pack(">Q", v) if v > 127 else bytes([v])
        elif isinstance(v, bytes):
            out += v
    return out


async def deaf(a):
    r, w = await ws_connect(a.port, "/v1/ingest?key=" + a.key)
    hello = pack_map({"t": "hello", "v": 1, "sid": "deaf-client-0001", "url": "https://x/"})
    w.write(frame(0x2, hello))
    await w.drain()
    t = time.monotonic()
    seq = 0
    try:
        while time.monotonic() - t < 300:
            ev = bytes([0x91, 0x94, 0x01, 0x00, 0x01, 0x02])  # [[1, 0, 1, 2]]
            batch = pack_map({"t": "batch", "seq": seq, "t0": int(time.time() * 1000), "ev": ev})
            w.write(frame(0x2, batch))
            await w.drain()
            seq += 1
            await asyncio.sleep(0.1)
            if w.transport.is_closing() or r.at_eof():
                break
    except (ConnectionError, OSError):
        pass
    # The socket is closed once a write fails or the peer's FIN is seen; confirm by reading.
    gone = await closed(r, 5)
    return {"batches_sent": seq, "closed_after_s": round(time.monotonic() - t, 1) if gone is not None else None}


ARGS = None


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("scenario", choices=["silent", "stalled", "fragments", "deaf"])
    ARGS = p.parse_args()
    out = asyncio.run({"silent": silent, "stalled": stalled, "fragments": fragments, "deaf": deaf}[ARGS.scenario](ARGS))
    print(json.dumps({"scenario": ARGS.scenario, **out}))


if __name__ == "__main__":
    main()
