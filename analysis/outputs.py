"""What ``analyze`` writes, as text/bytes in memory: table files, findings.json, plot names, report.html.

With several cohorts of comparable runs (cohorts.py) each table file holds one table per cohort
(``table1.md`` lists them one after the other; ``table1.csv`` has a leading ``cohort`` column, also
present — "all runs" — when there is one cohort), plots get a ``_cohort<N>`` suffix, findings.json
says each finding's cohort, and report.html has one block of tables and plots per cohort.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import pandas as pd

from . import render
from .compute import CohortAnalysis
from .findings import Finding
from .links import run_url
from .policies import SUMMARY_COLUMNS, PolicyAnalysis
from .report import Section, frame_table
from .tables import Table, stats_csv_frame

TABLE_NAMES = ("table1", "table2", "savings", "hardware")
MARKERS_NOTE = "Markers on the F1 curves: ○ F1 = 40 %, △ 95 % of the run's max F1, ★ the run's max F1 (first epoch reaching it)."


def table_files(analyses: Sequence[CohortAnalysis]) -> dict[str, str]:
    """``<name>.csv`` / ``.md`` / ``.tex`` per table, every cohort's table in the same file."""
    files: dict[str, str] = {}
    for name in TABLE_NAMES:
        frames = []
        for a in analyses:
            frame = stats_csv_frame(a.tables[name], a.keys[name], a.columns[name]).copy()
            frame.insert(0, "cohort", a.cohort.label)
            frames.append(frame)
        files[f"{name}.csv"] = pd.concat(frames, ignore_index=True).to_csv(index=False)
        files[f"{name}.md"] = "\n".join(render.markdown(a.tables[name]) for a in analyses)
        files[f"{name}.tex"] = "\n".join(render.latex(a.tables[name]) for a in analyses)
    return files


def image_files(analyses: Sequence[CohortAnalysis]) -> dict[str, bytes]:
    return {a.file_name(name): png for a in analyses for name, png in a.images.items()}


def _json_safe(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def findings_json(found: Sequence[Finding]) -> str:
    rows = [{"key": f.key, "cohort": f.cohort, "text": f.text, "values": _json_safe(f.values)} for f in found]
    return json.dumps(rows, indent=2)


def cohort_sections(analysis: CohortAnalysis) -> list[Section]:
    """Tables, plots and the across-machines table of one cohort, headed by the cohort when there are several."""
    prefix = f"{analysis.heading}: " if analysis.several else ""
    images = {analysis.file_name(k): v for k, v in analysis.images.items()}
    hardware_png = analysis.file_name("hardware_rates.png")
    return [
        Section(f"{prefix}Tables", [analysis.tables[n] for n in ("table1", "table2", "savings")]),
        Section(
            f"{prefix}Plots",
            images={k: v for k, v in images.items() if k != hardware_png},
            paragraphs=[MARKERS_NOTE],
        ),
        Section(
            f"{prefix}Across machines",
            [analysis.tables["hardware"]],
            images={hardware_png: images[hardware_png]} if hardware_png in images else {},
        ),
    ]


def cohorts_intro(
    analyses: Sequence[CohortAnalysis], group_keys: Sequence[str]
) -> tuple[list[str], Table | None]:
    """Why the runs are split, and a table of the cohorts (nothing when all runs form one cohort)."""
    if len(analyses) < 2:
        return [], None
    label = " / ".join(group_keys)
    differing = ", ".join(analyses[0].cohort.differs)
    text = (
        f"These runs differ in more than {label}: their configurations also differ in {differing}. "
        f"They are analysed as {len(analyses)} cohorts of comparable runs (same configuration apart from "
        f"{label}, same epoch budget), each on its own: no table, plot or finding compares runs of different cohorts."
    )
    rows = [
        {
            "cohort": a.cohort.index,
            "differs": a.cohort.description,
            "runs": len(a.runs),
            label: ", ".join(" / ".join(row[: len(group_keys)]) for row in a.tables["table1"].rows),
        }
        for a in analyses
    ]
    return [text], frame_table("Cohorts of comparable runs", pd.DataFrame(rows))


def policy_rows(policies: Sequence[PolicyAnalysis]) -> pd.DataFrame | None:
    """policies.csv's rows, every cohort's; None when no stopping rule was replayed."""
    return pd.concat([p.rows for p in policies], ignore_index=True) if policies else None


def policy_files(policies: Sequence[PolicyAnalysis], group_keys: Sequence[str]) -> dict[str, str | bytes]:
    """``policies.csv`` (rule × run), ``policies_summary.csv/.md/.tex`` (every cohort's) and the plots."""
    keys = [*group_keys, "rule"]
    summaries = []
    for p in policies:
        frame = stats_csv_frame(p.summary, keys, SUMMARY_COLUMNS).copy()
        frame.insert(0, "cohort", p.analysis.cohort.label)
        frame["on_pareto_front"] = p.summary.stats["on_pareto_front"].to_numpy()
        summaries.append(frame)
    files: dict[str, str | bytes] = {
        "policies.csv": policy_rows(policies).to_csv(index=False),
        "policies_summary.csv": pd.concat(summaries, ignore_index=True).to_csv(index=False),
        "policies_summary.md": "\n".join(render.markdown(p.summary) for p in policies),
        "policies_summary.tex": "\n".join(render.latex(p.summary) for p in policies),
    }
    files.update({name: png for p in policies for name, png in p.images.items()})
    return files


def policy_section(policy: PolicyAnalysis) -> Section:
    """One cohort's replayed stopping rules: the sentence, the rules' means (the front), table, plot."""
    analysis = policy.analysis
    means = policy.means
    shown = pd.DataFrame({
        "rule": means["rule"], "runs": means["runs"],
        "energy saved (%)": (100 * means["energy_saved_frac"]).round(1),
        "F1 lost (points)": means["val_f1_lost_points"].round(2),
        "Pareto front": means["on_pareto_front"].map({True: "yes", False: ""}),
    })  # fmt: skip
    title = "Each rule's mean over the runs" + (f" — {analysis.heading}" if analysis.several else "")
    return Section(
        f"{analysis.heading}: What-if stopping rules" if analysis.several else "What-if stopping rules",
        [frame_table(title, shown), policy.summary],
        images=policy.images,
        paragraphs=[
            policy.finding.text,
            "Each rule is the training callback's own function, asked after every recorded epoch on the "
            "history up to it, so it stops where the live callback would have. The oracle knows each run's "
            "max F1 in advance: a bound, not a rule (kept off the Pareto front).",
        ],
    )


def grouped_findings(analyses: Sequence[CohortAnalysis]) -> list[tuple[str, list[Finding]]]:
    return [(a.heading, a.findings) for a in analyses]


def run_link_for(tracking_uri: str, experiment_ids: dict[str, str]) -> Callable[[str], str | None]:
    """run id → its MLflow UI page (None on a store without a UI address or for an unknown run)."""

    def link(run_id: str) -> str | None:
        experiment_id = experiment_ids.get(run_id)
        return run_url(tracking_uri, experiment_id, run_id) if experiment_id else None

    return link
