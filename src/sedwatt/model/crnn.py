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

from sedwatt.config import ModelConfig, SedwattConfig
from sedwatt.errors import SedwattError
from sedwatt.model.blocks import ConvBlock
from sedwatt.model.dropout import Dropout


class CRNN(nn.Module):
    """The CRNN of ``model`` (sizes, dropouts, layouts: ``ModelConfig``, whose defaults are the recipe's) for
    log-mels of ``n_mels`` bands."""

    def __init__(self, model: ModelConfig, n_mels: int) -> None:
        super().__init__()
        m = model
        pools = [(int(t), int(f)) for t, f in m.pools]
        if len(m.channels) != len(pools):
            raise ValueError(f"{len(m.channels)} channel sizes but {len(pools)} pools")
        blocks = []
        c_in, freq = 1, n_mels
        for c_out, pool in zip(m.channels, pools, strict=True):
            block = ConvBlock(c_in, c_out, m.kernel_size, pool, m.conv_dropout, m.fast_dropout, m.bn_eps, m.bn_momentum)
            blocks.append(block)
            c_in, freq = c_out, freq // pool[1]
        if freq < 1:
            raise ValueError(f"{n_mels} mel bands are pooled below one frequency bin by pools {pools}")
        self.cnn = nn.Sequential(*blocks)
        self.rnn = nn.GRU(
            c_in * freq, m.rnn_hidden, num_layers=m.rnn_layers, bidirectional=True, batch_first=True,
            dropout=m.rnn_dropout,
        )  # fmt: skip
        self.dropout = Dropout(m.head_dropout, m.fast_dropout)
        self.dense = nn.Linear(2 * m.rnn_hidden, m.n_classes)
        self.dense_softmax = nn.Linear(2 * m.rnn_hidden, m.n_classes)
        self.channels_last = m.channels_last
        if m.channels_last:
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
    try:
        return CRNN(config.model, config.features.n_mels)
    except ValueError as exc:
        raise SedwattError(f"config {config.name}: model: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the recipe's model: 1,112,420)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
