"""Checkpoints that resume exactly: models, optimizer, step, epoch, best so far, RNG, callbacks.

Written to a temporary file and renamed, so a run killed while saving keeps its previous checkpoint.
Each epoch reseeds every RNG from (seed, epoch), so with these states a run killed at any point and
resumed replays the interrupted epoch exactly as an uninterrupted run would have.

A checkpoint may come from the shared tracking server (``--resume`` downloads it), so loading one must
never run code: it is read with ``torch.load(weights_only=True)``, and ``save_checkpoint`` writes only
plain values — tensors, numbers, strings, None, lists, tuples and dicts — so that its own files pass.
A file that needs any other global (a class, a function) is refused with one line naming it.
"""

from __future__ import annotations

import pickle
import pickletools
import random
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sedwatt.atomic import atomic_path
from sedwatt.errors import SedwattError

FORMAT_PREFIX = "sedwatt-checkpoint/"
# /2: plain values only (numpy RNG state as a tensor, numpy scalars as Python numbers); /1 pickled numpy objects.
FORMAT = f"{FORMAT_PREFIX}2"
PLAIN = "tensors, numbers, strings, lists and dicts"


def rng_states() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as plain values."""
    numpy_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "python": random.getstate(),  # (version, tuple of 625 ints, gauss_next): plain already
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = states["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` as the plain values a weights-only load accepts; numpy scalars become Python numbers.

    Anything else is a programming error (a callback's state_dict returning an object): it raises
    TypeError here, at save time, rather than leaving a checkpoint that cannot be resumed.
    """
    if isinstance(value, np.generic):  # before float: np.float64 is a float, but pickles as a numpy global
        return value.item()
    if value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor):
        return value
    if type(value) in (list, tuple):
        return type(value)(plain(item, f"{where}[{i}]") for i, item in enumerate(value))
    if type(value) in (dict, OrderedDict):
        out = type(value)((plain(k, f"{where} key"), plain(v, f"{where}.{k}")) for k, v in value.items())
        metadata = getattr(value, "_metadata", None)  # a module state_dict's per-module versions
        if metadata is not None:
            out._metadata = plain(metadata, f"{where}._metadata")  # type: ignore[attr-defined]
        return out
    kind = type(value)
    raise TypeError(
        f"{where}: {kind.__module__}.{kind.__qualname__} cannot go into a checkpoint (only {PLAIN})"
    )


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **plain(payload)}, tmp)
    return path


def _declared_format(path: Path) -> str | None:
    """The format string a torch zip checkpoint declares, read from its pickle opcodes without running them."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            data = archive.read(name)
        for _opcode, arg, _pos in pickletools.genops(data):
            if isinstance(arg, str) and arg.startswith(FORMAT_PREFIX):
                return arg
    except Exception:  # not a zip, no pickle, a torn pickle: nothing declared
        return None
    return None


def _refused(path: Path, exc: pickle.UnpicklingError) -> SedwattError:
    """One line for a file that needs more than plain values: what it needs, and whether it is an old checkpoint."""
    # torch re-raises with advice around the unpickler's own message, which stays in __context__
    reason = str(exc.__context__ or exc).strip()
    # "Unsupported global: GLOBAL pkg.Class was not an allowed ..." or "... GLOBAL posix.system whose module ..."
    found = re.search(r"GLOBAL (\S+)", reason)
    what = found.group(1) if found else (reason.splitlines() or ["an unsupported object"])[0][:200]
    declared = _declared_format(path)
    if declared is not None and declared != FORMAT:
        return SedwattError(
            f"{path}: refused: a {declared} checkpoint from an older sedwatt, it needs {what}; "
            f"this sedwatt loads only {FORMAT} checkpoints of {PLAIN}, so it cannot be resumed"
        )
    return SedwattError(
        f"{path}: refused: it needs {what}, but a checkpoint may hold only {PLAIN}; nothing in it was run"
    )


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's payload, loaded weights-only: a file needing any other global raises SedwattError."""
    path = Path(path)
    if not path.is_file():
        raise SedwattError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights-only refusal: the file wanted a class or function
        raise _refused(path, exc) from None
    except Exception as exc:  # torn or foreign file
        raise SedwattError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict):
        raise SedwattError(f"{path}: not a sedwatt checkpoint")
    declared = payload.get("format")
    if declared != FORMAT:
        if isinstance(declared, str) and declared.startswith(FORMAT_PREFIX):
            raise SedwattError(
                f"{path}: a {declared} checkpoint; this sedwatt resumes only {FORMAT} checkpoints"
            )
        raise SedwattError(f"{path}: not a sedwatt checkpoint")
    return payload
