"""The paper's Table 1 and Table 2 for any grouping: numbers per group, then cells in the paper's format.

Per group and column: the mean and the sample standard deviation (ddof = 1) over the runs that have
a value, and how many runs that is. A run that never reached a target has no value there, so the
mean is over the runs that did, and the cell says how many ("0.17 ± 0.02 (2/3)"); when none did, the
cell says "never (0/3)" — or "n/a (0/3)" when the runs measured no energy at all. A single value has
no spread: the cell shows the value alone ("45.0"), never "± 0" (table*.csv leaves its std empty).

Cell formats follow the paper: F1 in % with one decimal, time as hh:mm (hh:mm:ss when every mean is
under an hour, as on CPU demo runs), energy in kWh with 2 decimals — in Wh when the table's largest
value is under 0.1 kWh, with as many decimals as the smallest value needs for two significant
digits — Wh per epoch/minute with 1 decimal (more when tiny), extra cost in %.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NA = "n/a"
WH_SWITCH_KWH = 0.1  # below this, a kWh column reads better in Wh
MAX_DECIMALS = 6


@dataclass(frozen=True)
class Column:
    """A per-run column of a table: the runs.csv name, the paper's header, and its kind of cell."""

    name: str
    header: str
    # "f1" | "time" | "kwh" | "wh" | "pct" (mean only, as the paper's extra cost) | "pct_pm" | "num" (plain)
    kind: str
    target: bool = False  # energy at an F1 target: a missing value means "never reached", not "not measured"


TABLE1 = (
    Column("max_val_f1", "Max F1", "f1"),
    Column("train_time_s", "Time", "time"),
    Column("energy_total_kwh", "Total", "kwh"),
    Column("wh_per_epoch", "Epoch", "wh"),
    Column("wh_per_minute", "Minute", "wh"),
)
TABLE2 = (
    Column("max_val_f1", "Max F1", "f1"),
    Column("f1_95pct_max", "95 % Max F1", "f1"),
    Column("energy_at_f1_40_kwh", "@F1=40 %", "kwh", target=True),
    Column("energy_at_95pct_max_kwh", "@95 % Max", "kwh", target=True),
    Column("energy_at_max_kwh", "@Max", "kwh", target=True),
    Column("energy_total_kwh", "Total", "kwh"),
    Column("extra_cost_95_to_max", "Extra 95 %->Max", "pct"),
)
SAVINGS = (
    Column("max_val_f1", "Max F1", "f1"),
    Column("energy_total_kwh", "Total", "kwh"),
    Column("savings_stop_at_max", "Saved by stopping at the max F1 epoch", "pct_pm"),
    Column("savings_stop_at_95pct", "Saved by stopping at 95 % of max", "pct_pm"),
)
KEY_HEADERS = {
    "params.batch_size": "Batch",
    "hardware": "Hardware",
    "tags.hw.gpu_model": "GPU",
    "tags.hw.cpu_model": "CPU",
    "experiment": "Experiment",
    "rule": "Rule",
}


# --- numbers -----------------------------------------------------------------------------------


def natural_key(value: object) -> tuple:
    """Sort "4" < "8" < "16" and "GTX 980" < "GTX 1080 Ti": numbers inside strings compare as numbers."""
    text = str(value)
    try:
        return (0, float(text), "")
    except ValueError:
        parts = re.split(r"(\d+(?:\.\d+)?)", text)
        return (
            1,
            0.0,
            tuple((0, float(p), "") if i % 2 else (1, 0.0, p.lower()) for i, p in enumerate(parts)),
        )


def with_derived(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-run columns the tables show that runs.csv does not hold (95 % of max F1)."""
    frame = runs.copy()
    if "max_val_f1" in frame:
        frame["f1_95pct_max"] = 0.95 * frame["max_val_f1"]
    return frame


def group_stats(runs: pd.DataFrame, group_keys: Sequence[str], columns: Sequence[Column]) -> pd.DataFrame:
    """One row per group: the keys, ``n_runs``, and ``<col>_mean``, ``<col>_std``, ``<col>_n`` per column."""
    frame = with_derived(runs)
    names = list(dict.fromkeys(c.name for c in columns))
    grouped = frame.groupby(list(group_keys), sort=False, dropna=False)
    rows = []
    for keys, part in grouped:
        values = keys if isinstance(keys, tuple) else (keys,)
        row: dict[str, object] = dict(zip(group_keys, values, strict=True))
        row["n_runs"] = len(part)
        row["n_energy"] = int(np.isfinite(pd.to_numeric(part["energy_total_kwh"], errors="coerce")).sum())
        for name in names:
            series = pd.to_numeric(part[name], errors="coerce").astype(float)
            series = series[np.isfinite(series)]
            row[f"{name}_mean"] = float(series.mean()) if len(series) else math.nan
            row[f"{name}_std"] = float(series.std(ddof=1)) if len(series) > 1 else math.nan
            row[f"{name}_n"] = len(series)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = sorted(range(len(table)), key=lambda i: tuple(natural_key(table.iloc[i][k]) for k in group_keys))
    return table.iloc[order].reset_index(drop=True)


# --- cells -------------------------------------------------------------------------------------


def decimals_for(values: Sequence[float], base: int) -> int:
    """``base`` decimals, more if the smallest non-zero value would show fewer than 2 significant digits."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return base
    needed = -math.floor(math.log10(min(finite))) + 1
    return int(min(max(base, needed), MAX_DECIMALS))


def hhmm(seconds: float, *, pad: bool, with_seconds: bool) -> str:
    total = round(seconds) if with_seconds else round(seconds / 60) * 60
    hours, rest = divmod(int(total), 3600)
    minutes, secs = divmod(rest, 60)
    head = f"{hours:02d}" if pad else f"{hours}"
    return f"{head}:{minutes:02d}:{secs:02d}" if with_seconds else f"{head}:{minutes:02d}"


@dataclass
class CellFormat:
    """How one column's numbers become text, decided once from all the table's values."""

    kind: str
    scale: float = 1.0
    decimals: int = 1
    unit: str = ""
    with_seconds: bool = False

    def number(self, value: float, *, spread: bool = False) -> str:
        if self.kind == "time":
            return hhmm(value, pad=not spread, with_seconds=self.with_seconds)
        return f"{value * self.scale:.{self.decimals}f}"


def cell_formats(stats: pd.DataFrame, columns: Sequence[Column]) -> dict[str, CellFormat]:
    def means(column: Column) -> list[float]:
        return [float(v) for v in stats.get(f"{column.name}_mean", pd.Series(dtype=float)) if pd.notna(v)]

    kwh_values = [v for c in columns if c.kind == "kwh" for v in means(c)]
    kwh_in_wh = bool(kwh_values) and max(abs(v) for v in kwh_values) < WH_SWITCH_KWH
    formats: dict[str, CellFormat] = {}
    for column in columns:
        values = means(column)
        if column.kind == "f1":
            formats[column.name] = CellFormat("f1", 100.0, 1, "%")
        elif column.kind in ("pct", "pct_pm"):
            formats[column.name] = CellFormat(column.kind, 100.0, 0, "%")
        elif column.kind == "time":
            long_runs = any(v >= 3600 for v in values)
            formats[column.name] = CellFormat(
                "time", with_seconds=not long_runs, unit="hh:mm" if long_runs else "hh:mm:ss"
            )
        elif column.kind == "kwh":
            scale, unit, base = (1000.0, "Wh", 1) if kwh_in_wh else (1.0, "kWh", 2)
            formats[column.name] = CellFormat(
                "kwh", scale, decimals_for([v * scale for v in kwh_values], base), unit
            )
        elif column.kind == "num":  # a plain number (epochs, F1 points): its unit is in the header
            formats[column.name] = CellFormat("num", 1.0, decimals_for(values, 1), "")
        else:  # wh
            formats[column.name] = CellFormat("wh", 1.0, decimals_for(values, 1), "Wh")
    return formats


def cell(row: pd.Series, column: Column, fmt: CellFormat) -> str:
    n_runs = int(row["n_runs"])
    n_values = int(row[f"{column.name}_n"])
    mean, std = row[f"{column.name}_mean"], row[f"{column.name}_std"]
    reached = f" ({n_values}/{n_runs})" if n_values < n_runs else ""
    if n_values == 0 or pd.isna(mean):
        # A target no run reached is "never"; a number no run could have (no energy measured) is "n/a".
        return f"{'never' if column.target and row['n_energy'] > 0 else NA}{reached}"
    if fmt.kind == "pct":
        return f"{fmt.number(mean)} %{reached}"
    unit = " %" if fmt.kind == "pct_pm" else ""
    if n_values < 2 or pd.isna(std):  # one value has no spread: the value alone, never "± 0" or "± n/a"
        return f"{fmt.number(mean)}{unit}{reached}"
    return f"{fmt.number(mean)} ± {fmt.number(std, spread=True)}{unit}{reached}"


@dataclass
class Table:
    """A rendered table: a title, header cells and body cells (strings), plus the numbers behind them."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    stats: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)
    key_columns: int = 1  # leading label columns (left-aligned)
    links: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, column) → URL, in HTML only


def key_header(key: str) -> str:
    return KEY_HEADERS.get(key, key)


def build_table(
    title: str,
    runs: pd.DataFrame,
    group_keys: Sequence[str],
    columns: Sequence[Column],
    *,
    total_as_epochs: bool = False,
) -> Table:
    """``total_as_epochs``: head the total-energy column "200 epochs" (Table 2) when all runs agree."""
    stats = group_stats(runs, group_keys, columns)
    formats = cell_formats(stats, columns)
    epochs = set(runs["epochs"].tolist())
    headers = [key_header(k) for k in group_keys] + ["Runs"]
    for column in columns:
        header = column.header
        if total_as_epochs and column.name == "energy_total_kwh" and len(epochs) == 1:
            header = f"{next(iter(epochs))} epochs"
        fmt = formats[column.name]
        headers.append(f"{header} ({fmt.unit})" if fmt.unit and fmt.kind not in ("pct", "pct_pm") else header)
    rows = [
        [str(row[k]) for k in group_keys]
        + [str(int(row["n_runs"]))]
        + [cell(row, c, formats[c.name]) for c in columns]
        for _, row in stats.iterrows()
    ]
    notes = [
        "mean ± sample std over runs; a value without ± is a single run's; "
        "(k/n): only k of the group's n runs reached the target"
    ]
    return Table(title, headers, rows, stats, notes, key_columns=len(group_keys))


def stats_csv_frame(table: Table, group_keys: Sequence[str], columns: Sequence[Column]) -> pd.DataFrame:
    """table1.csv / table2.csv: keys, n_runs, then <col>_mean, <col>_std, <col>_n (raw units)."""
    ordered = list(group_keys) + ["n_runs"]
    for name in dict.fromkeys(c.name for c in columns):
        ordered += [f"{name}_mean", f"{name}_std", f"{name}_n"]
    return table.stats[ordered] if not table.stats.empty else pd.DataFrame(columns=ordered)
