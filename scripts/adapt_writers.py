#!/usr/bin/env python3
"""``adapt`` measured on real writers and on a writer who slashes 0s.

Writers: each repository in ``../shared/user_digits`` and ``../shared/user_digits_more``
with at least 10 images. Each writer's readable digits, sorted by file name, are split
alternately in two halves: the model is adapted on the first and read the second, before
and after. Images the reader cannot read at all ("no ink") are left out of both.

The writer who slashes 0s: MNIST test 0s redrawn from their skeletons as pen strokes with
a stroke across (``tests/photolike.py``'s :func:`skeleton_drawing`, as the page's browser
tests draw), and that writer's other digits (5 of each other class, redrawn the same way).
Adapted on 5 slashed 0s; read: 20 other slashed 0s and the other digits, before and
after. MNIST's test accuracy after each adaptation. Also: how many of 20 closed 4s (the
tops of a 4's arms joined) the starting model reads as 4 without adapting.

    python scripts/adapt_writers.py
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone too
sys.path.insert(0, str(ROOT / "tests"))  # the closed-4 writer is the tests' own

from photolike import skeleton_drawing, writer_drawings  # noqa: E402

from mnist_cnn import load_dataset, load_weights  # noqa: E402
from mnist_cnn.errors import ImageError  # noqa: E402
from mnist_cnn.nets.inference import predict_proba  # noqa: E402
from mnist_cnn.reading.images import preprocess_image  # noqa: E402
from mnist_cnn.reading.labelled import LabelledDigits  # noqa: E402
from mnist_cnn.reading.predictions import bundled_weights_path  # noqa: E402
from mnist_cnn.training.adapt import adapt  # noqa: E402


def writers(roots: list[Path]) -> dict[str, LabelledDigits]:
    found: dict[str, list[tuple[Path, int]]] = defaultdict(list)
    for root in roots:
        with open(root / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                found[row["path"].split("/")[0]].append((root / row["path"],
                                                         int(row["label"])))
    result = {}
    for name, items in sorted(found.items()):
        if len(items) < 10:
            continue
        images, labels, files = [], [], []
        for path, label in sorted(items):
            try:
                images.append(preprocess_image(path))
            except ImageError:
                continue
            labels.append(label)
            files.append(str(path))
        result[name] = LabelledDigits(np.stack(images), np.array(labels), files,
                                      [""] * len(files))
    return result


def errors(weights, digits: LabelledDigits) -> int:
    return int((predict_proba(weights, digits.images[:, None]).argmax(1)
                != digits.labels).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    data = load_dataset()
    X_test, y_test = data[4], data[5]
    start = load_weights(bundled_weights_path())

    print("| writer | read | errors before | errors after |")
    print("|---|---|---|---|")
    total = [0, 0, 0]
    worse, mnist, seconds = 0, [], []
    found = writers([args.shared / "user_digits", args.shared / "user_digits_more"])
    everyone = list(found.values())
    for name, digits in found.items():
        first, second = np.arange(0, len(digits), 2), np.arange(1, len(digits), 2)
        result = adapt(digits.subset(first), data=data, folds=0)
        held = digits.subset(second)
        b, a = errors(start, held), errors(result.weights, held)
        total[0] += len(held)
        total[1] += b
        total[2] += a
        worse += a > b
        mnist.append(result.mnist_test_accuracy)
        seconds.append(result.seconds)
        print(f"| {name} | {len(held)} | {b} | {a} |")
    print(f"| **all {len(mnist)} writers** | {total[0]} | {total[1]} | {total[2]} |")
    print(f"\nwriters worse after: {worse}; MNIST test after: {min(mnist) * 100:.2f} to "
          f"{max(mnist) * 100:.2f} %; fine-tuning {np.mean(seconds):.1f} s on average")

    closed = np.stack([preprocess_image(d) for d in
                       writer_drawings(X_test, y_test, 4, 20, close_top=True)])
    closed_read = int((predict_proba(start, closed[:, None]).argmax(1) == 4).sum())
    print(f"\nclosed 4s read as 4 without adapting: {closed_read} of 20")

    slashed = np.stack([preprocess_image(d) for d in
                        writer_drawings(X_test, y_test, 0, 25, slash=True)])
    others = [(d, c) for c in range(1, 10) for d in X_test[y_test == c, 0][:5]]
    other = LabelledDigits(np.stack([preprocess_image(skeleton_drawing(d)) for d, _ in others]),
                           np.array([c for _, c in others]), [], [])
    taught = LabelledDigits(slashed[:5], np.zeros(5, int), [], [])
    test = LabelledDigits(slashed[5:], np.zeros(20, int), [], [])
    began = time.perf_counter()
    result = adapt(taught, data=data, folds=0)
    took = time.perf_counter() - began

    def as_zero(weights) -> int:
        return int((predict_proba(weights, test.images[:, None]).argmax(1) == 0).sum())

    eights = int((predict_proba(start, test.images[:, None]).argmax(1) == 8).sum())
    print(f"the writer who slashes 0s: of 20 slashed 0s, {as_zero(start)} read as 0 before "
          f"({eights} as 8), {as_zero(result.weights)} after adapting on 5; their 45 other "
          f"digits: {errors(start, other)} errors before, {errors(result.weights, other)} "
          f"after; MNIST test after {result.mnist_test_accuracy * 100:.2f} %; adapt() "
          f"took {took:.1f} s in all (its fine-tuning {result.seconds:.1f} s)")

    fifty = LabelledDigits(np.concatenate([d.images for d in everyone])[:50],
                           np.concatenate([d.labels for d in everyone])[:50], [], [])
    began = time.perf_counter()
    result = adapt(fifty, data=data, folds=0, mnist_test=False)
    print(f"adapting on 50 real digits: {time.perf_counter() - began:.1f} s in all (its "
          f"fine-tuning {result.seconds:.1f} s)")


if __name__ == "__main__":
    main()
