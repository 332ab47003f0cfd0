"""One mean-teacher training step, in the recipe's order (docs/recipe.md §3).

features (linear mel) → mixup (p) → log + min-max → student forward, teacher forward (train mode,
no grad) → BCE strong on the synthetic rows + BCE weak on the weak rows + w(k)·(MSE strong + MSE
weak) over the whole batch → EMA of the student's *pre-update* parameters into the teacher (the
recipe runs it in on_before_zero_grad) → backward → Adam at lr(k).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sedwatt.config import SedwattConfig
from sedwatt.features import log_normalise
from sedwatt.training.mixup import mixup_batch
from sedwatt.training.schedules import consistency_weight, ema_decay, learning_rate


@dataclass
class StepResult:
    """The step's losses stay 0-dim tensors on the device: reading one (``float``) is a host sync on a GPU,
    so the loop reads them once per progress update, not four times per step."""

    loss: torch.Tensor
    loss_strong: torch.Tensor
    loss_weak: torch.Tensor
    loss_consistency: torch.Tensor
    consistency_weight: float
    lr: float


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def update_ema(teacher: torch.nn.Module, student: torch.nn.Module, alpha: float) -> None:
    """θ_t ← α·θ_t + (1 − α)·θ_s over parameters only (BN buffers stay the teacher's own)."""
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(t_params, alpha)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - alpha)


class MeanTeacherStep:
    """Owns the optimizer and the step counter; the loop feeds it batches."""

    def __init__(
        self,
        student: torch.nn.Module,
        teacher: torch.nn.Module,
        config: SedwattConfig,
        steps_per_epoch: int,
        device: torch.device,
    ) -> None:
        self.student = student
        self.teacher = teacher
        self.config = config
        self.train = config.train
        self.device = device
        self.split = config.train.batch_split
        self.rampup_steps = config.train.rampup_epochs * steps_per_epoch
        self.optimizer = torch.optim.Adam(student.parameters(), lr=config.train.lr, betas=tuple(config.train.betas))
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.train.precision == "fp16")
        self.step = 0  # completed optimizer steps
        for p in teacher.parameters():
            p.requires_grad_(False)

    def lr_for(self, step: int) -> float:
        t = self.train
        return learning_rate(step, t.lr, self.rampup_steps, t.rampup_exponent, t.first_step_full_lr)

    def __call__(
        self,
        mel: torch.Tensor,
        strong: torch.Tensor,
        weak: torch.Tensor,
        rng: np.random.Generator,
    ) -> StepResult:
        t = self.train
        k = self.step + 1
        n_synth, n_weak, _ = self.split
        # non_blocking: the loader pins its batches on a GPU run, so the copies overlap; later kernels are ordered.
        mel, strong, weak = (part.to(self.device, non_blocking=True) for part in (mel, strong, weak))
        if rng.random() < t.mixup_prob:
            mel, strong, weak = mixup_batch(mel, strong, weak, n_synth, n_weak, t.mixup_alpha, rng)
        x = log_normalise(mel, self.config.features)

        with autocast(self.device, t.precision):
            strong_s, weak_s = self.student(x)
            with torch.no_grad():
                strong_t, weak_t = self.teacher(x)
        strong_s, weak_s = strong_s.float(), weak_s.float()
        strong_t, weak_t = strong_t.float(), weak_t.float()

        loss_strong = F.binary_cross_entropy(strong_s[:n_synth], strong[:n_synth])
        loss_weak = F.binary_cross_entropy(weak_s[n_synth : n_synth + n_weak], weak[n_synth : n_synth + n_weak])
        w = consistency_weight(k, t.consistency_max, self.rampup_steps, t.rampup_exponent)
        loss_cons = F.mse_loss(strong_s, strong_t) + F.mse_loss(weak_s, weak_t)
        loss = loss_strong + loss_weak + w * loss_cons

        update_ema(self.teacher, self.student, ema_decay(k, t.ema_max_decay))

        lr = self.lr_for(k)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step = k
        return StepResult(
            loss=loss.detach(),
            loss_strong=loss_strong.detach(),
            loss_weak=loss_weak.detach(),
            loss_consistency=loss_cons.detach(),
            consistency_weight=w,
            lr=lr,
        )

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
