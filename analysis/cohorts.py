"""Which runs may be compared: the same configuration apart from the grouping key, the same epoch budget.

A table "by batch size" is only a statement about batch size when nothing else differs between its
rows: a 45-epoch training run next to 8-epoch search trials says more about the epoch budget than
about the batch. So the selected runs are split into *cohorts* before any table, plot or finding:
runs whose logged configuration is equal on every compared param. Each cohort is analysed on its
own and never compared with another; when there are several, each is labelled by the params that
differ between cohorts ("train.epochs = 8").

Compared params: the flattened config (``train.epochs``, ``model.channels``, … — every key whose first
segment is a section of ``SedwattConfig``) and ``dataset_fingerprint`` (the data itself), except:

- the grouping keys themselves, and the params that carry the same setting under another name
  (``params.batch_size`` frees ``train.batch_size`` and the batch split, ``seed`` frees ``train.seed``);
- ``NOT_COMPARED``: per-run settings that change neither what is trained nor what is measured per
  epoch — the seed (runs that differ only in seed are the repetitions a mean ± std is taken over),
  paths (``train.out_dir``, ``data.root``, ``data.cache_dir``: where files are, not what they hold;
  ``dataset_fingerprint`` stands for the data), the progress bar, the ``tracking.*`` names (experiment,
  registered model, whether the model/checkpoints are uploaded after training), the evaluation-only
  ``validation.psds_backend`` and ``train.device``: where a run computed, not what it trained ("auto"
  and "cuda" are the same runs on a GPU machine, while "auto" on two machines would still agree). The
  run's ``hw.*`` tags say where it ran; hardware is compared by ``--group-by hardware``.

Tags compared (``RUN_LEVEL_COMPARED_TAGS``): ``energy.attribution``, the rule by which a run's energy was
charged. Runs charged by different rules are never compared, not even by ``--group-by``: a
``process-cpu-share`` run (logged before 2026-12-02) and a ``process-cpu-use`` one both have
``energy.tracking_mode = process`` but different energies for the same work. A run without the tag (logged
before sedwatt recorded it, charged by CodeCarbon's own mode) counts as "(not logged)", in a cohort of its own,
and the tag is compared only when some selected run carries it.

Params outside the config are not compared either: the config's ``name`` / ``config_name``,
Optuna's ``trial_number`` / ``study_name``, and the ``mlflow run`` entry-point inputs (``config``,
``data``, ``epochs``, ``overrides``), whose effect is already in the flattened config. A config key a
run did not log (written by an older sedwatt, before the key existed) counts as the current default,
which is the behaviour the key was introduced with; a run that logged no config key at all has an
unknown config ("(not logged)"). Where the callback found a key already set to another value, the
config's value is in ``sedwatt.<key>`` and that one is compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from .runs import RunRecord
from .tables import natural_key

NOT_LOGGED = "(not logged)"
ALL_RUNS = "all runs"
EPOCH_BUDGET = "train.epochs"
RUN_LEVEL_COMPARED = ("dataset_fingerprint",)
RUN_LEVEL_COMPARED_TAGS = ("energy.attribution",)  # how energy was charged: never mixed (module docstring)
NOT_COMPARED = frozenset(
    {
        "train.seed",
        "train.out_dir",
        "data.root",
        "data.cache_dir",
        "train.progress",
        "validation.psds_backend",
        "train.device",
    }
)
NOT_COMPARED_SECTIONS = ("tracking",)
# Params that carry one setting under several names (the config's, the run-level copy, derived values).
SAME_SETTING = (
    ("train.batch_size", "batch_size", "batch_synth", "batch_weak", "batch_unlabelled"),
    ("train.seed", "seed"),
    ("train.epochs", "epochs"),
    ("train.lr", "lr"),
)
MAX_LABEL_PARTS = 3


@dataclass(frozen=True)
class Cohort:
    """Runs that may be compared: ``differs`` holds this cohort's values of the params cohorts differ in."""

    index: int  # 1-based, in the order of the differing values
    run_ids: tuple[str, ...]
    differs: dict[str, str] = field(default_factory=dict)
    shorten: bool = True  # False when shortened labels would collide (split_cohorts decides)

    @property
    def label(self) -> str:
        """Like "train.epochs = 8": a few params at most ("…; +2 more"); "all runs" when nothing differs.

        The label identifies the cohort in runs.csv, the tables and findings.json, so it must be unique:
        where two cohorts agree on the params shown, every label is the full one (``description``).
        """
        parts = [f"{k} = {v}" for k, v in self.differs.items()]
        if not parts:
            return ALL_RUNS
        if not self.shorten:
            return self.description
        shown = "; ".join(parts[:MAX_LABEL_PARTS])
        return shown + (f"; +{len(parts) - MAX_LABEL_PARTS} more" if len(parts) > MAX_LABEL_PARTS else "")

    @property
    def description(self) -> str:
        """Every differing param, for the report's cohort table."""
        return "; ".join(f"{k} = {v}" for k, v in self.differs.items()) or ALL_RUNS


@lru_cache(maxsize=1)
def config_defaults() -> dict[str, str]:
    """The current config's flattened defaults, as the training callback logs them."""
    from sedwatt.config import SedwattConfig

    return SedwattConfig().flat()


def config_sections() -> frozenset[str]:
    return frozenset(key.split(".", 1)[0] for key in config_defaults() if "." in key)


def is_config_key(key: str) -> bool:
    return "." in key and key.split(".", 1)[0] in config_sections()


def freed_by(group_keys: Sequence[str]) -> set[str]:
    """Param names a grouping frees from the comparison: the grouped params and their other names."""
    freed: set[str] = set()
    for key in group_keys:
        prefix, _, name = key.partition(".")
        if prefix != "params":
            continue
        freed.add(name)
        for names in SAME_SETTING:
            if name in names:
                freed.update(names)
    return freed


def is_compared(key: str, freed: set[str]) -> bool:
    if key in freed or key in NOT_COMPARED:
        return False
    if key in RUN_LEVEL_COMPARED:
        return True
    return is_config_key(key) and key.split(".", 1)[0] not in NOT_COMPARED_SECTIONS


def compared_keys(records: Sequence[RunRecord], group_keys: Sequence[str]) -> list[str]:
    """The params (and ``RUN_LEVEL_COMPARED_TAGS`` some run carries) that must agree within a cohort, the epoch
    budget first."""
    freed = freed_by(group_keys)
    keys = {k.removeprefix("sedwatt.") for r in records for k in r.params}
    keys = {k for k in keys if is_compared(k, freed)}
    keys |= {k for k in RUN_LEVEL_COMPARED_TAGS if any(k in r.tags for r in records)}
    return sorted(keys, key=lambda k: (k != EPOCH_BUDGET, k))


def effective_value(record: RunRecord, key: str) -> str:
    """The value the run trained with: ``sedwatt.<key>`` first, then the key, then the default (a compared
    tag: its value, else "(not logged)")."""
    if key in RUN_LEVEL_COMPARED_TAGS:
        return record.tags.get(key, NOT_LOGGED)
    params = record.params
    if f"sedwatt.{key}" in params:
        return params[f"sedwatt.{key}"]
    if key in params:
        return params[key]
    logged_config = any(is_config_key(k) for k in params)
    if logged_config and key in config_defaults():
        return config_defaults()[key]
    return NOT_LOGGED


def split_cohorts(records: Sequence[RunRecord], group_keys: Sequence[str]) -> list[Cohort]:
    """The runs in cohorts of equal compared params; one cohort (labelled "all runs") when all agree."""
    keys = compared_keys(records, group_keys)
    signatures = {r.run_id: tuple(effective_value(r, k) for k in keys) for r in records}
    distinct = sorted(set(signatures.values()), key=lambda s: tuple(natural_key(v) for v in s))
    differing = [i for i in range(len(keys)) if len({s[i] for s in distinct}) > 1]
    cohorts = []
    for index, signature in enumerate(distinct, start=1):
        members = tuple(r.run_id for r in records if signatures[r.run_id] == signature)
        differs = {keys[i]: signature[i] for i in differing}
        cohorts.append(Cohort(index, members, differs))
    if len({c.label for c in cohorts}) < len(cohorts):  # they agree on the params a short label shows
        cohorts = [replace(c, shorten=False) for c in cohorts]
    return cohorts
