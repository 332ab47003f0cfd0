"""What a DESED-layout dataset holds: clips per set and events per class, read back from its files.

Works on generated and real DESED alike (it only reads the layout's TSVs and counts unlabelled
audio), so ``make demo`` can show what it is about to train on.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from sedwatt.config import DESED_CLASSES
from sedwatt.data.layout import ALL_SETS, DesedLayout


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)


def summary_table(root: Path | str, classes: tuple[str, ...] = DESED_CLASSES) -> pd.DataFrame:
    """Rows: clips, clips without events, events, then one per class; columns: the sets found.

    Strong sets count events; the weak set counts clips tagged with each class.
    """
    layout = DesedLayout(Path(root))
    columns: dict[str, dict[str, int]] = {}
    for spec in ALL_SETS:
        labels_path = layout.labels(spec)
        column: dict[str, int] = {}
        if spec.kind == "unlabelled":
            audio_dir = layout.audio_dir(spec)
            if not audio_dir.is_dir():
                continue
            column["clips"] = sum(1 for _ in audio_dir.glob("*.wav"))
        elif labels_path is None or not labels_path.is_file():
            continue
        elif spec.kind == "weak":
            table = _read(labels_path)
            tags = table["event_labels"].str.split(",").explode().str.strip()
            tags = tags[tags != ""]
            column["clips"] = int(table["filename"].nunique())
            column["clips without events"] = int((table["event_labels"].str.strip() == "").sum())
            column["events"] = int(tags.size)
            column.update({c: int((tags == c).sum()) for c in classes})
        else:
            table = _read(labels_path)
            labelled = table[table["event_label"].str.strip() != ""]
            column["clips"] = int(table["filename"].nunique())
            column["clips without events"] = column["clips"] - int(labelled["filename"].nunique())
            column["events"] = len(labelled)
            column.update({c: int((labelled["event_label"] == c).sum()) for c in classes})
        columns[spec.name] = column
    index = ["clips", "clips without events", "events", *classes]
    return pd.DataFrame(columns, index=index).astype("Int64")


def summarize(root: Path | str) -> str:
    """A printable table of :func:`summary_table` with a line explaining the counts."""
    table = summary_table(root)
    text = table.astype(object).where(table.notna(), "-").to_string()
    return (
        f"{root}\n{text}\n"
        "(strong sets: events per class; weak: clips tagged with the class; unlabelled: clips only)"
    )
