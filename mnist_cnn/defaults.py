"""Every default setting of mnist-cnn, in one place.

The functions take their default arguments from here and the command line shows these
values in its ``--help``, so a default is changed by changing one line.
"""

from __future__ import annotations

#: The named ways to train the same layers: the tutorial's (Lasagne's
#: ``nesterov_momentum`` with dropout, at the blog's settings) and a modern one that reaches
#: 99 % sooner (it is not the tutorial's: Adam with betas (momentum, 0.999), its learning
#: rate rising linearly from 0 over the first quarter of the run's steps and falling
#: linearly to 0 over the rest, and no dropout). ``rule`` and ``dropout`` belong to the
#: recipe; the other values are the defaults of the run's settings of those names
#: (:class:`mnist_cnn.training.settings.Settings`).
RECIPES = {
    "tutorial": {"rule": "nesterov", "dropout": True, "num_epochs": 5, "batch_size": 50,
                 "learning_rate": 0.01, "momentum": 0.9},
    "fast": {"rule": "adam", "dropout": False, "num_epochs": 2, "batch_size": 192,
             "learning_rate": 4e-3, "momentum": 0.9},
}
RECIPE = "tutorial"
#: Nesterov momentum's learning rate: constant (the tutorial's), or falling from the
#: learning rate to 0 along half a cosine over the run's steps.
SCHEDULES = ("constant", "cosine")
SCHEDULE = "constant"

#: The network (the tutorial's names: ``cnn``, ``mlp``, ``custom_mlp:D,W,DI,DH``).
MODEL = "cnn"
#: The blog's run: 5 epochs at batch size 50 (the tutorial's ``mnist.py`` used 500), with
#: Lasagne's ``nesterov_momentum`` settings in the tutorial.
EPOCHS = RECIPES["tutorial"]["num_epochs"]
BATCH_SIZE = RECIPES["tutorial"]["batch_size"]
LEARNING_RATE = RECIPES["tutorial"]["learning_rate"]
MOMENTUM = RECIPES["tutorial"]["momentum"]
#: Seeds the initialisation, the batch order and the dropout masks.
SEED = 0
#: Where to compute: ``auto`` picks CUDA when PyTorch sees a GPU.
DEVICE = "auto"
#: The engine that trains.
ENGINE = "pytorch"
#: CPU threads: ``auto`` fits them to the cores other processes leave free. They change
#: how fast a run goes, never its numbers (see :data:`SHARD_IMAGES`).
THREADS = "auto"
#: A batch is cut into shards of at least this many images, at most :data:`MAX_SHARDS`
#: of them, whose gradients are computed one per thread and added in a fixed order:
#: enough pieces to keep several cores busy, each big enough to compute efficiently.
SHARD_IMAGES = 25
MAX_SHARDS = 4
#: The precision of weights and arithmetic (Theano's ``floatX``).
FLOATX = "float32"
FLOATXS = ("float32", "float64")
#: The engine that predicts: ``auto`` uses numpy for a few images on a CPU (no PyTorch
#: import), PyTorch otherwise, and numpy where PyTorch is not installed.
INFERENCE_ENGINE = "auto"
#: Up to this many images, the ``auto`` inference engine on a CPU is numpy.
NUMPY_MAX_IMAGES = 256
#: Images per forward pass when predicting, by device type: large batches keep a GPU busy.
INFERENCE_BATCH = {"cpu": 1000, "cuda": 10000}

#: Output folders of ``mnist-cnn train`` and ``mnist-cnn visualize``.
RUN_DIR = "run"
FIGURES_DIR = "figures"
#: Where ``mnist-cnn reproduce`` puts a sweep (``SWEEPS_DIR/NAME``) unless told.
SWEEPS_DIR = "sweeps"
#: Seconds to wait for a silent server when downloading MNIST.
DOWNLOAD_TIMEOUT = 30.0
#: How many of the most probable digits ``predict`` lists.
TOP = 3
#: The seeds of the models bundled with the package (``mnist_cnn/bundled``), trained
#: alike; ``predict`` and ``read_number`` average their probabilities.
BUNDLED_SEEDS = (0, 1, 2, 3, 4)
#: The training image whose feature maps are drawn: MNIST's first, a 5, with straight and
#: round strokes (seed 0's random pick was a plain 1, the least telling digit); and the
#: seed of a random pick (``--image random``).
FEATURE_MAP_IMAGE = 0
FEATURE_MAP_SEED = 0
#: The drawing page's address: this machine only, and a free port.
DRAW_HOST = "127.0.0.1"
DRAW_PORT = 0


def shards_for(batch_size: int) -> int:
    """The shards a batch of ``batch_size`` is cut into by default: one per
    :data:`SHARD_IMAGES` images, at least 1 and at most :data:`MAX_SHARDS`."""
    return max(1, min(MAX_SHARDS, batch_size // SHARD_IMAGES))
