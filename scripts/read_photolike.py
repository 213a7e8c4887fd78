#!/usr/bin/env python3
"""The bundled models on MNIST test digits made photo-like, many per kind.

Each kind of ``tests/photolike.py`` (ink on grey paper, a lighting gradient, noise, JPEG;
a fine pen, chalk on a board, ruled or squared paper, a shadow, one side lighter, small
and low-contrast, specks) is drawn for ``--count`` MNIST test digits and read by
``predict``, as a user's photo is; prints each kind's accuracy and every misreading and
refusal ("no ink found"). The tests hold 50 per kind; this is for measuring a change.

    MNIST_DATA_DIR=../shared/data/mnist python scripts/read_photolike.py --count 1000 \\
        small-low-contrast
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone too
sys.path.insert(0, str(ROOT / "tests"))  # the photo-like pictures are the tests' own

from photolike import VARIANTS, photo_like  # noqa: E402
from PIL import Image  # noqa: E402

from mnist_cnn import load_dataset, predict  # noqa: E402
from mnist_cnn.errors import ImageError, MnistCnnError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds", nargs="*", metavar="KIND",
                        help=f"kinds to read, of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--count", type=int, default=200, help="digits per kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    unknown = sorted(set(args.kinds) - set(VARIANTS))
    if unknown or not 1 <= args.count <= 10000:
        parser.error(f"unknown kind {unknown[0]}" if unknown else "--count must be 1 to 10000")
    try:
        X_test, y_test = load_dataset(download=False)[4:]
    except MnistCnnError as error:
        print(f"read_photolike.py: {error}", file=sys.stderr)
        return 1
    for kind in args.kinds or VARIANTS:
        rng = np.random.default_rng([args.seed, VARIANTS.index(kind)])
        picks = rng.choice(len(X_test), args.count, replace=False)
        right = 0
        for i in picks:
            picture = Image.open(io.BytesIO(photo_like(X_test[i, 0], rng, kind)))
            try:
                digit = predict(picture)[0]
            except ImageError as error:
                print(f"  {kind}: test digit {i} ({y_test[i]}) refused: {error}")
                continue
            if digit.digit == y_test[i]:
                right += 1
            else:
                print(f"  {kind}: test digit {i}: {y_test[i]} read as {digit.digit} "
                      f"({digit.probability:.0%})")
        print(f"{kind}: {right}/{args.count} ({right / args.count:.1%})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
