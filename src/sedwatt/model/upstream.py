"""Load a state dict of the upstream DESED_task CRNN into ours.

Upstream names: ``cnn.cnn.conv{i}``, ``cnn.cnn.batchnorm{i}``, ``cnn.cnn.glu{i}.linear``, ``rnn.rnn``,
``dense``, ``dense_softmax``; a Lightning checkpoint prefixes them with ``sed_student.`` /
``sed_teacher.``. The mapping is a pure rename: our layers hold the same math in the same shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from sedwatt.errors import SedwattError
from sedwatt.model.crnn import CRNN

_RULES = (
    (re.compile(r"^cnn\.cnn\.conv(\d+)\.(weight|bias)$"), r"cnn.\1.conv.\2"),
    (re.compile(r"^cnn\.cnn\.batchnorm(\d+)\.(.+)$"), r"cnn.\1.bn.\2"),
    (re.compile(r"^cnn\.cnn\.glu(\d+)\.linear\.(weight|bias)$"), r"cnn.\1.glu.\2"),
    (re.compile(r"^rnn\.rnn\.(.+)$"), r"rnn.\1"),
    (re.compile(r"^(dense|dense_softmax)\.(weight|bias)$"), r"\1.\2"),
)


def _select(state_dict: Mapping[str, torch.Tensor], which: str) -> dict[str, torch.Tensor]:
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]  # a whole Lightning checkpoint
    prefix = f"sed_{which}."
    if any(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return dict(state_dict)


def map_upstream_keys(state_dict: Mapping[str, torch.Tensor], which: str = "student") -> dict[str, torch.Tensor]:
    mapped: dict[str, torch.Tensor] = {}
    for key, value in _select(state_dict, which).items():
        for pattern, target in _RULES:
            if pattern.match(key):
                mapped[pattern.sub(target, key)] = value
                break
        else:
            raise SedwattError(f"upstream state dict: unexpected key {key!r}")
    return mapped


def load_upstream_state_dict(model: CRNN, state_dict: Mapping[str, torch.Tensor], which: str = "student") -> CRNN:
    """Copy upstream weights (student by default, or ``which="teacher"``) into ``model``; strict on both sides."""
    mapped = map_upstream_keys(state_dict, which)
    expected = model.state_dict()
    missing = [k for k in expected if k not in mapped]
    if missing:
        raise SedwattError(f"upstream state dict: no value for {missing[0]!r} (and {len(missing) - 1} more)")
    for key, value in mapped.items():
        if key not in expected:
            raise SedwattError(f"upstream state dict: key {key!r} has no place in this model (another config?)")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise SedwattError(
                f"upstream state dict: {key!r} has shape {tuple(value.shape)}, the model expects {tuple(expected[key].shape)}"
            )
    model.load_state_dict(mapped, strict=True)
    return model
