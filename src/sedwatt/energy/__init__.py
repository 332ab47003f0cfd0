"""Energy measurement: CodeCarbon offline, per epoch (training callback) or per block (inference).

See tracker.py for the CodeCarbon traps handled, attribution.py for how much of the machine's energy
a job is charged, provenance.py for the ``energy.*`` method tags and ``describe_energy`` (the one line
that says what a figure is), and nvml.py for the GPU power integration used when a GPU has no NVML
energy counter.
"""

from sedwatt.energy.callback import EnergyCallback
from sedwatt.energy.inference import EnergyMeasurement, measure_energy
from sedwatt.energy.provenance import describe_energy
from sedwatt.energy.tracker import EnergySession, Segment, quiet_codecarbon

__all__ = [
    "EnergyCallback",
    "EnergyMeasurement",
    "EnergySession",
    "Segment",
    "describe_energy",
    "measure_energy",
    "quiet_codecarbon",
]
