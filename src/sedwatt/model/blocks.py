"""One CNN block of the recipe's CRNN, with its elementwise tail computed in few passes.

A block is Conv3×3 → BatchNorm → "GLU" → Dropout → AvgPool (docs/recipe.md §2), where the recipe's GLU
is ``Linear over channels(x) · sigmoid(x)``. On CPU the convolution is the cheap part: the time goes
to the passes over the large early maps and to allocating them. ``gated_drop_pool`` computes
GLU → dropout → pool as one autograd node with the same math and fewer passes:

* the channel Linear is one matrix product on the channels-last map (no permute copies);
* the dropout mask multiplies the sigmoid, not the product: with m ∈ {0, 1}, ``lin · (m·σ)`` is
  ``m · lin · σ``, and ``m·σ`` still satisfies ``d(m·σ)/dx = (m·σ)(1 − m·σ)`` — so the masked sigmoid
  is all backward needs and the mask itself is never stored;
* the 1/(1−p) dropout scale goes into the average pooling's divisor (powers of two: exact);
* backward fuses the pooling's gradient with the two products, in place where it can.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sedwatt.model.dropout import Dropout


def is_channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=torch.channels_last)


def channel_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``Linear(C, C)`` over the channel axis of [B, C, T, F], in x's memory layout."""
    b, c, t, f = x.shape
    if is_channels_last(x):
        rows = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view: channels-last memory is [B, T, F, C]
        return torch.addmm(bias, rows, weight.t()).view(b, t, f, c).permute(0, 3, 1, 2)
    cols = x.reshape(b, c, t * f)
    return torch.baddbmm(bias.view(1, c, 1), weight.expand(b, c, c), cols).view(b, c, t, f)


def _channel_linear_backward(
    grad_lin: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, grad_x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x + grad_lin @ W, grad W, grad bias); grad_x is updated in place when it has x's layout."""
    b, c, t, f = x.shape
    layout = torch.channels_last if is_channels_last(x) else torch.contiguous_format
    grad_lin = grad_lin.contiguous(memory_format=layout)
    grad_x = grad_x.contiguous(memory_format=layout)
    if layout is torch.channels_last:
        g_rows = grad_lin.permute(0, 2, 3, 1).reshape(-1, c)
        grad_x.permute(0, 2, 3, 1).view(-1, c).addmm_(g_rows, weight)
        return grad_x, g_rows.t() @ x.permute(0, 2, 3, 1).reshape(-1, c), g_rows.sum(0)
    g_cols = grad_lin.view(b, c, t * f)
    grad_x.view(b, c, t * f).baddbmm_(weight.t().expand(b, c, c), g_cols)
    return grad_x, torch.bmm(g_cols, x.reshape(b, c, t * f).transpose(1, 2)).sum(0), g_cols.sum((0, 2))


def _pool_divisor(pool: tuple[int, int], scale: float) -> tuple[int | None, float]:
    """(divisor_override, extra factor) so that avg_pool(x, divisor_override) · factor = avg_pool(scale · x)."""
    area = pool[0] * pool[1]
    divisor = area / scale
    if divisor >= 1 and divisor == int(divisor):
        return int(divisor), 1.0
    return None, scale


def _pool(x: torch.Tensor, pool: tuple[int, int], scale: float) -> torch.Tensor:
    divisor, factor = _pool_divisor(pool, scale)
    out = F.avg_pool2d(x, pool, divisor_override=divisor)
    return out.mul_(factor) if factor != 1.0 else out


def _pool_backward(grad_out: torch.Tensor, like: torch.Tensor, pool: tuple[int, int], scale: float) -> torch.Tensor:
    divisor, factor = _pool_divisor(pool, scale)
    if factor != 1.0:
        grad_out = grad_out * factor
    return torch.ops.aten.avg_pool2d_backward(grad_out, like, list(pool), list(pool), [0, 0], False, True, divisor)


class _GatedDropPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, dropout: Dropout, pool: tuple[int, int]):  # type: ignore[override]
        with torch.autocast(x.device.type, enabled=False):  # everything in x's dtype, as upstream under autocast
            gate = dropout.keep_(torch.sigmoid(x))  # m·σ(x)
            lin = channel_linear(x, weight.to(x.dtype), bias.to(x.dtype))
            out = _pool(lin * gate, pool, dropout.scale)
        ctx.save_for_backward(x, weight, gate, lin)
        ctx.pool = pool
        ctx.scale = dropout.scale
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight, gate, lin = ctx.saved_tensors
        weight = weight.to(x.dtype)
        grad_out = grad_out.to(x.dtype)
        grad_prod = _pool_backward(grad_out, gate, ctx.pool, ctx.scale)  # ∂L/∂(lin·gate)
        grad_x = torch.mul(grad_prod, lin)  # ∂L/∂gate
        torch.ops.aten.sigmoid_backward.grad_input(grad_x, gate, grad_input=grad_x)  # · gate·(1 − gate)
        grad_lin = grad_prod.mul_(gate)
        grad_x, grad_w, grad_b = _channel_linear_backward(grad_lin, x, weight, grad_x)
        return grad_x, grad_w, grad_b, None, None


def gated_drop_pool(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dropout: Dropout,
    pool: tuple[int, int],
    overwrite_x: bool = False,
) -> torch.Tensor:
    """avg_pool(dropout(Linear_channels(x) · sigmoid(x))), the recipe's GLU → Dropout → AvgPool.

    ``overwrite_x``: x is scratch (a fresh BatchNorm output); without autograd its memory is reused.
    """
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or bias.requires_grad):
        return _GatedDropPool.apply(x, weight, bias, dropout, pool)
    # Nothing to save for backward (teacher, validation): work in place.
    lin = channel_linear(x, weight.to(x.dtype), bias.to(x.dtype))
    gate = x.sigmoid_() if overwrite_x else torch.sigmoid(x)
    lin.mul_(dropout.keep_(gate))
    return _pool(lin, pool, dropout.scale)


class ChannelGLU(nn.Module):
    """The recipe's GLU parameters: a ``Linear(C, C)`` over channels (applied by ``gated_drop_pool``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, channels)  # upstream's layer and default initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Linear(x) · sigmoid(x) on its own (the block uses the fused path)."""
        return channel_linear(x, self.linear.weight, self.linear.bias) * torch.sigmoid(x)


class ConvBlock(nn.Module):
    """Conv → BatchNorm → GLU → Dropout → AvgPool, the last four in one fused node."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        pool: tuple[int, int],
        dropout: float,
        fast_dropout: bool,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=1, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum)
        self.glu = ChannelGLU(c_out)
        self.dropout = Dropout(dropout, fast_dropout)
        self.pool = (int(pool[0]), int(pool[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return gated_drop_pool(x, self.glu.linear.weight, self.glu.linear.bias, self.dropout, self.pool, overwrite_x=True)

    def extra_repr(self) -> str:
        return f"pool={self.pool}"
