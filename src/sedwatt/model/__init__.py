"""The DCASE 2022 CRNN, built from the config, and the upstream weight mapping."""

from sedwatt.model.crnn import CRNN, build_crnn, count_parameters
from sedwatt.model.upstream import load_upstream_state_dict, map_upstream_keys

__all__ = ["CRNN", "build_crnn", "count_parameters", "load_upstream_state_dict", "map_upstream_keys"]
