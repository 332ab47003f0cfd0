"""Outage-proof logging without a server: queue + spool, flush order, refusals, replay, ``sedwatt sync``.

The real stop/restart of a team server during a run is in test_server_integration.py; here a
client that fails on demand, and a tracking URI where nothing listens, stand for the outage.
"""

from __future__ import annotations

import argparse
import json

import pytest
import requests
import torch

from servers import free_port
from tracking_run import CHECKPOINT_EPOCH, F1_CURVE, TRACKING_OVERRIDES, train

mlflow = pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException  # noqa: E402

from sedwatt.errors import SedwattError  # noqa: E402
from sedwatt.tracking import MLflowCallback, ResilientLogger, end_run_safely, ensure_experiment, replay_spool  # noqa: E402
from sedwatt.tracking.resilient import batch_op, is_transient, read_spool  # noqa: E402
from sedwatt.training.checkpoint import load_checkpoint  # noqa: E402


class FlakyClient:
    """Records every log_batch; raises while ``down`` (a connection error) or ``refuse`` (a 400)."""

    def __init__(self) -> None:
        self.down = False
        self.refuse = False
        self.received: list[tuple[str, list]] = []
        self.calls = 0

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        self.calls += 1
        if self.down:
            raise requests.ConnectionError("connection refused")
        if self.refuse:
            raise MlflowException("bad value", error_code=mlflow.protos.databricks_pb2.INVALID_PARAMETER_VALUE)
        self.received.append((run_id, [(m.key, m.value, m.step, m.timestamp) for m in metrics]))


def epoch_op(epoch: int, stamp: int = 0):
    return batch_op("run1", {"val_f1": F1_CURVE[epoch - 1]}, step=epoch, timestamp_ms=1_000 * epoch + stamp)


def test_transient_and_permanent_errors_are_told_apart():
    from mlflow.protos import databricks_pb2 as codes

    assert is_transient(requests.ConnectionError("refused"))
    assert is_transient(MlflowException("down", error_code=codes.INTERNAL_ERROR))
    assert is_transient(MlflowException("busy", error_code=codes.TEMPORARILY_UNAVAILABLE))
    assert not is_transient(MlflowException("bad", error_code=codes.INVALID_PARAMETER_VALUE))
    assert not is_transient(MlflowException("who", error_code=codes.UNAUTHENTICATED))
    assert not is_transient(FileNotFoundError("gone"))
    assert not is_transient(ValueError("bug"))


def test_outage_queues_in_memory_and_on_disk_then_flushes_in_order(tmp_path):
    client = FlakyClient()
    spool = tmp_path / "spool.jsonl"
    log = ResilientLogger(
        spool, tracking_uri="http://alice:pw@server:5000", attempts=2, wait_s=0.0, retry_interval_s=0.0, client=client
    )
    assert log.submit(epoch_op(1))
    client.down = True
    assert not log.submit(epoch_op(2))
    assert not log.submit(epoch_op(3))
    assert log.pending == 2
    on_disk = read_spool(spool)
    assert [op["metrics"][0][3] for op in on_disk] == [2, 3]  # steps, in order
    assert all(op["tracking_uri"] == "http://server:5000" for op in on_disk)  # no credentials on disk
    assert "pw" not in spool.read_text()
    # while down, a new submit tries the queue head once (two attempts), not every record
    calls = client.calls
    assert not log.submit(epoch_op(4))
    assert client.calls - calls == 2
    client.down = False
    assert log.submit(epoch_op(5))
    assert [step for _, [(key, value, step, stamp)] in client.received] == [1, 2, 3, 4, 5]
    # timestamps are those of the moment the metric was produced, not of the late send
    assert [stamp for _, [(_k, _v, _s, stamp)] in client.received] == [1000, 2000, 3000, 4000, 5000]
    assert log.pending == 0 and not spool.exists()
    assert log.close() == 0


def test_a_refused_record_is_kept_but_does_not_block_the_rest(tmp_path, capsys):
    client = FlakyClient()
    spool = tmp_path / "spool.jsonl"
    log = ResilientLogger(spool, tracking_uri="http://server:5000", wait_s=0.0, client=client)
    client.refuse = True
    assert not log.submit(epoch_op(1))
    assert client.calls == 1  # a permanent error is not retried
    client.refuse = False
    assert log.submit(epoch_op(2))
    assert [r[1][0][2] for r in client.received] == [2]
    kept = read_spool(spool)
    assert len(kept) == 1 and kept[0]["error"].startswith("MlflowException")
    assert log.close() == 1
    assert f"sedwatt sync {spool}" in capsys.readouterr().err


def test_a_killed_process_leaves_a_readable_spool(tmp_path):
    client = FlakyClient()
    client.down = True
    spool = tmp_path / "spool.jsonl"
    log = ResilientLogger(spool, tracking_uri="http://server:5000", attempts=1, client=client)
    for epoch in (1, 2, 3):
        log.submit(epoch_op(epoch))
    # no close(): the process "died"; every record is already on disk
    assert [op["metrics"][0][3] for op in read_spool(spool)] == [1, 2, 3]


def test_read_spool_names_a_torn_line(tmp_path):
    spool = tmp_path / "spool.jsonl"
    spool.write_text(json.dumps(epoch_op(1)) + "\n" + '{"op": "log_ba')
    with pytest.raises(SedwattError, match="line 2"):
        read_spool(spool)
    with pytest.raises(SedwattError, match="not found"):
        read_spool(tmp_path / "nope.jsonl")


@pytest.fixture
def store(tmp_path, monkeypatch, fresh_store):
    """A store of this test's own, MLflow pointed at it and failing fast; the CWD in tmp_path, so nothing the
    run writes relative to it (an artifact folder, a spool) can land in the repository."""
    uri = fresh_store(tmp_path / "store")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def test_server_that_never_returns_leaves_a_spool_that_sync_sends(store, tmp_path, capsys, tiny_config, tiny_training_data):
    """The whole run (metrics, artifacts, model, registration, final status) goes through the spool."""
    from sedwatt.cli import sync

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = mlflow.MlflowClient(store)
    run_id = client.create_run(ensure_experiment("resilience", store)).info.run_id
    config = tiny_config("train.epochs=4", *TRACKING_OVERRIDES, "tracking.registered_model_name=crnn-spooled")
    spool = tmp_path / "out" / "mlflow-spool.jsonl"
    mlflow.set_tracking_uri(dead)
    try:
        tracker = MLflowCallback(run_id, tracking_uri=dead, retry_attempts=1)
        state = train(config, tiny_training_data, tmp_path / "out", [tracker])  # not disturbed by the outage
        assert not tracker.model_logged
        assert not end_run_safely(run_id, "FINISHED", spool)
    finally:
        mlflow.set_tracking_uri(store)
    assert f"sedwatt sync {spool}" in capsys.readouterr().err
    kinds = [op["op"] for op in read_spool(spool)]
    assert kinds[0] == "log_params" and kinds[-2:] == ["log_model", "set_terminated"]
    assert kinds.count("log_batch") == 1 + 4 + 1  # start tags, 4 epochs, end summary + tags
    assert client.get_run(run_id).data.metrics == {}  # nothing reached the store yet

    args = argparse.Namespace(spool=[str(spool)], tracking_uri=store)
    assert sync.run(args) == 0
    assert not spool.exists()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val_f1")] == [(e, F1_CURVE[e - 1]) for e in range(1, 5)]
    assert run.data.metrics["max_val_f1"] == pytest.approx(0.43)
    assert run.data.params["config_name"] == "tracking-test"
    assert run.data.tags["energy.ram_method"] == "late-tag"
    paths = {a.path for d in ("", "checkpoints", "plots", "energy") for a in client.list_artifacts(run_id, d or None)}
    assert {"config.yaml", "checkpoints/best.pt", "checkpoints/last.pt", "plots/f1_vs_energy.png", "energy/energy_epochs.csv"} <= paths
    (version,) = client.search_model_versions("name = 'crnn-spooled'")
    assert version.run_id == run_id and float(version.tags["run_max_val_f1"]) == pytest.approx(0.43)
    assert version.tags["checkpoint_epoch"] == str(CHECKPOINT_EPOCH)
    model = mlflow.pytorch.load_model(f"models:/crnn-spooled/{version.version}")
    best = load_checkpoint(state.best_checkpoint)
    assert best["epoch"] == CHECKPOINT_EPOCH  # the best obj_metric's, not the max F1's (4)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best["student"].items())
    # a second sync has nothing left to send
    with pytest.raises(SedwattError, match="not found"):
        replay_spool(spool, tracking_uri=store)


def test_records_left_by_an_earlier_process_are_sent_first(tmp_path):
    client = FlakyClient()
    client.down = True
    spool = tmp_path / "spool.jsonl"
    first = ResilientLogger(spool, tracking_uri="http://server:5000", attempts=1, client=client)
    first.submit(epoch_op(1))
    first.submit(epoch_op(2))
    with open(spool, "a") as handle:
        handle.write('{"op": "log_batch", "run_')  # the process died mid-write
    # a resumed run in a new process, the server is back
    client.down = False
    second = ResilientLogger(spool, tracking_uri="http://server:5000", attempts=1, client=client)
    assert second.submit(epoch_op(3))
    assert [r[1][0][2] for r in client.received] == [1, 2, 3]
    assert not spool.exists()


def test_a_half_done_model_log_is_not_repeated(tmp_path, monkeypatch):
    """Model logged, registration failed (server went away): only the registration is retried."""
    from sedwatt.tracking import registry
    from sedwatt.tracking.resilient import PartialOp

    registered: list[tuple[str, str]] = []
    monkeypatch.setattr(registry, "register_model_version", lambda uri, name, run_id, tags: registered.append((uri, name)))
    live_calls: list[int] = []
    remaining = {"op": "register_model", "run_id": "run1", "model_uri": "models:/m-1", "registered_model_name": "crnn", "version_tags": {}}

    def live() -> None:
        live_calls.append(1)
        raise PartialOp(remaining, requests.ConnectionError("server went away"))

    spool = tmp_path / "spool.jsonl"
    log = ResilientLogger(spool, tracking_uri="http://server:5000", attempts=3, wait_s=0.0, retry_interval_s=0.0, client=FlakyClient())
    assert not log.submit({"op": "log_model", "run_id": "run1"}, action=live, on_defer=lambda op: pytest.fail("model saved twice"))
    assert live_calls == [1]  # not retried as a whole
    assert [op["op"] for op in read_spool(spool)] == ["register_model"]
    assert log.flush() == 0
    assert registered == [("models:/m-1", "crnn")]
    assert not spool.exists()


def test_after_a_failure_records_are_only_queued_for_a_while(tmp_path, capsys):
    client = FlakyClient()
    log = ResilientLogger(tmp_path / "spool.jsonl", tracking_uri="http://server:5000", attempts=1, retry_interval_s=3600, client=client)
    client.down = True
    for epoch in (1, 2, 3):
        log.submit(epoch_op(epoch))
    assert client.calls == 1  # one failed try, then only queued
    client.down = False
    log.submit(epoch_op(4))
    assert client.received == []  # still within the interval
    assert log.close() == 0  # train end always tries once more
    assert [r[1][0][2] for r in client.received] == [1, 2, 3, 4]
    assert "sedwatt sync" not in capsys.readouterr().err


def test_the_retry_interval_doubles_while_the_server_stays_away(tmp_path, monkeypatch):
    from sedwatt.tracking import resilient

    clock = [1000.0]
    monkeypatch.setattr(resilient.time, "monotonic", lambda: clock[0])
    client = FlakyClient()
    client.down = True
    log = ResilientLogger(tmp_path / "spool.jsonl", tracking_uri="http://server:5000", attempts=1,
                          retry_interval_s=10, max_retry_interval_s=35, client=client)  # fmt: skip
    tries = []
    for _ in range(12):  # one submit every 5 s for a minute
        before = client.calls
        log.submit(epoch_op(1))
        tries.append(client.calls - before)
        clock[0] += 5
    # failures at t=0, 10 (interval 10), 30 (interval 20), 65 would be next (interval 35 = cap)
    assert tries == [1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    client.down = False
    clock[0] += 100
    log.submit(epoch_op(2))
    assert log.failures == 0 and not log.queue


def test_writers_of_one_run_share_its_logger_and_spool(tmp_path):
    """train_run's first tags, an Optuna trial's link and the tracker write one run: one queue, one spool."""
    from sedwatt.tracking.resilient import close_logger, logger_for

    client = FlakyClient()
    client.down = True
    spool = tmp_path / "spool.jsonl"
    first = logger_for(spool, tracking_uri="http://server:5000", client=client, attempts=1)
    first.submit(epoch_op(1))
    second = logger_for(tmp_path / "." / "spool.jsonl", attempts=1, retry_interval_s=3600)  # the tracker's settings
    assert second is first and first.retry_interval_s == 3600
    second.submit(epoch_op(2))
    assert client.calls == 1  # the second writer waits out the same outage instead of trying again
    assert [op["metrics"][0][3] for op in read_spool(spool)] == [1, 2]  # neither rewrote the other's records
    client.down = False
    assert close_logger(spool) == 0
    assert [r[1][0][2] for r in client.received] == [1, 2]
    assert close_logger(spool) is None  # closed: no longer shared
    assert logger_for(spool, client=client) is not first
    close_logger(spool)


def test_a_deferred_op_is_prepared_to_wait_but_a_sent_one_is_not(tmp_path):
    client = FlakyClient()
    log = ResilientLogger(tmp_path / "spool.jsonl", tracking_uri="http://server:5000", attempts=1, client=client)
    prepared = []

    def keep(op):
        prepared.append(op["metrics"][0][3])
        return {**op, "kept": True}

    assert log.submit(epoch_op(1), on_defer=keep)
    client.down = True
    assert not log.submit(epoch_op(2), on_defer=keep)
    assert prepared == [2]
    assert [op.get("kept") for op in read_spool(tmp_path / "spool.jsonl")] == [True]
