"""Mixup on linear mel magnitudes with soft labels (docs/recipe.md §3).

Once per step, with probability p, the synthetic part and the weak part of the batch are each mixed
within themselves (their own λ ~ Beta(α, α) and permutation); unlabelled clips are never mixed. Labels
become clamp(λ·y + (1 − λ)·y[perm], 0, 1). The teacher sees the same mixed input as the student.
"""

from __future__ import annotations

import numpy as np
import torch


def mix(
    features: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    mixed = lam * features + (1.0 - lam) * features[perm]
    soft = (lam * targets + (1.0 - lam) * targets[perm]).clamp(0.0, 1.0)
    return mixed, soft


def mixup_batch(
    mel: torch.Tensor,
    strong: torch.Tensor,
    weak: torch.Tensor,
    n_synth: int,
    n_weak: int,
    alpha: float,
    rng: np.random.Generator,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix rows [0, n_synth) with frame labels and rows [n_synth, n_synth+n_weak) with clip labels."""
    mel, strong, weak = mel.clone(), strong.clone(), weak.clone()
    parts = ((slice(0, n_synth), strong), (slice(n_synth, n_synth + n_weak), weak))
    for rows, target in parts:
        count = rows.stop - rows.start
        if count < 1:
            continue
        lam = float(rng.beta(alpha, alpha))
        perm = torch.randperm(count, generator=generator).to(mel.device)
        mel[rows], target[rows] = mix(mel[rows], target[rows], lam, perm)
    return mel, strong, weak
