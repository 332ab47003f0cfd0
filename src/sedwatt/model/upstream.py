"""Load a state dict of the upstream DESED_task CRNN into ours.

Upstream names: ``cnn.cnn.conv{i}``, ``cnn.cnn.batchnorm{i}``, ``cnn.cnn.glu{i}.linear``, ``rnn.rnn``
(an ``nn.GRU``: ``weight_ih_l0``, ``weight_ih_l0_reverse``, …), ``dense``, ``dense_softmax``. A Lightning
checkpoint of the recipe holds both models, prefixed ``sed_student.`` / ``sed_teacher.`` (next to
other modules such as the mel extractor, which are ignored). Our layers keep upstream's parameter
shapes — the fused block computes the same math from them — so the mapping is a rename.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from sedwatt.errors import SedwattError
from sedwatt.model.crnn import CRNN

# (upstream pattern, our name) and back; \1 = block index, \2 = parameter or buffer name.
_TO_OURS = (
    (re.compile(r"^cnn\.cnn\.conv(\d+)\.(weight|bias)$"), r"cnn.\1.conv.\2"),
    (re.compile(r"^cnn\.cnn\.batchnorm(\d+)\.(\w+)$"), r"cnn.\1.bn.\2"),
    (re.compile(r"^cnn\.cnn\.glu(\d+)\.linear\.(weight|bias)$"), r"cnn.\1.glu.linear.\2"),
    (re.compile(r"^rnn\.rnn\.(\w+)$"), r"rnn.\1"),
    (re.compile(r"^(dense|dense_softmax)\.(weight|bias)$"), r"\1.\2"),
)
_TO_UPSTREAM = (
    (re.compile(r"^cnn\.(\d+)\.conv\.(weight|bias)$"), r"cnn.cnn.conv\1.\2"),
    (re.compile(r"^cnn\.(\d+)\.bn\.(\w+)$"), r"cnn.cnn.batchnorm\1.\2"),
    (re.compile(r"^cnn\.(\d+)\.glu\.linear\.(weight|bias)$"), r"cnn.cnn.glu\1.linear.\2"),
    (re.compile(r"^rnn\.(\w+)$"), r"rnn.rnn.\1"),
    (re.compile(r"^(dense|dense_softmax)\.(weight|bias)$"), r"\1.\2"),
)
MODELS = ("student", "teacher")


def _rename(key: str, rules: tuple[tuple[re.Pattern[str], str], ...]) -> str | None:
    for pattern, target in rules:
        if pattern.match(key):
            return pattern.sub(target, key)
    return None


def upstream_name(our_key: str) -> str:
    """The upstream name of one of our state-dict keys (for messages and exports)."""
    name = _rename(our_key, _TO_UPSTREAM)
    if name is None:
        raise SedwattError(f"model state dict: key {our_key!r} has no upstream counterpart")
    return name


def select_model(state_dict: Mapping[str, object], which: str = "student") -> dict[str, torch.Tensor]:
    """The plain upstream state dict inside a Lightning checkpoint (or ``state_dict``) of the recipe."""
    if which not in MODELS:
        raise SedwattError(f"upstream state dict: which={which!r}, expected one of {', '.join(MODELS)}")
    inner = state_dict.get("state_dict")
    if isinstance(inner, Mapping):
        state_dict = inner  # a whole Lightning checkpoint
    prefixes = tuple(f"sed_{name}." for name in MODELS)
    if any(isinstance(k, str) and k.startswith(prefixes) for k in state_dict):
        prefix = f"sed_{which}."
        chosen = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not chosen:
            raise SedwattError(f"upstream checkpoint: no '{prefix}*' keys (it holds another model)")
        return chosen  # type: ignore[return-value]
    return dict(state_dict)  # type: ignore[arg-type]


def map_upstream_keys(state_dict: Mapping[str, object], which: str = "student") -> dict[str, torch.Tensor]:
    """Upstream names → ours, for the student (default) or teacher of a checkpoint; unknown keys are errors."""
    mapped: dict[str, torch.Tensor] = {}
    for key, value in select_model(state_dict, which).items():
        ours = _rename(key, _TO_OURS)
        if ours is None:
            raise SedwattError(f"upstream state dict: unexpected key {key!r}")
        if not isinstance(value, torch.Tensor):
            raise SedwattError(f"upstream state dict: {key!r} holds a {type(value).__name__}, not a tensor")
        mapped[ours] = value
    return mapped


def load_upstream_state_dict(model: CRNN, state_dict: Mapping[str, object], which: str = "student") -> CRNN:
    """Copy upstream weights (student by default, or ``which="teacher"``) into ``model``; strict on both sides.

    Accepts a plain upstream CRNN state dict, a Lightning checkpoint's ``state_dict`` with
    ``sed_student.`` / ``sed_teacher.`` prefixes, or the whole checkpoint dict.
    """
    mapped = map_upstream_keys(state_dict, which)
    expected = model.state_dict()
    for key in expected:
        if key not in mapped:
            raise SedwattError(f"upstream state dict: no value for {upstream_name(key)!r}")
    for key, value in mapped.items():
        if key not in expected:
            raise SedwattError(f"upstream state dict: {upstream_name(key)!r} has no place in this model (another config?)")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise SedwattError(
                f"upstream state dict: {upstream_name(key)!r} has shape {tuple(value.shape)}, "
                f"this model expects {tuple(expected[key].shape)} (another config?)"
            )
    model.load_state_dict(mapped, strict=True)
    return model
