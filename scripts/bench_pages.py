#!/usr/bin/env python3
"""Hostile pages for ``read_number``: pages of random specks, timed to an answer or a
refusal.

Each page is 3000x2000 light grey with ``N`` dark squares of 2 to 4 pixels at random
places (seeded), written as PNG and read by ``mnist-cnn predict --number`` as a fresh
process, as a user would run it; the line printed gives the time and the outcome.

    python scripts/bench_pages.py --specks 200 1000 5000 20000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def specks_page(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    page = np.full((2000, 3000), 235, np.uint8)
    for _ in range(count):
        y, x = rng.integers(0, 1996), rng.integers(0, 2996)
        size = rng.integers(2, 5)
        page[y:y + size, x:x + size] = rng.integers(0, 60)
    return page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specks", type=int, nargs="+", default=[200, 1000, 5000, 20000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for count in args.specks:
            path = Path(folder) / f"specks-{count}.png"
            Image.fromarray(specks_page(count)).save(path)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "mnist_cnn", "predict", "--number",
                                   str(path)], cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            said = (done.stdout or done.stderr).strip().splitlines()[-1]
            outcome = (f"read as {len(said.split(':', 1)[1].split()[0])} digits"
                       if done.returncode == 0 else said.split(": ", 2)[-1])
            print(f"{count:6,} specks: {seconds:5.1f} s, exit {done.returncode}: "
                  f"{outcome[:110]}")


if __name__ == "__main__":
    main()
