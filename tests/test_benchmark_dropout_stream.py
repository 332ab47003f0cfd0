"""benchmarks/dropout_stream.py draws the recipe's dropout maps and ends with its figure (so it cannot rot)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from dropout_stream import dropout_shapes  # noqa: E402

from sedwatt.config import load_config  # noqa: E402


def test_dropout_maps_are_the_recipes_block_outputs_before_pooling():
    shapes = dropout_shapes(load_config("configs/dcase2022.yaml", []), 48)
    assert shapes[0] == (48, 16, 626, 128) and shapes[1] == (48, 32, 313, 64) and shapes[2] == (48, 64, 156, 32)
    assert shapes[-1] == (48, 128, 156, 2) and len(shapes) == 7


def test_dropout_stream_benchmark_prints_its_figure():
    command = [sys.executable, str(ROOT / "benchmarks" / "dropout_stream.py"), "--batch-size", "1", "--rounds", "1"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "M Bernoulli draws a step" in out
    assert re.fullmatch(r"recipe_dropout_stream_ms=\d+", out.strip().splitlines()[-1])
