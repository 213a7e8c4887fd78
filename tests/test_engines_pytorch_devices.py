"""mnist_cnn.nets.engines.pytorch.devices: exact float32 on CUDA, oneMKL's reproducible mode,
the allocator setting, threads."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

import pytest
import torch

from mnist_cnn.nets.engines.pytorch.devices import exact_float32, keep_freed_memory


def test_exact_float32_turns_tf32_off_and_restores_the_users_settings():
    cudnn = torch.backends.cudnn
    before = cudnn.conv.fp32_precision, cudnn.deterministic
    with exact_float32():
        assert cudnn.conv.fp32_precision == "ieee" and cudnn.deterministic
    assert (cudnn.conv.fp32_precision, cudnn.deterministic) == before
    with pytest.raises(RuntimeError), exact_float32():
        raise RuntimeError("an error inside")
    assert (cudnn.conv.fp32_precision, cudnn.deterministic) == before


#: A tiny run in a fresh process: its mode, its weights' sha256 and any warning, one per line.
TINY_RUN = """
import hashlib, sys, warnings
import numpy as np
if sys.argv[1] == "multiplied first":
    import torch
    (torch.ones(64, 64) @ torch.ones(64, 64)).sum()
from mnist_cnn import train
rng = np.random.default_rng(0)
X = rng.random((200, 1, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, 200).astype(np.int32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run = train("custom_mlp:1,64,0,0", num_epochs=1, batch_size=20, seed=0, verbose=False,
                progress=False, data=(X, y, X[:40], y[:40], X[:40], y[:40]))
print(run.versions["onemkl_mode"])
print(hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in run.weights)).hexdigest())
print(" ".join(str(w.message) for w in caught))
"""


def tiny_run(how: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    done = subprocess.run([sys.executable, "-c", TINY_RUN, how], capture_output=True,
                          text=True, timeout=300, env={**clean, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:3]


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="PyTorch without oneMKL")
def test_the_engine_puts_onemkl_in_its_compatible_mode_before_its_first_product():
    """Set by the engine's import, the mode is the one MKL_CBWR=COMPATIBLE gives (the same
    weights); a process that multiplied with PyTorch first is warned, and its run,
    computed on oneMKL's own choice of kernels, is recorded as such; a mode the user
    chose is kept."""
    ours, late = tiny_run("imported first"), tiny_run("multiplied first")
    assert ours[0] == "compatible" and ours[2] == ""
    assert tiny_run("imported first", MKL_CBWR="COMPATIBLE")[:2] == ours[:2]
    assert late[0] == "off" and "MKL_CBWR=COMPATIBLE" in late[2]
    assert tiny_run("imported first", MKL_CBWR="AUTO")[0] == "auto"


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="a glibc setting")
def test_keep_freed_memory_applies_once_per_process_on_glibc():
    code = ("from mnist_cnn.nets.engines.pytorch.devices import keep_freed_memory as k; "
            "print(k(), k(), k.cache_info().hits)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True", "1"]
    assert keep_freed_memory() is True


def test_threads_fall_to_the_cores_another_process_leaves_free():
    from mnist_cnn.nets.engines.pytorch.devices import ThreadFitter

    previous = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores < 2:
        pytest.skip("needs two cores")
    torch.set_num_threads(cores)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        fitter = ThreadFitter("auto")
        time.sleep(1.0)
        assert fitter.refit() <= cores - 1
        assert torch.get_num_threads() == cores  # it only counts; Lanes runs the work
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(previous)


def test_fixed_threads_never_change():
    from mnist_cnn.nets.engines.pytorch.devices import ThreadFitter

    fitter = ThreadFitter(3)
    time.sleep(0.1)
    assert fitter.refit() == 3 and fitter.count == 3


def test_lanes_run_each_piece_on_one_pytorch_thread_and_keep_the_order():
    import threading

    from mnist_cnn.nets.engines.pytorch.devices import Lanes

    previous = torch.get_num_threads()
    lanes = Lanes(3)
    try:
        seen = lanes.map(lambda i: (i, torch.get_num_threads(),
                                    threading.current_thread().name), list(range(10)))
    finally:
        lanes.close()
    assert [i for i, _, _ in seen] == list(range(10))
    assert {threads for _, threads, _ in seen} == {1}
    assert "MainThread" in {name for _, _, name in seen}  # this thread is the first lane
    assert torch.get_num_threads() == previous
