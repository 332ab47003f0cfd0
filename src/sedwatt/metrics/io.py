"""Read the files ``sedwatt score`` is given, rejecting bad input before any scoring starts.

Event files are DCASE tables (``filename onset offset event_label``, any column order, extra
columns such as the DCASE baseline's index ignored), tab- or comma-separated. A row with an empty
label and empty times lists a clip without events. A durations file (``filename duration``) is the
list of evaluated clips. Every problem is one ``SedwattError`` line naming the file, its line (the
header is line 1) and what is wrong.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sedwatt.errors import SedwattError
from sedwatt.metrics.events import DURATION_COLUMNS, EVENT_COLUMNS

OPERATING_POINT_FILE = re.compile(r"^predictions_th_(\d+(?:\.\d+)?)\.(?:tsv|csv|txt)$")


def _separator(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return "\t" if "\t" in line else ("," if "," in line else "\t")
    return "\t"


def read_table(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """All cells as stripped strings, blank lines dropped, ``line`` = the row's line in the file."""
    path = Path(path)
    if not path.is_file():
        raise SedwattError(f"{path}: file not found")
    sep = _separator(path)
    try:
        table = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError as exc:
        raise SedwattError(f"{path}: empty file (no header)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SedwattError(f"{path}: not a readable table ({str(exc).splitlines()[0]})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = ", ".join(map(str, table.columns)) or "nothing"
        raise SedwattError(f"{path}: missing column(s) {', '.join(missing)} (header has {found})")
    table = table.loc[:, list(columns)].apply(lambda col: col.str.strip())
    table["line"] = np.arange(len(table)) + 2
    return table[(table[list(columns)] != "").any(axis=1)].reset_index(drop=True)


def _first(table: pd.DataFrame, bad: np.ndarray | pd.Series) -> pd.Series | None:
    where = np.flatnonzero(np.asarray(bad))
    return table.iloc[where[0]] if where.size else None


def read_durations(path: Path) -> pd.DataFrame:
    """filename, duration (seconds, positive, each clip once)."""
    table = read_table(path, DURATION_COLUMNS)
    if table.empty:
        raise SedwattError(f"{path}: no clips listed")
    seconds = pd.to_numeric(table["duration"], errors="coerce")
    if (row := _first(table, table["filename"] == "")) is not None:
        raise SedwattError(f"{path}:{row['line']}: empty filename")
    if (row := _first(table, ~(np.isfinite(seconds) & (seconds > 0)))) is not None:
        raise SedwattError(f"{path}:{row['line']}: {row['filename']}: duration {row['duration']!r} is not a positive number")
    if (row := _first(table, table["filename"].duplicated())) is not None:
        raise SedwattError(f"{path}:{row['line']}: {row['filename']}: listed twice")
    return pd.DataFrame({"filename": table["filename"].to_numpy(), "duration": seconds.to_numpy(dtype=float)})


def read_events(path: Path, classes: Sequence[str], durations: pd.DataFrame, durations_path: Path | str) -> pd.DataFrame:
    """Events of a ground-truth or prediction file, checked against the classes and the durations.

    Rows listing a clip without events are dropped (the clip lives in the durations file).
    """
    table = read_table(path, EVENT_COLUMNS)
    onset = pd.to_numeric(table["onset"], errors="coerce").to_numpy(dtype=float)
    offset = pd.to_numeric(table["offset"], errors="coerce").to_numpy(dtype=float)
    label = table["event_label"]
    no_event = (label == "") & (table["onset"] == "") & (table["offset"] == "")
    checks = [
        (table["filename"] == "", lambda r: "empty filename"),
        (~table["filename"].isin(set(durations["filename"])),
         lambda r: f"{r['filename']}: clip not listed in the durations file {durations_path}"),
        ((label == "") & ~no_event, lambda r: f"{r['filename']}: onset/offset given but event_label is empty"),
        (~no_event & ~label.isin(set(classes)),
         lambda r: f"{r['filename']}: unknown label {r['event_label']!r} (expected one of {', '.join(classes)})"),
        (~no_event & ~(np.isfinite(onset) & np.isfinite(offset)),
         lambda r: f"{r['filename']}: onset {r['onset']!r} / offset {r['offset']!r} is not a number"),
        (~no_event & (onset < 0), lambda r: f"{r['filename']}: onset {r['onset']} is negative"),
        (~no_event & (onset > offset), lambda r: f"{r['filename']}: onset {r['onset']} is after offset {r['offset']}"),
    ]
    for bad, message in checks:
        if (row := _first(table, bad)) is not None:
            raise SedwattError(f"{path}:{row['line']}: {message(row)}")
    keep = ~no_event.to_numpy()
    return pd.DataFrame(
        {
            "filename": table["filename"].to_numpy()[keep],
            "onset": onset[keep],
            "offset": offset[keep],
            "event_label": label.to_numpy()[keep],
        }
    )


def operating_point_files(folder: Path) -> dict[float, Path]:
    """``predictions_th_<t>.tsv`` files of a folder, keyed by threshold."""
    found: dict[float, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        match = OPERATING_POINT_FILE.match(path.name)
        if match and path.is_file():
            threshold = float(match.group(1))
            if threshold in found:
                raise SedwattError(f"{path}: threshold {threshold:g} also given by {found[threshold].name}")
            found[threshold] = path
    if not found:
        raise SedwattError(f"{folder}: no operating-point files named predictions_th_<threshold>.tsv")
    return found


def nearest_threshold(thresholds: Sequence[float], target: float = 0.5) -> float:
    """The threshold closest to ``target``; a tie (0.49 vs 0.51 on the DCASE grid) goes to the higher."""
    return max(thresholds, key=lambda t: (-round(abs(t - target), 9), t))
