"""The hardware fingerprint of a run: which GPU, CPU and RAM produced its time and energy figures.

Energy is only comparable between runs on the same hardware (paper, finding 2; evaluation/calibration.py:
calibration groups runs by ``hw.gpu_model`` and ``hw.cpu_model``), so every run, calibration and
model version carries these ``hw.*`` tags. Everything is read locally (os, /proc/cpuinfo, torch):
no network, no subprocess, cheap enough for the start of every run. A probe that fails yields
"unknown", never an exception: a missing tag must not stop a training run.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

NO_GPU = "none"
UNKNOWN = "unknown"
HW_TAG_KEYS = (
    "hw.gpu_model",
    "hw.gpu_count",
    "hw.cpu_model",
    "hw.cpu_count",
    "hw.ram_gb",
    "hw.hostname",
    "hw.cuda",
    "hw.torch",
)


def used_cuda_index(device: Any = None) -> int | None:
    """The CUDA device index a run on ``device`` uses, or None when it computes on the CPU.

    ``device`` is what ``train.device`` holds ("auto", "cpu", "cuda", "cuda:1") or a
    ``torch.device``; None means "auto". Strings are read by ``resolve_device``, as the trainer
    reads them: CUDA when available, on the current device.
    """
    import torch

    try:
        if not torch.cuda.is_available():
            return None
        if isinstance(device, torch.device):
            dev = device
        else:
            dev = resolve_device("auto" if device is None else str(device).strip().lower())
        if dev.type != "cuda":
            return None
        return int(dev.index) if dev.index is not None else int(torch.cuda.current_device())
    except Exception:  # a broken driver or a device this machine lacks: no GPU to describe
        logger.debug("CUDA probe failed for device %r", device, exc_info=True)
        return None


def cpu_model_name(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name ("AMD EPYC 7763 64-Core Processor"), or a generic fallback."""
    try:
        for line in cpuinfo_path.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    try:  # macOS / Windows: py-cpuinfo comes with CodeCarbon
        import cpuinfo

        brand = cpuinfo.get_cpu_info().get("brand_raw")
        if brand:
            return " ".join(str(brand).split())
    except Exception:  # py-cpuinfo absent or failing: the generic name below
        pass
    return " ".join((platform.processor() or platform.machine() or UNKNOWN).split())


def ram_gb() -> float | None:
    """Total physical memory in GiB, one decimal (None if it cannot be read)."""
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return round(total / 2**30, 1)


def gpu_tags(device: Any = None) -> dict[str, str]:
    """``hw.gpu_model`` (the device the run computes on), ``hw.gpu_count`` (visible), ``hw.cuda``."""
    import torch

    index = used_cuda_index(device)
    if index is None:
        return {"hw.gpu_model": NO_GPU, "hw.gpu_count": "0", "hw.cuda": NO_GPU}
    cuda = str(torch.version.cuda or NO_GPU)
    try:
        return {
            "hw.gpu_model": torch.cuda.get_device_name(index),
            "hw.gpu_count": str(torch.cuda.device_count()),
            "hw.cuda": cuda,
        }
    except Exception:
        logger.debug("CUDA device query failed", exc_info=True)
        return {"hw.gpu_model": UNKNOWN, "hw.gpu_count": UNKNOWN, "hw.cuda": cuda}


def resolve_device(name: str) -> Any:
    """``train.device`` as a ``torch.device`` ("auto" = CUDA when present), for training and evaluation alike.

    A device this machine lacks (CUDA or MPS absent, ``cuda:N`` past the visible devices) is a
    ``SedwattError`` naming the setting, here rather than as a RuntimeError from the first tensor moved.
    """
    import torch

    from sedwatt.errors import SedwattError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SedwattError(f"train.device={name}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SedwattError(f"train.device={name}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise SedwattError(
                f"train.device={name}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SedwattError(f"train.device={name}: MPS is not available on this machine")
    return device


def hardware_tags(device: Any = None) -> dict[str, str]:
    """The ``hw.*`` tags of the run schema for a run on ``device``, every value a string.

    ``device`` defaults to the trainer's "auto" (CUDA if available); pass ``train.device`` so a
    CPU run on a GPU machine says ``hw.gpu_model=none``.
    """
    import torch

    ram = ram_gb()
    tags = {
        **gpu_tags(device),
        "hw.cpu_model": cpu_model_name(),
        "hw.cpu_count": str(os.cpu_count() or UNKNOWN),
        "hw.ram_gb": f"{ram:.1f}" if ram is not None else UNKNOWN,
        "hw.hostname": socket.gethostname() or UNKNOWN,
        "hw.torch": str(torch.__version__),
    }
    return {key: tags[key] for key in HW_TAG_KEYS}
