"""``pyfunc.load_saved``: the one place that decides between a saved folder's state dict and its pickle.

``sedwatt evaluate`` (``model_source.load_model``) and ``sedwatt sync`` (``registry.log_pending_model``)
both read saved model folders through it. The folders here are written by the real savers: sedwatt's
two-flavour ``pyfunc.save_model`` and MLflow's PyTorch-only ``mlflow.pytorch.save_model``.
"""

from __future__ import annotations

import mlflow.pytorch
import torch

from sedwatt.config import load_config
from sedwatt.model import build_crnn
from sedwatt.serving import pyfunc


def test_a_sedwatt_folder_is_rebuilt_from_its_state_dict_without_unpickling(tmp_path, monkeypatch, tiny_overrides):
    config = load_config(None, tiny_overrides)
    torch.manual_seed(3)
    saved = build_crnn(config).train()
    pyfunc.save_model(tmp_path / "model", pytorch_model=saved, config=config, pip_requirements=[])

    def refuse(*_args, **_kwargs):
        raise AssertionError("the pickled PyTorch flavour was loaded")

    monkeypatch.setattr(mlflow.pytorch, "load_model", refuse)
    model, found = pyfunc.load_saved(tmp_path / "model", torch.device("cpu"))
    assert found == config
    assert not model.training and next(model.parameters()).device.type == "cpu"
    mine, theirs = model.state_dict(), saved.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_a_pytorch_only_folder_is_unpickled_in_eval_mode_without_a_config(tmp_path):
    torch.manual_seed(3)
    saved = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.5)).train()
    mlflow.pytorch.save_model(saved, str(tmp_path / "model"), serialization_format="pickle", pip_requirements=[])
    model, found = pyfunc.load_saved(tmp_path / "model")
    assert found is None and isinstance(model, torch.nn.Sequential) and not model.training
    x = torch.ones(2, 4)
    assert torch.equal(model(x), saved.eval()(x))
