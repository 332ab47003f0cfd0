"""The only module that reads psds_eval's private internals; it requires exactly psds_eval 0.5.3.

``PSDSEval.psds()`` returns the PSDS alone; sedwatt also needs the per-class areas from the same
(costly) ROC pass, so psds.py runs ``psds()``'s steps itself: the public ``psd_roc_curves`` and then
the private static helpers ``_effective_tp_ratio`` and ``_auc``, plus the ``WORLD`` label psds_eval
injects as an extra class. A change to any of them would move every PSDS figure without an error,
so :func:`check_version` refuses every psds_eval but ``REQUIRED_VERSION`` (psds.py calls it before
each computation, and every helper here before its first use).
"""

from __future__ import annotations

from typing import Any

from sedwatt.pins import require_exact

DISTRIBUTION = "psds_eval"
REQUIRED_VERSION = "0.5.3"

_checked = False


def check_version() -> None:
    """Raise a one-line SedwattError unless exactly ``REQUIRED_VERSION`` is installed."""
    global _checked
    require_exact(DISTRIBUTION, REQUIRED_VERSION)
    _checked = True


def _psds_eval_class() -> Any:
    if not _checked:
        check_version()
    from psds_eval import PSDSEval

    return PSDSEval


def effective_tp_ratio(tpr_vs_efpr: Any, alpha_st: float) -> Any:
    """The PSD-ROC (eTPR vs eFPR) from the per-class TPR-vs-eFPR curves, as ``PSDSEval.psds()`` does."""
    return _psds_eval_class()._effective_tp_ratio(tpr_vs_efpr, alpha_st)


def auc(x: Any, y: Any, max_x: float, decreasing_y: bool = False) -> float:
    """Area under a staircase curve up to ``max_x``, as ``PSDSEval.psds()`` integrates it."""
    return float(_psds_eval_class()._auc(x, y, max_x, decreasing_y))


def world_label() -> str:
    """The label psds_eval adds to its class list for detections of no known class."""
    if not _checked:
        check_version()
    from psds_eval.psds import WORLD

    return str(WORLD)
