"""mnist_cnn.frontends.bench: the benchmark runs and reports sane figures (not a speed test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_cnn.frontends.bench import format_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.mnist
@pytest.mark.slow  # trains in fresh processes
def test_quick_benchmark_reports_every_figure_as_json_and_as_a_table(mnist_dir):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--quick",
                           "--json"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert set(r["training"]) == {"50", "500"}
    for t in r["training"].values():
        assert t["reference_images_per_s"] > 0 and t["ours_images_per_s"] > 0
        assert t["ratio"] == pytest.approx(t["ours_images_per_s"] / t["reference_images_per_s"])
        assert t["ours_s_per_epoch"] == pytest.approx(50000 / t["ours_images_per_s"])
    assert r["inference"]["ours_images_per_s"] > 0 and r["matmul_gflops"] > 0
    assert 0 < r["load_dataset_warm_s"] < 60 and 0 < r["predict_one_png_wall_s"] < 60
    table = format_table(r)  # the same figures as the table that `bench` prints
    for words in ("training, batch 50", "training, batch 500", "inference, batch 1000",
                  "matrix-multiply rate", "mnist-cnn predict", "cold", "warm"):
        assert words in table
