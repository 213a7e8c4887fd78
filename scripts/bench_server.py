#!/usr/bin/env python3
"""The drawing server under a burst: memory at rest, at peak and after, and the answers.

Starts ``mnist-cnn draw`` as a real process, sends ``--clients`` simultaneous uploads of
a ``--megapixels`` PNG (mostly white: a few tens of kB, as a hostile client would send),
each with its whole body before reading, samples the server's resident memory every
10 ms, and prints one line per round. A second kind of round sends a 6 MB upload, whole,
``--over`` times and counts the 413 answers.

    python scripts/bench_server.py --rounds 3 --clients 16 --megapixels 20
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def send_whole(port: int, body: bytes) -> int:
    """POST ``body`` whole, then read the answer; its status (0: no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /api/read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) >> 10


def burst(port: int, pid: int, body: bytes, clients: int) -> tuple[list[int], int, int, float]:
    """Statuses, peak and after memory (MB), seconds for the whole burst."""
    peak, sampling = [0], [True]

    def sample() -> None:
        while sampling[0]:
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.01)

    statuses: list[int] = []
    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=lambda: statuses.append(send_whole(port, body)))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    time.sleep(0.5)
    sampling[0] = False
    sampler.join()
    return statuses, peak[0], rss_mb(pid), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--megapixels", type=float, default=20)
    parser.add_argument("--over", type=int, default=20, help="6 MB uploads sent whole")
    args = parser.parse_args()

    height = 1000
    width = int(args.megapixels * 1e6 / height)
    image = np.full((height, width), 255, np.uint8)
    image[300:700, width // 2:width // 2 + 40] = 0
    buffer = io.BytesIO()
    Image.fromarray(image).convert("RGB").save(buffer, format="PNG")
    body = buffer.getvalue()

    proc = subprocess.Popen([sys.executable, "-m", "mnist_cnn", "draw", "--no-browser"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        port = int(proc.stdout.readline().split(":")[2].split("/")[0])
        print(f"server pid {proc.pid}; {args.clients} uploads of a {width}x{height} RGB PNG "
              f"({len(body) / 1e3:.0f} kB) at once")
        for n in range(args.rounds):
            resting = rss_mb(proc.pid)
            statuses, peak, after, seconds = burst(port, proc.pid, body, args.clients)
            print(f"round {n + 1}: {statuses.count(200)} x 200, {statuses.count(503)} x 503, "
                  f"{len(statuses) - statuses.count(200) - statuses.count(503)} other in "
                  f"{seconds:.1f} s; memory {resting} MB before, {peak} MB peak, "
                  f"{after} MB after")
        over = os.urandom(6 << 20)
        got = [send_whole(port, over) for _ in range(args.over)]
        print(f"6 MB uploads sent whole: {got.count(413)} of {len(got)} answered 413")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


if __name__ == "__main__":
    main()
