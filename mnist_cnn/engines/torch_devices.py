"""Choose the PyTorch device to compute on, and the settings that make it fast and exact."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Iterator

import torch

from ..errors import EngineError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"mps"`` into a device.

    ``"auto"`` picks CUDA when PyTorch sees a CUDA GPU, else the CPU.

    Raises
    ------
    EngineError
        If the named device is not available here.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none (a CPU-only build)"
            raise EngineError(f"device {name!r} was asked for but PyTorch sees no CUDA GPU "
                                f"(its CUDA version: {build}); use --device cpu or auto")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise EngineError("device 'mps' was asked for but Apple's Metal backend is "
                                "not available here; use --device cpu or auto")
        return torch.device("mps")
    raise EngineError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """While it runs, cuDNN computes in full float32 (not TF32), deterministically.

    cuDNN may use TF32 (a 10-bit mantissa) for float32 convolutions by default, and
    algorithms whose sums run in a varying order; the tutorial's math is float32 and a
    seed should give the same weights, so training and inference turn both off. The
    other cuDNN settings are left as they are; nothing changes on a CPU.
    """
    cudnn = torch.backends.cudnn
    previous = cudnn.conv.fp32_precision, cudnn.deterministic
    cudnn.conv.fp32_precision, cudnn.deterministic = "ieee", True
    try:
        yield
    finally:
        cudnn.conv.fp32_precision, cudnn.deterministic = previous


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process reuse freed memory instead of returning it to the OS (glibc only).

    glibc serves large blocks (a batch's activations are megabytes) with fresh ``mmap``
    calls and gives them back on ``free``, so every training step pays page faults to
    touch new memory. Raising glibc's mmap and trim thresholds keeps those blocks in the
    heap for the next step. It is a process-wide allocator setting, made once; returns
    False where it does not apply (not glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 256 << 20) and mallopt(m_trim_threshold, 1 << 30))
