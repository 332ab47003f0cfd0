"""`sedwatt evaluate` and `sedwatt calibrate` end to end on the tiny preset, against a throwaway SQLite store.

The model is conftest's ``tiny_model`` (one epoch through the real ``train_run``, registered as version 1,
shared with test_pyfunc_model); the tests evaluate it, calibrate the reference model in its store,
evaluate again, and check what the runs hold against values recomputed from the logged artifacts and
metrics.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from sedwatt.cli import main  # noqa: E402
from sedwatt.config import load_config  # noqa: E402
from sedwatt.errors import SedwattError  # noqa: E402
from sedwatt.evaluation import (  # noqa: E402
    CALIBRATION_EXPERIMENT,
    find_calibration,
    reference_model,
    resolve_model_uri,
)
from sedwatt.metrics import PSDS_THRESHOLDS  # noqa: E402

SCORE_KEYS = ("psds1", "psds2", "intersection_f1_macro", "intersection_f1_macro_05", "collar_f1_macro")
MODEL_NAME = "crnn-tiny"  # conftest's tiny_model
FAST_ENERGY = "energy.measure_power_secs=1"


@pytest.fixture(scope="module")
def store(tiny_model) -> str:
    return tiny_model.uri


@pytest.fixture(scope="module")
def trained(tiny_model) -> str:
    """Run id of the one-epoch training run whose model is version 1 of MODEL_NAME (energy measured)."""
    assert tiny_model.name == MODEL_NAME
    return tiny_model.run_id


@pytest.fixture
def client(store, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the CWD
    mlflow.set_tracking_uri(store)
    yield mlflow.MlflowClient(store)
    mlflow.set_tracking_uri(None)


def _run_id_from(stdout: str, prefix: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith(prefix))
    return line.split()[len(prefix.split())]


def _evaluate(capsys, tiny_data, *extra: str) -> str:
    assert main(["evaluate", "--model-uri", f"models:/{MODEL_NAME}/1", "--data", str(tiny_data), *extra]) == 0
    return _run_id_from(capsys.readouterr().out, "evaluation run")


def test_evaluate_logs_scores_energy_and_links_to_the_training_run(trained, tiny_data, client, capsys, tmp_path):
    from sedwatt.cli.score import score

    out = tmp_path / "kept"
    run_id = _evaluate(capsys, tiny_data, "--out", str(out))
    run = client.get_run(run_id)
    training = client.get_run(trained)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == training.info.experiment_id
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    assert tags["sedwatt.kind"] == "evaluate"
    assert tags["sedwatt.evaluates"] == trained and tags["mlflow.parentRunId"] == trained
    assert tags["sedwatt.registered_model"] == MODEL_NAME and tags["sedwatt.model_version"] == "1"
    assert tags["hw.gpu_model"] == "none" and tags["hw.cpu_model"] == training.data.tags["hw.cpu_model"]
    assert tags["energy.tool"].startswith("codecarbon")
    assert params["training_run_id"] == trained and params["n_clips"] == "12"

    for key in SCORE_KEYS:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["inference_energy_kwh"] > 0 and metrics["inference_duration_s"] > 0
    split = sum(metrics[f"inference_{part}_energy_kwh"] for part in ("cpu", "gpu", "ram"))
    assert metrics["inference_energy_kwh"] == pytest.approx(split, rel=1e-9)
    if client.get_experiment_by_name(CALIBRATION_EXPERIMENT) is None:
        assert "inference_energy_normalised_kwh" not in metrics

    # the 50 operating points, as DCASE names them, logged and kept in --out
    logged = sorted(Path(a.path).name for a in client.list_artifacts(run_id, "operating_points"))
    expected = sorted(f"predictions_th_{t:.3f}.tsv" for t in PSDS_THRESHOLDS)
    assert len(expected) == 50 and logged == expected
    assert sorted(p.name for p in (out / "operating_points").iterdir()) == expected
    assert not list(tmp_path.glob(".kept.*"))  # no partial folder left beside it

    # the logged PSDS is the PSDS of the logged operating points, re-scored independently
    folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="operating_points", dst_path=str(tmp_path / "dl"))
    meta = tiny_data / "metadata" / "validation"
    rescored = score(folder, str(meta / "validation.tsv"), str(meta / "validation_durations.tsv"), load_config().data.classes)
    assert metrics["psds1"] == pytest.approx(rescored["psds1"], abs=1e-12)
    assert metrics["psds2"] == pytest.approx(rescored["psds2"], abs=1e-12)

    per_class = json.loads((out / "per_class.json").read_text())
    assert set(per_class) == set(SCORE_KEYS)
    for key, values in per_class.items():
        finite = [v for v in values.values() if v is not None]
        if key.startswith("intersection") and finite:  # the macro is the mean over scored classes
            assert metrics[key] == pytest.approx(sum(finite) / len(finite), abs=1e-12)
    assert "per_class.json" in {a.path for a in client.list_artifacts(run_id)}


def test_calibrate_then_evaluate_logs_the_normalised_energy(trained, tiny_data, client, capsys):
    assert main(
        ["calibrate", "--data", str(tiny_data), "--set", "data.clip_seconds=4.0", "--set", FAST_ENERGY,
         "--set", "train.val_batch_size=4", "--published-kwh", "0.03"]
    ) == 0  # fmt: skip
    calibration_id = _run_id_from(capsys.readouterr().out, "calibration run")
    calibration = client.get_run(calibration_id)
    assert client.get_experiment(calibration.info.experiment_id).name == CALIBRATION_EXPERIMENT
    assert calibration.data.tags["sedwatt.kind"] == "calibration"
    assert calibration.data.tags["hw.gpu_model"] == "none" and "hw.cpu_model" in calibration.data.tags
    reference = calibration.data.metrics["ref_inference_energy_kwh"]
    passes = [m.value for m in client.get_metric_history(calibration_id, "ref_inference_energy_kwh_repeat")]
    assert passes == [reference] and reference > 0
    assert "ref_inference_energy_kwh_std" not in calibration.data.metrics  # one pass: no spread
    params = calibration.data.params
    assert float(params["ref_published_kwh"]) == 0.03
    assert params["n_clips"] == "12" and params["reference_params"] == "1112420"
    assert params["reference_weights"] == "seeded:2022" and params["dataset_fingerprint"]

    run_id = _evaluate(capsys, tiny_data)
    run = client.get_run(run_id)
    energy = run.data.metrics["inference_energy_kwh"]
    assert run.data.metrics["inference_energy_normalised_kwh"] == pytest.approx(energy * 0.03 / reference, rel=1e-12)
    assert run.data.tags["sedwatt.calibration_run_id"] == calibration_id
    assert run.data.tags["sedwatt.calibration_dataset_match"] == "true"
    assert run.data.params["ref_published_kwh"] == "0.03"
    assert float(run.data.params["ref_inference_energy_kwh"]) == reference


def test_calibration_metrics_average_the_passes():
    from types import SimpleNamespace

    from sedwatt.energy import EnergyMeasurement
    from sedwatt.evaluation.calibration import calibration_metrics

    def one_pass(kwh: float, seconds: float, psds1: float) -> SimpleNamespace:
        energy = EnergyMeasurement("calibration", measured=True, duration_s=seconds, energy_kwh=kwh,
                                   cpu_energy_kwh=kwh / 4, gpu_energy_kwh=0.0, ram_energy_kwh=3 * kwh / 4)  # fmt: skip
        return SimpleNamespace(energy=energy, metrics={"psds1": psds1})

    metrics = calibration_metrics([one_pass(1e-4, 10.0, 0.2), one_pass(2e-4, 20.0, 0.2), one_pass(6e-4, 30.0, 0.2)])
    assert metrics["ref_inference_energy_kwh"] == pytest.approx(3e-4)
    assert metrics["ref_inference_energy_kwh_std"] == pytest.approx(statistics.stdev([1e-4, 2e-4, 6e-4]))
    assert metrics["ref_cpu_energy_kwh"] == pytest.approx(0.75e-4) and metrics["ref_duration_s"] == 20.0
    assert metrics["ref_psds1"] == 0.2
    with pytest.raises(SedwattError, match="no energy"):
        calibration_metrics([one_pass(0.0, 1.0, 0.0)])


def test_a_calibration_on_another_dev_test_is_flagged():
    from sedwatt.evaluation import Calibration
    from sedwatt.evaluation.evaluate import calibration_check

    hw = {"hw.gpu_model": "none", "hw.cpu_model": "Test CPU 9000"}
    assert calibration_check(None, hw, "fp-A")[0] is None
    same = Calibration("run-1", ("none", "Test CPU 9000"), 0.001, 0.03, dataset_fingerprint="fp-A")
    assert calibration_check(same, hw, "fp-A") == (True, [])
    match, notes = calibration_check(same, hw, "fp-B")
    assert match is False and len(notes) == 1 and "run-1" in notes[0] and "fp-A" in notes[0] and "fp-B" in notes[0]


def test_calibrations_charged_by_another_attribution_are_named_not_used():
    """A calibration from before 2026-12-02 (busy share for RAM too) cannot normalise an own-use evaluation."""
    from sedwatt.evaluation import Calibration
    from sedwatt.evaluation.evaluate import calibration_check

    hw = {"hw.gpu_model": "none", "hw.cpu_model": "Test CPU 9000"}
    old = Calibration("run-1", ("none", "Test CPU 9000"), 0.001, 0.03, "fp-A", attribution="process-cpu-share")
    match, notes = calibration_check(None, hw, "fp-A", "process-cpu-use", [old])
    assert match is None and len(notes) == 1 and notes[0].startswith("warning:")
    assert "run-1" in notes[0] and "'process-cpu-share'" in notes[0] and "'process-cpu-use'" in notes[0]
    match, notes = calibration_check(None, hw, "fp-A", "process-cpu-use")  # none at all: the plain hint
    assert match is None and len(notes) == 1 and "sedwatt calibrate" in notes[0] and "warning" not in notes[0]


def test_a_newer_calibration_charged_by_another_rule_does_not_hide_this_rules_one(trained, tiny_data, client, capsys):
    import time

    import torch

    from sedwatt.hardware import hardware_tags
    from sedwatt.tracking import ensure_experiment

    experiment_id = ensure_experiment(CALIBRATION_EXPERIMENT)
    hw = hardware_tags(torch.device("cpu"))  # this machine, as the evaluation on the CPU tags it

    def calibration(rule: str, kwh: float) -> str:
        tags = {"sedwatt.kind": "calibration", **hw, "energy.attribution": rule}
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
        client.log_param(run_id, "ref_published_kwh", "0.03")
        client.log_metric(run_id, "ref_inference_energy_kwh", kwh)
        client.set_terminated(run_id)
        time.sleep(0.01)  # distinct start times
        return run_id

    own_use = calibration("process-cpu-use", 0.004)
    whole_machine = calibration("machine", 0.008)  # newer, charged by another rule
    for extra, rule, expected, reference in (
        ((), "process-cpu-use", own_use, 0.004),
        (("--set", "energy.tracking_mode=machine"), "machine", whole_machine, 0.008),
    ):
        run = client.get_run(_evaluate(capsys, tiny_data, "--set", "train.device=cpu", *extra))
        assert run.data.tags["energy.attribution"] == rule
        assert run.data.tags["sedwatt.calibration_run_id"] == expected
        energy = run.data.metrics["inference_energy_kwh"]
        assert run.data.metrics["inference_energy_normalised_kwh"] == pytest.approx(energy * 0.03 / reference)


def test_reference_model_is_the_seeded_recipe_crnn_or_the_given_upstream_checkpoint(tmp_path):
    import torch

    from sedwatt.evaluation.calibration import reference_config, weights_label
    from sedwatt.model import count_parameters
    from sedwatt.model.upstream import upstream_name

    config = reference_config(["data.clip_seconds=4.0", "energy.measure_power_secs=1"])
    seeded = reference_model(config)
    assert count_parameters(seeded) == 1_112_420 and not seeded.training
    again = reference_model(config)
    assert all(torch.equal(a, b) for a, b in zip(seeded.state_dict().values(), again.state_dict().values(), strict=True))
    other = reference_model(config, seed=7)
    assert not torch.equal(seeded.state_dict()["dense.weight"], other.state_dict()["dense.weight"])

    # an upstream Lightning checkpoint holding `other` as its student: its weights replace the seeded ones
    lightning = {"state_dict": {f"sed_student.{upstream_name(k)}": v for k, v in other.state_dict().items()}}
    lightning["state_dict"].update({f"sed_teacher.{upstream_name(k)}": v for k, v in seeded.state_dict().items()})
    torch.save(lightning, tmp_path / "baseline.ckpt")
    loaded = reference_model(config, checkpoint=tmp_path / "baseline.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), other.state_dict().values(), strict=True))
    assert weights_label(2022, None) == "seeded:2022"
    assert weights_label(2022, tmp_path / "baseline.ckpt").startswith("checkpoint:baseline.ckpt:")
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(SedwattError, match="junk.ckpt"):
        reference_model(config, checkpoint=tmp_path / "junk.ckpt")


def test_find_calibration_takes_the_latest_usable_run_of_this_hardware(client):
    import time

    from sedwatt.tracking import ensure_experiment

    experiment_id = ensure_experiment(CALIBRATION_EXPERIMENT)
    machine = {"hw.gpu_model": "Test GPU 80GB", "hw.cpu_model": "Test CPU 9000"}

    def calibration(tags: dict[str, str], kwh: float | None, published: str = "0.03") -> str:
        run = client.create_run(experiment_id, tags={"sedwatt.kind": "calibration", **tags})
        client.log_param(run.info.run_id, "ref_published_kwh", published)
        client.log_param(run.info.run_id, "dataset_fingerprint", "fp-A")
        if kwh is not None:
            client.log_metric(run.info.run_id, "ref_inference_energy_kwh", kwh)
        client.set_terminated(run.info.run_id)
        time.sleep(0.01)  # distinct start times
        return run.info.run_id

    usable = calibration(machine, 0.002, "0.05")
    calibration(machine, None)  # newer, but measured nothing
    calibration(machine, 0.0)
    calibration({**machine, "hw.cpu_model": "Other CPU"}, 0.009)  # another machine
    found = find_calibration({**machine, "hw.hostname": "anything"})
    assert found is not None and found.run_id == usable
    assert found.normalise(0.001) == pytest.approx(0.001 * 0.05 / 0.002)
    assert found.dataset_fingerprint == "fp-A"
    assert find_calibration({"hw.gpu_model": "Test GPU 80GB", "hw.cpu_model": "Nobody"}) is None


def test_model_uri_forms_lead_to_the_training_run(trained, client):
    logged_model_uri = client.get_model_version(MODEL_NAME, "1").source  # models:/m-…, the LoggedModel
    assert logged_model_uri.startswith("models:/m-")
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    forms = [
        f"models:/{MODEL_NAME}/1",
        f"models:/{MODEL_NAME}/latest",
        f"models:/{MODEL_NAME}@champion",
        logged_model_uri,
        f"runs:/{trained}/model",
    ]
    for uri in forms:
        source = resolve_model_uri(uri)
        assert source.training_run_id == trained, uri
    assert resolve_model_uri(f"models:/{MODEL_NAME}@champion").load_uri == f"models:/{MODEL_NAME}/1"
    assert resolve_model_uri(f"models:/{MODEL_NAME}/1").model_id == logged_model_uri.removeprefix("models:/")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", "--model-uri", "models:/no-such-model/1"], "no-such-model"),
        (["evaluate", "--model-uri", "models:/m-0123456789abcdef"], "no logged model"),
        (["evaluate", "--model-uri", "runs:/0123456789abcdef0123456789abcdef/model"], "not in this tracking store"),
        (["evaluate", "--model-uri", "s3://bucket/model"], "not a model URI"),
        (["evaluate", "--model-uri", f"models:/{MODEL_NAME}/1", "--config", "missing.yaml"], "missing.yaml"),
        (["evaluate", "--model-uri", f"models:/{MODEL_NAME}/1", "--data", "EMPTY"], "devtest set not found"),
        (["calibrate", "--set", "model.rnn_hidden=8"], "fixed"),
        (["calibrate", "--repeats", "0"], "--repeats"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(trained, tiny_data, client, capsys, tmp_path, argv, expected):
    (tmp_path / "EMPTY").mkdir()
    if "--data" not in argv:
        argv = [*argv, "--data", str(tiny_data)]
    before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == before


def test_psds_backend_sed_scores_eval_scores_the_devtest_alike(tiny_data, tmp_path):
    """`validation.psds_backend=sed_scores_eval` gives evaluate the same PSDS as psds_eval on the 50 thresholds."""
    pytest.importorskip("sed_scores_eval")
    import numpy as np

    from sedwatt.evaluation.devtest import load_devtest, score_strong_outputs

    results = {}
    for backend in ("psds_eval", "sed_scores_eval"):
        config = load_config(None, ["data.clip_seconds=4.0", f"validation.psds_backend={backend}"])
        devset = load_devtest(tiny_data, config)
        rng = np.random.default_rng(5)
        labels = np.stack([devset.dataset[i][1].numpy() for i in range(devset.n_clips)])
        strong = 0.45 * labels + 0.6 * rng.random(labels.shape)  # a noisy detector: PSDS neither 0 nor 1
        results[backend] = score_strong_outputs(strong, devset, config, tmp_path / backend)
    reference, fast = results["psds_eval"], results["sed_scores_eval"]
    assert 0.05 < reference.metrics["psds1"] < 0.95 and 0.05 < reference.metrics["psds2"] < 0.95, reference.metrics
    for key, value in reference.metrics.items():
        assert fast.metrics[key] == pytest.approx(value, abs=1e-9), key
    for scenario in ("psds1", "psds2"):
        assert fast.per_class[scenario] == pytest.approx(reference.per_class[scenario], abs=1e-9)


def test_evaluate_loads_a_sedwatt_model_weights_only(trained, client, monkeypatch):
    """The model's state dict + config, read with weights_only=True: nothing is unpickled (the same weights)."""
    import torch

    from sedwatt.evaluation.model_source import load_model, resolve_model_uri

    source = resolve_model_uri(f"models:/{MODEL_NAME}/1")
    pickled = mlflow.pytorch.load_model(source.load_uri, map_location="cpu")

    def refuse(*_args, **_kwargs):
        raise AssertionError("the pickled PyTorch flavour was loaded")

    monkeypatch.setattr(mlflow.pytorch, "load_model", refuse)
    model = load_model(source, torch.device("cpu"))
    assert not model.training
    mine, theirs = model.state_dict(), pickled.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
