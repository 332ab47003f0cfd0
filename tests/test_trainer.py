"""The training loop on the tiny preset: it learns, callbacks see every epoch, and resume is exact."""

from __future__ import annotations

import pytest
import torch

from sedwatt.config import load_config
from sedwatt.data.datasets import build_training_data
from sedwatt.data.scan import load_clips
from sedwatt.training.callbacks import Callback
from sedwatt.training.loop import Trainer

TINY = [
    "data.clip_seconds=4.0",
    "features.n_mels=32",
    "model.channels=[8,16,16]",
    "model.pools=[[2,2],[2,4],[1,4]]",
    "model.rnn_hidden=16",
    "model.fast_dropout=true",
    "train.batch_size=8",
    "train.epochs=3",
    "train.rampup_epochs=1",
    "train.patience=null",
    "train.progress=false",
]


def tiny_config(tmp_path, *extra):
    return load_config(None, [*TINY, f"data.cache_dir={tmp_path / 'cache'}", *extra])


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_train_start(self, state):
        self.events.append(("train_start", state.epoch))

    def on_epoch_start(self, state):
        self.events.append(("epoch_start", state.epoch))

    def on_validation_end(self, state, metrics):
        assert {"val_f1", "val_f1_student", "val_f1_05_student", "val_weak_f1_student", "obj_metric"} <= set(metrics)
        self.events.append(("validation_end", state.epoch))

    def on_epoch_end(self, state, metrics):
        assert {"train_loss", "lr", "epoch_s", "cum_time_s"} <= set(metrics)
        self.events.append(("epoch_end", state.epoch))

    def on_train_end(self, state):
        self.events.append(("train_end", state.epoch))


class KillAt(Callback):
    """Raises in the middle of an epoch, as a killed process would stop."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_end(self, state, metrics):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def _trainer(config, data_dir, out_dir, callbacks=()):
    data = build_training_data(load_clips(data_dir, config), config)
    return Trainer(config, data, out_dir, list(callbacks))


def test_hooks_in_order_and_checkpoints(tiny_data, tmp_path):
    rec = Recorder()
    state = _trainer(tiny_config(tmp_path), tiny_data, tmp_path / "run", [rec]).fit()
    assert len(state.history) == 3
    expected = [("train_start", 0)]
    for e in (1, 2, 3):
        expected += [("epoch_start", e), ("validation_end", e), ("epoch_end", e)]
    assert rec.events == expected + [("train_end", 3)]
    assert state.last_checkpoint.is_file() and state.best_checkpoint.is_file()
    assert state.best_obj_metric_epoch in (1, 2, 3)
    assert [round(h["cum_time_s"], 6) for h in state.history] == sorted(round(h["cum_time_s"], 6) for h in state.history)


def test_killed_and_resumed_run_equals_uninterrupted(tiny_data, tmp_path):
    config = tiny_config(tmp_path)
    full = _trainer(config, tiny_data, tmp_path / "full").fit()

    killed_dir = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        _trainer(config, tiny_data, killed_dir, [KillAt(2)]).fit()
    resumed = _trainer(config, tiny_data, killed_dir).fit(resume_from=killed_dir / "checkpoints" / "last.pt")

    assert resumed.resumed_from_epoch == 1
    keys = ["val_f1", "val_f1_student", "val_f1_05_student", "val_weak_f1_student", "obj_metric", "train_loss", "lr"]
    for a, b in zip(full.history, resumed.history, strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    for (name, x), y in zip(full.student.state_dict().items(), resumed.student.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_training_lowers_the_loss(tiny_data, tmp_path):
    config = tiny_config(tmp_path, "train.epochs=4", "train.lr=3e-3")
    state = _trainer(config, tiny_data, tmp_path / "run").fit()
    losses = [h["train_loss"] for h in state.history]
    assert losses[-1] < losses[0]
