"""How energy tracking, MLflow logging and early stopping plug into the training loop.

The loop knows nothing about MLflow or CodeCarbon: it calls these hooks, in list order, and reads
back only ``state.stop_reason``. The order of one epoch is::

    on_epoch_start(state)                      # energy: start measuring this epoch
    ... train steps ..., ... validation ...
    on_validation_end(state, metrics)          # validation metrics only (val_*, obj_metric)
    on_epoch_end(state, metrics)               # all epoch metrics; callbacks may ADD keys
                                               # (energy adds energy_kwh, ...), later ones read them
    <loop writes the last/best checkpoints, including every callback's state_dict()>
    stop if state.stop_reason is set

so put producers (energy) before consumers (early stopping, tracking) in the list.
Callbacks with state that matters for an exact resume (cumulative energy, patience counters)
implement ``state_dict``/``load_state_dict``; the loop stores them in the checkpoint by ``key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from sedwatt.config import SedwattConfig


@dataclass
class RunState:
    """What the loop shares with callbacks. Callbacks read it; only ``request_stop`` writes."""

    config: SedwattConfig
    out_dir: Path
    epoch: int = 0  # 1-based epoch in progress / just finished
    step: int = 0  # optimizer steps done
    steps_per_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per finished epoch
    best_obj_metric_epoch: int | None = None  # the epoch of checkpoints/best.pt (not the max val_f1's)
    best_obj_metric: float | None = None
    stop_reason: str | None = None
    resumed_from_epoch: int = 0  # > 0 when this process continued a killed run
    student: torch.nn.Module | None = None
    teacher: torch.nn.Module | None = None
    info: dict[str, Any] = field(default_factory=dict)  # batch split, dataset fingerprint, device, ...

    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / "checkpoints" / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / "checkpoints" / "best.pt"

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason


class Callback:
    """Base class: every hook is a no-op."""

    key: str = ""  # name under which state_dict() is stored in checkpoints ("" = stateless)

    def on_train_start(self, state: RunState) -> None: ...

    def on_epoch_start(self, state: RunState) -> None: ...

    def on_validation_end(self, state: RunState, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, state: RunState) -> None:
        """Called once, also when training failed or was interrupted (state.stop_reason says why)."""

    def state_dict(self) -> dict[str, Any]:
        """Plain values only (numbers, strings, None, lists, dicts, tensors): checkpoints are loaded weights-only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CallbackList(Callback):
    """Dispatches every hook to its callbacks in order."""

    def __init__(self, callbacks: list[Callback] | None = None) -> None:
        self.callbacks = list(callbacks or [])

    def on_train_start(self, state: RunState) -> None:
        for cb in self.callbacks:
            cb.on_train_start(state)

    def on_epoch_start(self, state: RunState) -> None:
        for cb in self.callbacks:
            cb.on_epoch_start(state)

    def on_validation_end(self, state: RunState, metrics: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_validation_end(state, metrics)

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(state, metrics)

    def on_train_end(self, state: RunState) -> None:
        errors: list[BaseException] = []
        for cb in self.callbacks:
            try:
                cb.on_train_end(state)
            except BaseException as exc:  # every callback gets to close what it opened
                errors.append(exc)
        if errors:
            raise errors[0]

    def state_dict(self) -> dict[str, Any]:
        return {cb.key: cb.state_dict() for cb in self.callbacks if cb.key}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for cb in self.callbacks:
            if cb.key and cb.key in state:
                cb.load_state_dict(state[cb.key])
