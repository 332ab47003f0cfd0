"""A DESED-like dataset anyone can generate: procedural class sounds mixed into Scaper-like soundscapes.

Real DESED cannot be downloaded everywhere, so ``sedwatt make-data OUT`` writes the same layout and
TSV formats (``sedwatt.data.layout``) with synthetic audio, and the same loader reads both.
"""

from sedwatt.data.synth.generate import GENERATOR_VERSION, MANIFEST_NAME, generate_dataset, resolve_counts
from sedwatt.data.synth.presets import DESED_COUNTS, PRESETS, SET_ORDER
from sedwatt.data.synth.summary import summarize, summary_table

__all__ = [
    "DESED_COUNTS",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "PRESETS",
    "SET_ORDER",
    "generate_dataset",
    "resolve_counts",
    "summarize",
    "summary_table",
]
