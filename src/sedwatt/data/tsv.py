"""Read DESED's TSVs and report every problem with its file and line.

Formats (DESED's metadata files): strong ``filename onset offset event_label`` (a clip without events
is one row with empty onset/offset/label), weak ``filename event_labels`` (comma-separated), durations
``filename duration``. Line numbers count the header as line 1, as an editor shows them.
Readers never raise on content: they return what parsed plus a list of problems, so
``sedwatt check-data`` can list them all at once.

A strong row repeated exactly (same clip, onset, offset and label) is a warning, not a problem:
DESED's own files may hold some, and the repeat changes nothing downstream (frame labels are set,
not counted, and the metrics merge overlapping same-class events). It is kept and reported.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

STRONG_COLUMNS = ("filename", "onset", "offset", "event_label")
WEAK_COLUMNS = ("filename", "event_labels")
DURATION_COLUMNS = ("filename", "duration")


@dataclass
class StrongLabels:
    """Events per clip; a clip listed with an empty-label row has an empty list."""

    events: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)
    event_lines: dict[str, list[int]] = field(default_factory=dict)  # TSV line of each event (for messages)
    first_line: dict[str, int] = field(default_factory=dict)  # TSV line where each clip first appears

    def frame(self) -> pd.DataFrame:
        """DCASE ground-truth DataFrame (clips without events are absent; they live in durations)."""
        records = [(f, on, off, lab) for f, evs in self.events.items() for on, off, lab in evs]
        return pd.DataFrame.from_records(records, columns=list(STRONG_COLUMNS))


@dataclass
class WeakLabels:
    labels: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def _read_table(path: Path, columns: tuple[str, ...], problems: list[str]) -> pd.DataFrame | None:
    if not path.is_file():
        problems.append(f"{path}: file not found")
        return None
    try:
        table = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, skip_blank_lines=True
        )
    except pd.errors.EmptyDataError:
        problems.append(f"{path}: empty TSV (no header, no rows)")
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: not a readable TSV ({str(exc).splitlines()[0]})")
        return None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = ", ".join(map(str, table.columns)) or "nothing"
        problems.append(f"{path}: missing column(s) {', '.join(missing)} (header has {found})")
        return None
    if table.empty:
        problems.append(f"{path}: empty TSV (header only, no rows)")
        return None
    return table


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_strong(
    path: Path, classes: tuple[str, ...], problems: list[str], warnings: list[str] | None = None
) -> StrongLabels:
    """Parse a strong TSV; bounds against clip durations are checked by the caller, who knows them.

    Exactly repeated event rows go to ``warnings`` (when given), one line per repeated row.
    """
    out = StrongLabels()
    table = _read_table(path, STRONG_COLUMNS, problems)
    if table is None:
        return out
    known = set(classes)
    seen: dict[tuple[str, float, float, str], list[int]] = {}  # event → every line that holds it
    raw: dict[tuple[str, float, float, str], str] = {}  # event → its first row, as written
    for i, row in enumerate(table.itertuples(index=False), start=2):
        name, on_s, off_s, label = (str(getattr(row, c)).strip() for c in STRONG_COLUMNS)
        where = f"{path}:{i}"
        if not name:
            problems.append(f"{where}: empty filename")
            continue
        events = out.events.setdefault(name, [])
        lines = out.event_lines.setdefault(name, [])
        out.first_line.setdefault(name, i)
        if not label and not on_s and not off_s:
            continue  # a clip without events
        if not label:
            problems.append(f"{where}: {name}: onset/offset given but event_label is empty")
            continue
        if label not in known:
            problems.append(f"{where}: {name}: unknown label {label!r} (expected one of {', '.join(classes)})")
            continue
        onset, offset = _number(on_s), _number(off_s)
        if onset is None or offset is None:
            problems.append(f"{where}: {name}: onset {on_s!r} / offset {off_s!r} is not a number")
            continue
        if onset < 0:
            problems.append(f"{where}: {name}: onset {onset} is negative")
            continue
        if onset > offset:
            problems.append(f"{where}: {name}: onset {onset} is after offset {offset}")
            continue
        events.append((onset, offset, label))
        lines.append(i)
        key = (name, onset, offset, label)
        seen.setdefault(key, []).append(i)
        raw.setdefault(key, f"{name} {on_s} {off_s} {label}")
    if warnings is not None:
        warnings.extend(_duplicate_warnings(path, seen, raw))
    return out


def _duplicate_warnings(
    path: Path, seen: dict[tuple[str, float, float, str], list[int]], raw: dict[tuple[str, float, float, str], str]
) -> list[str]:
    """One line per event row that occurs more than once: file, every line number, and the row."""
    return [
        f"{path}:{lines[0]}: duplicated row {raw[key]!r} (same clip, onset, offset and label) "
        f"at lines {', '.join(map(str, lines))}"
        for key, lines in seen.items()
        if len(lines) > 1
    ]


def read_weak(path: Path, classes: tuple[str, ...], problems: list[str]) -> WeakLabels:
    out = WeakLabels()
    table = _read_table(path, WEAK_COLUMNS, problems)
    if table is None:
        return out
    known = set(classes)
    for i, row in enumerate(table.itertuples(index=False), start=2):
        name, labels_s = str(row.filename).strip(), str(row.event_labels).strip()
        where = f"{path}:{i}"
        if not name:
            problems.append(f"{where}: empty filename")
            continue
        if name in out.labels:
            problems.append(f"{where}: {name}: listed twice (first at line {out.rows[name]})")
            continue
        labels = [x.strip() for x in labels_s.split(",") if x.strip()]
        if not labels:
            problems.append(f"{where}: {name}: no event_labels")
            continue
        unknown = [x for x in labels if x not in known]
        if unknown:
            problems.append(f"{where}: {name}: unknown label {unknown[0]!r} (expected one of {', '.join(classes)})")
            continue
        out.labels[name] = labels
        out.rows[name] = i
    return out


def read_durations(path: Path, problems: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    table = _read_table(path, DURATION_COLUMNS, problems)
    if table is None:
        return out
    for i, row in enumerate(table.itertuples(index=False), start=2):
        name, dur_s = str(row.filename).strip(), str(row.duration).strip()
        value = _number(dur_s)
        if not name:
            problems.append(f"{path}:{i}: empty filename")
        elif value is None or value <= 0:
            problems.append(f"{path}:{i}: {name}: duration {dur_s!r} is not a positive number")
        else:
            out[name] = value
    return out


def check_event_bounds(path: Path, labels: StrongLabels, durations: dict[str, float], problems: list[str]) -> None:
    """Events must lie inside their clip (a small tolerance absorbs DESED's 3-decimal rounding)."""
    for name, events in labels.events.items():
        duration = durations.get(name)
        if duration is None:
            continue
        for (onset, offset, label), line in zip(events, labels.event_lines[name], strict=True):
            if onset >= duration or offset > duration + 1e-3:
                problems.append(
                    f"{path}:{line}: {name}: event {label} [{onset}, {offset}] lies outside the clip (0–{duration:g} s)"
                )

