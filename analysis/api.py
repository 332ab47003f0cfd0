"""``analyze``: runs on a tracking server → the paper's tables, plots, findings and one HTML report.

    from sedwatt_analysis import analyze
    result = analyze(["sedwatt-demo"], filter_string="params.seed = '1'", group_by=["params.batch_size"],
                     out_dir="demo/report")
    result.report_path, result.runs            # report.html, the per-run DataFrame (runs.csv)

Order of work: validate the arguments and query the runs (user errors surface here, before anything
slow), fetch all per-epoch histories in one pass (history.py), recompute every number from them,
build tables/plots/findings in memory, and only then write the files, each atomically.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from sedwatt.atomic import write_atomic
from sedwatt.errors import SedwattError
from sedwatt.tracking.uri import redact_uri, sqlite_path

from . import findings as findings_mod
from . import machines, plots, render
from .history import CURVE_KEYS, curves, fetch_histories
from .per_run import HARDWARE, check_group_keys, normalize_group_key, runs_frame
from .report import Section, frame_table, render_report
from .runs import RunRecord, combined_filter, resolve_experiments, search_training_runs
from .tables import SAVINGS, TABLE1, TABLE2, Column, Table, build_table, stats_csv_frame

DEFAULT_GROUP_BY = ("params.batch_size",)
HARDWARE_COLUMNS = (
    Column("max_f1", "Max F1", "f1"),
    Column("time_s", "Time", "time"),
    Column("energy_total_kwh", "Total", "kwh"),
    Column("wh_per_minute", "Minute", "wh"),
)
NORMALISED_COLUMN = Column("energy_total_norm_kwh", "Normalised total", "kwh")
PROVENANCE_TAGS = ("energy.tool", "energy.cpu_method", "energy.gpu_method", "energy.ram_method")


@dataclass
class AnalysisResult:
    """What ``analyze`` produced: the report's path, the per-run frame, tables, findings, timings."""

    out_dir: Path
    report_path: Path
    runs: pd.DataFrame
    tables: dict[str, Table]
    findings: list[findings_mod.Finding]
    files: list[Path]
    route: str
    n_matched: int
    n_without_epochs: int
    timings_s: dict[str, float] = field(default_factory=dict)


def _tracking_uri(tracking_uri: str | None) -> str:
    if tracking_uri:
        uri = tracking_uri
    else:
        from sedwatt.tracking.uri import configure_tracking

        uri = configure_tracking()
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise SedwattError(
            f"tracking store {redact_uri(uri)}: no such database (set MLFLOW_TRACKING_URI to your store)"
        )
    return uri


def _provenance(records: Sequence[RunRecord], run_ids: set[str]) -> pd.DataFrame:
    rows = [
        {tag: r.tags.get(tag, "(not tagged)") for tag in PROVENANCE_TAGS}
        for r in records
        if r.run_id in run_ids
    ]
    frame = pd.DataFrame(rows, columns=list(PROVENANCE_TAGS))
    return frame.value_counts(dropna=False).rename("runs").reset_index() if len(frame) else frame


def _table_files(
    name: str, table: Table, keys: Sequence[str], columns: Sequence[Column]
) -> dict[str, str | bytes]:
    return {
        f"{name}.csv": stats_csv_frame(table, keys, columns).to_csv(index=False),
        f"{name}.md": render.markdown(table),
        f"{name}.tex": render.latex(table),
    }


def analyze(
    experiments: Sequence[str] | str,
    filter_string: str | None = None,
    group_by: Sequence[str] | str | None = None,
    out_dir: str | Path = "analysis_out",
    *,
    tracking_uri: str | None = None,
) -> AnalysisResult:
    """Analyse the training runs of ``experiments`` matching ``filter_string``, grouped by ``group_by``."""
    from mlflow import MlflowClient

    started = time.perf_counter()
    timings: dict[str, float] = {}
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    keys_in = [group_by] if isinstance(group_by, str) else list(group_by or DEFAULT_GROUP_BY)
    group_keys = list(dict.fromkeys(normalize_group_key(k) for k in keys_in))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SedwattError(f"--out {out}: exists and is not a folder")
    uri = _tracking_uri(tracking_uri)
    client = MlflowClient(uri)

    experiment_map = resolve_experiments(client, names, uri)
    records = search_training_runs(client, experiment_map, filter_string, uri)
    check_group_keys(records, group_keys)
    timings["search"] = time.perf_counter() - started

    t0 = time.perf_counter()
    histories = fetch_histories(uri, [r.run_id for r in records], CURVE_KEYS, client=client)
    run_curves = curves(histories.table, CURVE_KEYS)
    timings["fetch"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    runs = runs_frame(records, run_curves, group_keys)
    if runs.empty:
        raise SedwattError(
            f"{len(records)} training run(s) matched, but none has a logged epoch (metric val_f1): nothing to analyse"
        )
    by_id = {r.run_id: r for r in records}
    calibrations = machines.load_calibrations(client)
    runs = machines.add_normalised_energy(runs, by_id, calibrations)
    versions = machines.model_versions(client, runs)
    title_keys = " / ".join(group_keys)
    table1 = build_table(f"Table 1: performance, time, energy by {title_keys}", runs, group_keys, TABLE1)
    table2 = build_table(
        f"Table 2: energy at convergence steps by {title_keys}",
        runs,
        group_keys,
        TABLE2,
        total_as_epochs=True,
    )
    savings = build_table(f"Savings of early stopping by {title_keys}", runs, group_keys, SAVINGS)
    hw_keys = group_keys if HARDWARE in group_keys else [*group_keys, HARDWARE]
    hw_columns = (*HARDWARE_COLUMNS, NORMALISED_COLUMN) if calibrations else HARDWARE_COLUMNS
    hardware = build_table(
        f"The same configuration across machines ({' / '.join(hw_keys)})", runs, hw_keys, hw_columns
    )
    found = findings_mod.compute_findings(runs, group_keys, len(calibrations))
    timings["compute"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    images = {
        "f1_vs_energy.png": plots.plot_f1_vs_energy(runs, run_curves, group_keys),
        "energy_rates.png": plots.plot_energy_rates(runs, group_keys),
        "pareto.png": plots.plot_pareto(runs, group_keys),
        "time_vs_energy.png": plots.plot_time_vs_energy(runs, group_keys),
        "hardware_rates.png": plots.plot_energy_rates(runs, [HARDWARE], title="Energy rates by hardware"),
    }
    timings["plots"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_without = len(records) - len(runs)
    meta = [
        ("experiments", ", ".join(experiment_map.values())),
        ("filter", combined_filter(filter_string)),
        ("group by", title_keys),
        ("tracking store", redact_uri(uri)),
        (
            "runs",
            f"{len(runs)} training runs analysed"
            + (f" ({n_without} without any epoch left out)" if n_without else ""),
        ),
        ("histories", f"{len(histories.table)} metric points via {histories.route}"),
        ("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),  # noqa: UP017 - py310 target
    ]
    provenance = _provenance(records, set(runs["run_id"]))
    run_columns = ["run_id", *group_keys, "hardware", "epochs", "max_f1", "best_epoch", "time_s", "energy_total_kwh",
                   "energy_at_f1_40_kwh", "energy_at_95pct_max_kwh", "energy_at_max_kwh", "status"]  # fmt: skip
    run_columns = list(dict.fromkeys(run_columns))
    sections = [
        Section("Tables", [table1, table2, savings]),
        Section(
            "Plots",
            images={k: v for k, v in images.items() if k != "hardware_rates.png"},
            paragraphs=[
                "Markers on the F1 curves: ○ F1 = 40 %, △ 95 % of the run's max F1, ★ the run's max F1 (first epoch reaching it)."
            ],
        ),
        Section(
            "Across machines",
            [hardware]
            + (
                [frame_table("Calibrations", machines.calibration_frame(calibrations))]
                if calibrations
                else []
            )
            + [frame_table("Registered model versions of these runs", versions)],
            images={"hardware_rates.png": images["hardware_rates.png"]},
            paragraphs=[f.text for f in found if f.key == "normalisation"]
            + ([] if len(versions) else ["No registered model version belongs to these runs."]),
        ),
        Section(
            "Energy provenance",
            [frame_table("Which tool and method measured the energy", provenance)],
            paragraphs=[
                "CodeCarbon's method changed across versions (paper caveat): compare energies only between runs with the same provenance."
            ],
        ),
        Section(
            "Runs",
            [frame_table("Runs (recomputed from per-epoch histories)", runs[run_columns], max_rows=300)],
        ),
    ]
    html = render_report(f"sedwatt analysis: {', '.join(experiment_map.values())}", meta, found, sections)

    files: dict[str, str | bytes] = {"runs.csv": runs.to_csv(index=False)}
    files.update(_table_files("table1", table1, group_keys, TABLE1))
    files.update(_table_files("table2", table2, group_keys, TABLE2))
    files.update(_table_files("savings", savings, group_keys, SAVINGS))
    files.update(_table_files("hardware", hardware, hw_keys, hw_columns))
    files["model_versions.csv"] = versions.to_csv(index=False)
    if calibrations:
        files["calibrations.csv"] = machines.calibration_frame(calibrations).to_csv(index=False)
    files["findings.json"] = json.dumps(
        [{"key": f.key, "text": f.text, "values": _json_safe(f.values)} for f in found], indent=2
    )
    files.update(images)
    files["report.html"] = html
    written = [write_atomic(out / name, data) for name, data in files.items()]
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started
    return AnalysisResult(
        out_dir=out,
        report_path=out / "report.html",
        runs=runs,
        tables={"table1": table1, "table2": table2, "savings": savings, "hardware": hardware},
        findings=found,
        files=written,
        route=histories.route,
        n_matched=len(records),
        n_without_epochs=n_without,
        timings_s=timings,
    )


def _json_safe(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}
