"""Resuming never runs code from a checkpoint: files are loaded weights-only and refused when they need more.

The tampered files are real ``torch.save`` output whose ``history`` is an object with a ``__reduce__``
that creates a marker file; each test also shows that an unsafe load of the same file does create it,
so a refusal here is the loader's doing, not a harmless fixture. The CLI tests train one tiny run
through the real ``sedwatt train`` against a throwaway SQLite store, then resume it: as saved (it
continues), tampered on disk, and tampered in the run's artifacts on the tracking store.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sedwatt.errors import SedwattError
from sedwatt.training.checkpoint import (
    FORMAT,
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)

SYSTEM = f"{os.system.__module__}.system"  # how pickle names os.system: posix.system on Linux


class Touch:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class Opaque:
    """A class that pickles by reference to this module: the loader would import and build it."""


def _tamper(source: dict, target: Path, marker: Path) -> Path:
    """``source`` with its history replaced by a Touch, saved as ``target`` by torch itself."""
    torch.save({**source, "history": Touch(marker)}, target)
    return target


def _assert_potent(path: Path, marker: Path) -> None:
    """An unsafe load of ``path`` does run its code: the marker appears (and is removed again)."""
    assert not marker.exists()
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.exists()
    marker.unlink()


def _payload() -> dict:
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 1), torch.nn.BatchNorm1d(3))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 2, 5)).sum().backward()
    optimizer.step()
    return {
        "student": model.state_dict(),
        "trainer": {"optimizer": optimizer.state_dict(), "step": 1},
        "history": [{"val_f1": np.float64(0.25), "epoch_s": 1.5}],
        "best_obj_metric_epoch": 1,
        "best_obj_metric": np.float32(0.5),
        "rng": rng_states(),
        "callbacks": {"energy": {"cumulative": {"energy_kwh": 1e-6}, "rows": [{"epoch": 1, "session": 1}]}},
    }


def test_a_saved_checkpoint_loads_weights_only_with_plain_values(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _payload())
    torch.load(path, map_location="cpu", weights_only=True)  # nothing beyond torch's safe set
    payload = load_checkpoint(path)
    assert payload["format"] == FORMAT
    assert (
        payload["history"] == [{"val_f1": 0.25, "epoch_s": 1.5}]
        and type(payload["history"][0]["val_f1"]) is float
    )
    assert type(payload["best_obj_metric"]) is float
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 1), torch.nn.BatchNorm1d(3))
    model.load_state_dict(payload["student"])
    assert payload["student"]._metadata["1"]["version"] == 2  # BatchNorm's state-dict version survives


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # leaves a cached gaussian in the numpy state
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_states()})
    expected = (random.random(), np.random.randn(), np.random.rand(3).tolist(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_states(load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (random.random(), np.random.randn(), np.random.rand(3).tolist(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_saving_an_object_fails_at_save_time(tmp_path):
    with pytest.raises(
        TypeError, match=r"checkpoint\.callbacks\.x\.where: pathlib\.\w*Path cannot go into a checkpoint"
    ):
        save_checkpoint(tmp_path / "bad.pt", {"callbacks": {"x": {"where": tmp_path}}})
    assert not (tmp_path / "bad.pt").exists()


def test_tampered_history_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    path = _tamper({"format": FORMAT, **_payload()}, tmp_path / "last.pt", marker)
    with pytest.raises(SedwattError) as refused:
        load_checkpoint(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: refused: it needs {SYSTEM},") and "\n" not in message
    assert not marker.exists()
    _assert_potent(path, marker)


@pytest.mark.parametrize(
    ("history", "needed"),
    [
        (Opaque(), f"{Opaque.__module__}.Opaque"),
        (np.zeros(3), "numpy._core.multiarray._reconstruct"),
        (np.float64(1.0), "numpy._core.multiarray.scalar"),
    ],
)
def test_any_global_is_refused_by_name(tmp_path, history, needed):
    path = tmp_path / "last.pt"
    torch.save({"format": FORMAT, "history": history}, path)
    with pytest.raises(
        SedwattError,
        match=rf"^{re.escape(str(path))}: refused: it needs {re.escape(needed)}, but a checkpoint may hold only",
    ):
        load_checkpoint(path)


def test_an_old_format_checkpoint_gets_one_clear_line(tmp_path):
    """sedwatt-checkpoint/1 stored numpy's RNG state (an ndarray): not loadable weights-only."""
    path = tmp_path / "old.pt"
    torch.save({"format": "sedwatt-checkpoint/1", "epoch": 3, "rng": {"numpy": np.random.get_state()}}, path)
    with pytest.raises(SedwattError) as refused:
        load_checkpoint(path)
    assert str(refused.value) == (
        f"{path}: refused: a sedwatt-checkpoint/1 checkpoint from an older sedwatt, it needs "
        f"numpy._core.multiarray._reconstruct; this sedwatt loads only {FORMAT} checkpoints of tensors, "
        "numbers, strings, lists and dicts, so it cannot be resumed"
    )
    plain_old = tmp_path / "plain_old.pt"
    torch.save({"format": "sedwatt-checkpoint/1", "epoch": 3}, plain_old)
    with pytest.raises(
        SedwattError,
        match=rf"^{re.escape(str(plain_old))}: a sedwatt-checkpoint/1 checkpoint; this sedwatt resumes only",
    ):
        load_checkpoint(plain_old)


def test_torn_and_foreign_files(tmp_path):
    whole = save_checkpoint(tmp_path / "whole.pt", _payload()).read_bytes()
    torn = tmp_path / "torn.pt"
    torn.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SedwattError, match=rf"^{re.escape(str(torn))}: not a readable checkpoint"):
        load_checkpoint(torn)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(SedwattError, match=rf"^{re.escape(str(foreign))}: not a sedwatt checkpoint$"):
        load_checkpoint(foreign)


# -- through `sedwatt train --resume` ------------------------------------------------------------

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store):
    return fresh_store(tmp_path_factory.mktemp("store"))


@pytest.fixture
def env(store, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    yield store
    mlflow.set_tracking_uri(None)


def _train_args(tiny_data, out: Path, tiny: list[str]) -> list[str]:
    overrides = [
        *tiny,
        "train.epochs=1",
        "train.batch_size=32",
        f"data.cache_dir={out.parent / 'cache'}",
        f"train.out_dir={out}",
        "energy.measure_power_secs=1",
        "tracking.log_model=false",
        "tracking.experiment=checkpoint-safety",
    ]
    return ["train", "--data", str(tiny_data), *[arg for o in overrides for arg in ("--set", o)]]


def _run_id(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("run "))
    return line.split()[1].rstrip(":")


@pytest.fixture(scope="module")
def trained(tiny_data, store, tmp_path_factory, tiny_overrides):
    """(run id, its local out dir, a pristine copy of its last checkpoint) of a one-epoch CLI run."""
    import contextlib
    import io

    from sedwatt.cli import main

    work = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        patch.chdir(work)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            assert main(_train_args(tiny_data, work / "out", tiny_overrides)) == 0
    mlflow.set_tracking_uri(None)
    run_id = _run_id(stdout.getvalue())
    out_dir = work / "out" / run_id
    pristine = shutil.copy(out_dir / "checkpoints" / "last.pt", work / "pristine.pt")
    return run_id, out_dir, Path(pristine)


def _resume(tiny_data, run_id: str, capsys, *extra: str) -> tuple[int, str, str]:
    from sedwatt.cli import main

    capsys.readouterr()
    code = main(["train", "--resume", run_id, "--data", str(tiny_data), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _error_lines(stderr: str) -> list[str]:
    """The CLI's error lines (MLflow's download bars share stderr)."""
    return [line for line in stderr.splitlines() if line.startswith("sedwatt train:")]


def test_cli_resume_refuses_a_tampered_local_checkpoint(trained, tiny_data, env, capsys, tmp_path):
    run_id, out_dir, pristine = trained
    marker = tmp_path / "marker"
    local = out_dir / "checkpoints" / "last.pt"
    _tamper(load_checkpoint(pristine), local, marker)
    code, _out, err = _resume(tiny_data, run_id, capsys)
    assert code == 2
    assert _error_lines(err) == [
        f"sedwatt train: error: {local}: refused: it needs {SYSTEM}, but a checkpoint may hold only "
        "tensors, numbers, strings, lists and dicts; nothing in it was run"
    ]
    assert not marker.exists()
    _assert_potent(local, marker)


def test_cli_resume_refuses_a_tampered_checkpoint_from_the_server(trained, tiny_data, env, capsys, tmp_path):
    """No local copy: --resume downloads checkpoints/last.pt from the run's artifacts, and refuses it."""
    run_id, out_dir, pristine = trained
    marker = tmp_path / "marker"
    upload = tmp_path / "upload" / "last.pt"
    upload.parent.mkdir()
    _tamper(load_checkpoint(pristine), upload, marker)
    mlflow.MlflowClient(env).log_artifact(run_id, str(upload), "checkpoints")
    shutil.rmtree(out_dir / "checkpoints")
    code, _out, err = _resume(tiny_data, run_id, capsys)
    assert code == 2
    (line,) = _error_lines(err)
    downloaded = Path(line.split(": ")[2])  # the run's own checkpoint place, so a second resume finds it
    assert downloaded == out_dir / "checkpoints" / "last.pt" and downloaded.read_bytes() == upload.read_bytes()
    assert line == (
        f"sedwatt train: error: {downloaded}: refused: it needs {SYSTEM}, but a checkpoint may hold only "
        "tensors, numbers, strings, lists and dicts; nothing in it was run"
    )
    assert not marker.exists()
    _assert_potent(downloaded, marker)


def test_cli_resume_continues_an_ordinary_checkpoint(trained, tiny_data, env, capsys):
    """The saved checkpoint (with CodeCarbon's energy state in it) resumes: epoch 2 follows epoch 1."""
    run_id, out_dir, pristine = trained
    (out_dir / "checkpoints").mkdir(exist_ok=True)
    local = shutil.copy(pristine, out_dir / "checkpoints" / "last.pt")
    before = load_checkpoint(Path(local))
    code, out, err = _resume(tiny_data, run_id, capsys, "--epochs", "2")
    assert code == 0, err
    assert out.startswith(f"run {run_id}: max val_f1") and "over 2 epochs" in out
    after = load_checkpoint(Path(local))
    assert after["epoch"] == 2 and after["history"][0] == before["history"][0]
    energy = after["callbacks"]["energy"]
    assert energy["session_index"] == before["callbacks"]["energy"]["session_index"] + 1
    assert energy["cumulative"]["energy_kwh"] > before["callbacks"]["energy"]["cumulative"]["energy_kwh"] > 0
    history = mlflow.MlflowClient(env).get_metric_history(run_id, "val_f1")
    assert sorted(m.step for m in history) == [1, 2]
