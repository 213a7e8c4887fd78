"""``python -m mnist_cnn`` is the ``mnist-cnn`` command."""

import sys

from mnist_cnn.frontends.cli import main

sys.exit(main())
