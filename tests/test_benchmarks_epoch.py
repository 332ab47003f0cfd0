"""benchmarks/epoch.py: its instrumentation leaves training unchanged, and the benchmark runs end to end.

The unit test trains the same tiny model twice, once plain and once wrapped the way the benchmark wraps
it (timed loader, validator and callbacks, probes), and compares the results; the slow test runs the
script on the tiny preset with a small CRNN and checks every variant's row, the cache its cold epoch
filled, and the MLflow run its tracked variant left in the kept store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hook_recorder import Recorder
from sedwatt.data.layout import DesedLayout
from sedwatt.data.scan import TRAINING_SETS
from sedwatt.features import MelExtractor
from sedwatt.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "epoch.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("epoch_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_instrumented_trainer_trains_exactly_as_the_plain_one(tiny_training_data, tmp_path, tiny_config):
    bench = load_benchmark()
    config = tiny_config("train.epochs=1")
    data = tiny_training_data

    plain = Trainer(config, data, tmp_path / "plain")
    plain_recorder = Recorder()
    plain.attach(tmp_path / "plain", [plain_recorder])
    plain_state = plain.fit()

    timeline = bench.Timeline(torch.device("cpu"))
    timeline.begin_run("ours", 1)
    timed = bench.instrument(Trainer(config, data, tmp_path / "timed"), timeline)
    timed_recorder = Recorder()
    timed.attach(tmp_path / "timed", [timed_recorder])
    timed_state = timed.fit()

    assert timed_recorder.events == plain_recorder.events  # every hook, in the same order
    for mine, theirs in zip(timed_state.history, plain_state.history, strict=True):
        assert {k: v for k, v in mine.items() if not k.endswith("time_s") and k != "epoch_s"} == {
            k: v for k, v in theirs.items() if not k.endswith("time_s") and k != "epoch_s"
        }
    for a, b in zip(timed.student.state_dict().values(), plain.student.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # The upstream-structured validation (WAVs, mel in the step, the recipe's decoding and psds_eval) computes
    # what ours computes, to 1e-9, on the same trained models.
    extractor = MelExtractor(config.features, config.data.sample_rate)
    recipe = bench.RecipeValidator(
        config,
        bench.WaveDataset(data.synth_val.clips, config, random_crop=False, seed=0),
        bench.WaveDataset(data.weak_val.clips, config, random_crop=False, seed=0),
        data.synth_val_truth,
        data.synth_val_durations,
        extractor,
        torch.device("cpu"),
    )
    theirs, mine = recipe(plain.student, plain.teacher), plain.validator(plain.student, plain.teacher)
    assert set(theirs) == set(mine) and any(v > 0 for v in mine.values())
    assert all(abs(theirs[k] - mine[k]) <= 1e-9 for k in mine), (theirs, mine)

    assert [e.epoch for e in timeline.epochs] == [1]
    for e in timeline.epochs:
        assert e.steps == plain.steps_per_epoch
        assert min(e.data_wait, e.step, e.validation, e.checkpoint) > 0  # the loop saved checkpoints
        assert e.callbacks > 0  # the Recorder's hooks, timed
        assert e.data_wait + e.step + e.validation + e.callbacks + e.checkpoint <= e.wall


TINY_MODEL = [
    "features.n_mels=32",
    "model.channels=[8,16,16]",
    "model.pools=[[2,2],[2,4],[1,4]]",
    "model.rnn_hidden=16",
    "train.rampup_epochs=1",
    "energy.measure_power_secs=1",
]
ROW = re.compile(r"^(ours, cold cache|upstream|ours\+tracking|ours) +(\d+) +(\d+) +(\d+)((?: +[\d.]+){6})$", re.M)


@pytest.mark.slow
def test_epoch_benchmark_runs_every_variant(tmp_path):
    work, data_cache = tmp_path / "work", tmp_path / "data"
    overrides = [arg for item in TINY_MODEL for arg in ("--set", item)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", "tiny", "--clip-seconds", "4", "--data-cache", str(data_cache)]
        + ["--batch-size", "8", "--threads", "1", "--work", str(work), *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout

    # Every run in its own process; upstream as upstream runs, ours as the sedwatt command runs.
    setup_line = r"^(ours, cold cache|upstream|ours\+tracking|ours) run \d+: (process \d+, .*), warm-up"
    setups = dict(re.findall(setup_line, out, re.M))
    assert len({s.split(",")[0] for s in setups.values()}) == 4, setups
    assert "OMP_WAIT_POLICY unset, allocator as it comes" in setups["upstream"]
    for name in ("ours, cold cache", "ours", "ours+tracking"):  # the policy: as sedwatt chose it at that moment
        assert re.search(r"OMP_WAIT_POLICY (unset|PASSIVE), allocator reuse \(glibc", setups[name]), setups

    rows = {m.group(1): [float(v) for v in m.group(5).split()] + [int(m.group(4))] for m in ROW.finditer(out)}
    assert set(rows) == {"ours, cold cache", "upstream", "ours", "ours+tracking"}
    for name, (wait, step, val, hooks, ckpt, wall, steps) in rows.items():
        assert steps == min(16 // 2, 32 // 4), name  # tiny: 16 synthetic (2 a batch), 32 unlabelled (4 a batch)
        assert min(wait, step, val) > 0 and wait + step + val + hooks + ckpt <= wall + 0.003, name
    assert rows["upstream"][3] == rows["ours"][3] == 0.0  # neither has callbacks
    assert rows["ours+tracking"][3] > 0 and rows["ours"][4] > 0  # real hooks; the loop's checkpoints

    # The cold epoch put one mel per clip it read in the fresh cache: 8 steps draw every synthetic (2 a step)
    # and unlabelled (4) clip and 16 of the 22 weak training clips (the 90 % sample of 24); validation
    # reads all 12 synthetic-validation clips and the 2 held-out weak ones. All clips differ in content.
    layout = DesedLayout(data_cache / "tiny-4s-seed1")
    wavs = [p for spec in TRAINING_SETS for p in layout.audio_dir(spec).glob("*.wav")]
    assert len({hashlib.sha1(p.read_bytes()).hexdigest() for p in wavs}) == 16 + 24 + 32 + 12
    assert len(list(work.glob("melcache/*/*.npy"))) == 16 + 8 * 2 + 32 + 12 + 2

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'mlruns.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bench-epoch").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["sedwatt.kind"] == "train" and "energy_kwh" in runs[0].data.metrics

    assert re.search(r"^tracking_overhead_ms_per_epoch=[\d.]+ tracking_overhead_pct=[\d.]+$", out, re.M)
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"epoch_ratio_vs_upstream=\d+\.\d\d", last) and float(last.split("=")[1]) > 0
