#!/usr/bin/env python3
"""The bundled models on MNIST and on MNIST digits redrawn as pen strokes.

Prints each bundled model's MNIST test accuracy and that of their average, the average's
on the 10,000 test digits written as PNG files and read back by ``predict``, then how many
of the first 60 MNIST test 4s drawn with their tops joined (closed 4s), and of the first
60 open 4s, 9s, 1s and 7s, ``predict`` reads right; the drawings are
``tests/photolike.py``'s :func:`writer_drawings` (each digit's skeleton traced with a
round pen on a 280x280 canvas, as the drawing page's tests draw).

    MNIST_DATA_DIR=../shared/data/mnist python scripts/read_drawn.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone too
sys.path.insert(0, str(ROOT / "tests"))  # the drawings are the tests' own

from photolike import save_pngs, writer_drawings  # noqa: E402

from mnist_cnn import load_dataset, predict, predict_proba  # noqa: E402
from mnist_cnn.reading.predictions import bundled_models  # noqa: E402

SETS = (("closed 4s", 4, True), ("open 4s", 4, False), ("9s", 9, False), ("1s", 1, False),
        ("7s", 7, False))


def main() -> None:
    *_, X_test, y_test = load_dataset()
    probabilities = [predict_proba(model, X_test) for model in bundled_models()]
    each = ", ".join(f"{(p.argmax(1) == y_test).mean():.2%}" for p in probabilities)
    averaged = (np.mean(probabilities, axis=0).argmax(1) == y_test).mean()
    print(f"MNIST test accuracy, each: {each}; averaged: {averaged:.2%}")
    with tempfile.TemporaryDirectory() as folder:
        read = predict(save_pngs((X_test[:, 0] * 256).astype(np.uint8), Path(folder)))
    same = sum(np.array_equal(p.image, x[0]) for p, x in zip(read, X_test, strict=True))
    from_png = np.mean([p.digit for p in read] == y_test)
    print(f"written as PNG and read back: {from_png:.2%} ({same} inputs equal to the arrays)")
    for name, digit, close_top in SETS:
        drawings = writer_drawings(X_test, y_test, digit, 60, close_top=close_top)
        right = sum(p.digit == digit for p in predict(drawings))
        print(f"drawn {name} read right: {right} of {len(drawings)}")


if __name__ == "__main__":
    main()
