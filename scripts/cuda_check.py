#!/usr/bin/env python3
"""The checks that need a CUDA GPU, in one short run; prints the figures for the README.

1. The blog's run (cnn, 5 epochs, batch 50, seed 0) on CUDA with Lasagne's exact rules,
   twice, timed inside ``train()`` (data already loaded): the same weights both times?
2. On this machine's CPU cores: one epoch on 10,000 images with 1, 2, 8 and all threads:
   the same weights whatever the thread count?

    MNIST_DATA_DIR=... python scripts/cuda_check.py
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone too

import torch

from mnist_cnn import load_dataset, train


def digest(weights) -> str:
    return hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()


def main() -> None:
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}, "
          f"{os.cpu_count()} CPU cores", flush=True)
    data = load_dataset()
    if torch.cuda.is_available():
        runs = []
        for attempt in (1, 2):
            start = time.perf_counter()
            result = train("cnn", 5, 50, seed=0, device="cuda", data=data, verbose=False)
            seconds = time.perf_counter() - start
            runs.append(digest(result.weights))
            print(f"CUDA blog run {attempt}: {seconds:.2f} s in train(), test accuracy "
                  f"{result.test_accuracy:.2%}, epochs "
                  + ", ".join(f"{h.seconds:.2f}" for h in result.history)
                  + f" s, sha256 {runs[-1][:16]}", flush=True)
        print(f"CUDA: the same weights twice: {runs[0] == runs[1]}")
    small = tuple(a[:10_000] for a in data[:2]) + tuple(a[:1000] for a in data[2:])
    cores = len(os.sched_getaffinity(0))
    hashes = {}
    for threads in sorted({1, 2, 8, cores}):
        start = time.perf_counter()
        result = train("cnn", 1, 50, seed=0, device="cpu", data=small, verbose=False,
                       threads=threads)
        hashes[threads] = digest(result.weights)
        print(f"CPU, {threads} threads: {time.perf_counter() - start:.2f} s, sha256 "
              f"{hashes[threads][:16]}", flush=True)
    print(f"CPU: the same weights with every thread count: {len(set(hashes.values())) == 1}")


if __name__ == "__main__":
    main()
