"""Event tables in the DCASE layout, normalised once so every metric sees the same events.

psds_eval refuses same-class events that overlap within a clip and silently drops zero-length ones;
sed_eval and our own intersection counting must see exactly the events psds_eval sees. So every
table goes through :func:`normalise_events`: rows without a label (a clip without events) are
dropped, zero-length events are dropped, and overlapping (or identical) events of one class in one
clip are merged into one. Events that only touch (offset == next onset) stay separate, as in
psds_eval, whose overlap test is strict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EVENT_COLUMNS = ("filename", "onset", "offset", "event_label")
DURATION_COLUMNS = ("filename", "duration")


def empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "filename": pd.Series([], dtype=object),
            "onset": pd.Series([], dtype=float),
            "offset": pd.Series([], dtype=float),
            "event_label": pd.Series([], dtype=object),
        }
    )


def has_label(labels: pd.Series) -> np.ndarray:
    """True where a label is present (not NaN/None, not blank): blank rows list clips without events."""
    text = labels.astype(object)
    return (text.notna() & (text.astype(str).str.strip() != "")).to_numpy()


def normalise_events(events: pd.DataFrame) -> pd.DataFrame:
    """Drop unlabelled and zero-length rows, merge overlapping same-class events per clip.

    Returns a new frame with exactly the columns filename, onset, offset, event_label (float
    times), sorted by filename, event_label, onset, with a fresh RangeIndex. Inverted events
    (onset > offset) are the caller's to reject; they are dropped here like zero-length ones.
    """
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"event table lacks column(s) {', '.join(missing)}")
    if events.empty:
        return empty_events()
    table = events.loc[has_label(events["event_label"]), list(EVENT_COLUMNS)].copy()
    table["filename"] = table["filename"].astype(str)
    table["event_label"] = table["event_label"].astype(str)
    table["onset"] = table["onset"].astype(float)
    table["offset"] = table["offset"].astype(float)
    table = table[table["offset"] > table["onset"]]  # NaN times fail this too
    if table.empty:
        return empty_events()
    table = table.sort_values(["filename", "event_label", "onset", "offset"], kind="mergesort")
    names = table["filename"].to_numpy()
    labels = table["event_label"].to_numpy()
    new_group = np.ones(len(table), dtype=bool)
    new_group[1:] = (names[1:] != names[:-1]) | (labels[1:] != labels[:-1])
    first, merged_offsets = merge_sorted_runs(new_group, table["onset"].to_numpy(), table["offset"].to_numpy())
    return pd.DataFrame(
        {
            "filename": names[first],
            "onset": table["onset"].to_numpy()[first],
            "offset": merged_offsets,
            "event_label": labels[first],
        }
    )


def merge_sorted_runs(new_group: np.ndarray, onsets: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge overlapping events, given events sorted by (group, onset, offset).

    ``new_group`` marks the first event of each (clip, class) group. An event starts a new merged
    event when its onset is not strictly before every earlier offset of its group. Returns the
    index of each merged event's first event and the merged offsets.
    """
    if onsets.size == 0:
        return np.zeros(0, dtype=np.int64), offsets.copy()
    group_id = np.cumsum(new_group) - 1
    running_end = pd.Series(offsets).groupby(group_id).cummax().to_numpy()
    starts = new_group.copy()
    starts[1:] |= onsets[1:] >= running_end[:-1]
    first = np.flatnonzero(starts)
    return first, np.maximum.reduceat(offsets, first)


def normalise_durations(durations: pd.DataFrame) -> pd.DataFrame:
    """filename, duration (float); the first row of a repeated filename wins, as in psds_eval."""
    missing = [c for c in DURATION_COLUMNS if c not in durations.columns]
    if missing:
        raise ValueError(f"durations table lacks column(s) {', '.join(missing)}")
    table = durations.loc[:, list(DURATION_COLUMNS)].copy()
    table["filename"] = table["filename"].astype(str)
    table["duration"] = table["duration"].astype(float)
    return table.drop_duplicates("filename").reset_index(drop=True)
