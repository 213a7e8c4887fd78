"""mnist_cnn.reading.grouping: the sweep finds every near pair, the groups are unions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mnist_cnn.reading.grouping import column_neighbours, groups


def random_boxes(rng: np.random.Generator, n: int) -> list[tuple[int, int, int, int]]:
    top, left = rng.integers(0, 200, n), rng.integers(0, 200, n)
    height, width = rng.integers(1, 15, n), rng.integers(1, 15, n)
    return [(int(t), int(x), int(t + h), int(x + w))
            for t, x, h, w in zip(top, left, height, width, strict=True)]


@pytest.mark.parametrize("gap", [0.0, 2.5, 10.0])
def test_the_sweep_yields_exactly_the_pairs_whose_columns_come_within_the_gap(gap):
    boxes = random_boxes(np.random.default_rng(1), 150)
    expected = {(i, j) for i, j in itertools.combinations(range(len(boxes)), 2)
                if boxes[i][1] - gap < boxes[j][3] and boxes[j][1] - gap < boxes[i][3]}
    found = list(column_neighbours(boxes, gap))
    assert len(found) == len(set(found)) and set(found) == expected


def test_groups_are_the_connected_sets_of_the_relation_in_first_item_order():
    items = list(range(12))
    def together(a, b):
        return abs(a - b) == 3  # 0-3-6-9, 1-4-7-10, 2-5-8-11

    pairs = itertools.combinations(range(len(items)), 2)
    assert groups(items, pairs, together) == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    assert groups(["a", "b"], iter([]), together) == [["a"], ["b"]]
