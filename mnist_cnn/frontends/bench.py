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

#: Forward plus backward FLOPs of one training image through the CNN: the four
#: convolution passes and the dense layers, counted as multiply-adds times two.
TRAIN_FLOP_PER_IMAGE = 13.2e6
TRAIN_IMAGES = 50_000
#: Batches run before timing (first allocations, thread start-up).
_WARMUP = 3
#: Images per inference batch of the reference loop.
_REFERENCE_BATCH = 1000


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


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _training_data(data_dir: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    from mnist_cnn.storage.mnist_data import load_dataset

    X, y = load_dataset(data_dir)[:2]
    return np.ascontiguousarray(X), np.asarray(y)


def _reference_train(data_dir: str | os.PathLike | None, batch_size: int, batches: int,
                     device: str) -> float:
    """Images per second of the documentation-style training loop."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    X, y = _training_data(data_dir)
    model = _reference_model().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y).long()),
                        batch_size=batch_size, shuffle=True, drop_last=True)
    model.train()
    done, start = -_WARMUP, 0.0
    for inputs, targets in loader:
        if done == 0:
            _sync(device)
            start = time.perf_counter()
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        done += 1
        if done == batches:
            break
    _sync(device)
    return done * batch_size / (time.perf_counter() - start)


def _our_train(data_dir: str | os.PathLike | None, batch_size: int, batches: int,
               device: str) -> float:
    """Images per second of this project's training step (the trainer that train() runs)."""
    from mnist_cnn.nets import mrg
    from mnist_cnn.nets.engines.pytorch.trainer import TorchTrainer
    from mnist_cnn.nets.spec import initialise
    from mnist_cnn.storage.mnist_data import minibatch_indices
    from mnist_cnn.training.settings import Settings

    X, y = _training_data(data_dir)
    rng = np.random.RandomState(0)
    weights, seeds = initialise("cnn", rng)
    settings = Settings.of(batch_size=batch_size, device=device)  # as train() sets it up
    trainer = TorchTrainer(weights, [mrg.stream_states(s)[0] for s in seeds], settings,
                           (X, y, X[:1], y[:1]))
    time.sleep(0.2)  # a first measure of the cores other processes use
    order = minibatch_indices(len(X), batch_size, shuffle=True, rng=rng)
    warmup = _WARMUP + trainer.warmup_steps  # a CUDA graph is captured in the warm-up
    for _ in trainer.train_epoch(order[:warmup]):
        pass
    start = time.perf_counter()
    for _ in trainer.train_epoch(order[warmup:warmup + batches]):
        pass
    return batches * batch_size / (time.perf_counter() - start)


def _reference_inference(data_dir: str | os.PathLike | None, n: int, device: str) -> float:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    X = _training_data(data_dir)[0][:n]
    model = _reference_model().to(device).eval()
    with torch.no_grad():
        model(torch.from_numpy(X[:_REFERENCE_BATCH]).to(device))  # warm-up
    _sync(device)
    start = time.perf_counter()
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=_REFERENCE_BATCH)
    with torch.no_grad():
        out = [torch.softmax(model(inputs.to(device)), dim=1).cpu() for (inputs,) in loader]
    assert sum(len(o) for o in out) == n
    return n / (time.perf_counter() - start)


def _our_inference(data_dir: str | os.PathLike | None, n: int, device: str) -> float:
    from mnist_cnn.nets.inference import predict_proba
    from mnist_cnn.nets.spec import init_weights

    X = _training_data(data_dir)[0][:n]
    weights = init_weights("cnn")
    predict_proba(weights, X[:1000], device=device, engine="pytorch")  # warm-up
    start = time.perf_counter()
    proba = predict_proba(weights, X, device=device, engine="pytorch")
    assert proba.shape == (n, 10)
    return n / (time.perf_counter() - start)


def _matmul_gflops(size: int, repeats: int, device: str) -> float:
    """The machine's float32 matrix-multiply rate through PyTorch (GFLOP/s, no TF32)."""
    import torch

    a = torch.rand(size, size, device=device)
    b = torch.rand(size, size, device=device)
    torch.mm(a, b)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    _sync(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def _five_epochs_in_process(data_dir: str | os.PathLike | None, device: str) -> dict:
    """The blog's run (5 epochs at batch 50, validation each epoch, final test) timed."""
    from mnist_cnn.storage.mnist_data import load_dataset
    from mnist_cnn.training.loop import train

    data = load_dataset(data_dir)
    start = time.perf_counter()
    result = train("cnn", num_epochs=5, batch_size=50, device=device, data=data,
                   verbose=False, progress=False)
    return {"wall_s": time.perf_counter() - start, "test_accuracy": result.test_accuracy,
            "epoch_s": [h.seconds for h in result.history]}


def _fresh(function: Any, *args: Any) -> Any:
    """Run one measurement in a fresh Python process: nothing carries over from another.

    This project's trainer tunes the process's memory allocator (see
    :func:`mnist_cnn.device.keep_freed_memory`); the reference must not profit from it.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def _timed_process(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - start


def run_benchmark(quick: bool = False, data_dir: str | os.PathLike | None = None,
                  device: str = "auto") -> dict:
    """Measure everything in one run; returns a JSON-ready dict of figures.

    Each training and inference measurement runs in a fresh process, the reference
    and this project's alike.

    Parameters
    ----------
    quick : bool
        A few batches of each (checks that everything runs, not speed).
    data_dir : str or path-like, optional
        Where the MNIST files are (see :func:`mnist_cnn.load_dataset`).
    device : str
        ``"auto"`` (CUDA if present), ``"cpu"`` or ``"cuda"``. On CUDA the report adds
        the blog's 5-epoch run, timed in this process and as a fresh ``mnist-cnn train``
        process.

    Returns
    -------
    dict
        ``training`` (per batch size), ``inference``, ``matmul_gflops`` and the rest;
        :func:`format_table` prints it.
    """
    from PIL import Image

    from mnist_cnn import defaults
    from mnist_cnn.nets.engines.pytorch.devices import resolve_device
    from mnist_cnn.storage.mnist_data import load_dataset

    torch_device = resolve_device(device)
    device = str(torch_device)
    cuda = device.startswith("cuda")
    X_test = load_dataset(data_dir)[4]
    results: dict[str, Any] = {"quick": quick, "device": _device_name(device),
                               "cpu_threads": _threads(), "training": {}}
    for batch_size in (50, 500):
        batches = 2 if quick else (100_000 if cuda else 20_000) // batch_size
        ref = _fresh(_reference_train, data_dir, batch_size, batches, device)
        ours = _fresh(_our_train, data_dir, batch_size, batches, device)
        results["training"][str(batch_size)] = {
            "batches": batches, "reference_images_per_s": ref, "ours_images_per_s": ours,
            "ratio": ours / ref, "reference_s_per_epoch": TRAIN_IMAGES / ref,
            "ours_s_per_epoch": TRAIN_IMAGES / ours,
            "ours_gflops": ours * TRAIN_FLOP_PER_IMAGE / 1e9}
    if not cuda:
        results["busy_core"] = _busy_core(data_dir, 2 if quick else 6000 // 50)
    n_inference = 2000 if quick else (50_000 if cuda else 10_000)
    ref = _fresh(_reference_inference, data_dir, n_inference, device)
    ours = _fresh(_our_inference, data_dir, n_inference, device)
    results["inference"] = {"images": n_inference, "reference_batch": _REFERENCE_BATCH,
                            "ours_batch": defaults.INFERENCE_BATCH.get(torch_device.type, 1000),
                            "reference_images_per_s": ref, "ours_images_per_s": ours,
                            "ratio": ours / ref}
    if cuda:
        size = 2048 if quick else 8192
    else:
        size = 512 if quick else 2048
    rate = _fresh(_matmul_gflops, size, 3 if quick else 10, device)
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
        if cuda and not quick:
            results["five_epochs"] = _fresh(_five_epochs_in_process, data_dir, device)
            train = [sys.executable, "-m", "mnist_cnn", "train", "--device", device,
                     "--out", str(Path(tmp) / "run")]
            results["five_epochs"]["fresh_process_wall_s"] = _timed_process(train, env)
    return results


def _busy_core(data_dir: str | os.PathLike | None, batches: int) -> dict:
    """Batch-50 training rates quiet and beside a process that keeps one core busy.

    The busy process is a Python loop that this benchmark starts and stops itself; both
    loops are measured beside it, each in a fresh process.
    """
    quiet = _fresh(_our_train, data_dir, 50, batches, "cpu")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        ours = _fresh(_our_train, data_dir, 50, batches, "cpu")
        reference = _fresh(_reference_train, data_dir, 50, batches, "cpu")
    finally:
        busy.kill()
        busy.wait()
    return {"batches": batches, "quiet_images_per_s": quiet, "busy_images_per_s": ours,
            "busy_ratio": ours / quiet, "reference_busy_images_per_s": reference}


def _device_name(device: str) -> str:
    import torch

    from mnist_cnn.nets.engines.pytorch.devices import cpu_kind

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"{cpu_kind()}, {os.cpu_count()} cores"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def format_table(r: dict) -> str:
    """The figures of :func:`run_benchmark` as a Markdown table."""
    rows = [f"Device: {r['device']}", "",
            "| measure | reference (plain PyTorch) | mnist-cnn | ratio |",
            "|---|---|---|---|"]
    for batch_size, t in r["training"].items():
        rows.append(f"| training, batch {batch_size}: images/s (s/epoch) | "
                    f"{t['reference_images_per_s']:,.0f} ({t['reference_s_per_epoch']:.1f}) | "
                    f"{t['ours_images_per_s']:,.0f} ({t['ours_s_per_epoch']:.1f}) | "
                    f"{t['ratio']:.2f}x |")
    i = r["inference"]
    batch = f"batch {i['reference_batch']}"
    if i["ours_batch"] != i["reference_batch"]:
        batch += f" (mnist-cnn: its default {i['ours_batch']:,})"
    rows.append(f"| inference, {batch}: images/s | {i['reference_images_per_s']:,.0f} | "
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
    if "busy_core" in r:
        b = r["busy_core"]
        rows.append(f"- with one core kept busy by another process (training, batch 50): "
                    f"{b['busy_images_per_s']:,.0f} images/s, {b['busy_ratio']:.0%} of the "
                    f"quiet {b['quiet_images_per_s']:,.0f} (plain PyTorch loop beside it: "
                    f"{b['reference_busy_images_per_s']:,.0f})")
    if "five_epochs" in r:
        f = r["five_epochs"]
        rows.append(f"- the blog's 5-epoch run (batch 50, validation each epoch, final test): "
                    f"{f['wall_s']:.2f} s in `train()` (epochs: "
                    + ", ".join(f"{s:.2f}" for s in f["epoch_s"])
                    + f" s; test accuracy {f['test_accuracy'] * 100:.2f} %), "
                    f"{f['fresh_process_wall_s']:.2f} s as a fresh `mnist-cnn train` process")
    return "\n".join(rows)
