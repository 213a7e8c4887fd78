"""Fine-tuning a trained network on a writer's own digits, MNIST mixed in.

Each step's batch is MNIST training digits in which the digits of the classes the writer
gave are replaced by the writer's own (drawn with replacement, each transformed afresh by
:func:`~mnist_cnn.nets.engines.pytorch.augment.augment`): the network learns the
writer's shapes while the classes keep MNIST's proportions (a writer who gave only 4s
does not teach "everything is a 4"). A second loss keeps the network's answers on the
batch's MNIST digits near the starting network's (knowledge distillation), and only the
dense layers learn: what it knows of everyone else's digits stays. Dropout drops as in
training; the update is ``torch.optim.SGD`` with Nesterov momentum on a cosine schedule
(``torch.optim.lr_scheduler.CosineAnnealingLR``). The layers are the tutorial's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mnist_cnn.nets.engines.pytorch.augment import Augmentation, augment
from mnist_cnn.nets.engines.pytorch.devices import resolve_device
from mnist_cnn.nets.engines.pytorch.modules import LasagneNet, as_tensor
from mnist_cnn.nets.spec import Dense, Weights

__all__ = ["MNIST_LEFT", "WRITER_AUGMENTATION", "FineTuning", "fine_tune"]

#: The least part of each batch that stays MNIST's digits.
MNIST_LEFT = 0.5


#: The transforms of the writer's digits: stronger than training's, since a few digits
#: must stand for all the ways the writer writes them.
WRITER_AUGMENTATION = Augmentation(rotation=10.0, scale=0.1, shear=0.15, shift=2.0,
                                   alpha=8.0, sigma=4.0, stroke=0.3)


@dataclass(frozen=True)
class FineTuning:
    """How a network is fine-tuned on a writer's digits.

    Attributes
    ----------
    steps : int
        Updates.
    batch_size : int
        Digits per update.
    share : float
        In each batch, the chance that an MNIST digit of a class the writer gave is
        replaced by one of the writer's digits of that class (the classes keep MNIST's
        proportions), lowered where needed so that :data:`MNIST_LEFT` of the batch
        stays MNIST's.
    learning_rate, momentum : float
        SGD with Nesterov momentum; the rate falls to 0 on a cosine.
    augmentation : Augmentation
        The transforms of the writer's digits (:data:`WRITER_AUGMENTATION`).
    convolutions : bool
        Whether the convolutions learn too; by default only the dense layers do: the
        features that MNIST taught stay.
    keep : float
        The weight of a second loss on the MNIST digits of each batch: how far the
        network's answers move from the starting network's (Kullback-Leibler), so that
        it keeps reading MNIST as it did (knowledge distillation).
    """

    steps: int = 150
    batch_size: int = 64
    share: float = 1.0
    learning_rate: float = 0.01
    momentum: float = 0.9
    augmentation: Augmentation = WRITER_AUGMENTATION
    convolutions: bool = False
    keep: float = 1.0


def fine_tune(weights: Weights, X_own: np.ndarray, y_own: np.ndarray, X_mnist: np.ndarray,
              y_mnist: np.ndarray, options: FineTuning = FineTuning(), seed: int = 0,
              device: str = "cpu") -> Weights:
    """The weights after fine-tuning on ``X_own`` (with MNIST's ``X_mnist`` mixed in).

    Parameters
    ----------
    weights : Weights
        Where to start (a trained cnn, say).
    X_own, y_own : numpy.ndarray
        The writer's digits (N, 28, 28) or (N, 1, 28, 28), scaled as MNIST's, and labels.
    X_mnist, y_mnist : numpy.ndarray
        MNIST training digits and labels.
    options : FineTuning
    seed : int
        Seeds the batches, the transforms and the dropout masks.
    device : str
        Where to compute.

    Returns
    -------
    Weights
        In Lasagne's layout, the same network.
    """
    dev = resolve_device(device)
    generator = torch.Generator(device=dev).manual_seed(seed)
    net = LasagneNet(weights.network, weights).to(dev).train()
    teacher = LasagneNet(weights.network, weights).to(dev).eval().requires_grad_(False)
    if not options.convolutions:
        for layer, params in zip(weights.network.layers, _params_by_layer(net), strict=True):
            for p in params:
                p.requires_grad_(isinstance(layer, Dense))
    own = as_tensor(np.asarray(X_own).reshape(-1, 1, 28, 28), dev, torch.float32)
    own_y = as_tensor(np.asarray(y_own), dev, torch.int64)
    mnist = as_tensor(np.asarray(X_mnist).reshape(-1, 1, 28, 28), dev, torch.float32)
    mnist_y = as_tensor(np.asarray(y_mnist), dev, torch.int64)
    learning = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(learning, lr=options.learning_rate, momentum=options.momentum,
                                nesterov=True)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, options.steps)
    shapes = net.dropout_shapes(options.batch_size)
    by_class = [torch.nonzero(own_y == c).view(-1) for c in range(10)]
    has = torch.tensor([len(i) > 0 for i in by_class], device=dev)
    # At least half of each batch stays MNIST's (the distillation's digits): a writer who
    # gave every class has half of each class's digits replaced, one who gave only 4s all.
    given = float(has[mnist_y].float().mean())
    share = min(options.share, (1 - MNIST_LEFT) / given) if given > 0 else 0.0
    for _ in range(options.steps):
        j = torch.randint(len(mnist), (options.batch_size,), generator=generator, device=dev)
        x, y = mnist[j].clone(), mnist_y[j]
        swap = (torch.rand(options.batch_size, generator=generator, device=dev)
                < share) & has[y]
        for c in range(10):
            where = torch.nonzero(swap & (y == c)).view(-1)
            if len(where):
                pick = by_class[c][torch.randint(len(by_class[c]), (len(where),),
                                                 generator=generator, device=dev)]
                x[where] = augment(own[pick], generator, options.augmentation)
        masks = [torch.bernoulli(torch.full(shape, 1 - p, device=dev), generator=generator)
                 for shape, p in shapes]
        logits = net(x, masks)
        loss = F.cross_entropy(logits, y)
        if options.keep > 0 and not swap.all():
            kept = ~swap
            with torch.no_grad():
                target = F.log_softmax(teacher(x[kept]), dim=1)
            loss = loss + options.keep * F.kl_div(F.log_softmax(logits[kept], dim=1), target,
                                                  reduction="batchmean", log_target=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return net.eval().get_weights()


def _params_by_layer(net: LasagneNet) -> list[list[torch.nn.Parameter]]:
    """Each layer's parameters (none for pooling and dropout), in the network's order."""
    params = iter(net.params)
    network = net.network
    return [[next(params) for _ in layer.param_shapes(shape)]
            for layer, shape in zip(network.layers, network.input_shapes(), strict=True)]
