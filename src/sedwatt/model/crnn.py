"""The DCASE 2022 baseline CRNN (docs/recipe.md §2), every size a config value.

7 blocks of Conv3×3 → BatchNorm (eps 1e-3, momentum 0.99) → the recipe's "GLU" (a channel-wise
Linear(C, C) of the map times sigmoid of the map — not torch.nn.GLU) → dropout → average pooling
(blocks.py); then a 2-layer bidirectional GRU, dropout, and two heads: strong = sigmoid(Linear), weak =
the strong output averaged over time with weights softmax(Linear) taken over the *class* axis,
clamped to [1e-7, 1]. Like upstream, ``model(x)`` takes normalised log-mel [B, n_mels, frames] and
returns (strong [B, classes, frames / time pooling], weak [B, classes]).

``channels_last`` stores the CNN's maps channels-last (faster on CPU: the channel Linear becomes one
matrix product and oneDNN's convolutions and pooling prefer it); the math is the same either way.
"""

from __future__ import annotations

import torch
from torch import nn

from sedwatt.config import SedwattConfig
from sedwatt.errors import SedwattError
from sedwatt.model.blocks import ConvBlock
from sedwatt.model.dropout import Dropout


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
        if len(channels) != len(pools):
            raise ValueError(f"{len(channels)} channel sizes but {len(pools)} pools")
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
        self.dropout = Dropout(head_dropout, fast_dropout)
        self.dense = nn.Linear(2 * rnn_hidden, n_classes)
        self.dense_softmax = nn.Linear(2 * rnn_hidden, n_classes)
        self.time_pooling = 1
        for t, _ in pools:
            self.time_pooling *= t
        self.channels_last = channels_last
        if channels_last:
            self.cnn.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mel [B, n_mels, frames] → (strong [B, classes, frames/pool], weak [B, classes])."""
        x = x.transpose(1, 2).unsqueeze(1)  # [B, 1, time, freq]
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        x = self.cnn(x)
        b, c, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, c * f)  # [B, time, channels·freq], upstream's order
        x, _ = self.rnn(x)
        x = self.dropout(x)
        strong = torch.sigmoid(self.dense(x))
        attention = torch.softmax(self.dense_softmax(x), dim=-1).clamp(1e-7, 1.0)
        weak = (strong * attention).sum(1) / attention.sum(1)
        return strong.transpose(1, 2), weak


def build_crnn(config: SedwattConfig) -> CRNN:
    """The CRNN of ``config`` (model section + ``features.n_mels``), PyTorch's default initialisation."""
    m = config.model
    try:
        return CRNN(
            n_mels=config.features.n_mels,
            n_classes=m.n_classes,
            channels=tuple(m.channels),
            kernel_size=m.kernel_size,
            pools=tuple((int(t), int(f)) for t, f in m.pools),
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
    except ValueError as exc:
        raise SedwattError(f"config {config.name}: model: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the recipe's model: 1,112,420)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
