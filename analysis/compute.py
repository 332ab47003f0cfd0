"""One cohort of comparable runs → its tables, findings and plots, in memory (nothing is written here).

Every number of a cohort comes from its own runs only: a table "by batch size" never mixes runs
with another epoch budget or config (cohorts.py says which runs are comparable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import findings as findings_mod
from . import plots
from .cohorts import Cohort
from .per_run import HARDWARE
from .tables import SAVINGS, TABLE1, TABLE2, Column, Table, build_table

HARDWARE_COLUMNS = (
    Column("max_val_f1", "Max F1", "f1"),
    Column("train_time_s", "Time", "time"),
    Column("energy_total_kwh", "Total", "kwh"),
    Column("wh_per_minute", "Minute", "wh"),
)
NORMALISED_COLUMN = Column("energy_total_norm_kwh", "Normalised total", "kwh")
TABLE_COLUMNS = {"table1": TABLE1, "table2": TABLE2, "savings": SAVINGS}


@dataclass
class CohortAnalysis:
    """A cohort's runs and what was computed from them; ``several``: the runs form more than one cohort."""

    cohort: Cohort
    several: bool
    runs: pd.DataFrame
    tables: dict[str, Table] = field(default_factory=dict)
    columns: dict[str, Sequence[Column]] = field(default_factory=dict)  # table name → its columns
    keys: dict[str, list[str]] = field(default_factory=dict)  # table name → its group keys
    findings: list[findings_mod.Finding] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # base file name → PNG

    @property
    def label(self) -> str:
        """The cohort's label when there are several, else "" (nothing to tell apart)."""
        return self.cohort.label if self.several else ""

    @property
    def heading(self) -> str:
        return f"Cohort {self.cohort.index} ({self.cohort.label})" if self.several else ""

    def suffixed(self, stem: str) -> str:
        """``table1`` → ``table1_cohort2`` when there are several cohorts."""
        return f"{stem}_cohort{self.cohort.index}" if self.several else stem

    def file_name(self, name: str) -> str:
        """``f1_vs_energy.png`` → ``f1_vs_energy_cohort2.png`` when there are several cohorts."""
        stem, dot, ext = name.rpartition(".")
        return f"{self.suffixed(stem)}{dot}{ext}"


def _titled(title: str, analysis: CohortAnalysis) -> str:
    return f"{title} — {analysis.heading}" if analysis.several else title


def add_tables(analysis: CohortAnalysis, group_keys: Sequence[str], normalised: bool) -> None:
    """Table 1, Table 2, savings and the hardware table of the cohort's runs."""
    runs, keys = analysis.runs, list(group_keys)
    label = " / ".join(keys)
    titles = {
        "table1": f"Table 1: performance, time, energy by {label}",
        "table2": f"Table 2: energy at convergence steps by {label}",
        "savings": f"Savings of early stopping by {label}",
    }
    for name, columns in TABLE_COLUMNS.items():
        title = _titled(titles[name], analysis)
        analysis.tables[name] = build_table(title, runs, keys, columns, total_as_epochs=name == "table2")
        analysis.columns[name], analysis.keys[name] = columns, keys
    hw_keys = keys if HARDWARE in keys else [*keys, HARDWARE]
    hw_columns = (*HARDWARE_COLUMNS, NORMALISED_COLUMN) if normalised else HARDWARE_COLUMNS
    title = _titled(f"The same configuration across machines ({' / '.join(hw_keys)})", analysis)
    analysis.tables["hardware"] = build_table(title, runs, hw_keys, hw_columns)
    analysis.columns["hardware"], analysis.keys["hardware"] = hw_columns, hw_keys


def add_images(
    analysis: CohortAnalysis, run_curves: dict[str, dict[str, np.ndarray]], group_keys: Sequence[str]
) -> None:
    runs, keys = analysis.runs, list(group_keys)
    suffix = f" — cohort {analysis.cohort.index}" if analysis.several else ""
    analysis.images = {
        "f1_vs_energy.png": plots.plot_f1_vs_energy(
            runs, run_curves, keys, f"F1 vs cumulative energy{suffix}"
        ),
        "energy_rates.png": plots.plot_energy_rates(runs, keys, f"Energy per epoch and per minute{suffix}"),
        "pareto.png": plots.plot_pareto(runs, keys, f"F1 vs energy over runs: the Pareto front{suffix}"),
        "time_vs_energy.png": plots.plot_time_vs_energy(runs, keys, f"Time vs energy{suffix}"),
        "hardware_rates.png": plots.plot_energy_rates(runs, [HARDWARE], f"Energy rates by hardware{suffix}"),
    }


def analyse_cohorts(
    runs: pd.DataFrame, cohorts: Sequence[Cohort], group_keys: Sequence[str], normalised: bool
) -> list[CohortAnalysis]:
    """Tables and findings per cohort, each from that cohort's runs only (plots: ``add_images``)."""
    several = len(cohorts) > 1
    out = []
    for cohort in cohorts:
        members = runs[runs["run_id"].isin(cohort.run_ids)].reset_index(drop=True)
        analysis = CohortAnalysis(cohort, several, members)
        add_tables(analysis, group_keys, normalised)
        analysis.findings = findings_mod.cohort_findings(members, group_keys, analysis.label)
        out.append(analysis)
    return out
