#!/usr/bin/env python3
"""How well `predict` and `predict --number` read the labelled folders of real users'
digits and numbers (the development sets in ../shared): accuracy per kind, each
misreading listed.

    python scripts/read_users.py                       # the three sets beside the clone
    python scripts/read_users.py --weights run/model.npz
    python scripts/read_users.py --turn 3              # every picture turned 3 degrees
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone too

from mnist_cnn.reading.scoring import read_labelled_numbers, read_labelled_singles, table_rows

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--singles", nargs="*", type=Path,
                        default=[SHARED / "user_digits", SHARED / "user_digits_more"],
                        help="folders of single digits (labels.csv: path, label, kind)")
    parser.add_argument("--numbers", nargs="*", type=Path, default=[SHARED / "user_numbers"],
                        help="folders of numbers (labels.csv: path, label_string, kind)")
    parser.add_argument("--weights", help="the model (default: the bundled one)")
    parser.add_argument("--turn", type=float, default=0.0, metavar="DEGREES",
                        help="turn every picture this many degrees counter-clockwise first, "
                             "its edges continued (a photo taken askew); default 0")
    args = parser.parse_args()
    if not -45 <= args.turn <= 45:
        parser.error("--turn must be between -45 and 45 degrees")
    extra = {"turn": args.turn, **({"weights": args.weights} if args.weights else {})}
    lines = []
    for folder in args.singles:
        start = time.perf_counter()
        score = read_labelled_singles(folder, **extra)
        for r in score.wrong():
            print(f"wrong: {folder.name}/{r.path}: {r.label} read as {r.read} {r.note}")
        print(f"{folder.name}: {time.perf_counter() - start:.1f} s")
        lines += table_rows(score, numbers=False)
    for folder in args.numbers:
        start = time.perf_counter()
        score = read_labelled_numbers(folder, **extra)
        for r in score.wrong():
            print(f"wrong: {folder.name}/{r.path}: {r.label!r} read as {r.read!r} "
                  f"({r.matched}/{len(r.label.replace(' ', ''))}) {r.note}")
        print(f"{folder.name}: {time.perf_counter() - start:.1f} s")
        lines += table_rows(score, numbers=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
