"""The alias table: runs logged under the old names read like new ones, and a name never means two things."""

from __future__ import annotations

import pandas as pd
from sedwatt_analysis.history import current_keys, curves, with_old_names

from sedwatt import names


def test_old_names_map_to_the_new_ones_per_place():
    assert names.current_name("val_f1_05") == "val_f1_05_student"
    assert names.current_name("val_weak_f1") == "val_weak_f1_student"
    assert names.current_name("best_val_f1") == "max_val_f1"
    # "best_epoch" was two different epochs: the obj_metric checkpoint's in MLflow, the max F1's in runs.csv
    assert names.current_name("best_epoch", "metric") == "best_obj_metric_epoch"
    assert names.current_name("best_epoch", "runs.csv") == "max_val_f1_epoch"
    assert names.current_name("best_val_f1", "version tag") == "run_max_val_f1"
    assert names.current_name("val_f1") == "val_f1"  # the paper's figure keeps its name
    assert names.old_names("max_val_f1") == ["best_val_f1"] and names.old_names("val_f1") == []


def test_no_old_name_is_a_current_name_in_the_same_place():
    for table in names.RENAMED.values():
        assert not set(table) & set(table.values())


def test_with_current_names_prefers_the_new_name_when_both_exist():
    old_run = {"best_val_f1": 0.4, "val_f1_05": 0.3, "energy_total_kwh": 1.0}
    assert names.with_current_names(old_run) == {"max_val_f1": 0.4, "val_f1_05_student": 0.3, "energy_total_kwh": 1.0}
    both = {"best_val_f1": 0.1, "max_val_f1": 0.5}
    assert names.with_current_names(both) == {"max_val_f1": 0.5}
    assert names.with_current_names({"energy_total_kwh": "2"}, "version tag") == {"run_energy_total_kwh": "2"}


def test_histories_read_old_names_under_new_ones():
    assert with_old_names(["val_f1", "val_f1_05_student"]) == ["val_f1", "val_f1_05_student", "val_f1_05"]
    table = pd.DataFrame(
        [("old", "val_f1_05", 1, 10, 0.2), ("old", "val_f1", 1, 10, 0.3),
         ("both", "val_f1_05", 1, 10, 0.9), ("both", "val_f1_05_student", 1, 11, 0.4)],
        columns=["run_id", "key", "step", "timestamp", "value"],
    )  # fmt: skip
    out = current_keys(table)
    assert sorted(map(tuple, out[["run_id", "key", "value"]].to_numpy().tolist())) == [
        ("both", "val_f1_05_student", 0.4), ("old", "val_f1", 0.3), ("old", "val_f1_05_student", 0.2)]  # fmt: skip


def test_a_run_resumed_across_the_rename_keeps_its_old_epochs():
    # Epochs 1-2 logged as val_f1_05 before the upgrade, 2-3 as val_f1_05_student after it (epoch 2 redone).
    table = pd.DataFrame(
        [("r", "val_f1", 1, 10, 0.1), ("r", "val_f1", 2, 20, 0.2), ("r", "val_f1", 3, 30, 0.3),
         ("r", "val_f1_05", 1, 10, 0.11), ("r", "val_f1_05", 2, 25, 0.99),
         ("r", "val_f1_05_student", 2, 21, 0.22), ("r", "val_f1_05_student", 3, 30, 0.33)],
        columns=["run_id", "key", "step", "timestamp", "value"],
    )  # fmt: skip
    out = current_keys(table)
    renamed = out[out["key"] == "val_f1_05_student"].sort_values("step")
    assert list(zip(renamed["step"], renamed["value"], strict=True)) == [(1, 0.11), (2, 0.22), (3, 0.33)]
    # The new name wins at the shared epoch although the old point there is later.
    curve = curves(out, ("val_f1", "val_f1_05_student"))["r"]
    assert curve["val_f1_05_student"].tolist() == [0.11, 0.22, 0.33]
