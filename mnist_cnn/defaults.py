"""Every default setting of mnist-cnn, in one place.

The functions take their default arguments from here and the command line shows these
values in its ``--help``, so a default is changed by changing one line.
"""

from __future__ import annotations

#: The network (the tutorial's names: ``cnn``, ``mlp``, ``custom_mlp:D,W,DI,DH``).
MODEL = "cnn"
#: The blog's run: 5 epochs at batch size 50 (the tutorial's ``mnist.py`` used 500).
EPOCHS = 5
BATCH_SIZE = 50
#: Lasagne's ``nesterov_momentum`` settings in the tutorial.
LEARNING_RATE = 0.01
MOMENTUM = 0.9
#: Seeds the initialisation, the batch order and the dropout masks.
SEED = 0
#: Where to compute: ``auto`` picks CUDA when PyTorch sees a GPU.
DEVICE = "auto"
#: The engine that trains.
ENGINE = "pytorch"
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
#: Seconds to wait for a silent server when downloading MNIST.
DOWNLOAD_TIMEOUT = 30.0
#: How many of the most probable digits ``predict`` lists.
TOP = 3
#: The training image whose feature maps are drawn, and the seed of a random pick.
FEATURE_MAP_IMAGE = "random"
FEATURE_MAP_SEED = 0
