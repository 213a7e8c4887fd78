"""mnist_cnn.nets.engines.pytorch.devices: exact float32 on CUDA, the allocator setting, threads."""

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
