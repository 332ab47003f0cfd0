"""The recipe's heterogeneous batches: 1/4 synthetic strong, 1/4 weak, 1/2 unlabelled.

Each batch holds ``split[0]`` synthetic, then ``split[1]`` weak, then ``split[2]`` unlabelled
indices (into the three sets concatenated in that order), drawn without replacement within each set;
an epoch is min over sets of len(set) // share, as ``ConcatDatasetBatchSampler`` does. The order of
epoch ``e`` depends only on (seed, e), so a resumed run replays exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from sedwatt.errors import SedwattError


class HeterogeneousBatchSampler(Sampler[list[int]]):
    def __init__(self, set_sizes: Sequence[int], split: Sequence[int], seed: int = 0, names: Sequence[str] = ()) -> None:
        if len(set_sizes) != len(split):
            raise ValueError("one share per set")
        self.sizes = list(set_sizes)
        self.split = list(split)
        self.seed = seed
        self.epoch = 0
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        names = list(names) or [f"set {i}" for i in range(len(self.sizes))]
        for name, size, share in zip(names, self.sizes, self.split, strict=True):
            if share <= 0:
                raise SedwattError(f"batch split {tuple(self.split)}: every share must be positive")
            if size < share:
                raise SedwattError(
                    f"the {name} set has {size} clips, fewer than its {share} per batch "
                    f"(batch split {'+'.join(map(str, self.split))}): use a smaller batch size or more data"
                )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return min(size // share for size, share in zip(self.sizes, self.split, strict=True))

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self)
        perms = [torch.randperm(size, generator=gen)[: n * share] for size, share in zip(self.sizes, self.split, strict=True)]
        for b in range(n):
            batch: list[int] = []
            for perm, share, offset in zip(perms, self.split, self.offsets, strict=True):
                batch.extend((perm[b * share : (b + 1) * share] + offset).tolist())
            yield batch
