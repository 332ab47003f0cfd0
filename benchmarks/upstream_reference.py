"""An upstream-structured DCASE 2022 CRNN, written from the recipe's description (docs/recipe.md §2).

It has the DESED_task module names (``cnn.cnn.conv0``, ``cnn.cnn.batchnorm0``, ``cnn.cnn.glu0.linear``,
``cnn.cnn.dropout0``, ``cnn.cnn.pooling0``, …, ``rnn.rnn``, ``dense``, ``dense_softmax``) and upstream's
way of computing each layer: the GLU permutes the map, applies its Linear and permutes back, then
multiplies by sigmoid(x) — so the product, and the noise F.dropout draws for it, live in channels-last
memory order — and every dropout is torch's. Tests use it to check the weight mapping and the
dropout stream; benchmarks use it as the "upstream" speed reference on the same machine and torch.
"""

from __future__ import annotations

import torch
from torch import nn


class GLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.sigmoid = nn.Sigmoid()
        self.linear = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lin = self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return lin * self.sigmoid(x)


class CNN(nn.Module):
    def __init__(self, channels: tuple[int, ...], pools: tuple[tuple[int, int], ...], kernel: int = 3, dropout: float = 0.5):
        super().__init__()
        self.cnn = nn.Sequential()
        c_in = 1
        for i, (c_out, pool) in enumerate(zip(channels, pools, strict=True)):
            self.cnn.add_module(f"conv{i}", nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2))
            self.cnn.add_module(f"batchnorm{i}", nn.BatchNorm2d(c_out, eps=0.001, momentum=0.99))
            self.cnn.add_module(f"glu{i}", GLU(c_out))
            self.cnn.add_module(f"dropout{i}", nn.Dropout(dropout))
            self.cnn.add_module(f"pooling{i}", nn.AvgPool2d(tuple(pool)))
            c_in = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x)


class BidirectionalGRU(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, num_layers: int = 2) -> None:
        super().__init__()
        self.rnn = nn.GRU(n_in, n_hidden, bidirectional=True, batch_first=True, dropout=0, num_layers=num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class UpstreamCRNN(nn.Module):
    def __init__(
        self,
        n_mels: int = 128,
        n_classes: int = 10,
        channels: tuple[int, ...] = (16, 32, 64, 128, 128, 128, 128),
        pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)),
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.cnn = CNN(channels, pools, dropout=dropout)
        freq = n_mels
        for _, f in pools:
            freq //= f
        self.rnn = BidirectionalGRU(channels[-1] * freq, rnn_hidden, rnn_layers)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * rnn_hidden, n_classes)
        self.sigmoid = nn.Sigmoid()
        self.dense_softmax = nn.Linear(2 * rnn_hidden, n_classes)
        self.softmax = nn.Softmax(dim=-1)

    @classmethod
    def from_config(cls, config) -> UpstreamCRNN:
        m = config.model
        pools = tuple((int(t), int(f)) for t, f in m.pools)
        return cls(config.features.n_mels, m.n_classes, tuple(m.channels), pools, m.rnn_hidden, m.rnn_layers, m.conv_dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.transpose(1, 2).unsqueeze(1)
        x = self.cnn(x)
        bs, chan, frames, freq = x.size()
        if freq != 1:
            x = x.permute(0, 2, 1, 3).contiguous().view(bs, frames, chan * freq)
        else:
            x = x.squeeze(-1).permute(0, 2, 1)
        x = self.dropout(self.rnn(x))
        strong = self.sigmoid(self.dense(x))
        sof = self.softmax(self.dense_softmax(x)).clamp(min=1e-7, max=1)
        weak = (strong * sof).sum(1) / sof.sum(1)
        return strong.transpose(1, 2), weak
