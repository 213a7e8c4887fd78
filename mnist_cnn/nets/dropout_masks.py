"""Many dropout masks at once from MRG31k3p streams, on a PyTorch device.

The same masks as :class:`mnist_cnn.nets.mrg.MaskStream` draws one by one (Theano's
``MRG_RandomStreams.binomial``, as Lasagne's ``DropoutLayer`` uses it), computed for a
whole epoch at once so that a GPU never waits for the host.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from mnist_cnn.nets import mrg

__all__ = ["epoch_masks"]


def epoch_masks(states: np.ndarray, keep: float, calls: int, shape: Sequence[int],
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, np.ndarray]:
    """``calls`` masks of one dropout layer at once, as ``calls`` Theano draws give them.

    The same masks as :class:`mnist_cnn.nets.mrg.MaskStream` draws one by one, computed
    here all at once on ``device``: each draw's generator state is the sub-stream's
    state times a power of the one-step matrix (:func:`mnist_cnn.nets.mrg.jump_matrices`),
    so no draw waits for the one before it.

    Parameters
    ----------
    states : numpy.ndarray
        (n_streams, 6) sub-stream states before the first call.
    keep : float
        Probability of keeping a unit.
    calls : int
        How many masks (training steps).
    shape : sequence of int
        The shape of one mask.
    device : torch.device or str
        Where the masks are computed and kept.

    Returns
    -------
    masks : torch.Tensor
        (calls, *shape) float32 0/1 masks on ``device``.
    states : numpy.ndarray
        The sub-streams' states after the last call.
    """
    streams = len(states)
    size = math.prod(shape)
    per_call = np.full(streams, size // streams) + (np.arange(streams) < size % streams)
    draws = calls * int(per_call.max())
    powers1, powers2 = mrg.jump_matrices(max(draws, 1))
    dev = torch.device(device)
    first = torch.tensor(states[:, :3], device=dev)
    second = torch.tensor(states[:, 3:], device=dev)
    rows1 = torch.tensor(powers1[:, 0], device=dev)
    rows2 = torch.tensor(powers2[:, 0], device=dev)
    threshold = mrg.keep_threshold(keep)
    grid = torch.empty((draws, streams), dtype=torch.bool, device=dev)
    chunk = max(1, (1 << 22) // streams)
    for start in range(0, draws, chunk):
        x1 = _mat_row_mod(rows1[start:start + chunk], first, mrg.M1)
        x2 = _mat_row_mod(rows2[start:start + chunk], second, mrg.M2)
        d = x1 - x2
        grid[start:start + chunk] = torch.where(d <= 0, d + mrg.M1, d) < threshold
    stream = torch.arange(size, device=dev) % streams
    done = torch.as_tensor(per_call, device=dev)[stream]
    step = torch.arange(calls, device=dev)[:, None] * done[None, :]
    masks = grid[step + (torch.arange(size, device=dev) // streams)[None, :], stream[None, :]]
    after = states.copy()
    used = calls * per_call
    moved = used > 0
    jump1, jump2 = powers1[used[moved] - 1], powers2[used[moved] - 1]
    after[moved, :3] = ((jump1 * states[moved, None, :3]) % mrg.M1).sum(-1) % mrg.M1
    after[moved, 3:] = ((jump2 * states[moved, None, 3:]) % mrg.M2).sum(-1) % mrg.M2
    return masks.reshape(calls, *shape).to(torch.float32), after


def _mat_row_mod(rows: torch.Tensor, states: torch.Tensor, m: int) -> torch.Tensor:
    """(k, s) values ``rows[k] . states[s] mod m``, exactly in int64."""
    total = (rows[:, None, 0] * states[None, :, 0]) % m
    total += (rows[:, None, 1] * states[None, :, 1]) % m
    total += (rows[:, None, 2] * states[None, :, 2]) % m
    return total % m
