"""The README's schema table ("What a training run records") is what a real training run logs.

Every param, tag and metric of a real tiny ``sedwatt train`` (conftest's ``tiny_run``), and every tag
of its registered model version, must be in the table, and every name the table promises (but those
in italics, logged only when they apply) must be on the run. The "logged before as" column must be
``sedwatt.names``' alias table, and the runs.csv paragraph its runs.csv renames.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sedwatt import names
from sedwatt.config import load_config
from sedwatt.convergence import SUMMARY_FIELDS

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## What a training run records"
KINDS = ("param", "tag", "metric per epoch", "metric end of run", "metric", "version tag")
NAME = re.compile(r"(\*?)`([^`]+)`\*?")


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else None]


def table() -> list[dict]:
    """The table's rows: kind, names (name → optional?), old names."""
    rows = []
    for line in section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] not in KINDS:
            continue
        found = {name: bool(star) for star, name in NAME.findall(cells[1])}
        rows.append({"kind": cells[0], "names": found, "old": [n for _, n in NAME.findall(cells[3])]})
    return rows


def documented(kind: str) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for row in table():
        if row["kind"] == kind:
            out.update(row["names"])
    return out


def covered(name: str, patterns: dict[str, bool]) -> bool:
    """``name`` is documented as itself or by a pattern (``mlflow.*``, ``<section>.<field>``, ``sedwatt.<key>``)."""
    if name in patterns:
        return True
    config_keys = set(load_config(None).flat())
    for pattern in patterns:
        if pattern.endswith("*") and name.startswith(pattern[:-1]):
            return True
        if pattern == "<section>.<field>" and name in config_keys and "." in name:
            return True
        if pattern == "sedwatt.<key>" and name.startswith("sedwatt."):
            return True
    return False


def required(kind: str) -> set[str]:
    return {n for n, optional in documented(kind).items() if not optional and "<" not in n and "*" not in n}


def test_the_table_is_there_and_has_every_kind():
    assert {row["kind"] for row in table()} == set(KINDS)


@pytest.mark.parametrize("kind", ["param", "tag", "version tag"])
def test_params_and_tags_match_the_run(tiny_run, kind):
    logged = {
        "param": tiny_run.run.data.params,
        "tag": tiny_run.run.data.tags,
        "version tag": tiny_run.version.tags,
    }[kind]
    table_names = documented(kind)
    assert sorted(n for n in logged if not covered(n, table_names)) == [], f"{kind}s logged but not in the README"
    assert sorted(required(kind) - set(logged)) == [], f"{kind}s the README promises but the run lacks"


def test_metrics_match_the_run_and_their_steps(tiny_run):
    client, run = tiny_run.client, tiny_run.run
    every = {**documented("metric per epoch"), **documented("metric end of run"), **documented("metric")}
    logged = set(run.data.metrics)
    assert sorted(n for n in logged if not covered(n, every)) == []
    assert sorted((required("metric per epoch") | required("metric end of run")) - logged) == []
    for name in required("metric per epoch"):  # one point per epoch of the 3
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, name)) == [1, 2, 3], name
    for name in required("metric end of run"):  # one point, at the last epoch
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [3], name


def test_old_names_column_is_the_alias_table():
    place = {"metric per epoch": "metric", "metric end of run": "metric", "version tag": "version tag"}
    listed: dict[str, dict[str, str]] = {"metric": {}, "version tag": {}}
    for row in table():
        if row["old"]:
            (new,) = row["names"]  # a renamed name has its own row
            listed[place[row["kind"]]].update(dict.fromkeys(row["old"], new))
    assert listed == {key: names.RENAMED[key] for key in listed}


def test_runs_csv_columns_and_their_old_names():
    text = " ".join(section().split())
    assert "one column per end-of-run metric except `best_obj_metric_epoch`, plus `epochs`" in text
    end = {n for n in documented("metric end of run")} - {names.BEST_OBJ_METRIC_EPOCH}
    assert set(SUMMARY_FIELDS) == end | {"epochs"}
    renamed = dict(re.findall(r"`(\w+)` \(now `(\w+)`", text))
    assert renamed == names.RENAMED["runs.csv"]
