"""Schedules, EMA, mixup and the mean-teacher loss against hand-computed values (docs/recipe.md §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sedwatt.config import load_config
from sedwatt.training.callbacks import RunState
from sedwatt.training.early_stopping import (
    EnergyAwareStopping,
    PatienceStopping,
    SlowdownStopping,
    energy_rule,
    patience_rule,
    slowdown_rule,
)
from sedwatt.training.mean_teacher import MeanTeacherStep, update_ema
from sedwatt.training.mixup import mixup_batch
from sedwatt.training.schedules import consistency_weight, ema_decay, learning_rate, rampup


def test_rampup_values_from_the_recipe():
    R = 50 * 118
    assert rampup(1, R) == pytest.approx(0.00675, abs=5e-6)
    assert rampup(118, R) == pytest.approx(0.00821, abs=5e-6)
    assert rampup(2950, R) == pytest.approx(0.2865, abs=5e-5)
    assert rampup(5900, R) == 1.0 and rampup(10_000, R) == 1.0
    assert consistency_weight(1, 2.0, R, -5) == pytest.approx(0.0135, abs=5e-5)
    assert consistency_weight(5900, 2.0, R, -5) == 2.0


def test_learning_rate_quirk_and_ema_decay():
    R = 5900
    assert learning_rate(1, 1e-3, R, -5, first_step_full_lr=True) == 1e-3
    assert learning_rate(1, 1e-3, R, -5, first_step_full_lr=False) == pytest.approx(1e-3 * math.exp(-5 * (1 - 1 / R) ** 2))
    assert learning_rate(2, 1e-3, R, -5, True) == pytest.approx(6.76e-6, rel=1e-2)
    assert ema_decay(1, 0.999) == 0.5
    assert ema_decay(3, 0.999) == 0.75
    assert ema_decay(999, 0.999) == 0.999 and ema_decay(5000, 0.999) == 0.999


def test_ema_updates_parameters_not_buffers():
    student = torch.nn.BatchNorm1d(3)
    teacher = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        student.weight.fill_(2.0)
        teacher.weight.fill_(1.0)
        student.running_mean.fill_(5.0)
    update_ema(teacher, student, alpha=0.75)
    torch.testing.assert_close(teacher.weight, torch.full((3,), 0.75 * 1 + 0.25 * 2))
    assert torch.all(teacher.running_mean == 0)


@pytest.mark.parametrize("seed", range(6))
def test_mixup_rules(seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    mel = torch.rand(8, 4, 5)
    strong = (torch.rand(8, 3, 5) > 0.5).float()
    weak = (torch.rand(8, 3) > 0.5).float()
    m_mel, m_strong, m_weak = mixup_batch(mel, strong, weak, n_synth=2, n_weak=2, alpha=0.2, rng=rng)
    assert m_mel.shape == mel.shape and m_strong.shape == strong.shape and m_weak.shape == weak.shape
    # unlabelled rows (4..7) untouched, labels stay in [0, 1]
    assert torch.equal(m_mel[4:], mel[4:])
    assert m_strong.min() >= 0 and m_strong.max() <= 1 and m_weak.min() >= 0 and m_weak.max() <= 1
    # strong part mixes frame labels only within rows 0..1, weak part clip labels within rows 2..3
    assert torch.equal(m_strong[2:], strong[2:]) and torch.equal(m_weak[:2], weak[:2])
    # the mix is convex: each mixed row is λ·x_i + (1-λ)·x_perm(i) with the same λ for data and labels
    originals = {0: strong, 1: weak}
    for part, (rows, mixed_labels) in enumerate(((slice(0, 2), m_strong), (slice(2, 4), m_weak))):
        x, y = mel[rows], m_mel[rows]
        if torch.equal(y, x) or torch.allclose(y[0], x[0], atol=1e-6):
            continue  # identity permutation: nothing to mix (other seeds swap the rows)
        lam = ((y[0] - x[1]) / (x[0] - x[1])).flatten()
        assert torch.allclose(lam, lam[0].expand_as(lam), atol=1e-3) and 0 <= lam[0] <= 1
        labels = originals[part][rows]
        expected = (lam[0] * labels[0] + (1 - lam[0]) * labels[1]).clamp(0, 1)
        torch.testing.assert_close(mixed_labels[rows][0], expected, atol=1e-3, rtol=0)


class _Constant(torch.nn.Module):
    """Outputs sigmoid(b) for every frame and clip whatever the input: losses that can be worked out by hand."""

    def __init__(self, probability: float) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.tensor([math.log(probability / (1 - probability))]))

    def forward(self, x):
        p = torch.sigmoid(self.b)
        return p.expand(x.shape[0], 2, x.shape[-1]), p.expand(x.shape[0], 2)


def test_mean_teacher_loss_arithmetic():
    """Student 0.5 everywhere, teacher 0.25: the loss is known without the code's own formula.

    Supervised: BCE of 0.5 is ln 2 whatever the label, for the strong (synthetic row) and the weak (weak
    row) term: 2 ln 2. Consistency: (0.5 - 0.25)² = 0.0625 for strong and weak, times the weight at step 1
    of R = 50 epochs × 10 steps: 2 · exp(-5 (1 - 1/500)²) = 0.0137479. Total 1.3862944 + 0.0017185.
    """
    cfg = load_config(None, ["train.batch_size=4", "train.mixup_prob=0"])  # split 1:1:2; the step never reads n_mels
    student, teacher = _Constant(0.5), _Constant(0.25)
    step = MeanTeacherStep(student, teacher, cfg, steps_per_epoch=10, device=torch.device("cpu"))
    torch.manual_seed(0)
    mel = torch.rand(4, 3, 6) + 0.1
    strong = (torch.rand(4, 2, 6) > 0.5).float()
    weak = (torch.rand(4, 2) > 0.5).float()
    before_s = [p.detach().clone() for p in student.parameters()]
    before_t = [p.detach().clone() for p in teacher.parameters()]
    result = step(mel, strong, weak, np.random.default_rng(0))
    w = 0.0137479
    assert float(result.loss) == pytest.approx(1.3880129, abs=1e-6)
    assert result.consistency_weight == pytest.approx(w, abs=1e-7)
    assert result.lr == 1e-3  # step 1: the recipe's full-lr quirk
    # EMA used the student's pre-update weights with α(1) = 0.5
    for t, s0, t0 in zip(teacher.parameters(), before_s, before_t, strict=True):
        torch.testing.assert_close(t, 0.5 * t0 + 0.5 * s0)
    assert any(not torch.equal(p, p0) for p, p0 in zip(student.parameters(), before_s, strict=True))


def _state(history):
    state = RunState(config=load_config(), out_dir=None)
    state.history = history
    return state


def test_patience_stopping():
    cb = PatienceStopping(patience=2)
    hist = [{"obj_metric": v} for v in (0.1, 0.3, 0.2, 0.25)]
    state = _state(hist[:3])
    cb.on_epoch_end(state, hist[2])
    assert state.stop_reason is None
    state = _state(hist)
    cb.on_epoch_end(state, hist[3])
    assert state.stop_reason and "2 epochs" in state.stop_reason


def test_slowdown_and_energy_aware_stopping():
    hist = [{"val_f1": v, "energy_kwh": 0.01} for v in (0.2, 0.4, 0.5, 0.505, 0.506)]
    state = _state(hist)
    SlowdownStopping(min_rel_gain=0.05, window=2).on_epoch_end(state, hist[-1])
    assert state.stop_reason and state.stop_reason.startswith("slowdown")  # 0.5 → 0.506 = 1.2 % < 5 %
    state = _state(hist)
    SlowdownStopping(min_rel_gain=0.01, window=2).on_epoch_end(state, hist[-1])
    assert state.stop_reason is None
    # energy: +1.2 % of F1 for 0.02 kWh = 0.6 per kWh
    state = _state(hist)
    EnergyAwareStopping(min_rel_gain_per_kwh=1.0, window=2).on_epoch_end(state, hist[-1])
    assert state.stop_reason and state.stop_reason.startswith("energy")
    state = _state(hist)
    EnergyAwareStopping(min_rel_gain_per_kwh=0.5, window=2).on_epoch_end(state, hist[-1])
    assert state.stop_reason is None


def test_each_stopping_policy_is_one_pure_rule_the_callback_applies():
    """The rules return the reason (None: go on) from the history alone; the callbacks stop with that text."""
    hist = [
        {"val_f1": f1, "obj_metric": obj, "energy_kwh": 0.01}
        for f1, obj in zip((0.2, 0.4, 0.5, 0.505, 0.506), (0.1, 0.3, 0.2, 0.25, 0.28), strict=True)
    ]
    # obj best .3 at epoch 2: epoch 3 waited 1, epoch 4 waited 2
    assert patience_rule(hist[:3], 2) is None
    patience = "patience: obj_metric has not improved for 2 epochs (best 0.3000 at epoch 2)"
    assert patience_rule(hist[:4], 2) == patience
    # best val_f1 .5 before the last 2 epochs, .506 now: +1.2 %, for 2 × 10 Wh = 0.6 per kWh
    slowdown = "slowdown: best val_f1 rose 1.20% over the last 2 epochs (0.5000 → 0.5060), below 5.00%"
    assert slowdown_rule(hist, 0.05, 2) == slowdown and slowdown_rule(hist, 0.01, 2) is None
    assert slowdown_rule(hist[:2], 0.05, 2) is None  # less than a window of history
    energy = "energy: best val_f1 rose 1.20% for 20.00 Wh over the last 2 epochs (0.6 per kWh < 1)"
    assert energy_rule(hist, 1.0, 2) == energy and energy_rule(hist, 0.5, 2) is None
    unmeasured = [*hist[:-1], {"val_f1": 0.506}]
    assert energy_rule(unmeasured, 1.0, 2) is None  # the latest epoch has no energy: no verdict
    callbacks = [
        (PatienceStopping(2), hist[:4], patience),
        (SlowdownStopping(0.05, 2), hist, slowdown),
        (EnergyAwareStopping(1.0, 2), hist, energy),
    ]
    for callback, history, reason in callbacks:
        state = _state(list(history))
        callback.on_epoch_end(state, state.history[-1])
        assert state.stop_reason == reason
