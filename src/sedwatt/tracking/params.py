"""Params that never crash a run: MLflow refuses to change a logged param, and ``mlflow run`` logs some first.

Under ``mlflow run -P lr=1e-3`` the run already holds ``lr='1e-3'`` (the raw CLI string); logging
``lr='0.001'`` again raises ``Changing param values is not allowed``. So: keys already on the run
with an equal value (as text or as a number) are skipped, and a genuinely different value is kept
under ``sedwatt.<key>`` rather than lost or fatal.
"""

from __future__ import annotations

import math

PREFIX = "sedwatt."
MAX_VALUE_CHARS = 6000  # MLflow's param value limit in 3.x


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def same_value(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = _as_number(a.strip()), _as_number(b.strip())
    return x is not None and y is not None and x == y


def reconcile_params(existing: dict[str, str], wanted: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split ``wanted`` into (to log, conflicts kept aside); conflicts are already renamed ``sedwatt.<key>``."""
    to_log: dict[str, str] = {}
    renamed: dict[str, str] = {}
    for key, raw in wanted.items():
        value = str(raw)[:MAX_VALUE_CHARS]
        if key not in existing:
            to_log[key] = value
        elif not same_value(existing[key], value):
            alt = f"{PREFIX}{key}"
            if alt not in existing:
                renamed[alt] = value
            # an alt key already holding a different value (a resumed run that changed it again) is left as is
    return to_log, renamed
