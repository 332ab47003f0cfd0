"""A tracking-server outage as a search trial starts does not fail the trial.

A real ``mlflow server`` behind a proxy (tests/outage.py) goes away right after the trial's run was
created, so the run's first tags, the trial's link (params ``trial_number``/``study_name``, tag,
metric), the tracker's params, hardware tags and config all meet a refused connection. The trial
must complete, and everything it wrote must reach the server: by itself once the server is back
during training, or through ``sedwatt sync`` of the run's spool when it is back only afterwards.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest

from outage import outage_from_run_creation
from sedwatt.cli import main
from sedwatt.search.runs import RUN_ATTR
from sedwatt.search.space import SearchSpace
from sedwatt.search.study import SearchSettings, run_worker
from sedwatt.tracking.callback import spool_path_for

pytestmark = pytest.mark.integration

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("back", ["after the first epoch", "after the trial"])
def test_an_outage_as_a_trial_starts_does_not_fail_it(
    tiny_data, tmp_path, outage_tracking, outage_server, monkeypatch, caplog, back, search_overrides
):
    client, server = outage_tracking, outage_server
    outage_from_run_creation(monkeypatch, server)
    if back == "after the first epoch":
        from sedwatt.tracking.callback import MLflowCallback

        first_epoch_end = MLflowCallback.on_epoch_end

        def server_back(self, state, metrics):
            server.up()
            return first_epoch_end(self, state, metrics)

        monkeypatch.setattr(MLflowCallback, "on_epoch_end", server_back)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    settings = SearchSettings(
        config_path=None,
        overrides=[*search_overrides(tmp_path, tmp_path / "mel-cache"), "train.epochs=2",
                   f"tracking.experiment=outage-{back.split()[-1]}"],  # fmt: skip
        data=tiny_data,
        n_trials=1,
        study_name="outage",
        storage=url,
        space=SearchSpace(batch_size=[64]),
        heartbeat_interval=2,
        grace_period=20,
    )
    with caplog.at_level(logging.WARNING, logger="sedwatt.tracking.resilient"):
        study = run_worker(settings)
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE"  # the outage did not fail the trial
    assert server.outages == 1
    run_id = trial.user_attrs[RUN_ATTR]
    queued = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert queued and f"log_batch for run {run_id}" in queued[0]  # the run's first tags met the outage
    spool = spool_path_for(tmp_path / "outputs" / run_id)
    if back == "after the trial":
        assert spool.is_file()  # everything waited there, the final status too
        server.up()
        assert client.get_run(run_id).data.params == {} and client.get_run(run_id).info.status == "RUNNING"
        assert main(["sync", str(spool)]) == 0
    assert not spool.exists()

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    tags, params = run.data.tags, run.data.params
    assert tags["sedwatt.kind"] == "train" and tags["optuna.trial_number"] == str(trial.number)
    assert tags["optuna.study_name"] == "outage" and Path(tags["sedwatt.out_dir"]).name == run_id
    assert tags["hw.cpu_model"]
    assert params["trial_number"] == str(trial.number) and params["study_name"] == "outage"
    assert params["batch_size"] == "64"

    def history_steps(key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(run_id, key)}

    assert history_steps("trial_number") == {0: float(trial.number)}
    f1 = history_steps("val_f1")
    assert sorted(f1) == [1, 2]
    assert trial.values[0] == pytest.approx(max(f1.values()))
    assert "config.yaml" in {a.path for a in client.list_artifacts(run_id)}
