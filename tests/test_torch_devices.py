"""mnist_cnn.engines.torch_devices: exact float32 on CUDA, the allocator setting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from mnist_cnn.engines.torch_devices import exact_float32, keep_freed_memory


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
    code = ("from mnist_cnn.engines.torch_devices import keep_freed_memory as k; "
            "print(k(), k(), k.cache_info().hits)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True", "1"]
    assert keep_freed_memory() is True
