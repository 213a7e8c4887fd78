#!/usr/bin/env python3
"""The overhead of ``mnist-cnn reproduce`` per run: everything but the training epochs.

Runs ``--runs`` seeds of a one-epoch run of a tiny MLP (so that training is short and the
overhead shows) as ``mnist-cnn reproduce`` does, in a fresh folder, with ``--workers``
processes; prints the sweep's wall time, the epochs' time (summed over runs, divided by
the workers) and the difference per run: starting the pool, loading MNIST, the test
evaluation, saving the run folder, the report. A second sweep on the same folder finds
every run done: its time is the cost of checking them and writing the report.

    python scripts/bench_sweep.py --runs 8 --workers 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone too

from mnist_cnn.experiments.plan import Experiment
from mnist_cnn.experiments.sweep import reproduce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    plan = [Experiment("tiny", {"model": "custom_mlp:1,20,0,0", "num_epochs": 1},
                       tuple(range(args.runs)))]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        report = reproduce(plan, Path(folder) / "sweep", workers=args.workers,
                           progress=False, verbose=False)
        wall = time.perf_counter() - start
        epochs = sum(r.seconds for r in report.runs) / args.workers
        start = time.perf_counter()
        reproduce(plan, Path(folder) / "sweep", workers=args.workers, progress=False,
                  verbose=False)
        again = time.perf_counter() - start
    print(f"{args.runs} runs, {args.workers} worker(s): sweep {wall:.1f} s, epochs "
          f"{epochs:.1f} s, overhead {(wall - epochs) / args.runs:.2f} s per run; the same "
          f"sweep again (all done): {again:.2f} s")


if __name__ == "__main__":
    main()
