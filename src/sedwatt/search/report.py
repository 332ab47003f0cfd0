"""The study's Pareto front and summary, written as artifacts of the study's parent MLflow run.

CSV for tables, a matplotlib PNG for the MLflow UI's preview, and the same figure as an HTML page
(inline SVG with a hover text per trial, plus the trials' table: tens of KB, no script, opens offline and
in MLflow's artifact viewer). Rewritten after every finished trial, so the UI shows the front growing
while workers run; the parent's
``n_trials_complete`` / ``pareto_size`` / ``front_best_f1`` / ``front_min_energy_kwh`` metrics use the number
of complete trials as their step for the same reason.
"""

from __future__ import annotations

import html
import json
import tempfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pandas as pd

from sedwatt.search.energy_stop import STOP_REASON_ATTR
from sedwatt.search.objectives import study_objective_names
from sedwatt.search.runs import EPOCHS_RUN_ATTR, RUN_ATTR

CSV_NAME = "pareto_front.csv"
PNG_NAME = "pareto_front.png"
HTML_NAME = "pareto_front.html"
SUMMARY_NAME = "study_summary.json"
ARTIFACT_DIR = "study"


def pareto_frame(study: Any) -> pd.DataFrame:
    """One row per trial with objective values (the COMPLETE ones); ``pareto`` marks Optuna's front.

    The two value columns are named as the study's objectives (``max_val_f1``, ``energy_total_kwh``, …),
    kept in ``frame.attrs["objectives"]`` where ``objective_columns`` finds them again.
    """
    f1_name, energy_name = study_objective_names(study)
    front = {t.number for t in study.best_trials}
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.values is None:
            continue
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                **{f"param_{k}": v for k, v in t.params.items()},
                f1_name: t.values[0],
                energy_name: t.values[1],
                "pareto": t.number in front,
                "epochs_run": t.user_attrs.get(EPOCHS_RUN_ATTR),
                "mlflow_run_id": t.user_attrs.get(RUN_ATTR) or "",
                "stop_reason": t.user_attrs.get(STOP_REASON_ATTR) or "",
            }
        )
    columns = ["trial", "state", f1_name, energy_name, "pareto", "epochs_run", "mlflow_run_id", "stop_reason"]
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
    frame.attrs["objectives"] = (f1_name, energy_name)
    return frame


def objective_columns(frame: pd.DataFrame) -> tuple[str, str]:
    """(F1 column, energy column) of a ``pareto_frame``, by the names it was made with."""
    try:
        f1_name, energy_name = frame.attrs["objectives"]
    except KeyError:
        raise ValueError("not a pareto_frame: no objective names in frame.attrs") from None
    return str(f1_name), str(energy_name)


X_LABEL = "training energy (Wh)"
Y_LABEL = "intersection F1 (%)"
COLOUR_LABEL = "trial number (order of sampling)"
POINTS_GID = "trials"
SVG_NS = "http://www.w3.org/2000/svg"
ANNOTATE_ALL_UP_TO = 30  # trials; above that only the Pareto front is labelled (the rest would be a smudge)
TABLE_ALL_UP_TO = 50  # trials listed in the HTML; above that the Pareto front's (the CSV has them all)


def _trial_label(row: Any) -> str:
    params = [f"{c.removeprefix('param_')}={_plain(row[c])}" for c in row.index if c.startswith("param_")]
    return " ".join([f"#{int(row.trial)}", *params])


def _figure(frame: pd.DataFrame, title: str) -> Any:
    """F1 (%) vs training energy (Wh), one point per trial coloured by trial number, the Pareto front in red.

    One figure for the PNG and the HTML, so both show the same axes, units and colours. The points are one
    scatter, in the frame's row order, in a group the SVG names ``POINTS_GID`` (the HTML's hover texts go there).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7.2, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if not frame.empty:
        cmap = colormaps["viridis"]
        norm = Normalize(vmin=float(frame.trial.min()), vmax=float(max(frame.trial.max(), frame.trial.min() + 1)))
        f1, kwh = objective_columns(frame)
        front = frame[frame.pareto].sort_values(kwh)
        ax.plot(front[kwh] * 1000, front[f1] * 100, "-", c="tab:red", lw=1.5, zorder=1, label="Pareto front")
        x, y = frame[kwh] * 1000, frame[f1] * 100
        edges = ["tab:red" if p else "none" for p in frame.pareto]
        ax.scatter(x, y, c=frame.trial, cmap=cmap, norm=norm, s=36, edgecolors=edges, linewidths=1.5, zorder=2,
                   gid=POINTS_GID, clip_on=False)  # fmt: skip
        annotate_all = len(frame) <= ANNOTATE_ALL_UP_TO
        right_quarter = float(x.min() + 0.75 * (x.max() - x.min()))
        for _, row in frame.iterrows():
            if annotate_all or row.pareto:
                point = (row[kwh] * 1000, row[f1] * 100)
                left = len(frame) > 1 and point[0] > right_quarter  # labels stay inside the axes
                ax.annotate(_trial_label(row), point, fontsize=7, xytext=(-3 if left else 3, 3),
                            textcoords="offset points", ha="right" if left else "left")  # fmt: skip
        ax.legend(loc="best", fontsize="small")
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        bar.set_label(COLOUR_LABEL)
    f1_name, energy_name = objective_columns(frame)
    ax.set_xlabel(f"{X_LABEL}: {energy_name}")
    ax.set_ylabel(f"{Y_LABEL}: {f1_name}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _plot_png(frame: pd.DataFrame, title: str, path: Path) -> None:
    _figure(frame, title).savefig(path, format="png")


def _hover_text(row: Any, f1: str, kwh: str) -> str:
    text = f"{_trial_label(row)}: {f1} {row[f1] * 100:.1f} %, {kwh} {row[kwh] * 1000:.4g} Wh"
    if row.pareto:
        text += ", on the Pareto front"
    if row.mlflow_run_id:
        text += f", MLflow run {row.mlflow_run_id}"
    return text


def _svg(frame: pd.DataFrame, title: str) -> str:
    """The figure as inline SVG with text kept as text (searchable, selectable) and a hover text per trial."""
    import io

    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sedwatt"}):
        _figure(frame, title).savefig(buffer, format="svg")
    # text kept as <text> (searchable); the hover texts go into the points as SVG <title> elements
    svg = buffer.getvalue()
    ElementTree.register_namespace("", SVG_NS)
    ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ElementTree.fromstring(svg)  # matplotlib's own output, not outside input
    group = root.find(f".//{{{SVG_NS}}}g[@id='{POINTS_GID}']")
    if group is not None:
        defs = {id(e) for d in group.iter(f"{{{SVG_NS}}}defs") for e in d.iter()}
        marks = [e for e in group.iter(f"{{{SVG_NS}}}use") if id(e) not in defs]  # one <use> per point…
        if not marks:  # …or, for a single point, one <path>
            marks = [e for e in group.iter(f"{{{SVG_NS}}}path") if id(e) not in defs]
        f1, kwh = objective_columns(frame)
        if len(marks) == len(frame):  # else matplotlib drew another number of marks: no hover texts, same figure
            for mark, (_, row) in zip(marks, frame.iterrows(), strict=True):
                ElementTree.SubElement(mark, f"{{{SVG_NS}}}title").text = _hover_text(row, f1, kwh)
    return ElementTree.tostring(root, encoding="unicode")


def _plot_html(frame: pd.DataFrame, title: str, path: Path) -> None:
    """A light, offline HTML page: the figure as inline SVG (no script, nothing fetched) and the trials' table.

    Optuna's plotly figure inlines plotly.js (~4.6 MB), which MLflow's artifact viewer shows as a blank
    pane; loading plotly.js from a CDN instead breaks offline. Inline SVG renders in the viewer's sandboxed
    frame and anywhere else, and stays a few tens of KB.
    """
    f1, kwh = objective_columns(frame)
    table = frame.sort_values(["pareto", f1], ascending=[False, False]).copy()
    if len(table) > TABLE_ALL_UP_TO:
        table = table[table.pareto]
        listed = f"<p>The Pareto front's trials; all {len(frame)} trials are in {CSV_NAME} beside this file.</p>\n"
    else:
        listed = ""
    table[f1] = (table[f1] * 100).map("{:.1f}".format)
    table[kwh] = (table[kwh] * 1000).map("{:.4g}".format)
    table = table.rename(columns={f1: f"{f1} (%)", kwh: f"{kwh.removesuffix('_kwh')} (Wh)"})
    table.columns = [c.removeprefix("param_") for c in table.columns]
    table = table.astype(object).where(table.notna(), "")
    body = table.to_html(index=False, border=0, classes="trials", na_rep="")
    path.write_text(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:sans-serif;margin:1em}svg{max-width:100%;height:auto}"
        "table.trials{border-collapse:collapse;font-size:13px}"
        "table.trials td,table.trials th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style>"
        "</head><body>\n"
        f"{_svg(frame, title)}\n"
        "<p>Hover a point for its trial, parameters, F1, energy and MLflow run. Red ring and line: the Pareto "
        "front (no other trial has both a higher F1 and a lower energy).</p>\n"
        f"{listed}{body}\n</body></html>\n",
        encoding="utf-8",
    )


def study_summary(study: Any, frame: pd.DataFrame) -> dict[str, Any]:
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    f1, kwh = objective_columns(frame)
    front = frame[frame.pareto].sort_values(kwh) if len(frame) else frame
    param_columns = [c for c in frame.columns if c.startswith("param_")]
    return {
        "study_name": study.study_name,
        "directions": [d.name.lower() for d in study.directions],
        "objectives": [f1, kwh],
        "n_trials": sum(states.values()),
        "states": states,
        "pareto_front": [
            {
                "trial": int(row.trial),
                "params": {c.removeprefix("param_"): _plain(row[c]) for c in param_columns},
                f1: float(row[f1]),
                kwh: float(row[kwh]),
            }
            for _, row in front.iterrows()
        ],
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def write_study_report(study: Any, out_dir: Path, frame: pd.DataFrame | None = None) -> dict[str, Path]:
    """pareto_front.csv/.png, pareto_front.html (once a trial is complete) and study_summary.json in ``out_dir``.

    ``frame``: the study's ``pareto_frame`` when the caller has it already (made here otherwise).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if frame is None:
        frame = pareto_frame(study)
    paths = {"csv": out_dir / CSV_NAME, "png": out_dir / PNG_NAME, "summary": out_dir / SUMMARY_NAME}
    frame.to_csv(paths["csv"], index=False)
    title = f"study {study.study_name}: F1 vs energy"
    _plot_png(frame, title, paths["png"])
    if len(frame):
        paths["html"] = out_dir / HTML_NAME
        _plot_html(frame, title, paths["html"])
    paths["summary"].write_text(json.dumps(study_summary(study, frame), indent=2))
    return paths


def log_study_report(study: Any, parent_run_id: str) -> None:
    """Write the report to a temp folder and upload it to the parent run (overwriting the previous one)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    frame = pareto_frame(study)  # one read of the trials: the artifacts and the metrics agree
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_study_report(study, Path(tmp), frame)
        for path in paths.values():
            client.log_artifact(parent_run_id, str(path), artifact_path=ARTIFACT_DIR)
    if len(frame):
        step = len(frame)
        client.log_metric(parent_run_id, "n_trials_complete", float(step), step=step)
        client.log_metric(parent_run_id, "pareto_size", float(frame.pareto.sum()), step=step)
        f1, kwh = objective_columns(frame)
        client.log_metric(parent_run_id, "front_best_f1", float(frame[f1].max()), step=step)
        client.log_metric(parent_run_id, "front_min_energy_kwh", float(frame[kwh].min()), step=step)
