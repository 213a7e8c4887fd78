"""The update rules of the two recipes, on PyTorch tensors.

:class:`NesterovMomentum` is Lasagne's ``nesterov_momentum``, written out so that its
arithmetic is Lasagne's operation for operation (PyTorch's ``SGD(nesterov=True)`` orders
it otherwise, and its float32 rounding would drift from the real library's).
:class:`Adam` is the fast recipe's rule, PyTorch's own Adam with a warm-up and a linear
decay from :mod:`torch.optim.lr_scheduler`: it is not the tutorial's, so nothing needs
to match another library bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["Adam", "NesterovMomentum", "adam_factor"]


class NesterovMomentum:
    """Lasagne's ``nesterov_momentum`` update, step by step.

    For each parameter ``p`` with gradient ``g`` and velocity ``v`` (starting at 0)::

        v := momentum * v - learning_rate * g
        p := p + momentum * v - learning_rate * g

    computed in Lasagne's order, ``p := (p - learning_rate * g) + momentum * v``.

    Parameters
    ----------
    params : sequence of torch.Tensor
        The parameters, updated in place.
    learning_rate, momentum : float
        The tutorial uses 0.01 and 0.9.
    schedule : {"constant", "cosine"}
        The tutorial's constant rate, or one falling to 0 along half a cosine over
        ``total`` steps.
    total : int
        The steps of the whole run (for the schedule).
    """

    def __init__(self, params: Sequence[torch.Tensor], learning_rate: float,
                 momentum: float, schedule: str = "constant", total: int = 1) -> None:
        self.params = list(params)
        self.peak, self.schedule, self.total = learning_rate, schedule, max(total, 1)
        self.momentum = momentum
        self.velocities = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    def learning_rate(self, step: int) -> float:
        """The learning rate of update number ``step`` (from 0)."""
        if self.schedule == "cosine":
            return self.peak * 0.5 * (1 + math.cos(math.pi * min(step, self.total) / self.total))
        return self.peak

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """Apply one update with the given gradients (same order as ``params``)."""
        lr, m = self.learning_rate(self.steps), self.momentum
        self.steps += 1
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        for p, v, g in zip(self.params, self.velocities, grads, strict=True):
            v.mul_(m).add_(g, alpha=-lr)
            p.add_(g, alpha=-lr).add_(v, alpha=m)

    @torch.no_grad()
    def restore(self, velocities: Sequence[torch.Tensor], moments: Sequence[torch.Tensor],
                steps: int) -> None:
        """Continue after ``steps`` updates with these velocities (copied in place: a
        captured CUDA graph keeps reading the same tensors); ``moments`` is empty."""
        for v, saved in zip(self.velocities, velocities, strict=True):
            v.copy_(saved)
        self.steps = steps


def adam_factor(step: int, total: int) -> float:
    """The fast recipe's learning rate at update ``step`` (from 0), as a fraction of its
    peak: rising linearly from 0 over the first quarter of ``total`` steps, then falling
    linearly to 0."""
    total = max(total, 1)
    warm = max(1, total // 4)
    if step < warm:
        return step / warm
    return max(0.0, (total - step) / max(1, total - warm))


class Adam:
    """The fast recipe's rule: :class:`torch.optim.Adam` (betas (``beta1``, 0.999),
    epsilon 1e-8) with its learning rate following :func:`adam_factor` over ``total``
    steps (:class:`torch.optim.lr_scheduler.LambdaLR`).

    Parameters
    ----------
    params : sequence of torch.Tensor
        The parameters, updated in place.
    peak : float
        The highest learning rate.
    beta1 : float
        The first moments' decay.
    total : int
        The steps of the whole run.
    """

    def __init__(self, params: Sequence[torch.Tensor], peak: float, beta1: float,
                 total: int) -> None:
        self.params = list(params)
        self.peak, self.total = peak, total
        self.optimizer = torch.optim.Adam(self.params, lr=peak, betas=(beta1, 0.999), eps=1e-8)
        self.steps = 0
        self._schedule()

    def _schedule(self) -> None:
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.peak
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: adam_factor(step, self.total),
            last_epoch=self.steps - 1)

    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """Apply one update with the given gradients (same order as ``params``)."""
        for p, g in zip(self.params, grads, strict=True):
            p.grad = g
        self.optimizer.step()
        self.schedule.step()
        self.steps += 1

    def _state(self, key: str) -> list[torch.Tensor]:
        state = self.optimizer.state
        return [state[p][key] if key in state[p] else torch.zeros_like(p) for p in self.params]

    @property
    def velocities(self) -> list[torch.Tensor]:
        """The first moments, one per parameter."""
        return self._state("exp_avg")

    @property
    def moments(self) -> list[torch.Tensor]:
        """The second moments, one per parameter."""
        return self._state("exp_avg_sq")

    @torch.no_grad()
    def restore(self, velocities: Sequence[torch.Tensor], moments: Sequence[torch.Tensor],
                steps: int) -> None:
        """Continue after ``steps`` updates with these moments."""
        self.steps = steps
        for p, v, m in zip(self.params, velocities, moments, strict=True):
            self.optimizer.state[p] = {"step": torch.tensor(float(steps)),
                                       "exp_avg": v.to(p.device).clone(),
                                       "exp_avg_sq": m.to(p.device).clone()}
        self._schedule()
