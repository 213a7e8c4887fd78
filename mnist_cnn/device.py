"""Choose the PyTorch device to compute on."""

from __future__ import annotations

import torch

from .errors import MnistCnnError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` (or ``"cuda:N"``) or ``"mps"`` into a device.

    ``"auto"`` picks CUDA when PyTorch sees a CUDA GPU, else the CPU.

    Raises
    ------
    MnistCnnError
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
            raise MnistCnnError(f"device {name!r} was asked for but PyTorch sees no CUDA GPU "
                                f"(its CUDA version: {build}); use --device cpu or auto")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise MnistCnnError("device 'mps' was asked for but Apple's Metal backend is "
                                "not available here; use --device cpu or auto")
        return torch.device("mps")
    raise MnistCnnError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
