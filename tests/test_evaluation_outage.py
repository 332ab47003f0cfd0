"""`sedwatt evaluate` and `sedwatt calibrate` finish through a tracking-server outage; `sedwatt sync` completes their runs.

A real ``mlflow server`` behind a proxy (tests/outage.py) goes away right after the evaluation's
(calibration's) run was created: every tag, param, metric and file then waits in the run's spool,
the files copied beside it because the work folder is a temporary one that is deleted when the
command ends. Once the server is back, ``sedwatt sync`` sends it all and the run is FINISHED.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

from outage import outage_from_run_creation
from sedwatt.cli import main
from sedwatt.config import load_config
from sedwatt.metrics import PSDS_THRESHOLDS
from sedwatt.tracking.callback import spool_path_for

pytestmark = pytest.mark.integration

MODEL_NAME = f"crnn-outage-{os.getpid()}"
FAST_ENERGY = "energy.measure_power_secs=1"


@pytest.fixture(scope="module")
def trained(tiny_data, outage_server, tmp_path_factory, tiny_overrides) -> Path:
    """The out_dir of a one-epoch training run whose model is version 1 of MODEL_NAME (evaluate spools under it)."""
    from sedwatt.runner import train_run

    work = tmp_path_factory.mktemp("train")
    overrides = [*tiny_overrides, "train.epochs=1", "train.batch_size=32", f"data.cache_dir={work / 'cache'}",
                 f"train.out_dir={work / 'out'}", FAST_ENERGY, f"tracking.registered_model_name={MODEL_NAME}",
                 "tracking.experiment=outage-evaluate"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", outage_server.url)
        train_run(load_config(None, overrides), tiny_data)
    mlflow.set_tracking_uri(None)
    return work / "out"


def run_id_from(stdout: str, prefix: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith(prefix))
    return line.split()[len(prefix.split())]


def sync_after_outage(server, spool: Path, stderr: str) -> None:
    assert spool.is_file(), "the records should wait in the run's spool"
    assert f"sedwatt sync {spool}" in stderr
    assert server.outages == 1
    server.up()
    assert main(["sync", str(spool)]) == 0
    assert not spool.exists()


def test_an_evaluation_survives_an_outage_and_sync_completes_its_run(
    trained, tiny_data, outage_tracking, outage_server, monkeypatch, capsys
):
    client, server = outage_tracking, outage_server
    outage_from_run_creation(monkeypatch, server)
    assert main(["evaluate", "--model-uri", f"models:/{MODEL_NAME}/1", "--data", str(tiny_data)]) == 0
    printed = capsys.readouterr()
    run_id = run_id_from(printed.out, "evaluation run")
    sync_after_outage(server, spool_path_for(trained / run_id), printed.err)

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["sedwatt.kind"] == "evaluate" and run.data.tags["energy.tool"].startswith("codecarbon")
    assert run.data.tags["mlflow.parentRunId"] == run.data.params["training_run_id"]
    assert run.data.params["n_clips"] == "12"
    assert 0.0 <= run.data.metrics["psds1"] <= 1.0 and run.data.metrics["inference_energy_kwh"] > 0
    root = {a.path for a in client.list_artifacts(run_id)}
    assert {"per_class.json", "config.yaml", "operating_points", "energy"} <= root
    points = sorted(Path(a.path).name for a in client.list_artifacts(run_id, "operating_points"))
    assert points == sorted(f"predictions_th_{t:.3f}.tsv" for t in PSDS_THRESHOLDS)


def test_a_calibration_survives_an_outage_and_sync_completes_its_run(
    tiny_data, outage_tracking, outage_server, monkeypatch, capsys, tmp_path
):
    client, server = outage_tracking, outage_server
    outage_from_run_creation(monkeypatch, server)
    assert main(["calibrate", "--data", str(tiny_data), "--set", "data.clip_seconds=4.0", "--set", FAST_ENERGY,
                 "--set", "train.val_batch_size=4", "--repeats", "2"]) == 0  # fmt: skip
    printed = capsys.readouterr()
    run_id = run_id_from(printed.out, "calibration run")
    sync_after_outage(server, spool_path_for(tmp_path / "outputs" / run_id), printed.err)

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["sedwatt.kind"] == "calibration"
    assert run.data.params["repeats"] == "2" and run.data.params["reference_params"] == "1112420"
    passes = [m.value for m in sorted(client.get_metric_history(run_id, "ref_inference_energy_kwh_repeat"), key=lambda m: m.step)]
    assert len(passes) == 2 and run.data.metrics["ref_inference_energy_kwh"] == pytest.approx(sum(passes) / 2)
    for repeat in (1, 2):
        assert client.list_artifacts(run_id, f"energy/repeat_{repeat}"), repeat
    assert "config.yaml" in {a.path for a in client.list_artifacts(run_id)}
