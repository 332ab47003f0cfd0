"""What-if stopping: the early-stopping rules replayed over each run's recorded per-epoch history.

"Stop earlier" is the paper's advice; this answers, on one's own runs and without training anything,
which rule would have saved the most energy and at what F1 cost. Each rule is the very function the
training callbacks call (``sedwatt.training.early_stopping``): it is asked after every recorded epoch
whether to stop, on the history cut at that epoch (``history[:k]``, k = 1 … n), so it stops here at
exactly the epoch the live callback would have stopped at. Two references come with every grid: the
hindsight oracle "stop at the first epoch reaching 95 % of this run's max val_f1" (the savings column
of runs.csv) and "never stop".

Per rule and run: the stop epoch (the last recorded one when the rule never fires), the energy used
then (``energy_cum_kwh`` at the stop), the fraction of the run's total (its last measured
``energy_cum_kwh``) saved, the best val_f1 seen up to the stop, and the points of F1 lost against the
run's max. Per cohort, the rules' means over its runs form the points of the Pareto front of (energy
saved ↑, F1 lost ↓); the oracle is drawn but kept off the front, since no live rule can know the max F1
in advance.

Grid syntax (``--policies``): space-separated ``RULE=VALUE,VALUE…`` items —
``patience=EPOCHS``, ``slowdown=GAIN[:WINDOW]``, ``energy=GAIN_PER_KWH[:WINDOW]``; a gain is a
fraction (0.01) or a percentage (1%); the window defaults to ``train.slowdown_window``. Or a YAML
file mapping each rule to a list of such values (or of mappings with ``min_rel_gain`` /
``min_rel_gain_per_kwh`` / ``patience`` and ``window``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sedwatt.config import TrainConfig
from sedwatt.convergence import FRACTION_OF_MAX, first_epoch_reaching
from sedwatt.errors import SedwattError
from sedwatt.training.early_stopping import energy_rule, patience_rule, slowdown_rule

from . import findings as findings_mod
from . import plots
from .compute import CohortAnalysis
from .tables import Column, Table, build_table, natural_key

RULES = ("patience", "slowdown", "energy")
ORACLE, NEVER = "oracle", "never"
DEFAULT_POLICIES = "patience=5,10,20 slowdown=0.005:10,0.01:10,0.02:5 energy=0.1:10,1:10,10:10"
SYNTAX = (
    "RULE=VALUE,… with patience=EPOCHS, slowdown=GAIN[:WINDOW], energy=GAIN_PER_KWH[:WINDOW], "
    "e.g. 'patience=10,20 slowdown=0.01:10,2%:5 energy=1:10'"
)
HISTORY_KEYS = ("obj_metric", "energy_kwh")  # read by the rules, beyond the analysis's curves
DEFAULT_WINDOW = int(TrainConfig.model_fields["slowdown_window"].default)
MAX_LOST_POINTS = 1.0  # the sentence picks the front's largest saving for at most this F1 loss
YAML_KEYS = {"patience": ("patience",), "slowdown": ("min_rel_gain", "window"),
             "energy": ("min_rel_gain_per_kwh", "window")}  # fmt: skip
ROW_COLUMNS = (
    "epochs", "stop_epoch", "rule_fired", "energy_used_kwh", "energy_total_kwh",
    "energy_saved_frac", "val_f1_at_stop", "max_val_f1", "val_f1_lost_points", "stop_reason",
)  # fmt: skip
SUMMARY_COLUMNS = (
    Column("stop_epoch", "Stop epoch", "num"),
    Column("energy_used_kwh", "Energy used", "kwh"),
    Column("energy_saved_frac", "Energy saved", "pct_pm"),
    Column("val_f1_at_stop", "F1 at stop", "f1"),
    Column("val_f1_lost_points", "F1 lost (points)", "num"),
)


def _epochs(n: int) -> str:
    return "1 epoch" if n == 1 else f"{n} epochs"


@dataclass(frozen=True)
class Policy:
    """One stopping rule with its parameters: ``value`` is the patience, the gain or the gain per kWh."""

    kind: str  # patience | slowdown | energy | oracle | never
    value: float = 0.0
    window: int = 0

    @property
    def label(self) -> str:
        if self.kind == "patience":
            return f"patience({_epochs(int(self.value))})"
        if self.kind == "slowdown":
            return f"slowdown({100 * self.value:.4g} %, {_epochs(self.window)})"
        if self.kind == "energy":
            return f"energy({self.value:.4g} per kWh, {_epochs(self.window)})"
        return "oracle: 95 % of max F1 (hindsight)" if self.kind == ORACLE else "never stop"

    def reason(self, history: Sequence[dict[str, float]]) -> str | None:
        """The live rule's answer on this history: why to stop now, or None."""
        if self.kind == "patience":
            return patience_rule(history, int(self.value))  # obj_metric, as stopping_callbacks sets it
        if self.kind == "slowdown":
            return slowdown_rule(history, self.value, self.window)
        if self.kind == "energy":
            return energy_rule(history, self.value, self.window)
        raise ValueError(f"{self.kind}: a reference, not a rule over the history")


# --- the grid --------------------------------------------------------------------------------------


def _number(text: str, where: str, what: str, *, integer: bool) -> float:
    raw = text.strip()
    percent = raw.endswith("%") and not integer
    try:
        value = int(raw) if integer else float(raw.removesuffix("%").strip()) / (100.0 if percent else 1.0)
    except ValueError:
        raise SedwattError(
            f"{where}: {what} {raw!r} is not {'a whole number' if integer else 'a number'} ({SYNTAX})"
        ) from None
    if not math.isfinite(value) or value < (1 if integer else 0):
        bound = "≥ 1" if integer else "a finite number ≥ 0"
        raise SedwattError(f"{where}: {what} {raw!r} must be {bound}")
    return float(value)


def parse_value(kind: str, text: str, where: str) -> Policy:
    """One grid value of ``kind`` ("10", "0.01:10", "1%"); ``where`` names it in an error."""
    if kind == "patience":
        return Policy(kind, _number(text, where, "patience", integer=True))
    gain, colon, window = text.partition(":")
    what = "relative gain" if kind == "slowdown" else "relative gain per kWh"
    value = _number(gain, where, what, integer=False)
    epochs = int(_number(window, where, "window", integer=True)) if colon else DEFAULT_WINDOW
    return Policy(kind, value, epochs)


def parse_spec(spec: str) -> list[Policy]:
    """``patience=5,10 slowdown=0.01:10`` → the policies, in the order given."""
    policies = []
    for item in spec.replace(";", " ").split():
        name, eq, values = item.partition("=")
        if not eq or name not in RULES or not values.strip(","):
            raise SedwattError(
                f"--policies {item!r}: expected RULE=VALUE,… with RULE one of {', '.join(RULES)} ({SYNTAX})"
            )
        for text in values.split(","):
            if not text:
                raise SedwattError(f"--policies {item!r}: an empty value between commas ({SYNTAX})")
            policies.append(parse_value(name, text, f"--policies {item!r}"))
    return policies


def _yaml_value(kind: str, value: Any, where: str) -> Policy:
    """A YAML entry (every scalar read as text): a grid value, or a mapping of the rule's parameters."""
    if isinstance(value, dict):
        keys = YAML_KEYS[kind]
        if set(value) - set(keys) or keys[0] not in value:
            got = sorted(map(str, value))
            wanted = " and ".join(keys)
            raise SedwattError(f"{where}: expected the keys {wanted} (window optional), got {got}")
        value = f"{value[keys[0]]}:{value['window']}" if "window" in value else value[keys[0]]
    if not isinstance(value, str):
        raise SedwattError(f"{where}: expected a number, 'GAIN:WINDOW' or a mapping, got {value!r}")
    return parse_value(kind, value, where)


def load_yaml(path: Path) -> list[Policy]:
    """A YAML file mapping each rule to a list of values: ``energy: [1:10, {min_rel_gain_per_kwh: 5}]``.

    Read with YAML's BaseLoader (every scalar is text): YAML 1.1 would read ``1:10`` as the base-60
    number 70 and silently replay another rule.
    """
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)  # only str, list, dict
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise SedwattError(f"--policies {path}: cannot read it as YAML ({first})") from None
    if not isinstance(data, dict) or not data:
        raise SedwattError(
            f"--policies {path}: expected a mapping of rule ({', '.join(RULES)}) to a list of values"
        )
    policies = []
    for name, values in data.items():
        if name not in RULES:
            raise SedwattError(f"--policies {path}: unknown rule {name!r} (one of {', '.join(RULES)})")
        for i, value in enumerate(values if isinstance(values, list) else [values]):
            policies.append(_yaml_value(name, value, f"--policies {path}: {name}[{i}]"))
    return policies


def parse_policies(spec: str | None) -> list[Policy]:
    """The grid of ``--policies`` ("" or "default": the default grid), then the oracle and "never stop"."""
    text = (spec or "").strip()
    text = DEFAULT_POLICIES if text in ("", "default") else text
    path = Path(text)
    if text.lower().endswith((".yaml", ".yml")) or ("=" not in text and path.is_file()):
        if not path.is_file():
            raise SedwattError(f"--policies {text}: no such file")
        rules, where = load_yaml(path), f"--policies {text}"
    else:
        rules, where = parse_spec(text), f"--policies {text!r}"
    rules = list(dict.fromkeys(rules))  # the same rule given twice is replayed once
    refuse_shared_labels(rules, where)
    return [*rules, Policy(ORACLE), Policy(NEVER)]


def refuse_shared_labels(rules: Sequence[Policy], where: str) -> None:
    """Two different rules with one label (``.4g``) would be merged in the tables: refuse them."""
    seen: dict[str, Policy] = {}
    for rule in rules:
        other = seen.setdefault(rule.label, rule)
        if other is not rule:
            raise SedwattError(
                f"{where}: the {rule.kind} values {other.value!r} and {rule.value!r} both read as "
                f"{rule.label!r}; give values that differ within 4 significant digits"
            )


# --- replay ----------------------------------------------------------------------------------------


def _finite(value: float) -> bool:
    return bool(np.isfinite(value))


def run_history(curve: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """The run's per-epoch dicts as the live rules read them: val_f1, obj_metric, energy_kwh, energy_cum_kwh.

    ``energy_kwh`` is the logged per-epoch energy; for a run that logged only ``energy_cum_kwh`` it is
    the difference of consecutive cumulative values. Keys not logged at an epoch are left out, as in
    the live history of a run without them.
    """
    n = len(curve["step"])
    cumulative = curve["energy_cum_kwh"]
    logged = curve.get("energy_kwh", np.full(n, np.nan))
    derived = np.diff(cumulative, prepend=0.0)
    objective = curve.get("obj_metric", np.full(n, np.nan))
    history = []
    for i in range(n):
        epoch = {"val_f1": float(curve["val_f1"][i])}
        if _finite(objective[i]):
            epoch["obj_metric"] = float(objective[i])
        kwh = logged[i] if _finite(logged[i]) else derived[i]
        if _finite(kwh):
            epoch["energy_kwh"] = float(kwh)
        if _finite(cumulative[i]):
            epoch["energy_cum_kwh"] = float(cumulative[i])
        history.append(epoch)
    return history


def stop_index(policy: Policy, history: Sequence[dict[str, float]]) -> tuple[int, str | None]:
    """0-based index of the epoch the policy stops after, and why (None: it never fired, the run's end)."""
    last = len(history) - 1
    if policy.kind == NEVER:
        return last, None
    if policy.kind == ORACLE:
        f1 = np.array([h["val_f1"] for h in history], dtype=float)
        index = (
            None if np.all(np.isnan(f1)) else first_epoch_reaching(f1, FRACTION_OF_MAX * float(np.nanmax(f1)))
        )
        return (last, None) if index is None else (index, "first epoch reaching 95 % of the run's max val_f1")
    for k in range(1, len(history) + 1):
        reason = policy.reason(history[:k])
        if reason:
            return k - 1, reason
    return last, None


def replay_run(policies: Sequence[Policy], curve: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per policy for one run's curve (the ``ROW_COLUMNS`` and ``rule``)."""
    history = run_history(curve)
    f1, cumulative = curve["val_f1"], curve["energy_cum_kwh"]
    max_f1 = float(np.nanmax(f1)) if not np.all(np.isnan(f1)) else math.nan
    # The total is the last measured cumulative energy: a last epoch without energy (a run cut before
    # its measurement was logged) must not make every saving NaN. A stop after it used all of it.
    measured = np.flatnonzero(np.isfinite(cumulative))
    last_measured = int(measured[-1]) if len(measured) else len(cumulative)
    total = float(cumulative[last_measured]) if len(measured) else math.nan
    rows = []
    for policy in policies:
        index, reason = stop_index(policy, history)
        used = total if index >= last_measured else float(cumulative[index])
        seen = f1[: index + 1]
        at_stop = float(np.nanmax(seen)) if not np.all(np.isnan(seen)) else math.nan
        saved = 1.0 - used / total if _finite(used) and _finite(total) and total != 0 else math.nan
        rows.append({
            "rule": policy.label, "epochs": len(history), "stop_epoch": int(curve["step"][index]),
            "rule_fired": reason is not None, "energy_used_kwh": used, "energy_total_kwh": total,
            "energy_saved_frac": saved, "val_f1_at_stop": at_stop, "max_val_f1": max_f1,
            "val_f1_lost_points": 100.0 * (max_f1 - at_stop), "stop_reason": reason or "",
        })  # fmt: skip
    return rows


def policies_frame(
    runs: pd.DataFrame, run_curves: dict[str, dict[str, np.ndarray]], policies: Sequence[Policy],
    group_keys: Sequence[str],
) -> pd.DataFrame:  # fmt: skip
    """policies.csv: one row per rule × run (rules in grid order), with each run's cohort and group keys."""
    rows = []
    for _, run in runs.iterrows():
        ids = {"cohort": run.get("cohort", ""), "run_id": run["run_id"],
               **{k: run[k] for k in group_keys}, "run_name": run.get("run_name", "")}  # fmt: skip
        rows += [{**ids, **row} for row in replay_run(policies, run_curves[run["run_id"]])]
    columns = ["cohort", "rule", "run_id", *dict.fromkeys([*group_keys, "run_name"]), *ROW_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    order = {p.label: i for i, p in enumerate(policies)}
    frame["_order"] = frame["rule"].map(order)
    return frame.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


# --- per cohort ------------------------------------------------------------------------------------


@dataclass
class PolicyAnalysis:
    """One cohort's replay: per-run rows, per-group summary, the rules' means and front, sentence, plot."""

    analysis: CohortAnalysis
    rows: pd.DataFrame
    summary: Table
    means: pd.DataFrame  # rule, kind, runs, energy_saved_frac, val_f1_lost_points, on_pareto_front
    finding: findings_mod.Finding
    images: dict[str, bytes] = field(default_factory=dict)


def rule_means(rows: pd.DataFrame, policies: Sequence[Policy]) -> pd.DataFrame:
    """Each rule's mean saving and loss over the cohort's runs; the front of the live rules and never stop."""
    out = []
    for policy in policies:
        part = rows[rows["rule"] == policy.label]
        out.append({
            "rule": policy.label, "kind": policy.kind, "runs": len(part),
            "energy_saved_frac": float(pd.to_numeric(part["energy_saved_frac"]).mean()),
            "val_f1_lost_points": float(pd.to_numeric(part["val_f1_lost_points"]).mean()),
        })  # fmt: skip
    means = pd.DataFrame(out)
    live = (means["kind"] != ORACLE).to_numpy()
    front = np.zeros(len(means), dtype=bool)
    front[live] = plots.pareto_mask(
        means.loc[live, "energy_saved_frac"].to_numpy(dtype=float),
        means.loc[live, "val_f1_lost_points"].to_numpy(dtype=float),
    )
    means["on_pareto_front"] = front
    return means


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.0f} %"


def front_sentence(means: pd.DataFrame, n_runs: int) -> tuple[str, dict[str, Any]]:
    """The front rule with the largest saving for ≤ ``MAX_LOST_POINTS`` of F1, said in one sentence."""
    over = "this run" if n_runs == 1 else f"these {n_runs} runs"
    if not np.isfinite(means["energy_saved_frac"]).any():
        return f"Over {over}, no energy was recorded: what the stopping rules would save is unknown.", {}
    front = means[means["on_pareto_front"] & (means["kind"] != NEVER)]
    front = front[np.isfinite(front["energy_saved_frac"]) & (front["energy_saved_frac"] > 0)]
    if front.empty:
        return f"Over {over}, none of the replayed stopping rules would have stopped a run earlier.", {}
    within = front[front["val_f1_lost_points"] <= MAX_LOST_POINTS]
    if len(within):
        pick = within.loc[within["energy_saved_frac"].idxmax()]
        why = f"the Pareto front's largest saving for at most {MAX_LOST_POINTS:g} point of F1 lost"
    else:
        pick = front.loc[front["val_f1_lost_points"].idxmin()]
        why = f"every rule on the Pareto front loses over {MAX_LOST_POINTS:g} point of F1: this one least"
    saved, lost = float(pick["energy_saved_frac"]), float(pick["val_f1_lost_points"])
    text = (
        f"Over {over}, {pick['rule']} would have saved {_pct(saved)} of the energy "
        f"for {lost:.1f} points of F1 (mean over runs; {why})."
    )
    return text, {
        "rule": str(pick["rule"]),
        "energy_saved_frac": saved,
        "val_f1_lost_points": lost,
        "runs": n_runs,
    }


def _ordered(table: Table, keys: Sequence[str], policies: Sequence[Policy]) -> Table:
    """The summary's rows grouped as build_table sorts them, the rules in grid order within a group."""
    rank = {p.label: i for i, p in enumerate(policies)}
    stats = table.stats.reset_index(drop=True)

    def position(i: int) -> tuple:
        return tuple(natural_key(stats.loc[i, k]) for k in keys), rank.get(stats.loc[i, "rule"], len(rank))

    order = sorted(range(len(stats)), key=position)
    table.stats = stats.iloc[order].reset_index(drop=True)
    table.rows = [table.rows[i] for i in order]
    return table


def summary_table(
    rows: pd.DataFrame, means: pd.DataFrame, analysis: CohortAnalysis, group_keys: Sequence[str],
    policies: Sequence[Policy],
) -> Table:  # fmt: skip
    """Per group and rule: mean ± std over its runs, and whether the rule is on the cohort's front."""
    keys = [*group_keys, "rule"]
    title = f"What-if stopping rules by {' / '.join(group_keys)}"
    title = f"{title} — {analysis.heading}" if analysis.several else title
    table = _ordered(build_table(title, rows, keys, SUMMARY_COLUMNS), group_keys, policies)
    front = set(means.loc[means["on_pareto_front"], "rule"])
    table.stats["on_pareto_front"] = table.stats["rule"].isin(front)
    table.headers.append("Pareto front")
    table.rows = [
        [*row, "yes" if rule in front else ""]
        for row, rule in zip(table.rows, table.stats["rule"], strict=True)
    ]
    table.notes.append(
        "stop epoch: the last recorded one when the rule never fired; "
        "F1 at stop: the best val_f1 seen up to it; Pareto front: of the rules' means over the cohort's runs "
        "(energy saved up, F1 lost down), the hindsight oracle left out"
    )
    return table


def analyse_policies(
    analyses: Sequence[CohortAnalysis], run_curves: dict[str, dict[str, np.ndarray]],
    policies: Sequence[Policy], group_keys: Sequence[str],
) -> list[PolicyAnalysis]:  # fmt: skip
    """Each cohort's replay; its sentence is also added to the cohort's findings."""
    out = []
    for analysis in analyses:
        rows = policies_frame(analysis.runs, run_curves, policies, group_keys)
        means = rule_means(rows, policies)
        text, values = front_sentence(means, len(analysis.runs))
        finding = findings_mod.Finding("stopping_rules", text, values, cohort=analysis.label)
        analysis.findings.append(finding)
        summary = summary_table(rows, means, analysis, group_keys, policies)
        out.append(PolicyAnalysis(analysis, rows, summary, means, finding))
    return out


def add_policy_images(policy: PolicyAnalysis) -> None:
    suffix = f" — cohort {policy.analysis.cohort.index}" if policy.analysis.several else ""
    title = f"Stopping rules replayed: energy saved vs F1 lost{suffix}"
    policy.images = {policy.analysis.file_name("policies.png"): plots.plot_policies(policy.means, title)}
