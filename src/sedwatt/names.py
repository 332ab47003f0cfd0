"""The run schema's names in one home: what each metric, tag and column is called, and what it used to be.

A name says which model (``_student`` / ``_teacher``), which criterion (intersection F1 at DTC = GTC =
0.7; ``_05``: 0.5/0.5, the recipe's checkpoint criterion; ``weak``: clip-level macro F1) and what is
selected. Bare ``val_f1`` stays the paper's figure: the teacher's intersection F1 at 0.7/0.7. Two
epochs are singled out per run and never share a name:

- ``max_val_f1_epoch``: the first epoch reaching ``max_val_f1``, the run's max of ``val_f1`` (the
  paper's convergence numbers: E@max, savings);
- ``best_obj_metric_epoch``: the epoch with the best ``obj_metric`` (the recipe's checkpoint metric,
  student weak F1 + student 0.5/0.5 F1); its checkpoint is ``best.pt`` and the registered model.

Runs logged before these names keep their old ones; readers go through ``current_name`` /
``with_current_names`` (the analysis, the registry's description), so old and new runs read alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeVar

# --- per epoch (step = epoch) --------------------------------------------------------------------
VAL_F1 = "val_f1"  # teacher, 0.7/0.7: the paper's figure
VAL_F1_STUDENT = "val_f1_student"
VAL_F1_05_STUDENT = "val_f1_05_student"
VAL_F1_05_TEACHER = "val_f1_05_teacher"
VAL_WEAK_F1_STUDENT = "val_weak_f1_student"
VAL_WEAK_F1_TEACHER = "val_weak_f1_teacher"
OBJ_METRIC = "obj_metric"

# energy (energy/callback.py per epoch, energy/inference.py per measured block)
ENERGY_KWH = "energy_kwh"  # this epoch's (or this block's) energy charged to the run
CPU_ENERGY_KWH = "cpu_energy_kwh"
GPU_ENERGY_KWH = "gpu_energy_kwh"
RAM_ENERGY_KWH = "ram_energy_kwh"
EMISSIONS_KG = "emissions_kg"
# summed over epochs by the energy callback
ENERGY_TERMS = (ENERGY_KWH, CPU_ENERGY_KWH, GPU_ENERGY_KWH, RAM_ENERGY_KWH, EMISSIONS_KG)
ENERGY_CUM_KWH = "energy_cum_kwh"
COMPONENT_CUM_KWH = {  # per component: its energy so far
    CPU_ENERGY_KWH: "cpu_energy_cum_kwh",
    GPU_ENERGY_KWH: "gpu_energy_cum_kwh",
    RAM_ENERGY_KWH: "ram_energy_cum_kwh",
}
ENERGY_MACHINE_KWH = "energy_machine_kwh"
ENERGY_PROCESS_CPU_SHARE = "energy_process_cpu_share"
ENERGY_PROCESS_CPU_CAPACITY = "energy_process_cpu_capacity"
ENERGY_GPU_PROCESSES = "energy_gpu_processes"
ENERGY_PRED_TOTAL_KWH = "energy_pred_total_kwh"
CUM_TIME_S = "cum_time_s"

# --- end of run (step = last epoch); sedwatt.convergence.CurveSummary's fields -------------------
MAX_VAL_F1 = "max_val_f1"
MAX_VAL_F1_EPOCH = "max_val_f1_epoch"
BEST_OBJ_METRIC_EPOCH = "best_obj_metric_epoch"
ENERGY_TOTAL_KWH = "energy_total_kwh"
ENERGY_AT_MAX_KWH = "energy_at_max_kwh"
ENERGY_AT_95PCT_MAX_KWH = "energy_at_95pct_max_kwh"

# --- the registered model version's tags (tracking/callback.py) -----------------------------------
VERSION_MODEL = "model"  # "student"
VERSION_CHECKPOINT = "checkpoint"  # "best obj_metric"
VERSION_CHECKPOINT_EPOCH = "checkpoint_epoch"
VERSION_CHECKPOINT_PREFIX = "checkpoint_"  # + a per-epoch metric of that epoch (checkpoint_obj_metric, …)
VERSION_CHECKPOINT_METRICS = (OBJ_METRIC, VAL_F1_STUDENT, VAL_F1_05_STUDENT, VAL_WEAK_F1_STUDENT)
VERSION_RUN_MAX_VAL_F1 = "run_max_val_f1"  # the run's (teacher's) max val_f1, not the registered model's
VERSION_RUN_ENERGY_TOTAL_KWH = "run_energy_total_kwh"

# --- old name → new name, per place a name is read from -------------------------------------------
Place = Literal["metric", "version tag", "runs.csv"]
RENAMED: dict[str, dict[str, str]] = {
    "metric": {  # MLflow run metrics
        "val_f1_05": VAL_F1_05_STUDENT,
        "val_weak_f1": VAL_WEAK_F1_STUDENT,
        "best_val_f1": MAX_VAL_F1,
        "best_epoch": BEST_OBJ_METRIC_EPOCH,  # it was the obj_metric checkpoint's epoch
        "savings_stop_at_best": "savings_stop_at_max",
    },
    "version tag": {  # registered model version tags
        "best_val_f1": VERSION_RUN_MAX_VAL_F1,
        "energy_total_kwh": VERSION_RUN_ENERGY_TOTAL_KWH,
    },
    "runs.csv": {  # sedwatt analyze's per-run columns
        "max_f1": MAX_VAL_F1,
        "best_epoch": MAX_VAL_F1_EPOCH,  # it was the first epoch reaching the max val_f1
        "time_s": "train_time_s",
        "savings_stop_at_best": "savings_stop_at_max",
    },
}

V = TypeVar("V")


def current_name(name: str, place: Place = "metric") -> str:
    """Today's name for ``name`` (itself when it was never renamed)."""
    return RENAMED[place].get(name, name)


def old_names(name: str, place: Place = "metric") -> list[str]:
    """The names ``name`` was logged under before (empty when it was never renamed)."""
    return [old for old, new in RENAMED[place].items() if new == name]


def with_current_names(values: Mapping[str, V], place: Place = "metric") -> dict[str, V]:
    """``values`` keyed by today's names; where a run has both, the new name's value wins."""
    out: dict[str, V] = {}
    for key, value in values.items():
        new = current_name(key, place)
        if new == key or new not in values:
            out[new] = value
    return out
