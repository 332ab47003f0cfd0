"""The DCASE 2022 baseline CRNN (baseline.md §2), every size a config value.

7 blocks of Conv3×3 → BatchNorm (eps 1e-3, momentum 0.99) → the recipe's "GLU" (a channel-wise
Linear(C, C) of the map times sigmoid of the map — not torch.nn.GLU) → dropout → average pooling;
then a 2-layer bidirectional GRU, dropout, and two heads: strong = sigmoid(Linear), weak = the strong
output averaged over time with weights softmax(Linear) taken over the *class* axis, clamped to 1e-7.
The CNN runs on [B, C, time, freq] like upstream; with ``model.channels_last`` the maps are stored
channels-last, which also makes the GLU's channel Linear a contiguous matmul.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sedwatt.config import SedwattConfig
from sedwatt.model.dropout import make_dropout


class ChannelGLU(nn.Module):
    """out = Linear over channels(x) · sigmoid(x), channels unchanged."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels))
        self.bias = nn.Parameter(torch.empty(channels))
        lin = nn.Linear(channels, channels)  # same default initialisation as upstream's nn.Linear
        with torch.no_grad():
            self.weight.copy_(lin.weight)
            self.bias.copy_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lin = F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)
        return lin * torch.sigmoid(x)


class ConvBlock(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, kernel: int, pool: tuple[int, int], dropout: float, fast_dropout: bool, eps: float, momentum: float
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=1, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(c_out, eps=eps, momentum=momentum)
        self.glu = ChannelGLU(c_out)
        self.dropout = make_dropout(dropout, fast_dropout)
        self.pool = nn.AvgPool2d(tuple(pool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.dropout(self.glu(self.bn(self.conv(x)))))


class CRNN(nn.Module):
    def __init__(
        self,
        n_mels: int = 128,
        n_classes: int = 10,
        channels: tuple[int, ...] = (16, 32, 64, 128, 128, 128, 128),
        kernel_size: int = 3,
        pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)),
        conv_dropout: float = 0.5,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.99,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        head_dropout: float = 0.5,
        fast_dropout: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        blocks = []
        c_in, freq = 1, n_mels
        for c_out, pool in zip(channels, pools, strict=True):
            blocks.append(ConvBlock(c_in, c_out, kernel_size, pool, conv_dropout, fast_dropout, bn_eps, bn_momentum))
            c_in, freq = c_out, freq // pool[1]
        if freq < 1:
            raise ValueError(f"{n_mels} mel bands are pooled below one frequency bin by pools {list(pools)}")
        self.cnn = nn.Sequential(*blocks)
        self.rnn = nn.GRU(
            c_in * freq, rnn_hidden, num_layers=rnn_layers, bidirectional=True, batch_first=True, dropout=rnn_dropout
        )
        self.dropout = make_dropout(head_dropout, fast_dropout)
        self.dense = nn.Linear(2 * rnn_hidden, n_classes)
        self.dense_softmax = nn.Linear(2 * rnn_hidden, n_classes)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mel [B, n_mels, frames] → (strong [B, classes, frames/pool], weak [B, classes])."""
        x = x.transpose(1, 2).unsqueeze(1)  # [B, 1, time, freq]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.cnn(x)
        b, c, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, c * f)
        x, _ = self.rnn(x)
        x = self.dropout(x)
        strong = torch.sigmoid(self.dense(x))
        attention = torch.softmax(self.dense_softmax(x), dim=-1).clamp(1e-7, 1.0)
        weak = (strong * attention).sum(1) / attention.sum(1)
        return strong.transpose(1, 2), weak


def build_crnn(config: SedwattConfig) -> CRNN:
    m = config.model
    return CRNN(
        n_mels=config.features.n_mels,
        n_classes=m.n_classes,
        channels=tuple(m.channels),
        kernel_size=m.kernel_size,
        pools=tuple(tuple(p) for p in m.pools),
        conv_dropout=m.conv_dropout,
        bn_eps=m.bn_eps,
        bn_momentum=m.bn_momentum,
        rnn_hidden=m.rnn_hidden,
        rnn_layers=m.rnn_layers,
        rnn_dropout=m.rnn_dropout,
        head_dropout=m.head_dropout,
        fast_dropout=m.fast_dropout,
        channels_last=m.channels_last,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
