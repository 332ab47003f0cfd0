"""A callback that records which hook ran at which epoch, and checks each hook sees its metrics."""

from __future__ import annotations

from sedwatt.training.callbacks import Callback


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
