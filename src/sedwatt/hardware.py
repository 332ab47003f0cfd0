"""The hardware fingerprint of a run: which GPU, CPU and software produced its energy figures.

Energy is only comparable between runs on the same hardware (schema.md: calibration groups runs by
``hw.gpu_model`` and ``hw.cpu_model``), so every run and model version carries these ``hw.*`` tags.
Everything here is read locally (torch, /proc/cpuinfo, psutil): no network, no subprocess, cheap
enough to call at the start of every run.
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

NO_GPU = "none"


def cpu_model_name(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's marketing name ("AMD EPYC 7763 64-Core Processor"), or a generic fallback."""
    try:
        for line in cpuinfo_path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    try:  # macOS / Windows: py-cpuinfo is installed with CodeCarbon
        import cpuinfo

        brand = cpuinfo.get_cpu_info().get("brand_raw")
        if brand:
            return " ".join(str(brand).split())
    except Exception:  # py-cpuinfo absent or failing: fall through to the generic name
        pass
    return platform.processor() or platform.machine() or "unknown"


def ram_gb() -> float:
    """Total physical memory in GiB, one decimal."""
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return round(total / 2**30, 1)


def used_cuda_index(device: object = None) -> int | None:
    """The CUDA device index this process computes on (``device`` like "cuda:1"), None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    if device is None:
        return torch.cuda.current_device()
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if dev.type != "cuda":
        return None
    return dev.index if dev.index is not None else torch.cuda.current_device()


def gpu_tags() -> dict[str, str]:
    """``hw.gpu_model`` (the device this process computes on), ``hw.gpu_count``, ``hw.cuda``."""
    import torch

    if not torch.cuda.is_available():
        return {"hw.gpu_model": NO_GPU, "hw.gpu_count": "0", "hw.cuda": NO_GPU}
    return {
        "hw.gpu_model": torch.cuda.get_device_name(torch.cuda.current_device()),
        "hw.gpu_count": str(torch.cuda.device_count()),
        "hw.cuda": str(torch.version.cuda or NO_GPU),
    }


def hardware_tags() -> dict[str, str]:
    """The ``hw.*`` tags of the run schema, every value a string."""
    import torch

    return {
        **gpu_tags(),
        "hw.cpu_model": cpu_model_name(),
        "hw.cpu_count": str(os.cpu_count() or 0),
        "hw.ram_gb": f"{ram_gb():.1f}",
        "hw.hostname": socket.gethostname(),
        "hw.torch": str(torch.__version__),
    }
