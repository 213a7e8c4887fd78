"""mnist_cnn.nets.engines.pytorch.augment: batches transformed afresh, reproducibly; the
shapes MNIST's writers rarely wrote added to 1s, 4s and 7s."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from mnist_cnn.nets.engines.pytorch.augment import augment, vary_shapes


@pytest.fixture(scope="module")
def digits(mnist) -> tuple[torch.Tensor, torch.Tensor]:
    X, y = mnist[0][:2000], mnist[1][:2000]
    return torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_the_same_seed_transforms_a_batch_the_same_and_another_seed_otherwise(digits):
    x, _ = digits
    a, b, c = (augment(x[:64], _generator(s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x[:64].shape and 0 <= a.min() and a.max() <= 255 / 256


def test_only_ones_fours_and_sevens_get_a_stroke_and_nothing_is_erased(digits):
    x, y = digits
    out = vary_shapes(x, y, _generator(0), probability=1.0)
    changed = (out != x).flatten(1).any(1)
    assert set(y[changed].tolist()) == {1, 4, 7}
    assert changed[(y == 1) | (y == 4) | (y == 7)].float().mean() > 0.97
    assert bool((out >= x).all())
    assert not (vary_shapes(x, y, _generator(0), probability=0.0) != x).any()


def test_the_draws_are_the_same_whatever_the_labels(digits):
    # A batch's random numbers must not depend on its digits: the run stays reproducible
    # and the stream stays aligned with an unchanged batch's.
    x, y = digits
    a, b = _generator(4), _generator(4)
    vary_shapes(x[:100], y[:100], a)
    vary_shapes(x[:100], torch.zeros(100, dtype=torch.int64), b)
    assert torch.equal(a.get_state(), b.get_state())


def _added(x: torch.Tensor, y: torch.Tensor, digit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """200 digits, and the ink added to each (where a stroke fell outside the digit's)."""
    pick = (y == digit).nonzero().view(-1)[:200]
    out = vary_shapes(x[pick], y[pick], _generator(3), probability=1.0)
    pairs = [(old, np.argwhere(new - old > 0.5))
             for old, new in zip(x[pick, 0].numpy(), out[:, 0].numpy(), strict=True)]
    seen = [(old, added) for old, added in pairs if len(added)]
    assert len(seen) > 0.8 * len(pairs)
    return seen


def test_a_ones_flag_goes_down_to_the_left_from_its_top(digits):
    for old, added in _added(*digits, 1):
        rows = np.flatnonzero((old > 0.5).any(axis=1))
        top, height = rows[0], rows[-1] - rows[0] + 1
        assert added[:, 0].max() <= top + 0.4 * height
        assert added[:, 1].min() <= np.flatnonzero(old[top] > 0.5).mean()


def test_a_sevens_bar_crosses_its_stem_about_half_way_down(digits):
    crossing = 0
    for old, added in _added(*digits, 7):
        rows = np.flatnonzero((old > 0.5).any(axis=1))
        middle = (added[:, 0].mean() - rows[0]) / (rows[-1] - rows[0] + 1)
        assert 0.3 < middle < 0.8
        stem = np.flatnonzero(old[round(added[:, 0].mean())] > 0.5)
        crossing += bool(len(stem)) and (added[:, 1].min() < stem.min()
                                         and added[:, 1].max() > stem.max())
    assert crossing > 150


def test_most_fours_get_a_closed_top_or_a_typeset_diagonal(digits):
    x, y = digits
    pick = (y == 4).nonzero().view(-1)[:200]
    after = vary_shapes(x[pick], y[pick], _generator(3), probability=1.0)[:, 0].numpy()

    def holes(image: np.ndarray) -> int:
        mask = image > 0.5
        return int((ndimage.binary_fill_holes(mask) & ~mask).sum())

    open_fours = [(o, n) for o, n in zip(x[pick, 0].numpy(), after, strict=True)
                  if holes(o) < 4]
    closed = sum(holes(n) >= 4 for _, n in open_fours)
    assert len(open_fours) > 100 and closed > 0.8 * len(open_fours)


def test_about_half_the_fours_get_the_typeset_diagonal_down_to_their_bars_left_end(digits):
    changed = _added(*digits, 4)
    diagonals = leftwards = 0
    for old, added in changed:
        top = np.flatnonzero((old > 0.5).any(axis=1))[0]
        bar = int((old > 0.5).sum(axis=1).argmax())
        if added[:, 0].max() > top + 0.65 * (bar - top):  # most of the way down: diagonal
            diagonals += 1
            lowest, highest = added[added[:, 0].argmax()], added[added[:, 0].argmin()]
            leftwards += bool(lowest[1] < highest[1]
                              and lowest[1] < np.flatnonzero(old[bar] > 0.5).mean())
    assert 0.3 * len(changed) < diagonals < 0.7 * len(changed)
    assert leftwards > 0.9 * diagonals
