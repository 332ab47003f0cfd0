"""Checkpoints that resume exactly: models, optimizer, step, epoch, best so far, RNG, callbacks.

Written to a temporary file and renamed, so a run killed while saving keeps its previous checkpoint.
Each epoch reseeds every RNG from (seed, epoch), so with these states a run killed at any point and
resumed replays the interrupted epoch exactly as an uninterrupted run would have.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sedwatt.atomic import atomic_path
from sedwatt.errors import SedwattError

FORMAT = "sedwatt-checkpoint/1"


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise SedwattError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torn or foreign file
        raise SedwattError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SedwattError(f"{path}: not a sedwatt checkpoint")
    return payload
