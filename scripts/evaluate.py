#!/usr/bin/env python3
"""Same as `mnist-cnn evaluate`: run `python scripts/evaluate.py --help` for its options."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone too

from mnist_cnn.frontends.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
