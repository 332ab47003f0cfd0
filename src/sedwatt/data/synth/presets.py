"""How many clips each generated set gets: DESED's counts, and scaled-down presets for tests and the demo."""

from __future__ import annotations

from sedwatt.data.layout import DEVTEST, SYNTH_TRAIN, SYNTH_VAL, UNLABELLED, WEAK

SET_ORDER: tuple[str, ...] = (SYNTH_TRAIN.name, WEAK.name, UNLABELLED.name, SYNTH_VAL.name, DEVTEST.name)

# DESED 2022 (docs/recipe.md §6): synthetic train 10000, weak 1578, unlabelled in-domain 14412,
# synthetic validation 2500, dev-test (the real validation set) 1168.
DESED_COUNTS: dict[str, int] = {
    SYNTH_TRAIN.name: 10000,
    WEAK.name: 1578,
    UNLABELLED.name: 14412,
    SYNTH_VAL.name: 2500,
    DEVTEST.name: 1168,
}


def scaled_counts(scale: float) -> dict[str, int]:
    """DESED's proportions at ``scale`` (at least one clip per set)."""
    return {name: max(1, int(round(count * scale))) for name, count in DESED_COUNTS.items()}


PRESETS: dict[str, dict[str, int]] = {
    # Seconds to generate; a batch of 8 = 2 synth + 2 weak + 4 unlabelled works after a 10 % weak hold-out.
    "tiny": {SYNTH_TRAIN.name: 16, WEAK.name: 24, UNLABELLED.name: 32, SYNTH_VAL.name: 12, DEVTEST.name: 12},
    # The CPU demo: DESED / 12 (under a minute on 2 cores).
    "small": scaled_counts(1 / 12),
    "desed-size": dict(DESED_COUNTS),
}
