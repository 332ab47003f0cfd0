"""The schema's per-run definitions, checked on curves whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sedwatt.convergence import CurveSummary, first_epoch_reaching, summarize_curve

# A 6-epoch run: F1 crosses 40 % at epoch 2, 95 % of max (0.95 × 0.60 = 0.57) at epoch 4,
# the max (0.60) first at epoch 5 (tied again at epoch 6: the first one wins).
F1 = [0.20, 0.41, 0.50, 0.58, 0.60, 0.60]
ENERGY = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # kWh, cumulative
TIME = [600.0, 1200.0, 1800.0, 2400.0, 3000.0, 3600.0]  # s, cumulative: one hour in all


def test_hand_computed_run() -> None:
    """Every runs.csv column of the 6-epoch run above, worked out by hand."""
    assert summarize_curve(F1, ENERGY, TIME).as_dict() == pytest.approx(
        {
            "epochs": 6,
            "max_val_f1": 0.60,
            "max_val_f1_epoch": 5,
            "train_time_s": 3600.0,
            "energy_total_kwh": 0.6,
            "wh_per_epoch": 100.0,  # 600 Wh / 6 epochs
            "wh_per_minute": 10.0,  # 600 Wh / 60 min
            "energy_at_f1_40_kwh": 0.2,
            "energy_at_95pct_max_kwh": 0.4,
            "energy_at_max_kwh": 0.5,
            "extra_cost_95_to_max": 0.25,  # 0.5 / 0.4 - 1
            "savings_stop_at_max": 1 / 6,  # 1 - 0.5 / 0.6
            "savings_stop_at_95pct": 1 / 3,  # 1 - 0.4 / 0.6
        }
    )


def test_never_reaching_40_percent_is_none_not_invented() -> None:
    s = summarize_curve([0.10, 0.30, 0.35, 0.20], [1.0, 2.0, 3.0, 4.0], [60, 120, 180, 240])
    assert s.energy_at_f1_40_kwh is None
    # The relative targets still exist: 0.95 × 0.35 = 0.3325, first reached at epoch 3.
    assert s.max_val_f1 == 0.35 and s.max_val_f1_epoch == 3
    assert s.energy_at_95pct_max_kwh == 3.0 and s.energy_at_max_kwh == 3.0
    assert s.extra_cost_95_to_max == 0.0
    assert s.savings_stop_at_max == pytest.approx(0.25)


def test_exactly_40_percent_counts_as_reached() -> None:
    s = summarize_curve([0.39, 0.40, 0.45], [1.0, 2.0, 3.0], [1, 2, 3])
    assert s.energy_at_f1_40_kwh == 2.0


def test_exactly_95_percent_of_max_counts_as_reached() -> None:
    # 0.95 × 0.60 is 0.57 on paper; in binary the product may land a hair above 0.57.
    s = summarize_curve([0.30, 0.57, 0.60], [1.0, 2.0, 3.0], [1, 2, 3])
    assert s.energy_at_95pct_max_kwh == 2.0


def test_first_epoch_reaching_the_max_wins_a_tie() -> None:
    s = summarize_curve([0.5, 0.7, 0.6, 0.7, 0.7], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert s.max_val_f1_epoch == 2
    assert s.energy_at_max_kwh == 2.0


def test_single_epoch_run() -> None:
    s = summarize_curve([0.45], [0.002], [30.0])
    assert (s.epochs, s.max_val_f1_epoch, s.max_val_f1) == (1, 1, 0.45)
    assert s.wh_per_epoch == pytest.approx(2.0)
    assert s.wh_per_minute == pytest.approx(4.0)
    assert s.extra_cost_95_to_max == 0.0
    assert s.savings_stop_at_max == 0.0 and s.savings_stop_at_95pct == 0.0


def test_zero_energy_gives_no_ratios() -> None:
    """Energy tracking off (all zeros): ratios have no denominator and are None, not NaN or 0."""
    s = summarize_curve([0.1, 0.2], [0.0, 0.0], [10.0, 20.0])
    assert s.energy_total_kwh == 0.0 and s.wh_per_epoch == 0.0 and s.wh_per_minute == 0.0
    assert s.extra_cost_95_to_max is None
    assert s.savings_stop_at_max is None and s.savings_stop_at_95pct is None


def test_zero_time_gives_no_wh_per_minute() -> None:
    assert summarize_curve([0.1], [0.5], [0.0]).wh_per_minute is None


def test_missing_values_never_reach_a_target() -> None:
    s = summarize_curve([None, 0.5, float("nan"), 0.4], [1.0, 2.0, 3.0, 4.0], [1, 2, 3, 4])
    assert s.max_val_f1 == 0.5 and s.max_val_f1_epoch == 2
    assert s.energy_at_f1_40_kwh == 2.0


def test_all_missing_f1() -> None:
    s = summarize_curve([None, None], [1.0, 2.0], [1, 2])
    assert s.max_val_f1 is None and s.max_val_f1_epoch is None
    assert s.energy_at_max_kwh is None and s.energy_at_95pct_max_kwh is None
    assert s.energy_total_kwh == 2.0


def test_missing_last_energy_gives_no_total() -> None:
    s = summarize_curve([0.5, 0.6], [1.0, None], [1, 2])
    assert s.energy_total_kwh is None and s.wh_per_epoch is None and s.savings_stop_at_max is None
    # 0.95 × 0.6 = 0.57 is first reached at epoch 2, whose energy is missing: unknown, not epoch 1's.
    assert s.energy_at_95pct_max_kwh is None and s.energy_at_max_kwh is None
    assert s.energy_at_f1_40_kwh == 1.0


def test_arrays_and_lists_agree() -> None:
    a = summarize_curve(np.array(F1), np.array(ENERGY), np.array(TIME))
    b = summarize_curve(F1, ENERGY, TIME)
    assert a == b


def test_empty_and_mismatched_curves_raise() -> None:
    with pytest.raises(ValueError):
        summarize_curve([], [], [])
    with pytest.raises(ValueError):
        summarize_curve([0.1, 0.2], [1.0], [1.0, 2.0])


def test_first_epoch_reaching() -> None:
    f1 = np.array([0.1, np.nan, 0.5, 0.4])
    assert first_epoch_reaching(f1, 0.4) == 2
    assert first_epoch_reaching(f1, 0.9) is None


def test_summary_is_frozen() -> None:
    s = summarize_curve(F1, ENERGY, TIME)
    assert isinstance(s, CurveSummary)
    with pytest.raises(AttributeError):
        s.max_val_f1 = 1.0  # type: ignore[misc]
    assert all(v is None or math.isfinite(v) for v in s.as_dict().values())
