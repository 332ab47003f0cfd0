"""Dropout for the CRNN: torch's own random stream, or the same Bernoulli(0.5) masks from random bits.

torch's dropout draws one Bernoulli number per element. On the first block's map (24×16×626×128)
that costs ~0.4 s per call on a 2-core CPU, paid by the student and the train-mode teacher in every
block. Uniformly random 64-bit words from torch's generator hold 64 independent fair bits each, so
one word masks 64 elements: exactly the Bernoulli(0.5) distribution, from a different random stream
(like another seed), and ``torch.manual_seed`` still makes it reproducible. Config switch
``model.fast_dropout`` (off = torch's stream, bit-for-bit ``F.dropout`` on CPU).

The masks are applied in place *without* the 1/(1−p) scale (``Dropout.keep_``): the conv blocks fold
the scale into their average pooling, and a {0, 1} mask on a sigmoid keeps the sigmoid's derivative
formula valid (see blocks.py). ``Dropout.forward`` is ordinary inverted dropout for the head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}
# Above this many words (32 elements each for fp32), mask one bit plane at a time: the planes are
# small and stay in cache, where a whole-tensor integer mask would cost an allocation and two passes.
_PLANE_BY_PLANE_WORDS = 1 << 14


def random_words(n_bits: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """At least ``n_bits`` independent fair bits: uniformly random int64 words from torch's generator."""
    n_words = max(1, -(-n_bits // 64))
    return torch.empty(n_words, dtype=torch.int64, device=device).random_(-(2**63), None)


def _flat_memory(t: torch.Tensor) -> torch.Tensor:
    """A 1-D view of a dense tensor's elements in memory order, as integers of the same size."""
    if not _is_dense(t):
        raise ValueError("fast dropout needs a contiguous or channels-last tensor")
    return t.as_strided((t.numel(),), (1,)).view(_INT_OF_SIZE[t.element_size()])


def fast_keep_(t: torch.Tensor) -> torch.Tensor:
    """Zero each element of ``t`` independently with probability 1/2, in place, without rescaling.

    Element e (in memory order) is kept when bit ⌊e / n_words⌋ of random word e mod n_words is set:
    each element has its own bit, and neighbouring elements come from different words. The mask is
    the sign bit shifted over all bits (0 or all ones) and AND-ed with the element's bits, one bit
    plane at a time on large tensors, so no mask of the tensor's size is ever allocated.
    """
    flat = _flat_memory(t)
    n = flat.numel()
    if n == 0:
        return t
    n_bits = 8 * t.element_size()
    n_words = -(-n // n_bits)
    words = random_words(n, t.device).view(flat.dtype)[:n_words]
    compiling = torch.compiler.is_compiling()
    if compiling or t.device.type != "cpu" or n_words < _PLANE_BY_PLANE_WORDS:
        shifts = torch.arange(n_bits - 1, -1, -1, dtype=flat.dtype, device=t.device).unsqueeze(1)
        planes = torch.bitwise_left_shift(words.unsqueeze(0), shifts)  # row k: bit k at the sign bit
        planes.bitwise_right_shift_(n_bits - 1)  # arithmetic shift: 0 or all ones
        if compiling:  # the same mask, written without an integer view of t (which compilers cannot trace)
            return t.mul_(torch.as_strided(planes.view(-1)[:n], t.shape, t.stride()).ne(0))
        flat.bitwise_and_(planes.view(-1)[:n])
        return t
    plane = torch.empty_like(words)
    for k in range(n_bits):
        segment = flat[k * n_words : (k + 1) * n_words]
        if segment.numel() == 0:
            break
        mask = plane[: segment.numel()]
        torch.bitwise_left_shift(words[: segment.numel()], n_bits - 1 - k, out=mask)
        mask.bitwise_right_shift_(n_bits - 1)
        segment.bitwise_and_(mask)
    return t


def half_mask(shape: torch.Size | tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """A bool tensor of ``shape`` whose elements are independent fair coin flips (the fast stream, True = keep)."""
    return fast_keep_(torch.ones(tuple(shape), device=device)).ne(0)


def _is_dense(t: torch.Tensor) -> bool:
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


class Dropout(nn.Module):
    """Dropout with probability ``p``; ``fast`` = the random-bits stream (needs p = 0.5)."""

    def __init__(self, p: float, fast: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        if fast and p not in (0.0, 0.5):
            raise ValueError(f"fast dropout draws Bernoulli(0.5) masks only; dropout {p} needs fast_dropout off")
        self.p = p
        self.fast = fast

    @property
    def active(self) -> bool:
        return self.training and self.p > 0.0

    @property
    def scale(self) -> float:
        """The inverted-dropout scale 1/(1−p) that kept elements get in training (1 when inactive)."""
        return 1.0 / (1.0 - self.p) if self.active else 1.0

    def torch_keep_mask(self, like: torch.Tensor) -> torch.Tensor:
        """torch's stream: the {0, 1} mask F.dropout would draw for upstream's tensor of this shape."""
        # Upstream's dropout input is the GLU product `lin · sigmoid(x)`, which takes the memory order of
        # `lin`, a Linear on the permuted map: channels-last. F.dropout's noise follows that order.
        if like.dim() == 4:
            b, c, t, f = like.shape
            shape, order = (b, t, f, c), (0, 3, 1, 2)
        else:
            shape, order = tuple(like.shape), tuple(range(like.dim()))
        if like.device.type == "cpu":
            # Exactly F.dropout's CPU noise: an empty float tensor like its input, bernoulli_(1 − p).
            noise = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - self.p)
        else:  # elsewhere F.dropout has its own fused kernel: take its mask to stay on its stream
            noise = F.dropout(torch.ones(shape, dtype=like.dtype, device=like.device), self.p, training=True).ne_(0)
        return noise.permute(order)

    def keep_(self, t: torch.Tensor) -> torch.Tensor:
        """Zero the dropped elements of ``t`` in place, without rescaling the kept ones."""
        if not self.active:
            return t
        if self.fast:
            return fast_keep_(t)
        return t.mul_(self.torch_keep_mask(t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inverted dropout: kept elements scaled by 1/(1−p)."""
        if not self.active:
            return x
        if not self.fast:
            return F.dropout(x, self.p, training=True)
        scaled_mask = fast_keep_(torch.full(x.shape, self.scale, dtype=x.dtype, device=x.device))
        return x * scaled_mask  # autograd keeps the mask for backward

    def extra_repr(self) -> str:
        return f"p={self.p}, fast={self.fast}"
