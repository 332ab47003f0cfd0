"""``analyze``: runs on a tracking server → the paper's tables, plots, findings and one HTML report.

    from sedwatt_analysis import analyze
    result = analyze(["sedwatt-demo"], filter_string="params.seed = '1'", group_by=["params.batch_size"],
                     out_dir="demo/report")
    result.report_path, result.runs            # report.html, the per-run DataFrame (runs.csv)
    result.cohorts                             # the cohorts of comparable runs, analysed one by one
    analyze(["sedwatt"], policies="patience=10 slowdown=0.01:10")  # + stopping rules replayed (policies.csv)

Order of work: validate the arguments and query the runs (user errors surface here, before anything
slow), fetch all per-epoch histories in one pass (history.py), recompute every number from them,
split the runs into cohorts of comparable runs (cohorts.py), build each cohort's tables/plots/findings
in memory, and only then write the files, each atomically.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sedwatt.atomic import write_atomic
from sedwatt.errors import SedwattError
from sedwatt.tracking.uri import redact_uri, sqlite_path

from . import findings as findings_mod
from . import machines, outputs
from . import policies as policies_mod
from .cohorts import split_cohorts
from .compute import CohortAnalysis, add_images, analyse_cohorts
from .history import CURVE_KEYS, curves, fetch_histories
from .per_run import check_group_keys, normalize_group_key, runs_frame
from .report import Section, frame_table, render_report
from .runs import RunRecord, combined_filter, resolve_experiments, search_training_runs
from .tables import Table

DEFAULT_GROUP_BY = ("params.batch_size",)
PROVENANCE_TAGS = ("energy.tool", "energy.cpu_method", "energy.gpu_method", "energy.ram_method")
RUN_COLUMNS = ("hardware", "epochs", "max_val_f1", "max_val_f1_epoch", "train_time_s", "energy_total_kwh",
               "energy_at_f1_40_kwh", "energy_at_95pct_max_kwh", "energy_at_max_kwh", "status")  # fmt: skip


@dataclass
class AnalysisResult:
    """What ``analyze`` produced: the report's path, the per-run frame, tables, findings, timings.

    ``tables`` is keyed ``table1`` … with one cohort, ``table1_cohort2`` … with several (see ``cohorts``).
    """

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
    cohorts: list[CohortAnalysis] = field(default_factory=list)
    policies: pd.DataFrame | None = None  # policies.csv (rule × run) when stopping rules were replayed


@dataclass
class Selection:
    """The runs an analysis covers (validated query) and their per-epoch curves."""

    uri: str
    client: Any
    experiments: dict[str, str]  # id → name
    filter_string: str | None
    group_keys: list[str]
    records: list[RunRecord]
    run_curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    history_points: int = 0
    route: str = ""
    policies: list[policies_mod.Policy] = field(default_factory=list)  # stopping rules to replay (none: off)


@dataclass
class Computed:
    """Everything the files are made of, before anything is written."""

    runs: pd.DataFrame
    analyses: list[CohortAnalysis]
    calibrations: dict
    versions: pd.DataFrame
    normalisation: findings_mod.Finding
    policies: list[policies_mod.PolicyAnalysis] = field(default_factory=list)

    @property
    def findings(self) -> list[findings_mod.Finding]:
        return [f for a in self.analyses for f in a.findings] + [self.normalisation]

    @property
    def several(self) -> bool:
        return len(self.analyses) > 1


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


def select(
    experiments: Sequence[str] | str,
    filter_string: str | None,
    group_by: Sequence[str] | str | None,
    out: Path,
    tracking_uri: str | None,
    policies: str | None = None,
) -> Selection:
    """Validate the arguments and find the runs: every user error is raised here, before any history.

    ``policies``: the stopping-rule grid to replay (policies.py's syntax or a YAML file; "" = the
    default grid); None replays nothing.
    """
    from mlflow import MlflowClient

    names = [experiments] if isinstance(experiments, str) else list(experiments)
    keys_in = [group_by] if isinstance(group_by, str) else list(group_by or DEFAULT_GROUP_BY)
    group_keys = list(dict.fromkeys(normalize_group_key(k) for k in keys_in))
    if out.exists() and not out.is_dir():
        raise SedwattError(f"--out {out}: exists and is not a folder")
    replayed = policies_mod.parse_policies(policies) if policies is not None else []
    uri = _tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    experiment_map = resolve_experiments(client, names, uri)
    records = search_training_runs(client, experiment_map, filter_string, uri)
    check_group_keys(records, group_keys)
    return Selection(uri, client, experiment_map, filter_string, group_keys, records, policies=replayed)


def fetch(selection: Selection) -> None:
    """All per-epoch histories in one pass, as curves per run (and what replayed stopping rules read)."""
    keys = (*CURVE_KEYS, *policies_mod.HISTORY_KEYS) if selection.policies else CURVE_KEYS
    run_ids = [r.run_id for r in selection.records]
    histories = fetch_histories(selection.uri, run_ids, keys, client=selection.client)
    selection.run_curves = curves(histories.table, keys)
    selection.history_points, selection.route = len(histories.table), histories.route


def compute(selection: Selection) -> Computed:
    """Per-run numbers, cohorts of comparable runs, and each cohort's tables and findings."""
    records, group_keys = selection.records, selection.group_keys
    runs = runs_frame(records, selection.run_curves, group_keys)
    if runs.empty:
        raise SedwattError(
            f"{len(records)} training run(s) matched, but none has a logged epoch (metric val_f1): nothing to analyse"
        )
    by_id = {r.run_id: r for r in records}
    calibrations = machines.load_calibrations(selection.client)
    runs = machines.add_normalised_energy(runs, by_id, calibrations)
    cohorts = split_cohorts([by_id[run_id] for run_id in runs["run_id"]], group_keys)
    label_of = {run_id: c.label for c in cohorts for run_id in c.run_ids}
    runs["cohort"] = runs["run_id"].map(label_of)
    analyses = analyse_cohorts(runs, cohorts, group_keys, normalised=bool(calibrations))
    replayed = (
        policies_mod.analyse_policies(analyses, selection.run_curves, selection.policies, group_keys)
        if selection.policies
        else []
    )
    return Computed(
        runs=runs,
        analyses=analyses,
        calibrations=calibrations,
        versions=machines.model_versions(selection.client, runs),
        normalisation=findings_mod.normalisation_finding(runs, len(calibrations)),
        policies=replayed,
    )


def _provenance(records: Sequence[RunRecord], run_ids: set[str]) -> pd.DataFrame:
    rows = [
        {tag: r.tags.get(tag, "(not tagged)") for tag in PROVENANCE_TAGS}
        for r in records
        if r.run_id in run_ids
    ]
    frame = pd.DataFrame(rows, columns=list(PROVENANCE_TAGS))
    return frame.value_counts(dropna=False).rename("runs").reset_index() if len(frame) else frame


def _meta(selection: Selection, computed: Computed) -> list[tuple[str, str]]:
    n_runs, n_without = len(computed.runs), len(selection.records) - len(computed.runs)
    meta = [
        ("experiments", ", ".join(selection.experiments.values())),
        ("filter", combined_filter(selection.filter_string)),
        ("group by", " / ".join(selection.group_keys)),
        ("tracking store", redact_uri(selection.uri)),
        ("runs", f"{n_runs} training runs analysed"
         + (f" ({n_without} without any epoch left out)" if n_without else "")),
        ("histories", f"{selection.history_points} metric points via {selection.route}"),
        ("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),  # noqa: UP017 - py310 target
    ]  # fmt: skip
    if computed.several:
        listed = "; ".join(
            f"{a.cohort.index}) {a.cohort.label}: {len(a.runs)} run{'' if len(a.runs) == 1 else 's'}"
            for a in computed.analyses
        )
        meta.insert(3, ("cohorts", f"{len(computed.analyses)}, analysed separately: {listed}"))
    return meta


def _global_sections(selection: Selection, computed: Computed) -> list[Section]:
    """Calibrations, registered versions, energy provenance and the runs: not split by cohort."""
    experiment_ids = {r.run_id: r.experiment_id for r in selection.records}
    link = outputs.run_link_for(selection.uri, experiment_ids)
    versions = computed.versions
    calibration = machines.calibration_frame(computed.calibrations)
    columns = ["run_id", *(["cohort"] if computed.several else []), *selection.group_keys, *RUN_COLUMNS]
    provenance = _provenance(selection.records, set(computed.runs["run_id"]))
    return [
        Section(
            "Calibrations and registered models",
            ([frame_table("Calibrations", calibration)] if computed.calibrations else [])
            + [frame_table("Registered model versions of these runs", versions, run_link=link)],
            paragraphs=[computed.normalisation.text]
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
            [frame_table("Runs (recomputed from per-epoch histories)",
                         computed.runs[list(dict.fromkeys(columns))], max_rows=300, run_link=link)],
        ),
    ]  # fmt: skip


def report_html(selection: Selection, computed: Computed) -> str:
    intro, cohort_table = outputs.cohorts_intro(computed.analyses, selection.group_keys)
    replayed = {p.analysis.cohort.index: [outputs.policy_section(p)] for p in computed.policies}
    sections = [
        s for a in computed.analyses for s in [*outputs.cohort_sections(a), *replayed.get(a.cohort.index, [])]
    ]
    if cohort_table is not None:
        sections.insert(0, Section("Cohorts", [cohort_table]))
    sections += _global_sections(selection, computed)
    findings = [*outputs.grouped_findings(computed.analyses), ("", [computed.normalisation])]
    title = f"sedwatt analysis: {', '.join(selection.experiments.values())}"
    return render_report(title, _meta(selection, computed), findings, sections, intro)


def output_files(selection: Selection, computed: Computed) -> dict[str, str | bytes]:
    """Every file of the report folder, in memory; report.html last."""
    files: dict[str, str | bytes] = {"runs.csv": computed.runs.to_csv(index=False)}
    files.update(outputs.table_files(computed.analyses))
    files["model_versions.csv"] = computed.versions.to_csv(index=False)
    if computed.calibrations:
        files["calibrations.csv"] = machines.calibration_frame(computed.calibrations).to_csv(index=False)
    files["findings.json"] = outputs.findings_json(computed.findings)
    files.update(outputs.image_files(computed.analyses))
    if computed.policies:
        files.update(outputs.policy_files(computed.policies, selection.group_keys))
    files["report.html"] = report_html(selection, computed)
    return files


def _tables(analyses: Sequence[CohortAnalysis]) -> dict[str, Table]:
    return {a.suffixed(name): table for a in analyses for name, table in a.tables.items()}


def analyze(
    experiments: Sequence[str] | str,
    filter_string: str | None = None,
    group_by: Sequence[str] | str | None = None,
    out_dir: str | Path = "analysis_out",
    *,
    tracking_uri: str | None = None,
    policies: str | None = None,
) -> AnalysisResult:
    """Analyse the training runs of ``experiments`` matching ``filter_string``, grouped by ``group_by``.

    ``policies``: also replay these stopping rules over every run's history (``sedwatt analyze
    --policies``; "" = the default grid, None = not at all): policies.csv, policies_summary.*, policies.png.
    """
    out = Path(out_dir)
    timings: dict[str, float] = {}
    started = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        timings[name], last = now - last, now

    selection = select(experiments, filter_string, group_by, out, tracking_uri, policies)
    lap("search")
    fetch(selection)
    lap("fetch")
    computed = compute(selection)
    lap("compute")
    for analysis in computed.analyses:
        add_images(analysis, selection.run_curves, selection.group_keys)
    for replayed in computed.policies:
        policies_mod.add_policy_images(replayed)
    lap("plots")
    written = [write_atomic(out / name, data) for name, data in output_files(selection, computed).items()]
    lap("write")
    timings["total"] = time.perf_counter() - started
    return AnalysisResult(
        out_dir=out,
        report_path=out / "report.html",
        runs=computed.runs,
        tables=_tables(computed.analyses),
        findings=computed.findings,
        files=written,
        route=selection.route,
        n_matched=len(selection.records),
        n_without_epochs=len(selection.records) - len(computed.runs),
        timings_s=timings,
        cohorts=computed.analyses,
        policies=outputs.policy_rows(computed.policies),
    )
