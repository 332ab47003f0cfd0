"""What torch's own dropout stream costs a recipe training step: the floor under ``dcase2022.yaml``'s step.

``dcase2022.yaml`` keeps the recipe's dropout bit for bit (``model.fast_dropout: false``): one Bernoulli draw
per element of every conv block's map, from torch's generator, in upstream's memory order, for the student and
for the train-mode teacher. This times exactly those draws — ``F.dropout`` on maps of the recipe's shapes at the
given batch, as upstream's ``nn.Dropout`` calls it — and nothing else, so the figure is a lower bound on any
step that keeps the stream, however fast the rest becomes. Prints the median per step over ``--rounds`` and,
as its last line, ``recipe_dropout_stream_ms=<median>``.

    python benchmarks/dropout_stream.py --batch-size 48 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from sedwatt.config import SedwattConfig, load_config


def dropout_shapes(config: SedwattConfig, batch: int) -> list[tuple[int, int, int, int]]:
    """The map each conv block drops out (after its GLU, before its pooling), block by block."""
    frames = config.n_samples // config.features.hop_length + 1
    freqs = config.features.n_mels
    shapes = []
    for channels, (pool_t, pool_f) in zip(config.model.channels, config.model.pools, strict=True):
        shapes.append((batch, channels, frames, freqs))
        frames, freqs = frames // pool_t, freqs // pool_f
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/dcase2022.yaml")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5, help="timed steps (after one warm-up)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config, [])
    p = config.model.conv_dropout
    maps = [torch.ones(shape) for shape in dropout_shapes(config, args.batch_size)]
    elements = 2 * sum(m.numel() for m in maps)

    def step() -> float:
        start = time.perf_counter()
        for _model in ("student", "teacher"):
            for m in maps:
                F.dropout(m, p, training=True)
        return time.perf_counter() - start

    step()
    times = [step() for _ in range(args.rounds)]
    median = statistics.median(times)
    print(
        f"{config.name}: {len(maps)} dropout maps (p={p}), batch {args.batch_size}, student + teacher: "
        f"{elements / 1e6:.0f} M Bernoulli draws a step, {args.threads} threads"
    )
    print(f"median {median * 1000:.0f} ms a step (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    print(f"recipe_dropout_stream_ms={median * 1000:.0f}")


if __name__ == "__main__":
    main()
