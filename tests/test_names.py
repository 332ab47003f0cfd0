"""The alias table's invariants: old names read like new ones, and a name never means two things."""

from __future__ import annotations

import typing

import pandas as pd
from sedwatt_analysis.history import current_keys, curves, with_old_names
from sedwatt_analysis.per_run import runs_frame

from sedwatt import names
from sedwatt.convergence import SUMMARY_FIELDS


def constants(prefix: str = "") -> set[str]:
    """The string constants names.py defines (``prefix``: only those whose Python name starts with it)."""
    return {v for k, v in vars(names).items() if k.isupper() and k.startswith(prefix) and isinstance(v, str)}


def current(place: str) -> set[str]:
    """What each place calls things today, from where those names are made."""
    if place == "metric":  # per-epoch names, and the end-of-run metrics (CurveSummary's fields but epochs)
        return (constants() - constants("VERSION_")) | (set(SUMMARY_FIELDS) - {"epochs"})
    if place == "version tag":
        return constants("VERSION_")
    return set(runs_frame([], {}, []).columns)  # runs.csv


def test_every_place_is_checked():
    assert set(names.RENAMED) == set(typing.get_args(names.Place))
    assert all(current(place) for place in names.RENAMED)


def test_aliases_lead_to_names_in_use_and_away_from_them():
    for place, table in names.RENAMED.items():
        in_use = current(place)
        assert set(table.values()) <= in_use, place  # an alias to a name nothing writes reads nothing
        assert not set(table) & in_use, place  # an old name still in use would mean two things


def test_with_current_names_on_a_mixed_dict():
    # An old run's name alone is renamed; next to its new name the new value wins; other names pass through.
    (old, new), (old_2, new_2) = list(names.RENAMED["metric"].items())[:2]
    assert new != new_2
    values = {old: 1.0, new: 2.0, old_2: 3.0, names.VAL_F1: 4.0}
    assert names.with_current_names(values) == {new: 2.0, new_2: 3.0, names.VAL_F1: 4.0}
    assert names.with_current_names({new: 2.0, old: 1.0}) == {new: 2.0}  # whatever the order
    # The place decides: a metric's old name is no alias among runs.csv's columns.
    assert old not in names.RENAMED["runs.csv"]
    assert names.with_current_names({old: 1.0}, "runs.csv") == {old: 1.0}


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
