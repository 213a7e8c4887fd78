"""Pieces of ink in groups: which boxes come near each other, and the groups they make.

Candidate pairs come from a sweep over the boxes in column order, so that a page of
thousands of scattered pieces compares each piece with its few neighbours in column,
not with every other piece; the groups are SciPy's union-find
(:class:`scipy.cluster.hierarchy.DisjointSet`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

__all__ = ["column_neighbours", "groups"]

Box = tuple[int, int, int, int]
T = TypeVar("T")


def column_neighbours(boxes: Sequence[Box], gap: float = 0.0) -> Iterator[tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, of boxes ``(top, left, bottom, right)`` whose
    column spans come within ``gap`` of each other (overlap, for ``gap`` 0)."""
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][1])
    active: list[int] = []
    for i in order:
        left = boxes[i][1]
        active = [j for j in active if boxes[j][3] + gap > left]
        for j in active:
            yield min(i, j), max(i, j)
        active.append(i)


def groups(items: Sequence[T], pairs: Iterator[tuple[int, int]],
           together: Callable[[T, T], bool]) -> list[list[T]]:
    """``items`` in groups: the two items of each pair for which ``together`` holds are in
    one group, and so, in turn, are their groups'. Groups in the order of their first
    item, each in the items' order."""
    from scipy.cluster.hierarchy import DisjointSet

    sets = DisjointSet(range(len(items)))
    for i, j in pairs:
        if not sets.connected(i, j) and together(items[i], items[j]):
            sets.merge(i, j)
    found: dict[int, list[T]] = {}
    for i, item in enumerate(items):
        found.setdefault(sets[i], []).append(item)
    return list(found.values())
