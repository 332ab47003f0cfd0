"""sedwatt: train the DCASE 2022 Task 4 baseline and know what each F1 point costs in energy."""

__version__ = "0.1.0"
