"""Lasagne's arithmetic as PyTorch autograd functions: ``rectify`` with gradient 0.5 at
exactly 0, and 2x2 max-pooling whose gradient goes to every tied maximum (as on
Theano's CPU), fused with the convolution before it where that is faster on a CPU."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["conv_pool_rectify", "max_pool_2x2", "pool_rectify", "rectify"]

def _pool_values(x: torch.Tensor) -> torch.Tensor:
    """The maximum of each 2x2 window (stride 2; an odd last row or column is ignored)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return torch.maximum(torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]),
                         torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


def _rectify_grad(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient of Lasagne's ``rectify(x) = 0.5 * (x + abs(x))``: 1 above 0, 0.5 at 0.

    Computed as ``grad * 0.5 * (sign(x) + 1)`` (exactly 1, 0.5 or 0 times ``grad``):
    float arithmetic vectorises better on a CPU than comparisons and selections.
    """
    return grad * torch.sign(x).add_(1).mul_(0.5)


def _pool_grad(x: torch.Tensor, pooled: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Theano's max-pooling gradient: to every input equal to its window's maximum.

    Written window position by window position (four strided passes) into one buffer,
    with the tie test written as floats; an ignored last row or column gets 0.
    """
    h, w = pooled.shape[-2] * 2, pooled.shape[-1] * 2
    out = torch.empty_like(x) if (h, w) == tuple(x.shape[-2:]) else torch.zeros_like(x)
    tied = torch.empty_like(pooled)
    for a in (0, 1):
        for b in (0, 1):
            torch.eq(x[..., a:h:2, b:w:2], pooled, out=tied)
            torch.mul(tied, grad, out=out[..., a:h:2, b:w:2])
    return out


class _Rectify(torch.autograd.Function):
    """Lasagne's ``rectify``, with its gradient of 0.5 at exactly 0 (not ReLU's 0)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.relu(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return _rectify_grad(x, grad)


class _PoolRectify(torch.autograd.Function):
    """Lasagne's ``rectify`` then ``MaxPool2DLayer(2)``, with Theano's gradients.

    Computed as pooling, then rectify (the same values, on a quarter of them: rectify
    is monotone, so it commutes with max). The gradients are Lasagne's on Theano's
    CPU: rectify's is 0.5 at exactly 0, and pooling's goes to every input equal to
    its window's maximum. With the pooling done first, ties at a window's maximum are
    the same inputs, and a maximum of exactly 0 passes half its gradient to each input
    at 0, as it does in Lasagne's order.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        pooled = _pool_values(x)
        ctx.save_for_backward(x, pooled)
        return torch.relu(pooled)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, pooled = ctx.saved_tensors
        return _pool_grad(x, pooled, _rectify_grad(pooled, grad))


class _ConvPoolRectify(torch.autograd.Function):
    """``pool_rectify(conv2d(x, W, b))`` for an input that needs no gradient (the images).

    The convolution output is computed window position by window position: the outputs
    at (2i + a, 2j + c) are a stride-2 convolution of the input shifted by (a, c). The
    four quarter-size outputs are bitwise the full convolution's values; their maximum,
    the tie tests and the products of the backward pass then run on contiguous tensors
    (instead of strided views of the full output), and W's and b's gradients are the
    sums of the four stride-2 convolutions' gradients. The same rules as
    :class:`_PoolRectify`.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        span = 2 * ((x.shape[-1] - W.shape[-1] + 1) // 2) + W.shape[-1] - 2
        outputs = [F.conv2d(x[..., a:a + span, c:c + span], W, b, stride=2)
                   for a, c in _POSITIONS]
        pooled = torch.maximum(torch.maximum(outputs[0], outputs[1]),
                               torch.maximum(outputs[2], outputs[3]))
        ctx.save_for_backward(x, W, pooled, *outputs)
        ctx.span = span
        return torch.relu(pooled)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        x, W, pooled, *outputs = ctx.saved_tensors
        scaled = _rectify_grad(pooled, grad)
        grad_W, grad_b = torch.zeros_like(W), torch.zeros(W.shape[0], dtype=W.dtype,
                                                            device=W.device)
        tied = torch.empty_like(pooled)
        for (a, c), output in zip(_POSITIONS, outputs, strict=True):
            torch.eq(output, pooled, out=tied)
            _, gw, gb = torch.ops.aten.convolution_backward(
                tied.mul_(scaled), x[..., a:a + ctx.span, c:c + ctx.span], W, [W.shape[0]],
                [2, 2], [0, 0], [1, 1], False, [0, 0], 1, [False, True, True])
            grad_W += gw
            grad_b += gb
        return None, grad_W, grad_b


_POSITIONS = ((0, 0), (0, 1), (1, 0), (1, 1))


def conv_pool_rectify(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``pool_rectify(F.conv2d(x, W, b))``; for inputs that need no gradient on a CPU, by
    window position (see ``_ConvPoolRectify``)."""
    if (torch.is_grad_enabled() and not x.requires_grad and W.requires_grad
            and x.device.type == "cpu"):
        return _ConvPoolRectify.apply(x, W, b)
    return pool_rectify(F.conv2d(x, W, b))


def rectify(x: torch.Tensor) -> torch.Tensor:
    """Lasagne's ``rectify``: ReLU values, gradient 0.5 at exactly 0."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Rectify.apply(x)
    return torch.relu(x)


def pool_rectify(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling of ``rectify(x)`` with Lasagne's gradients (see ``_PoolRectify``)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _PoolRectify.apply(x)
    return torch.relu(_pool_values(x))


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pooling (stride 2, border ignored), gradient to every tied maximum."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxPool.apply(x)
    return _pool_values(x)


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        pooled = _pool_values(x)
        ctx.save_for_backward(x, pooled)
        return pooled

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, pooled = ctx.saved_tensors
        return _pool_grad(x, pooled, grad)
