"""A real tiny training for the tracking tests, its validation curve scripted so the answers are known.

The real ``Trainer`` (its hook order, checkpoints and obj_metric checkpoint choice) trains the tiny
model on the tiny preset, with ``ScriptedCurve`` first among its callbacks: at validation end it
replaces the validation metrics by the script below before anyone reads them (the loop's checkpoint
choice included), and at epoch end it adds a known energy, as the energy callback would. The script
makes the two singled-out epochs differ: ``val_f1`` first reaches its max at epoch 5 (0.44; 0.43 at
epoch 4 within the first 4), ``obj_metric`` peaks at epoch 3 — so a test can tell the max-F1 epoch
from the checkpoint's, and the registered student must hold epoch 3's weights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sedwatt.training.callbacks import Callback, RunState
from sedwatt.training.loop import Trainer

# val_f1 crosses 0.40 (and 95 % of the max, 0.418) at epoch 4 and peaks at epoch 5.
F1_CURVE = (0.12, 0.27, 0.36, 0.43, 0.44, 0.42, 0.41, 0.40)
OBJ_CURVE = (0.30, 0.50, 0.70, 0.65, 0.60, 0.55, 0.50, 0.45)  # obj_metric: best at epoch 3
CHECKPOINT_EPOCH = 3
KWH_PER_EPOCH = 0.002
# The overrides the tracking tests train with: few steps per epoch (batch 32), a name of their own.
TRACKING_OVERRIDES = ("train.batch_size=32", "name=tracking-test")


def scripted(epoch: int) -> dict[str, float]:
    """Epoch ``epoch``'s validation metrics; obj_metric = weak F1 + F1 at 0.5/0.5, as the recipe's."""
    i = (epoch - 1) % len(F1_CURVE)
    half = OBJ_CURVE[i] / 2
    return {
        "val_f1": F1_CURVE[i],
        "val_f1_student": F1_CURVE[i] - 0.01,
        "val_f1_05_student": half,
        "val_weak_f1_student": half,
        "obj_metric": OBJ_CURVE[i],
    }


class ScriptedCurve(Callback):
    """The script's validation metrics, a constant energy per epoch, provenance tags and a CSV artifact."""

    def __init__(self) -> None:
        self.total = 0.0
        self.csv: Path | None = None

    def on_train_start(self, state: RunState) -> None:
        state.info.setdefault("tags", {}).update({"energy.tool": "codecarbon 3.3.2", "energy.cpu_method": "forced"})
        self.csv = Path(state.out_dir) / "energy" / "energy_epochs.csv"
        self.csv.parent.mkdir(parents=True, exist_ok=True)
        self.csv.write_text("epoch,energy_kwh\n")
        state.info.setdefault("artifacts", {})["energy"] = str(self.csv)

    def on_validation_end(self, state: RunState, metrics: dict[str, float]) -> None:
        metrics.update(scripted(state.epoch))

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        self.total += KWH_PER_EPOCH
        metrics.update({"energy_kwh": KWH_PER_EPOCH, "energy_cum_kwh": self.total, "cpu_energy_kwh": KWH_PER_EPOCH / 2})
        metrics["note"] = "not a number"  # type: ignore[assignment]  # the tracker must skip it
        with open(self.csv, "a") as handle:
            handle.write(f"{state.epoch},{KWH_PER_EPOCH}\n")

    def on_train_end(self, state: RunState) -> None:
        state.info["tags"]["energy.ram_method"] = "late-tag"  # added at the very end


class FailAt(Callback):
    """Raises ``error`` when epoch ``epoch`` starts, as a crash or a Ctrl-C there would."""

    def __init__(self, epoch: int, error: BaseException) -> None:
        self.epoch, self.error = epoch, error

    def on_epoch_start(self, state: RunState) -> None:
        if state.epoch == self.epoch:
            raise self.error


class AfterEpoch(Callback):
    """Calls ``action(epoch)`` at the end of every epoch (put it after the tracker)."""

    def __init__(self, action: Callable[[int], None]) -> None:
        self.action = action

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        self.action(state.epoch)


def train(config, data, out_dir: Path, callbacks: list[Callback]) -> RunState:
    """The real Trainer on ``data``, the script first among ``callbacks``."""
    trainer = Trainer(config, data)
    trainer.attach(Path(out_dir), [ScriptedCurve(), *callbacks])
    return trainer.fit()
