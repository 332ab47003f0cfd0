"""A stand-in training loop for tracking tests: the real hook order, a tiny torch model, synthetic metrics.

It drives callbacks exactly as sedwatt.training.loop.Trainer.fit does (start → per epoch: start,
validation end, epoch end, checkpoints → end in ``finally`` with ``stop_reason`` on failure), so the
tracking callback can be tested without data, features or the CRNN. The student's weights change
every epoch (bias = epoch number), so a test can tell which epoch's weights a logged model holds.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch

from sedwatt.config import SedwattConfig, load_config
from sedwatt.training.callbacks import Callback, CallbackList, RunState
from sedwatt.training.checkpoint import save_checkpoint

# Validation F1 per epoch: crosses 0.40 (and 95 % of the max) at epoch 4, peaks at epoch 5, then falls.
F1_CURVE = (0.12, 0.27, 0.36, 0.43, 0.44, 0.42, 0.41, 0.40)
HW_TAGS = {
    "hw.gpu_model": "none",
    "hw.gpu_count": "0",
    "hw.cpu_model": "Test CPU 9000",
    "hw.cpu_count": "2",
    "hw.ram_gb": "24",
    "hw.hostname": "testhost",
    "hw.cuda": "none",
    "hw.torch": torch.__version__,
}


def tiny_config(tmp: Path, epochs: int = 5, overrides: tuple[str, ...] = ()) -> SedwattConfig:
    return load_config(None, [f"train.epochs={epochs}", f"train.out_dir={tmp}", "name=tracking-test", *overrides])


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def epoch_metrics(epoch: int) -> dict[str, float]:
    f1 = F1_CURVE[(epoch - 1) % len(F1_CURVE)]
    return {
        "val_f1": f1,
        "val_f1_student": f1 - 0.01,
        "val_f1_05_student": f1 + 0.05,
        "val_weak_f1_student": f1 + 0.1,
        "obj_metric": f1 + 0.05,
        "train_loss": 1.0 / epoch,
        "lr": 1e-3,
        "epoch_s": 10.0,
        "cum_time_s": 10.0 * epoch,
    }


class FakeEnergy(Callback):
    """Adds the energy metrics and provenance tags as the energy callback does, plus a CSV artifact."""

    def __init__(self, kwh_per_epoch: float = 0.002) -> None:
        self.kwh = kwh_per_epoch
        self.total = 0.0
        self.csv: Path | None = None

    def on_train_start(self, state: RunState) -> None:
        state.info.setdefault("tags", {}).update({"energy.tool": "codecarbon 3.3.2", "energy.cpu_method": "forced"})
        self.csv = Path(state.out_dir) / "energy" / "energy_epochs.csv"
        self.csv.parent.mkdir(parents=True, exist_ok=True)
        self.csv.write_text("epoch,energy_kwh\n")
        state.info.setdefault("artifacts", {})["energy"] = str(self.csv)

    def on_epoch_end(self, state: RunState, metrics: dict[str, float]) -> None:
        self.total += self.kwh
        metrics.update({"energy_kwh": self.kwh, "energy_cum_kwh": self.total, "cpu_energy_kwh": self.kwh / 2})
        with open(self.csv, "a") as handle:
            handle.write(f"{state.epoch},{self.kwh}\n")

    def on_train_end(self, state: RunState) -> None:
        state.info["tags"]["energy.ram_method"] = "late-tag"  # added at the very end


def run_fake_training(
    config: SedwattConfig,
    callbacks: list[Callback],
    *,
    fail_at: int | None = None,
    interrupt_at: int | None = None,
    between_epochs: Callable[[int], None] | None = None,
) -> RunState:
    """Trainer.fit's hook sequence with synthetic metrics; ``between_epochs(e)`` runs after epoch e."""
    out_dir = Path(config.train.out_dir)
    student = tiny_model()
    state = RunState(config=config, out_dir=out_dir, steps_per_epoch=3, student=student, teacher=tiny_model())
    synth, weak, unlab = config.train.batch_split
    state.info.update(
        {"batch_size": config.train.batch_size, "batch_synth": synth, "batch_weak": weak,
         "batch_unlabelled": unlab, "seed": config.train.seed, "dataset_fingerprint": "fp-1234"}
    )  # fmt: skip
    cbs = CallbackList(callbacks)
    cbs.on_train_start(state)
    try:
        for epoch in range(1, config.train.epochs + 1):
            state.epoch = epoch
            cbs.on_epoch_start(state)
            if fail_at == epoch:
                raise RuntimeError("synthetic failure")
            if interrupt_at == epoch:
                raise KeyboardInterrupt
            with torch.no_grad():
                student[2].bias.fill_(float(epoch))
            metrics = epoch_metrics(epoch)
            val = {k: metrics[k] for k in ("val_f1", "val_f1_student", "val_f1_05_student", "val_weak_f1_student", "obj_metric")}
            cbs.on_validation_end(state, val)
            metrics["note"] = "not a number"  # type: ignore[assignment]  # must be skipped
            state.history.append(metrics)
            improved = state.best_obj_metric is None or metrics["obj_metric"] > state.best_obj_metric
            if improved:
                state.best_obj_metric, state.best_obj_metric_epoch = metrics["obj_metric"], epoch
            cbs.on_epoch_end(state, metrics)
            payload = {"epoch": epoch, "student": student.state_dict(), "history": state.history}
            save_checkpoint(state.last_checkpoint, payload)
            if improved:
                save_checkpoint(state.best_checkpoint, payload)
            if between_epochs is not None:
                between_epochs(epoch)
    except KeyboardInterrupt:
        state.request_stop("interrupted")
        raise
    except BaseException as exc:
        state.request_stop(f"failed: {exc.__class__.__name__}: {exc}")
        raise
    finally:
        cbs.on_train_end(state)
    return state


def fake_hardware_module() -> types.ModuleType:
    module = types.ModuleType("sedwatt.hardware")
    module.hardware_tags = lambda device=None: dict(HW_TAGS)  # type: ignore[attr-defined]
    return module


def install_fakes(monkeypatch, *, only_missing: bool = False) -> None:
    """Put the fake hardware module in place, for predictable hw.* tags (``only_missing``: keep a real one)."""
    import importlib.util

    for name, make in (("sedwatt.hardware", fake_hardware_module),):
        if only_missing and name in sys.modules:
            continue
        if only_missing and importlib.util.find_spec(name) is not None:
            continue
        monkeypatch.setitem(sys.modules, name, make())
