"""How fast: this project against the plain PyTorch way, on the same machine, in one run.

The *reference* is the loop a user would write from PyTorch's documentation for the same
network and recipe: ``DataLoader(TensorDataset(X, y), batch_size, shuffle=True)``, an
``nn.Sequential`` of the standard layers, ``SGD(nesterov=True)``, ``model.train()`` and
``model.eval()``. It is measured beside this project's trainer and inference, with the
machine's float32 matrix-multiply rate as the yardstick.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["format_table", "run_benchmark"]

#: Forward plus backward FLOPs of one training image through the CNN (REFERENCE.md).
TRAIN_FLOP_PER_IMAGE = 13.2e6
TRAIN_IMAGES = 50_000
#: Batches run before timing (first allocations, thread start-up).
_WARMUP = 3


def _reference_model() -> Any:
    import torch
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(512, 256), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(256, 10))
    for layer in model:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    torch.manual_seed(0)
    return model


def _reference_train(X: np.ndarray, y: np.ndarray, batch_size: int, batches: int) -> float:
    """Images per second of the documentation-style training loop."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    model = _reference_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y).long()),
                        batch_size=batch_size, shuffle=True, drop_last=True)
    model.train()
    done, start = -_WARMUP, 0.0
    for inputs, targets in loader:
        if done == 0:
            start = time.perf_counter()
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        done += 1
        if done == batches:
            break
    return done * batch_size / (time.perf_counter() - start)


def _our_train(X: np.ndarray, y: np.ndarray, batch_size: int, batches: int) -> float:
    """Images per second of this project's training step (the engine that train() runs)."""
    from .data import minibatch_indices
    from .networks import parse_model_name
    from .train import TorchEngine

    engine = TorchEngine(parse_model_name("cnn"), 0, 0.01, 0.9, "cpu", (X, y, X[:1], y[:1]))
    order = engine.batches(minibatch_indices(len(X), batch_size, shuffle=True, rng=0))
    for index in order[:_WARMUP]:
        engine.train_batch(index)
    losses = []
    start = time.perf_counter()
    for index in order[_WARMUP:_WARMUP + batches]:
        losses.append(engine.train_batch(index))
    engine.read_losses(losses)
    return batches * batch_size / (time.perf_counter() - start)


def _reference_inference(X: np.ndarray) -> float:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model = _reference_model().eval()
    with torch.no_grad():
        model(torch.from_numpy(X[:1000]))  # warm-up
    start = time.perf_counter()
    with torch.no_grad():
        for (inputs,) in DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=1000):
            torch.softmax(model(inputs), dim=1)
    return len(X) / (time.perf_counter() - start)


def _our_inference(X: np.ndarray) -> float:
    from .inference import predict_proba
    from .networks import init_weights

    weights = init_weights("cnn")
    predict_proba(weights, X[:1000], device="cpu")  # warm-up
    start = time.perf_counter()
    predict_proba(weights, X, device="cpu", batch_size=1000)
    return len(X) / (time.perf_counter() - start)


def _matmul_gflops(size: int, repeats: int) -> float:
    """The machine's float32 matrix-multiply rate through PyTorch (GFLOP/s)."""
    import torch

    a, b = torch.rand(size, size), torch.rand(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def _timed_process(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def run_benchmark(quick: bool = False, data_dir: str | os.PathLike | None = None) -> dict:
    """Measure everything in one run; returns a JSON-ready dict of figures.

    Parameters
    ----------
    quick : bool
        A few batches of each (checks that everything runs, not speed).
    data_dir : str or path-like, optional
        Where the MNIST files are (see :func:`mnist_cnn.load_dataset`).
    """
    from PIL import Image

    from .data import load_dataset

    X_train, y_train, _, _, X_test, _ = load_dataset(data_dir)
    X_train = np.ascontiguousarray(X_train)
    y_train = np.asarray(y_train)
    n_inference = 2000 if quick else 10000
    results: dict[str, Any] = {"quick": quick, "cpu_threads": _threads(), "training": {}}
    for batch_size in (50, 500):
        batches = 2 if quick else 20_000 // batch_size  # 20,000 images of each
        ref = _reference_train(X_train, y_train, batch_size, batches)
        ours = _our_train(X_train, y_train, batch_size, batches)
        results["training"][str(batch_size)] = {
            "batches": batches, "reference_images_per_s": ref, "ours_images_per_s": ours,
            "ratio": ours / ref, "reference_s_per_epoch": TRAIN_IMAGES / ref,
            "ours_s_per_epoch": TRAIN_IMAGES / ours,
            "ours_gflops": ours * TRAIN_FLOP_PER_IMAGE / 1e9}
    X = np.ascontiguousarray(X_test[:n_inference])
    ref, ours = _reference_inference(X), _our_inference(X)
    results["inference"] = {"images": n_inference, "reference_images_per_s": ref,
                            "ours_images_per_s": ours, "ratio": ours / ref}
    rate = _matmul_gflops(512 if quick else 2048, 3 if quick else 10)
    results["matmul_gflops"] = rate
    results["epoch_s_at_matmul_rate"] = TRAIN_IMAGES * TRAIN_FLOP_PER_IMAGE / (rate * 1e9)

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "digit.png"
        Image.fromarray((X_test[0, 0] * 256).astype(np.uint8)).save(image)
        env = {**os.environ, "MNIST_CNN_CACHE_DIR": str(Path(tmp) / "cache")}
        if data_dir is not None:
            env["MNIST_DATA_DIR"] = str(Path(data_dir).resolve())
        command = [sys.executable, "-m", "mnist_cnn", "predict", str(image)]
        results["predict_one_png_wall_s"] = _timed_process(command, env)
        load = [sys.executable, "-c", "from mnist_cnn import load_dataset; load_dataset()"]
        results["load_dataset_cold_s"] = _timed_process(load, env)
        results["load_dataset_warm_s"] = _timed_process(load, env)
    return results


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def format_table(r: dict) -> str:
    """The figures of :func:`run_benchmark` as a Markdown table."""
    rows = ["| measure | reference (plain PyTorch) | mnist-cnn | ratio |",
            "|---|---|---|---|"]
    for batch_size, t in r["training"].items():
        rows.append(f"| training, batch {batch_size}: images/s (s/epoch) | "
                    f"{t['reference_images_per_s']:,.0f} ({t['reference_s_per_epoch']:.1f}) | "
                    f"{t['ours_images_per_s']:,.0f} ({t['ours_s_per_epoch']:.1f}) | "
                    f"{t['ratio']:.2f}x |")
    i = r["inference"]
    rows.append(f"| inference, batch 1000: images/s | {i['reference_images_per_s']:,.0f} | "
                f"{i['ours_images_per_s']:,.0f} | {i['ratio']:.2f}x |")
    best = max(t["ours_gflops"] for t in r["training"].values())
    rows += [
        "",
        f"- matrix-multiply rate (float32): {r['matmul_gflops']:.1f} GFLOP/s; an epoch at "
        f"that rate: {r['epoch_s_at_matmul_rate']:.1f} s; training achieves up to "
        f"{best:.1f} GFLOP/s ({TRAIN_FLOP_PER_IMAGE / 1e6:.1f} MFLOP per image)",
        f"- `mnist-cnn predict one.png`, a fresh process: {r['predict_one_png_wall_s']:.2f} s",
        f"- `load_dataset()` in a fresh process (imports included): cold "
        f"{r['load_dataset_cold_s']:.2f} s, warm {r['load_dataset_warm_s']:.2f} s",
        f"- PyTorch threads: {r['cpu_threads']}" + (" (quick mode: not a measure of speed)"
                                                   if r["quick"] else ""),
    ]
    return "\n".join(rows)
