#!/usr/bin/env python3
"""Sharded lanes against the unsharded step, in one process, alternating.

``unsharded`` is the step before thread-independent training: the whole batch at once on
PyTorch's own threads (as many as the cores), whose sums depend on the thread count.
``sharded`` is the trainer as it is: fixed shards, one per lane, added in order. Both
train the same cnn from the same state on real MNIST; each round times ``--batches``
updates of each, quiet, then beside a process that keeps one core busy.

    python scripts/bench_shards.py --rounds 4 --batches 200
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone too

import numpy as np
import torch

from mnist_cnn import defaults, load_dataset
from mnist_cnn.nets import mrg
from mnist_cnn.nets.engines.pytorch.trainer import TorchTrainer
from mnist_cnn.nets.spec import initialise
from mnist_cnn.storage.mnist_data import minibatch_indices
from mnist_cnn.training.settings import Settings


def trainer(batch_size: int, sharded: bool, data: tuple) -> TorchTrainer:
    weights, seeds = initialise("cnn", np.random.RandomState(0))
    settings = Settings.of(batch_size=batch_size, device="cpu", threads="auto",
                           shards=defaults.shards_for(batch_size) if sharded else 1)
    made = TorchTrainer(weights, [mrg.stream_states(s)[0] for s in seeds], settings, data)
    if not sharded:  # the step as it was: PyTorch's own threads on the whole batch
        torch.set_num_threads(made.lanes.before)
    return made


def rate(made: TorchTrainer, order: np.ndarray, sharded: bool) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if sharded else made.lanes.before)
    start = time.perf_counter()
    for _ in made.train_epoch(order):
        pass
    seconds = time.perf_counter() - start
    torch.set_num_threads(threads)
    return order.size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    X, y, X_val, y_val = load_dataset()[:4]
    data = (X, y, X_val[:500], y_val[:500])
    rng = np.random.RandomState(1)
    print(f"{torch.get_num_threads()} PyTorch threads, {args.rounds} rounds of "
          f"{args.batches} batches each")
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for batch_size in (50, 500):
                batches = max(20, args.batches * 50 // batch_size)
                made = {s: trainer(batch_size, s, data) for s in (False, True)}
                rates: dict[bool, list[float]] = {False: [], True: []}
                for r in range(args.rounds):
                    for s in ((False, True) if r % 2 == 0 else (True, False)):
                        order = minibatch_indices(len(X), batch_size, True, rng)[:batches]
                        rates[s].append(rate(made[s], order, s))
                for m in made.values():
                    m.close()
                before, after = np.median(rates[False]), np.median(rates[True])
                print(f"{'busy core' if busy else 'quiet'}, batch {batch_size}: unsharded "
                      f"{before:,.0f} images/s, sharded {after:,.0f} images/s "
                      f"({after / before - 1:+.1%})", flush=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()


if __name__ == "__main__":
    main()
