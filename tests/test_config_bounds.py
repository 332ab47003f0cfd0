"""A config value that cannot work is refused before any MLflow run exists: one line, exit 2, no run.

Each case was seen reaching torch (traceback, exit 1, a FAILED run with no metrics) before the
fields had their bounds and the trainer was built before the run.
"""

from __future__ import annotations

import math

import mlflow
import pytest

from sedwatt.cli import main
from sedwatt.config import Override, load_config
from sedwatt.errors import SedwattError

# The tiny model for one quick epoch, nothing measured or registered.
ONE_EPOCH = ["train.epochs=1", "energy.enabled=false", "tracking.log_model=false"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    yield uri
    mlflow.set_tracking_uri(None)


def run_count(uri: str) -> int:
    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    return len(client.search_runs([e.experiment_id for e in experiments])) if experiments else 0


@pytest.mark.parametrize(
    "bad, field",
    [
        (["train.lr=-1"], "train.lr"),
        (["train.lr=.nan"], "train.lr"),
        (["train.lr=.inf"], "train.lr"),
        (["data.clip_seconds=0"], "data.clip_seconds"),
        (["train.val_batch_size=0"], "train.val_batch_size"),
        (["model.channels=[]", "model.pools=[]"], "model.channels"),
        (["data.sample_rate=0"], "data.sample_rate"),
        (["model.conv_dropout=1.5"], "model.conv_dropout"),
        (["train.betas=[0.9, 1.0]"], "train.betas"),
        (["validation.threshold=1.2"], "validation.threshold"),
        (["model.pools=[[2,2],[2,4],[64,4]]"], "time pooling"),
        (["features.f_max=9000"], "Nyquist"),
        (["train.device=gpu"], "train.device"),
    ],
)
def test_out_of_range_values_never_make_a_run(tiny_data, store, tmp_path, capsys, bad, field, tiny_overrides):
    argv = ["train", "--data", str(tiny_data), "--set", f"train.out_dir={tmp_path / 'out'}"]
    for item in [*tiny_overrides, *ONE_EPOCH, *bad]:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("sedwatt train: error:") and field in err
    assert run_count(store) == 0
    assert not (tmp_path / "out").exists()


def test_a_flag_names_the_flag_not_the_yaml(tiny_data, store, tmp_path, capsys):
    config = tmp_path / "my.yaml"
    config.write_text("train:\n  epochs: 3\n")
    assert main(["train", "--config", str(config), "--data", str(tiny_data), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 0: field train.epochs:" in err and "my.yaml" not in err
    assert run_count(store) == 0


def test_a_yaml_value_names_the_yaml(tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("train:\n  lr: -0.5\n")
    with pytest.raises(SedwattError, match=r"my\.yaml: field train\.lr: Input should be greater than 0"):
        load_config(config)


def test_set_override_is_named_as_typed():
    with pytest.raises(SedwattError, match=r"^--set model\.head_dropout=1: field model\.head_dropout:"):
        load_config(None, ["model.head_dropout=1"])
    # the last override on the field is the one named
    with pytest.raises(SedwattError, match=r"^--seed -3: field train\.seed"):
        load_config(None, ["train.seed=1", Override("train.seed=-3", "--seed -3")])


@pytest.mark.parametrize(
    "overrides, source",
    [
        # a section-level check: each override under the section may be the cause, so all are named
        (
            ["model.fast_dropout=true", "model.conv_dropout=0.3", "model.rnn_hidden=64", "train.lr=0.01"],
            "defaults with --set model.fast_dropout=true, --set model.conv_dropout=0.3, --set model.rnn_hidden=64: "
            "field model: conv_dropout 0.3",
        ),
        # a cross-field check (no location): the override is named, not "defaults" alone
        (["model.n_classes=5"], "defaults with --set model.n_classes=5: model.n_classes is 5"),
        # an override of the whole section replaced what came before it
        (
            ["model.rnn_hidden=64", "model={fast_dropout: true, conv_dropout: 0.3}"],
            "--set model={fast_dropout: true, conv_dropout: 0.3}: field model: conv_dropout 0.3",
        ),
    ],
)
def test_a_check_over_several_values_names_every_override_it_covers(overrides, source):
    with pytest.raises(SedwattError) as info:
        load_config(None, overrides)
    assert str(info.value).startswith(source)


def test_a_check_over_several_values_names_the_file_too(tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("model:\n  fast_dropout: true\n")
    with pytest.raises(SedwattError, match=r"my\.yaml with --set model\.conv_dropout=0\.3: field model: conv_dropout"):
        load_config(config, ["model.conv_dropout=0.3"])


def test_fast_dropout_only_with_half_or_zero():
    with pytest.raises(SedwattError, match="fast_dropout"):
        load_config(None, ["model.fast_dropout=true", "model.head_dropout=0.3"])
    assert load_config(None, ["model.fast_dropout=true", "model.conv_dropout=0"]).model.conv_dropout == 0.0


def test_valid_edges_still_load():
    cfg = load_config(None, ["model.conv_dropout=0", "train.mixup_prob=1", "train.patience=null", "energy.force_cpu_power_w=35"])
    assert cfg.model.conv_dropout == 0.0 and cfg.train.mixup_prob == 1.0 and math.isclose(cfg.energy.force_cpu_power_w, 35)


def test_a_valid_run_after_a_refused_one_trains(tiny_data, store, tmp_path, tiny_overrides):
    """The check before the run is not a new way to fail: the same tiny config trains and makes one run."""
    argv = ["train", "--data", str(tiny_data), "--set", f"train.out_dir={tmp_path / 'out'}"]
    for item in [*tiny_overrides, *ONE_EPOCH]:
        argv += ["--set", item]
    assert main(argv) == 0
    assert run_count(store) == 1


def test_what_only_torch_can_refuse_is_caught_before_the_run(tiny_data, store, tmp_path, capsys, monkeypatch, tiny_overrides):
    """Sizes a layer refuses surface in the trainer's zero-batch forward, which runs before the MLflow run."""
    from sedwatt.training.loop import Trainer

    def refuse(self):
        raise RuntimeError("Given groups=1, weight of size [8, 1, 3, 3], expected input to have 1 channels\nmore")

    monkeypatch.setattr(Trainer, "check", refuse)
    argv = ["train", "--data", str(tiny_data), "--set", f"train.out_dir={tmp_path / 'out'}"]
    for item in [*tiny_overrides, *ONE_EPOCH]:
        argv += ["--set", item]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot build a model that runs (RuntimeError: Given groups=1" in err and "\n" not in err
    assert run_count(store) == 0
