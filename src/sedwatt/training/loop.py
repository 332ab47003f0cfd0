"""The training loop: epochs of mean-teacher steps, validation, checkpoints, callbacks.

It knows nothing about MLflow or CodeCarbon: energy, tracking and early stopping come in as callbacks
(see callbacks.py for the hook order). Every epoch reseeds python/numpy/torch from (seed, epoch), so
the batches, mixup draws, crops and dropout masks of epoch e do not depend on what ran before —
which is what makes a killed-and-resumed run equal to an uninterrupted one.
"""

from __future__ import annotations

import copy
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader
from tqdm.auto import tqdm

from sedwatt.config import SedwattConfig
from sedwatt.data.datasets import TrainingData
from sedwatt.data.sampler import HeterogeneousBatchSampler
from sedwatt.errors import SedwattError
from sedwatt.hardware import resolve_device
from sedwatt.model import build_crnn
from sedwatt.threads import worker_init
from sedwatt.training.callbacks import Callback, CallbackList, RunState
from sedwatt.training.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from sedwatt.training.mean_teacher import MeanTeacherStep
from sedwatt.training.validation import Validator


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_info(config: SedwattConfig, fingerprint: str, device: torch.device, steps_per_epoch: int) -> dict[str, Any]:
    """What a run is besides its config, in ``state.info``: the batch and its split over synthetic / weak /
    unlabelled clips, the seed, the data's fingerprint (the tracker logs these as params), the device."""
    synth, weak, unlabelled = config.train.batch_split
    return {
        "batch_size": config.train.batch_size,
        "batch_synth": synth,
        "batch_weak": weak,
        "batch_unlabelled": unlabelled,
        "seed": config.train.seed,
        "dataset_fingerprint": fingerprint,
        "device": str(device),
        "steps_per_epoch": steps_per_epoch,
    }


class Trainer:
    """Everything a run needs, built from the config; ``attach`` gives it its folder and callbacks.

    Building it (plus ``check``) is what ``train_run`` does *before* it creates the MLflow run: a config
    that cannot train fails there, and leaves no run behind.
    """

    def __init__(
        self,
        config: SedwattConfig,
        data: TrainingData,
        out_dir: Path | None = None,
        callbacks: list[Callback] | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.out_dir = Path(out_dir) if out_dir is not None else Path(config.train.out_dir)
        self.callbacks = CallbackList(callbacks)
        self.device = resolve_device(config.train.device)
        seed_everything(config.train.seed)
        self.student = build_crnn(config).to(self.device)
        self.teacher = copy.deepcopy(self.student)
        if config.model.channels_last:
            self.student = self.student.to(memory_format=torch.channels_last)
            self.teacher = self.teacher.to(memory_format=torch.channels_last)
        if config.train.compile:  # in place: parameter names, checkpoints and the EMA are unchanged
            self.student.compile()
            self.teacher.compile()
        self.sampler = HeterogeneousBatchSampler(
            [len(d) for d in data.train_sets],
            config.train.batch_split,
            seed=config.train.seed,
            names=("synthetic strong", "weak (training part)", "unlabelled"),
        )
        self.loader = DataLoader(
            ConcatDataset(data.train_sets),
            batch_sampler=self.sampler,
            num_workers=config.data.num_workers,
            worker_init_fn=worker_init,
            pin_memory=self.device.type == "cuda",
        )
        self.steps_per_epoch = len(self.sampler)
        self.step_fn = MeanTeacherStep(self.student, self.teacher, config, self.steps_per_epoch, self.device)
        self.validator = Validator(data, config, self.device)
        self.state = RunState(
            config=config,
            out_dir=self.out_dir,
            steps_per_epoch=self.steps_per_epoch,
            student=self.student,
            teacher=self.teacher,
        )
        self.state.info.update(run_info(config, data.fingerprint, self.device, self.steps_per_epoch))

    def attach(self, out_dir: Path, callbacks: list[Callback]) -> None:
        """The run's own folder (checkpoints) and its callbacks, once the tracked run exists."""
        self.out_dir = self.state.out_dir = Path(out_dir)
        self.callbacks = CallbackList(callbacks)

    @torch.no_grad()
    def check(self) -> None:
        """One forward pass of both models on a zero batch of the configured shape (eval mode: no state changes).

        Catches what only torch can tell (a map pooled to nothing, a size the GRU refuses) before a run exists.
        """
        mel = torch.zeros(2, self.config.features.n_mels, self.config.n_feature_frames, device=self.device)
        for model in (self.student, self.teacher):
            was_training = model.training
            model.eval()
            try:
                strong, weak = model(mel)
            finally:
                model.train(was_training)
            if strong.shape[:2] != (2, self.config.model.n_classes) or strong.shape[2] < 1 or weak.shape != (2, self.config.model.n_classes):
                raise SedwattError(
                    f"the model gives outputs {tuple(strong.shape)} / {tuple(weak.shape)} for a zero batch: "
                    "check model.pools against data.clip_seconds and features.hop_length"
                )

    # -- checkpoints -----------------------------------------------------------------------------
    def _payload(self) -> dict:
        s = self.state
        return {
            "config": self.config.model_dump(mode="json"),
            "epoch": s.epoch,
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "trainer": self.step_fn.state_dict(),
            "history": s.history,
            "best_obj_metric_epoch": s.best_obj_metric_epoch,
            "best_obj_metric": s.best_obj_metric,
            "stop_reason": s.stop_reason,
            "rng": rng_states(),
            "callbacks": self.callbacks.state_dict(),
        }

    def resume(self, checkpoint: Path) -> None:
        payload = load_checkpoint(checkpoint)
        saved = SedwattConfig.model_validate(payload["config"])
        for section in ("model", "features"):
            if getattr(saved, section) != getattr(self.config, section):
                raise SedwattError(f"{checkpoint}: its {section} config differs from this run's; resume with the same config")
        self.student.load_state_dict(payload["student"])
        self.teacher.load_state_dict(payload["teacher"])
        self.step_fn.load_state_dict(payload["trainer"])
        s = self.state
        s.epoch = s.resumed_from_epoch = int(payload["epoch"])
        s.step = self.step_fn.step
        s.history = list(payload["history"])
        # "best_epoch": checkpoints written before the rename (names.py)
        s.best_obj_metric_epoch = payload.get("best_obj_metric_epoch", payload.get("best_epoch"))
        s.best_obj_metric = payload["best_obj_metric"]
        restore_rng_states(payload["rng"])
        self.callbacks.load_state_dict(payload["callbacks"])

    # -- one epoch -------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.student.train()
        self.teacher.train()
        rng = np.random.default_rng(epoch_seed(self.config.train.seed, epoch))
        total: torch.Tensor | float = 0.0  # summed on the device; read back once per progress update
        count, last_lr = 0, 0.0
        refresh = max(1, self.steps_per_epoch // 20)
        bar = tqdm(
            self.loader,
            total=self.steps_per_epoch,
            desc=f"epoch {epoch}/{self.config.train.epochs}",
            disable=None if self.config.train.progress else True,  # None: bars on a terminal only
            leave=False,
        )
        for mel, strong, weak, _idx in bar:
            result = self.step_fn(mel, strong, weak, rng)
            total = total + result.loss
            count += 1
            last_lr = result.lr
            if not bar.disable and count % refresh == 0:
                bar.set_postfix(loss=f"{float(result.loss):.4f}", refresh=False)
        self.state.step = self.step_fn.step
        return {"train_loss": float(total) / max(count, 1), "lr": last_lr}

    def fit(self, resume_from: Path | None = None) -> RunState:
        if resume_from is not None:
            self.resume(resume_from)
        s = self.state
        cfg = self.config.train
        cum_time = s.history[-1]["cum_time_s"] if s.history else 0.0
        try:
            # Inside the try: a start hook that raises still gets on_train_end for every callback, so
            # those that already started (a job lock, an energy session) close what they opened.
            self.callbacks.on_train_start(s)
            for epoch in range(s.epoch + 1, cfg.epochs + 1):
                if s.stop_reason:
                    break
                s.epoch = epoch
                seed_everything(epoch_seed(cfg.seed, epoch))
                self.sampler.set_epoch(epoch)
                for dataset in self.data.train_sets:
                    dataset.set_epoch(epoch)
                self.callbacks.on_epoch_start(s)
                start = time.perf_counter()
                metrics = self._train_epoch(epoch)
                val = self.validator(self.student, self.teacher)
                epoch_s = time.perf_counter() - start
                cum_time += epoch_s
                self.callbacks.on_validation_end(s, val)
                metrics = {**val, **metrics, "epoch_s": epoch_s, "cum_time_s": cum_time}
                s.history.append(metrics)
                improved = s.best_obj_metric is None or val["obj_metric"] > s.best_obj_metric
                if improved:
                    s.best_obj_metric, s.best_obj_metric_epoch = val["obj_metric"], epoch
                self.callbacks.on_epoch_end(s, metrics)
                self._report(epoch, metrics)
                payload = self._payload()
                save_checkpoint(s.last_checkpoint, payload)
                if improved:
                    save_checkpoint(s.best_checkpoint, payload)
        except KeyboardInterrupt:
            s.request_stop("interrupted")
            raise
        except BaseException as exc:
            s.request_stop(f"failed: {exc.__class__.__name__}: {exc}")
            raise
        finally:
            self.callbacks.on_train_end(s)
        return s

    def _report(self, epoch: int, m: dict[str, float]) -> None:
        if not self.config.train.progress:
            return
        # Callbacks say what their figures are ("energy 0.12 Wh (estimate, ...)"); the loop only prints it.
        notes = "".join(f"  {text}" for text in (self.state.info.get("epoch_report") or {}).values())
        tqdm.write(
            f"epoch {epoch:>3}/{self.config.train.epochs}  loss {m['train_loss']:.4f}  "
            f"val_f1 {m['val_f1']:.3f}  student f1@0.5 {m['val_f1_05_student']:.3f}  "
            f"student weak_f1 {m['val_weak_f1_student']:.3f}  "
            f"obj {m['obj_metric']:.3f}  {m['epoch_s']:.1f}s{notes}"
        )
