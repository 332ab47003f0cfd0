"""Per-epoch validation: synthetic validation (intersection F1) and the weak hold-out (weak F1).

Both models run in eval mode. Strong outputs are decoded once per model at the threshold (0.5, median
filter 7) and scored at the paper's DTC/GTC (0.7/0.7 → ``val_f1``, the teacher's; ``val_f1_student``) and at
the recipe's checkpoint criteria (0.5/0.5 → ``val_f1_05_student``, ``val_f1_05_teacher``). ``obj_metric`` is the
recipe's checkpoint metric: ``val_weak_f1_student`` + ``val_f1_05_student`` (names.py says which name is which).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from sedwatt import names
from sedwatt.config import SedwattConfig
from sedwatt.data.datasets import ClipDataset, TrainingData
from sedwatt.features import log_normalise
from sedwatt.metrics import IntersectionScorer, decode, weak_f1
from sedwatt.threads import worker_init
from sedwatt.training.mean_teacher import autocast


@torch.no_grad()
def predict(
    models: list[torch.nn.Module],
    dataset: ClipDataset,
    config: SedwattConfig,
    device: torch.device,
    *,
    progress: bool = False,
    desc: str = "predict",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(strong [N, C, T], weak [N, C]) per model, in dataset order; one feature pass for all models.

    Outputs stay on the device until the end: one device→host copy per output, not four per batch
    (each copy waits for the device).
    """
    outputs: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = [([], []) for _ in models]
    if len(dataset) == 0:
        return [(np.zeros((0,)), np.zeros((0,))) for _ in models]
    loader = DataLoader(
        dataset,
        batch_size=config.train.val_batch_size,
        shuffle=False,
        num_workers=config.data.num_workers,
        worker_init_fn=worker_init,
    )
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        for mel, _strong, _weak, _idx in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
            x = log_normalise(mel.to(device), config.features)
            with autocast(device, config.train.precision):
                for (strongs, weaks), model in zip(outputs, models, strict=True):
                    s, w = model(x)
                    strongs.append(s.float())
                    weaks.append(w.float())
    finally:
        for m, flag in zip(models, was_training, strict=True):
            m.train(flag)
    return [(torch.cat(s).cpu().numpy(), torch.cat(w).cpu().numpy()) for s, w in outputs]


def weak_targets(dataset: ClipDataset) -> np.ndarray:
    return np.stack([dataset.encoder.encode_weak(c.labels or ()) for c in dataset.clips]) if len(dataset) else np.zeros((0,))


class Validator:
    """Holds what does not change between epochs: the parsed ground truth and the weak targets."""

    def __init__(self, data: TrainingData, config: SedwattConfig, device: torch.device) -> None:
        self.data = data
        self.config = config
        self.device = device
        self.classes = tuple(config.data.classes)
        self.scorer = IntersectionScorer(data.synth_val_truth, data.synth_val_durations, self.classes)
        self.filenames = [c.name for c in data.synth_val.clips]
        self.weak_truth = weak_targets(data.weak_val)

    def _f1(self, events: pd.DataFrame, dtc: float, gtc: float) -> float:
        macro, _ = self.scorer.f1(events, dtc=dtc, gtc=gtc)
        return float(macro)

    def _decode(self, strong: np.ndarray) -> pd.DataFrame:
        v = self.config.validation
        return decode(
            strong,
            self.filenames,
            threshold=v.threshold,
            median_filter=v.median_filter,
            frame_seconds=self.config.frame_seconds,
            clip_seconds=self.config.data.clip_seconds,
            classes=self.classes,
        )

    def __call__(self, student: torch.nn.Module, teacher: torch.nn.Module) -> dict[str, float]:
        v = self.config.validation
        (s_strong, _), (t_strong, _) = predict([student, teacher], self.data.synth_val, self.config, self.device)
        s_events, t_events = self._decode(s_strong), self._decode(t_strong)
        metrics = {
            names.VAL_F1: self._f1(t_events, v.dtc, v.gtc),
            names.VAL_F1_STUDENT: self._f1(s_events, v.dtc, v.gtc),
            names.VAL_F1_05_STUDENT: self._f1(s_events, v.checkpoint_dtc, v.checkpoint_gtc),
            names.VAL_F1_05_TEACHER: self._f1(t_events, v.checkpoint_dtc, v.checkpoint_gtc),
        }
        if len(self.data.weak_val):
            (_, s_weak), (_, t_weak) = predict([student, teacher], self.data.weak_val, self.config, self.device)
            metrics[names.VAL_WEAK_F1_STUDENT] = float(weak_f1(s_weak, self.weak_truth, threshold=v.threshold)[0])
            metrics[names.VAL_WEAK_F1_TEACHER] = float(weak_f1(t_weak, self.weak_truth, threshold=v.threshold)[0])
        else:
            metrics[names.VAL_WEAK_F1_STUDENT] = 0.0
        metrics[names.OBJ_METRIC] = metrics[names.VAL_WEAK_F1_STUDENT] + metrics[names.VAL_F1_05_STUDENT]
        return metrics
