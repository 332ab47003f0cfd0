"""A registered model you can run: the pyfunc flavour served, predicted and loaded, against sedwatt's own decoding.

The model is conftest's ``tiny_model``: one tiny CRNN trained for one epoch through the real ``train_run``
into a throwaway SQLite store and registered as version 1 (shared with test_evaluate). The tests run that
version the three ways MLflow offers
(``mlflow models serve`` over HTTP, ``mlflow models predict`` on a CSV, ``mlflow.pyfunc.load_model``)
on three files: a dev-test clip as it is, a 44.1 kHz stereo copy of another one, and a file two clips
long. The events must be those of the evaluation path (``ClipDataset`` → ``predict`` → ``decode``) on
the same audio; the two-clip file is compared with its two halves decoded as clips of their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import soundfile as sf
import torch

from servers import free_port, stop_process_group

mlflow = pytest.importorskip("mlflow")

from sedwatt.config import load_config  # noqa: E402
from sedwatt.data.layout import DEVTEST, DesedLayout  # noqa: E402

MODEL_NAME = "crnn-tiny"  # conftest's tiny_model
EVENT_COLUMNS = ["filename", "onset", "offset", "event_label"]


@pytest.fixture(scope="module")
def store(tiny_model) -> str:
    return tiny_model.uri


@pytest.fixture(scope="module")
def trained(tiny_model):
    """(run id, config) of the one-epoch training run whose model is version 1 of MODEL_NAME."""
    assert tiny_model.name == MODEL_NAME
    return tiny_model.run_id, tiny_model.config


@pytest.fixture
def client(store, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(store)
    yield mlflow.MlflowClient(store)
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def audio(tiny_data, trained, tmp_path_factory):
    """The three request files, and for each the clip files whose recipe decoding it must equal."""
    import torchaudio.functional as AF

    _, config = trained
    clips = sorted(DesedLayout(tiny_data).audio_dir(DEVTEST).glob("*.wav"))
    folder = tmp_path_factory.mktemp("audio")
    plain = clips[0]
    wave, rate = sf.read(clips[1], dtype="float32")
    assert rate == config.data.sample_rate and wave.ndim == 1
    up = AF.resample(torch.from_numpy(wave), rate, 44100).numpy()
    stereo = folder / "stereo_44k.wav"
    sf.write(
        stereo, np.stack([0.5 * up, 1.5 * up], axis=1), 44100, subtype="FLOAT"
    )  # mean of the channels = up
    first, _ = sf.read(clips[2], dtype="float32")
    second, _ = sf.read(clips[3], dtype="float32")
    n = config.n_samples
    assert first.shape[0] == second.shape[0] == n  # the tiny preset's clips are one clip long
    halves = [folder / "half_1.wav", folder / "half_2.wav"]
    sf.write(halves[0], first, rate, subtype="FLOAT")
    sf.write(halves[1], second, rate, subtype="FLOAT")
    long = folder / "two_clips.wav"
    sf.write(long, np.concatenate([first, second]), rate, subtype="FLOAT")
    return {"files": [str(plain), str(stereo), str(long)], "halves": [str(h) for h in halves]}


def recipe_events(run_id: str, config, paths: list[str], threshold: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Sedwatt's evaluation path on ``paths``: ClipDataset (cropped/padded at 0), predict, decode."""
    from sedwatt.data.datasets import ClipDataset
    from sedwatt.data.scan import Clip
    from sedwatt.metrics import decode
    from sedwatt.training.validation import predict

    model = mlflow.pytorch.load_model(f"models:/{MODEL_NAME}/1", map_location="cpu").eval()
    dataset = ClipDataset(
        [Clip(Path(p), sf.info(p).duration) for p in paths], config, random_crop=False, cache=None
    )
    ((strong, _weak),) = predict([model], dataset, config, torch.device("cpu"))
    events = decode(strong, paths, threshold=threshold, median_filter=config.validation.median_filter,
                    frame_seconds=config.frame_seconds, clip_seconds=config.data.clip_seconds,
                    classes=tuple(config.data.classes))  # fmt: skip
    return events, strong


def expected_events(run_id: str, config, audio: dict, threshold: float) -> pd.DataFrame:
    """The request's events: the plain and stereo files as clips, the long file as its halves joined.

    An event of the first half that lasts to its last frame and an event of the same class that
    starts at the second half's first frame are one event of the long file.
    """
    plain, stereo, long = audio["files"]
    events, _ = recipe_events(run_id, config, [plain, stereo, *audio["halves"]], threshold)
    clip_s = config.data.clip_seconds
    last_frame_end = min(config.n_label_frames * config.frame_seconds, clip_s)
    first = events[events.filename == audio["halves"][0]]
    second = events[events.filename == audio["halves"][1]].assign(
        onset=lambda t: t.onset + clip_s, offset=lambda t: t.offset + clip_s
    )
    joined = []
    for label in config.data.classes:
        a = first[first.event_label == label].sort_values("onset").to_dict("records")
        b = second[second.event_label == label].sort_values("onset").to_dict("records")
        if a and b and np.isclose(a[-1]["offset"], last_frame_end) and np.isclose(b[0]["onset"], clip_s):
            a[-1]["offset"] = b[0]["offset"]
            b = b[1:]
        joined += a + b
    long_events = pd.DataFrame(joined, columns=EVENT_COLUMNS).assign(filename=long)
    rest = events[events.filename.isin([plain, stereo])]
    return pd.concat([rest, long_events], ignore_index=True)


def same_events(got: pd.DataFrame, want: pd.DataFrame) -> None:
    order = ["filename", "event_label", "onset"]
    got = got[EVENT_COLUMNS].sort_values(order).reset_index(drop=True)
    want = want[EVENT_COLUMNS].sort_values(order).reset_index(drop=True)
    assert (
        got[["filename", "event_label"]].values.tolist() == want[["filename", "event_label"]].values.tolist()
    )
    np.testing.assert_allclose(
        got[["onset", "offset"]].to_numpy(float), want[["onset", "offset"]].to_numpy(float), atol=1e-9
    )


def wait_for_ping(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow models serve exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow models serve not answering /ping after {timeout_s} s: {log.read_text()[-3000:]}")


def cli_env(store: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": store, "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip


def test_served_model_gives_the_recipes_events(trained, audio, store, client, tmp_path):
    run_id, config = trained
    torch.set_num_threads(1)  # the server runs with one thread too: the same sums in the same order
    threshold = config.validation.threshold
    want = expected_events(run_id, config, audio, threshold)
    assert set(want.filename) == set(
        audio["files"]
    )  # every file has events to compare (an untrained model fires)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/1",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            env=cli_env(store), cwd=tmp_path, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_ping(url, proc, log)
        split = {"dataframe_split": {"columns": ["filename"], "data": [[p] for p in audio["files"]]}}
        answer = requests.post(f"{url}/invocations", json=split, timeout=120)
        assert answer.status_code == 200, answer.text
        served = pd.DataFrame(answer.json()["predictions"])
        same_events(served, want)

        # records form, and the threshold param: the recipe's decoding at that threshold. A one-epoch
        # model's scores hardly move in time, so the threshold is taken inside the most moving class's
        # scores: its events then start and end inside the clips, through the median filter.
        _, strong = recipe_events(
            run_id, config, [audio["files"][0], audio["files"][1], *audio["halves"]], threshold
        )
        moving = int(np.argmax(strong.std(axis=2).max(axis=0)))
        inside = float(np.median(strong[:, moving, :]))
        want_inside = expected_events(run_id, config, audio, inside)
        clip_end = config.n_label_frames * config.frame_seconds
        partial = want_inside[
            (want_inside.onset > 0) | ~np.isclose(want_inside.offset % config.data.clip_seconds, clip_end)
        ]
        assert len(partial) > 0, want_inside
        records = {
            "dataframe_records": [{"filename": p} for p in audio["files"]],
            "params": {"threshold": inside},
        }
        answer = requests.post(f"{url}/invocations", json=records, timeout=120)
        assert answer.status_code == 200, answer.text
        same_events(pd.DataFrame(answer.json()["predictions"]), want_inside)

        # scores: the model's raw frame scores, one row per frame and a column per class
        plain = audio["files"][0]
        answer = requests.post(f"{url}/invocations", timeout=120,
                               json={"dataframe_records": [{"filename": plain}], "params": {"scores": True}})  # fmt: skip
        assert answer.status_code == 200, answer.text
        scores = pd.DataFrame(answer.json()["predictions"])
        _, strong = recipe_events(run_id, config, [plain], threshold)
        assert list(scores.columns) == ["filename", "onset", "offset", *config.data.classes]
        assert len(scores) == config.n_label_frames
        np.testing.assert_allclose(
            scores[list(config.data.classes)].to_numpy().T, strong[0], rtol=1e-6, atol=1e-7
        )
        np.testing.assert_allclose(scores["onset"], np.arange(config.n_label_frames) * config.frame_seconds)

        # a caller's mistake is a 400 naming the file, not a server error
        missing = str(tmp_path / "missing.wav")
        answer = requests.post(
            f"{url}/invocations", json={"dataframe_records": [{"filename": missing}]}, timeout=60
        )
        assert answer.status_code == 400 and f"{missing}: audio file not found" in answer.text
    finally:
        stop_process_group(proc)
    assert proc.poll() is not None

    # mlflow models predict on a CSV, and the Python API, give the same table as the server
    csv = tmp_path / "in.csv"
    pd.DataFrame({"filename": audio["files"]}).to_csv(csv, index=False)
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "predict", "-m", f"models:/{MODEL_NAME}/1", "-i", str(csv),
         "-t", "csv", "-o", str(out), "--env-manager", "local"],
        env=cli_env(store), cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = pd.DataFrame(json.loads(out.read_text())["predictions"])
    pd.testing.assert_frame_equal(predicted[EVENT_COLUMNS], served[EVENT_COLUMNS])

    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    table = loaded.predict(pd.DataFrame({"filename": audio["files"]}))
    assert list(table.columns) == EVENT_COLUMNS
    pd.testing.assert_frame_equal(table.reset_index(drop=True), served, check_dtype=False)


def test_registered_version_has_both_flavours_and_says_what_it_is(
    trained, audio, client, tiny_data, monkeypatch
):
    from mlflow.models import Model

    from sedwatt.energy.provenance import describe_energy
    from sedwatt.model import CRNN
    from sedwatt.tracking.registry import version_description

    run_id, config = trained
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.run_id == run_id
    folder = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL_NAME}/1")
    meta = Model.load(folder)
    assert {"python_function", "pytorch"} <= set(meta.flavors)
    assert meta.signature.inputs.input_names() == ["filename"]
    assert meta.signature.outputs.input_names() == EVENT_COLUMNS
    assert {p.name: p.default for p in meta.signature.params} == {
        "threshold": config.validation.threshold,
        "scores": False,
    }
    # the pyfunc's weights are plain tensors, the same as the PyTorch flavour's module
    state = torch.load(Path(folder) / "artifacts" / "state_dict.pt", weights_only=True)
    module = mlflow.pytorch.load_model(f"models:/{MODEL_NAME}/1")
    assert isinstance(module, CRNN)
    assert state.keys() == module.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
    assert load_config(Path(folder) / "artifacts" / "config.yaml") == config

    run = client.get_run(run_id)
    fingerprint = run.data.params["dataset_fingerprint"]
    assert version.tags["config_name"] == config.name and version.tags["dataset_fingerprint"] == fingerprint
    lines = version.description.splitlines()
    best, energy = run.data.metrics["max_val_f1"], describe_energy(run.data.metrics, run.data.tags)
    assert lines[0] == f"run max val_f1 {best:.3f} (teacher); training energy {energy}"
    # a run that measured no energy (energy.enabled=false: no energy metrics) says so
    unmeasured = client.create_run(run.info.experiment_id).info.run_id
    client.log_metric(unmeasured, "max_val_f1", 0.25)
    assert version_description(unmeasured) == "run max val_f1 0.250 (teacher); training energy not measured"
    epoch = int(run.data.metrics["best_obj_metric_epoch"])
    assert lines[1] == f"model: the student of epoch {epoch}, the best obj_metric checkpoint"
    assert version.tags["checkpoint_epoch"] == str(epoch) and version.tags["model"] == "student"
    assert lines[2] == f"config {config.name}; data {tiny_data.name} (fingerprint {fingerprint})"
    assert lines[3] == f"trained on {run.data.tags['hw.cpu_model']}"

    # The pyfunc unpickles nothing: it loads where pickles are refused; the PyTorch flavour does not.
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    events = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1").predict(
        pd.DataFrame({"filename": audio["files"][:1]})
    )
    assert list(events.columns) == EVENT_COLUMNS
    with pytest.raises(mlflow.exceptions.MlflowException, match="pickle"):
        mlflow.pytorch.load_model(f"models:/{MODEL_NAME}/1")


def test_run_records_the_data_it_saw(trained, client, tiny_data):
    from sedwatt.data.scan import load_clips

    run_id, config = trained
    scan = load_clips(tiny_data, config)
    (entry,) = client.get_run(run_id).inputs.dataset_inputs
    dataset = entry.dataset
    assert dataset.name == tiny_data.name
    assert dataset.digest == scan.fingerprint == client.get_run(run_id).data.params["dataset_fingerprint"]
    assert dataset.source_type == "local" and json.loads(dataset.source) == {"uri": str(tiny_data.resolve())}
    profile = json.loads(dataset.profile)
    counts = {name: len(clip_set.clips) for name, clip_set in scan.sets.items()}
    per_set = profile["clips_per_set"]
    assert per_set["synth_train"] == counts["synth_train"] and per_set["synth_val"] == counts["synth_val"]
    assert per_set["unlabelled"] == counts["unlabelled"]
    assert per_set["weak_train"] + per_set["weak_val"] == counts["weak"] and per_set["weak_val"] > 0
    assert profile["num_clips"] == sum(per_set.values())
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "training"}


def test_model_saved_during_an_outage_is_synced_with_both_flavours(trained, audio, client, tmp_path):
    """The train-end fallback (server away): the saved folder carries the pyfunc; ``sedwatt sync`` logs it again."""
    from mlflow.models import Model

    from sedwatt.serving.pyfunc import saved_config
    from sedwatt.tracking import registry

    run_id, config = trained
    module = mlflow.pytorch.load_model(f"models:/{MODEL_NAME}/1")
    folder = registry.save_pending_model(module, tmp_path / "pending_model", config=config)
    assert saved_config(folder) == config
    assert {"python_function", "pytorch"} <= set(Model.load(str(folder)).flavors)
    synced = f"{MODEL_NAME}-synced"
    assert mlflow.active_run() is None  # as in `sedwatt sync`
    registry.log_pending_model({"op": "log_model", "run_id": run_id, "model_dir": str(folder),
                                "registered_model_name": synced, "version_tags": {"config_name": config.name}})  # fmt: skip
    (version,) = client.search_model_versions(f"name = '{synced}'")
    assert version.run_id == run_id and version.tags["config_name"] == config.name
    files = [audio["files"][0]]
    got = mlflow.pyfunc.load_model(f"models:/{synced}/{version.version}").predict(
        pd.DataFrame({"filename": files})
    )
    want = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1").predict(pd.DataFrame({"filename": files}))
    pd.testing.assert_frame_equal(got, want)
    assert isinstance(mlflow.pytorch.load_model(f"models:/{synced}/{version.version}"), torch.nn.Module)


def test_a_spooled_dataset_input_is_sent_by_sync(trained, client, tmp_path):
    from sedwatt.tracking.datasets import dataset_record
    from sedwatt.tracking.resilient import append_to_spool, log_input_op, replay_spool

    run_id = client.create_run(client.get_run(trained[0]).info.experiment_id).info.run_id
    record = dataset_record(
        {"root": str(tmp_path / "other-data"), "fingerprint": "0123abcd", "clips": {"synth_train": 3}}
    )
    spool = tmp_path / "mlflow-spool.jsonl"
    append_to_spool(spool, [log_input_op(run_id, record, "evaluation")])
    result = replay_spool(spool, tracking_uri=client.tracking_uri)
    assert (result.sent, result.left) == (1, 0) and not spool.exists()
    (entry,) = client.get_run(run_id).inputs.dataset_inputs
    assert (entry.dataset.name, entry.dataset.digest) == ("other-data", "0123abcd")
    assert json.loads(entry.dataset.profile) == {"num_clips": 3, "clips_per_set": {"synth_train": 3}}
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "evaluation"}


def test_one_window_decodes_as_the_recipe_and_windows_join_at_their_edges():
    from sedwatt.metrics import decode
    from sedwatt.serving.inference import file_events, file_score_table

    timing = {"frame_seconds": 0.25, "clip_seconds": 10.0, "classes": ("a", "b", "c")}
    scores = np.random.default_rng(3).random((1, 3, 40)).astype(np.float32)
    for threshold in (0.3, 0.5, 0.7):
        want = decode(scores, ["f.wav"], threshold=threshold, median_filter=7, **timing)
        got = file_events(scores, "f.wav", 10.0, threshold=threshold, median_filter=7, **timing)
        pd.testing.assert_frame_equal(got, want)

    # Two windows of 4 frames (0.25 s each, a 1 s clip), a 1.6 s file; no median filter.
    timing = {"frame_seconds": 0.25, "clip_seconds": 1.0, "classes": ("a", "b")}
    on = np.array([
        [[0, 0, 1, 1], [1, 0, 0, 0]],  # window 1: a runs to its end, b starts it
        [[1, 1, 0, 0], [0, 0, 1, 1]],  # window 2: a goes on, b starts at 1.5 s and is cut at the file's end (1.6 s)
    ], dtype=np.float32)  # fmt: skip
    events = file_events(on, "f.wav", 1.6, threshold=0.5, median_filter=1, **timing)
    assert events.values.tolist() == [
        ["f.wav", 0.5, 1.5, "a"],
        ["f.wav", 0.0, 0.25, "b"],
        ["f.wav", 1.5, 1.6, "b"],
    ]
    on[1, 1] = [0, 0, 0, 1]  # starts at 1.75 s, after the file's end: no event
    events = file_events(on, "f.wav", 1.6, threshold=0.5, median_filter=1, **timing)
    assert events.values.tolist() == [["f.wav", 0.5, 1.5, "a"], ["f.wav", 0.0, 0.25, "b"]]
    table = file_score_table(on, "f.wav", 1.6, **timing)
    assert table["onset"].tolist() == [
        0.0,
        0.25,
        0.5,
        0.75,
        1.0,
        1.25,
        1.5,
    ]  # frames that start before the end
    assert table["offset"].tolist() == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.6]
    assert table["a"].tolist() == [0, 0, 1, 1, 1, 1, 0] and table["b"].tolist() == [1, 0, 0, 0, 0, 0, 0]
