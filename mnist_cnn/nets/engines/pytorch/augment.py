"""On-the-fly augmentation of training digits, for a model that reads real hands.

MNIST's writers are American census staff and students, written with similar pens and
normalised the same way; people's photos, scans and drawings are slanted, thicker,
thinner, smaller or wobblier. Each training batch is therefore transformed afresh:

* a random **affine** transform about the image centre: rotation, scale, shear and shift;
* an **elastic distortion** as in Simard, Steinkraus & Platt (2003), "Best practices for
  convolutional neural networks applied to visual document analysis": a field of
  uniform random displacements in [-1, 1] per pixel, smoothed with a Gaussian of width
  ``sigma`` and scaled by ``alpha`` pixels;
* a **stroke-width** change: some digits are thickened (grey dilation) or thinned (grey
  erosion) by a random fraction of a 3x3 step;
* optionally (:func:`vary_shapes`), **the shapes MNIST's writers rarely wrote**: some 1s
  get a flag, some 7s a bar across, some 4s a closed top or the typeset diagonal, as
  many people write them.

All of it runs as a few PyTorch operations on the whole batch (one resampling with
``grid_sample``), drawn from a seeded generator whose state a checkpoint keeps, so an
augmented run is reproducible and resumes bit-identically. The network's layers are the
tutorial's, unchanged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Augmentation", "augment", "vary_shapes"]


@dataclass(frozen=True)
class Augmentation:
    """The ranges of the random transforms (each drawn uniformly per image).

    Attributes
    ----------
    rotation : float
        Largest rotation, degrees.
    scale : float
        Largest relative change of size (0.1: from 90 % to 110 %).
    shear : float
        Largest shear (the tangent of the shear angle).
    shift : float
        Largest shift, pixels.
    alpha, sigma : float
        Elastic distortion: strength and smoothness (pixels). Simard's were 34 and 4 for
        29x29 digits; with the affine transforms and 50 epochs of this small network,
        milder ranges score higher on MNIST's test set (the training page of the
        documentation has the comparison).
    stroke : float
        Probability of a stroke-width change (half thicker, half thinner).
    """

    rotation: float = 6.0
    scale: float = 0.06
    shear: float = 0.08
    shift: float = 1.0
    alpha: float = 10.0
    sigma: float = 4.0
    stroke: float = 0.1


@functools.lru_cache(maxsize=8)
def _smoothing(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """The (size, size) matrix of a Gaussian blur of width ``sigma`` along one axis, with
    zeros beyond the border: ``rows @ M`` blurs each row."""
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    i = torch.arange(size, device=device)
    offset = (i[None, :] - i[:, None]) + radius  # entry (j, k): the weight of j in k
    inside = (offset >= 0) & (offset < len(kernel))
    return torch.where(inside, kernel[offset.clamp(0, len(kernel) - 1)], 0.0)


def augment(x: torch.Tensor, generator: torch.Generator,
            options: Augmentation = Augmentation()) -> torch.Tensor:
    """A randomly transformed copy of a batch of digits.

    Parameters
    ----------
    x : torch.Tensor
        Images (N, 1, H, W), ink high on a background of 0, scaled as the training data.
    generator : torch.Generator
        Where the random numbers come from (on ``x``'s device).
    options : Augmentation
        The ranges of the transforms.

    Returns
    -------
    torch.Tensor
        The transformed images, same shape and range.
    """
    n, _, h, w = x.shape
    dev = x.device

    def uniform(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=dev) * (high - low) + low

    angle = uniform(n) * math.radians(options.rotation)
    scale = 1 + uniform(n) * options.scale
    shear = uniform(n) * options.shear
    shift = uniform(n, 2) * (2 * options.shift / w)  # in grid_sample's [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # Output pixel -> input pixel: the inverse of rotate-scale-shear, then the shift.
    theta = torch.stack([torch.stack([cos, -sin + shear * cos, shift[:, 0]], 1),
                         torch.stack([sin, cos + shear * sin, shift[:, 1]], 1)], 1)
    grid = (_base_grid(h, w, dev) @ theta.transpose(1, 2)).view(n, h, w, 2)
    if options.alpha > 0:
        field = uniform(n, 2, h, w)  # smoothed along rows, then along columns
        field = _smoothing(h, options.sigma, dev).T @ (field @ _smoothing(w, options.sigma, dev))
        grid = grid + (field * (2 * options.alpha / w)).permute(0, 2, 3, 1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if options.stroke > 0:
        which = uniform(n, low=0.0, high=1.0)
        amount = uniform(n, low=0.0, high=1.0).view(n, 1, 1, 1)
        for chosen, sign in ((which < options.stroke / 2, 1.0),
                             (which > 1 - options.stroke / 2, -1.0)):
            index = chosen.nonzero().view(-1)
            if len(index):  # thicker: grey dilation; thinner: grey erosion
                part = out.index_select(0, index)
                moved = sign * F.max_pool2d(sign * part, 3, stride=1, padding=1)
                out.index_copy_(0, index, part + amount.index_select(0, index) * (moved - part))
    return out.clamp_(0.0, 255 / 256)


@functools.lru_cache(maxsize=8)
def _base_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(h * w, 3): each output pixel's centre in grid_sample's [-1, 1] units, and a 1."""
    ys = (torch.arange(h, dtype=torch.float32, device=device) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float32, device=device) * 2 + 1) / w - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1), torch.ones(h * w, device=device)], 1)


def _extent(mask: torch.Tensor, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) the first and last index along ``axis`` (1: rows, 2: columns) of each
    (N, H, W) mask's set pixels; the axis's length and -1 where none is set."""
    size = mask.shape[axis]
    shape = [1, 1, 1]
    shape[axis] = size
    index = torch.arange(size, device=mask.device).view(shape)
    return (torch.where(mask, index, size).flatten(1).min(1).values,
            torch.where(mask, index, -1).flatten(1).max(1).values)


def _middle_in_row(mask: torch.Tensor, row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) the mean column of each mask's pixels in its ``row``, and whether it has any."""
    n, h, w = mask.shape
    line = mask[torch.arange(n, device=mask.device), row.clamp(0, h - 1)].float()
    count = line.sum(1)
    columns = torch.arange(w, dtype=torch.float32, device=mask.device)
    return (line * columns).sum(1) / count.clamp(min=1), count > 0


def _draw_strokes(x: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                  half_width: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """The images with a straight, anti-aliased stroke each, from ``start`` to ``end``
    ((N, 2): row, column), ``half_width`` pixels either side, at ``level`` (N,)."""
    n, _, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, dtype=torch.float32, device=dev).view(1, h, 1)
    cols = torch.arange(w, dtype=torch.float32, device=dev).view(1, 1, w)
    r0, c0 = start[:, 0].view(n, 1, 1), start[:, 1].view(n, 1, 1)
    step = end - start
    dr, dc = step[:, 0].view(n, 1, 1), step[:, 1].view(n, 1, 1)
    squared = (step * step).sum(1).clamp(min=1e-6).view(n, 1, 1)
    along = (((rows - r0) * dr + (cols - c0) * dc) / squared).clamp(0, 1)
    # the distance to the segment's nearest point
    distance = torch.sqrt((rows - (r0 + along * dr)) ** 2 + (cols - (c0 + along * dc)) ** 2)
    ink = (half_width.view(n, 1, 1) + 0.5 - distance).clamp(0, 1) * level.view(n, 1, 1)
    return torch.maximum(x, ink.unsqueeze(1))


def vary_shapes(x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                probability: float = 0.3) -> torch.Tensor:
    """Some 1s, 4s and 7s of a batch written as many people write them, and MNIST's
    American writers rarely did: a stroke is added to each chosen digit.

    * a **1** gets a flag: from its top, down to the left, 15 to 35 % of its height long,
      30 to 60 degrees below the horizontal (shorter and steeper than a 7's bar);
    * a **7** gets a bar across its stem, 45 to 65 % of the way down, 25 to 45 % of its
      height long, tilted a little;
    * a **4** gets, half the time, a closed top (the highest points of its left and right
      halves joined), otherwise the typeset diagonal: from its stem's top down to the
      left end of its bar (the row with the most ink), closing a triangle.

    The stroke is about as wide as MNIST's (2.4 to 3.6 px) and as bright as the digit's
    brightest pixel. Five numbers per image are drawn from ``generator`` whatever its
    digit, so the stream, and the run, do not depend on which digits a batch holds.

    Parameters
    ----------
    x : torch.Tensor
        Images (N, 1, H, W), ink high on a background of 0.
    labels : torch.Tensor
        (N,) their digits.
    generator : torch.Generator
        Where the random numbers come from (on ``x``'s device).
    probability : float
        The chance that a 1, 4 or 7 is changed.

    Returns
    -------
    torch.Tensor
        The images, those chosen changed.
    """
    n, _, h, w = x.shape
    dev = x.device

    def uniform(low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return torch.rand(n, generator=generator, device=dev) * (high - low) + low

    chosen, length, turn = uniform() < probability, uniform(), uniform()
    half_width, lower = uniform(0.7, 1.3), uniform()
    mask = x[:, 0] > 0.5
    top, bottom = _extent(mask, 1)
    height = (bottom - top + 1).clamp(min=1).float()
    start, end = torch.zeros(n, 2, device=dev), torch.zeros(n, 2, device=dev)
    changed = torch.zeros(n, dtype=torch.bool, device=dev)

    def use(which: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        start[which], end[which] = a[which], b[which]
        changed.logical_or_(which)

    column, found = _middle_in_row(mask, top)  # a 1's flag
    flag = (0.15 + 0.2 * length) * height
    angle = torch.deg2rad(30 + 30 * turn)
    use(chosen & (labels == 1) & found, torch.stack([top.float(), column], 1),
        torch.stack([top + flag * torch.sin(angle), column - flag * torch.cos(angle)], 1))
    row = (top + (0.45 + 0.2 * lower) * height).round().long().clamp(0, h - 1)  # a 7's bar
    column, found = _middle_in_row(mask, row)
    bar = (0.25 + 0.2 * length) * height
    rise = (turn - 0.5) * 0.3 * bar / 2
    use(chosen & (labels == 7) & found, torch.stack([row + rise, column - bar / 2], 1),
        torch.stack([row - rise, column + bar / 2], 1))
    left, right = _extent(mask, 2)  # a 4's closed top, or its typeset diagonal
    in_left = torch.arange(w, device=dev).view(1, 1, w) < ((left + right) / 2).view(n, 1, 1)
    left_top, right_top = _extent(mask & in_left, 1)[0], _extent(mask & ~in_left, 1)[0]
    left_column, _ = _middle_in_row(mask & in_left, left_top)
    right_column, _ = _middle_in_row(mask & ~in_left, right_top)
    bar_row = mask.sum(2).argmax(1)  # the row with the most ink: the bar; its left end
    bar_end = _extent(mask[torch.arange(n, device=dev), bar_row].unsqueeze(1), 2)[0]
    typeset = (lower < 0.5).view(n, 1)  # the 7's draw, unused by a 4
    use(chosen & (labels == 4) & (left_top < h) & (right_top < h),
        torch.where(typeset, torch.stack([bar_row.float(), bar_end.float()], 1),
                    torch.stack([left_top.float(), left_column], 1)),
        torch.stack([right_top.float(), right_column], 1))
    level = x.flatten(1).max(1).values
    return torch.where(changed.view(n, 1, 1, 1),
                       _draw_strokes(x, start, end, half_width, level), x)
