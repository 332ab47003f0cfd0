"""The DCASE 2022 CRNN in plain PyTorch, built from the config, and the upstream weight mapping.

``build_crnn(config)`` → ``CRNN``; ``model(log_mel [B, n_mels, frames])`` → (strong [B, classes,
frames/4], weak [B, classes]). ``load_upstream_state_dict`` loads DESED_task CRNN weights (or a
recipe Lightning checkpoint). ``Dropout``/``fast_keep_``/``half_mask`` are the dropout streams.
"""

from sedwatt.model.crnn import CRNN, build_crnn, count_parameters
from sedwatt.model.dropout import Dropout, fast_keep_, half_mask
from sedwatt.model.upstream import load_upstream_state_dict, map_upstream_keys, select_model, upstream_name

__all__ = [
    "CRNN",
    "Dropout",
    "build_crnn",
    "count_parameters",
    "fast_keep_",
    "half_mask",
    "load_upstream_state_dict",
    "map_upstream_keys",
    "select_model",
    "upstream_name",
]
