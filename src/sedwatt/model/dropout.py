"""Dropout at p = 0.5 from random bytes: the same Bernoulli(0.5) mask, eight mask bits per random byte.

torch's dropout draws one random number per element. On the CRNN's first feature map (24×16×626×128)
that costs ~0.5 s per call on a 2-core CPU, paid by the student and the (train-mode) teacher in
every block — about a quarter of a training step. Eight independent fair bits per uniformly random
byte give exactly the same distribution from a different random stream (like another seed), drawn
from torch's generator, so ``torch.manual_seed`` still makes runs reproducible. Config switch:
``model.fast_dropout`` (off = torch's dropout, bit-for-bit the upstream behaviour).
"""

from __future__ import annotations

import torch

_SHIFTS = torch.arange(8, dtype=torch.uint8)


def half_mask(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A bool tensor of ``shape`` whose elements are independent fair coin flips."""
    n = 1
    for s in shape:
        n *= s
    random_bytes = torch.randint(0, 256, ((n + 7) // 8,), dtype=torch.uint8, device=device)
    bits = (random_bytes.unsqueeze(1) >> _SHIFTS.to(device)) & 1
    return bits.view(-1)[:n].view(shape).bool()


class FastDropout(torch.nn.Module):
    """Inverted dropout with p = 0.5: keep with probability 1/2 and scale kept values by 2."""

    p = 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        mask = half_mask(x.shape, x.device)
        return x * (mask.to(x.dtype) * 2.0)


def make_dropout(p: float, fast: bool) -> torch.nn.Module:
    if fast and p == 0.5:
        return FastDropout()
    return torch.nn.Dropout(p)
