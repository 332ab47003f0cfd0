"""The trained CRNN as an MLflow model you can run: a pyfunc from audio file paths to events, plus the PyTorch flavour.

One MLflow model holds two flavours, so one registered version serves both uses:

- ``python_function``: :class:`SedwattModel`, a ``PythonModel`` logged as *models from code* (a
  three-line file that calls ``mlflow.models.set_model``; nothing cloudpickled). Its artifacts are the student's state
  dict (``artifacts/state_dict.pt``, loaded with ``weights_only=True``) and the run's config
  (``artifacts/config.yaml``); the CRNN is rebuilt by ``sedwatt.model.build_crnn``. Input: a table
  with a ``filename`` column of audio paths; output: the events table ``filename, onset, offset,
  event_label`` (see ``sedwatt.serving.inference`` for reading, windows and decoding). Params:
  ``threshold`` (default: the run's ``validation.threshold``) and ``scores`` (True: per-class frame
  scores instead of events).
- ``pytorch``: the pickled module, as ``mlflow.pytorch.load_model`` and ``sedwatt evaluate`` read it.

Both need sedwatt importable where the model is loaded: serve with ``--env-manager local`` from an
environment where sedwatt is installed (the pickled module and the code file import it). Loading
either flavour runs code that whoever registered the model wrote: trust the registrant.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from sedwatt.config import SedwattConfig
from sedwatt.errors import SedwattError, first_line

STATE_DICT = "state_dict"  # artifact keys (files artifacts/state_dict.pt, artifacts/config.yaml)
CONFIG = "config"
STATE_DICT_FILE = "artifacts/state_dict.pt"  # where the weights lie inside a saved model folder
INPUT_COLUMN = "filename"
CODE_FILE = "sedwatt_model.py"
MODEL_CODE = '''"""MLflow models-from-code entry of a sedwatt model: loading the model runs this file (sedwatt must be installed)."""

from mlflow.models import set_model

from sedwatt.serving.pyfunc import SedwattModel

set_model(SedwattModel())
'''


def load_crnn(state_dict_path: Path | str, config: SedwattConfig, device: Any = "cpu") -> Any:
    """The config's CRNN with the weights of ``state_dict_path`` (tensors only: weights_only=True), eval mode."""
    import torch

    from sedwatt.model import build_crnn

    model = build_crnn(config)
    model.load_state_dict(torch.load(state_dict_path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def load_saved(model_dir: Path | str, device: Any = "cpu") -> tuple[Any, SedwattConfig | None]:
    """A saved model folder's module on ``device`` in eval mode, and its config (None: a PyTorch-only folder).

    A folder sedwatt saved carries its weights as a state dict and its config: the CRNN is rebuilt with
    sedwatt's code and the weights read with ``weights_only=True``, so nothing in the files runs. Only an
    older, PyTorch-only folder is unpickled through MLflow's pytorch flavour, which can run code: loading
    that trusts whoever saved it. Anything else it unpickles is returned as it is, for the caller to refuse.
    """
    import mlflow.pytorch
    import torch

    config = saved_config(model_dir)
    if config is not None:
        return load_crnn(Path(model_dir) / STATE_DICT_FILE, config, device), config
    model = mlflow.pytorch.load_model(str(model_dir), map_location=device)
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    return model, None


def filenames_of(model_input: Any) -> list[str]:
    """The ``filename`` column as strings; one error line naming the first bad row."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame) or INPUT_COLUMN not in model_input.columns:
        raise SedwattError(
            f"model input: expected a table with a {INPUT_COLUMN!r} column of audio file paths"
        )
    names: list[str] = []
    for row, value in enumerate(model_input[INPUT_COLUMN].tolist()):
        if not isinstance(value, str) or not value.strip():
            raise SedwattError(f"model input row {row}: {INPUT_COLUMN} {value!r} is not an audio file path")
        names.append(value)
    return names


class SedwattModel(mlflow.pyfunc.PythonModel):
    """Audio file paths → DCASE events with the run's CRNN, threshold and median filter."""

    def load_context(self, context: Any) -> None:
        from sedwatt.config import load_config
        from sedwatt.features import MelExtractor
        from sedwatt.hardware import resolve_device

        self.config = load_config(context.artifacts[CONFIG])
        # CUDA when this machine has it: the training machine's device may not exist here.
        self.device = resolve_device("auto")
        self.model = load_crnn(context.artifacts[STATE_DICT], self.config, self.device)
        self.extractor = MelExtractor(self.config.features, self.config.data.sample_rate)

    # model_input is annotated pd.DataFrame, a hint MLflow infers no schema from: the signature is the schema.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException

        from sedwatt.serving.inference import detect

        params = params or {}
        threshold = params.get("threshold")
        try:
            if threshold is not None and not 0.0 < float(threshold) < 1.0:
                raise SedwattError(f"param threshold {threshold}: must be between 0 and 1 (exclusive)")
            return detect(
                self.model, filenames_of(model_input), self.config, self.device,
                threshold=threshold, scores=bool(params.get("scores", False)), extractor=self.extractor,
            )  # fmt: skip
        except SedwattError as exc:  # the caller's mistake: HTTP 400 with this line when served
            raise MlflowException.invalid_parameter_value(str(exc)) from None


def serving_signature(config: SedwattConfig) -> Any:
    """Input ``filename`` (string), output the events table, params threshold (the run's) and scores (False)."""
    from mlflow.models import infer_signature

    example_in = pd.DataFrame({INPUT_COLUMN: ["clip.wav"]})
    example_out = pd.DataFrame(
        {"filename": ["clip.wav"], "onset": [0.0], "offset": [1.0], "event_label": [config.data.classes[0]]}
    )
    return infer_signature(
        example_in, example_out, params={"threshold": float(config.validation.threshold), "scores": False}
    )


def is_servable(model: Any) -> bool:
    """Only sedwatt's own CRNN can be rebuilt from a state dict and its config (other modules: PyTorch flavour alone)."""
    from sedwatt.model import CRNN

    return isinstance(getattr(model, "_orig_mod", model), CRNN)


def save_model(
    path: str | Path,
    mlflow_model: Any = None,
    *,
    pytorch_model: Any,
    config: SedwattConfig,
    pip_requirements: list[str] | None = None,
    **_: Any,
) -> None:
    """Write the two-flavour model folder at ``path`` (the ``save_model`` that ``mlflow.models.Model.log`` calls).

    The state dict is checked against a freshly built CRNN of ``config`` first, so a version whose
    pyfunc could not load is never written.
    """
    import mlflow.pytorch
    import torch
    from mlflow.models import Model

    from sedwatt.evaluation.model_source import quiet_downloads
    from sedwatt.model import build_crnn

    module = getattr(pytorch_model, "_orig_mod", pytorch_model).cpu().eval()
    mlflow_model = mlflow_model if mlflow_model is not None else Model()
    with tempfile.TemporaryDirectory(prefix="sedwatt-model-") as tmp:
        work = Path(tmp)
        state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        try:
            build_crnn(config).load_state_dict(state)
        except RuntimeError as exc:
            raise SedwattError(
                f"config {config.name}: the model's weights do not fit its CRNN ({first_line(exc)})"
            ) from None
        torch.save(state, work / "state_dict.pt")
        (work / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        (work / CODE_FILE).write_text(MODEL_CODE, encoding="utf-8")
        # MLflow "downloads" the two local artifacts with a progress bar, and asks for an input example,
        # which would have to be an audio file: the signature says what the input is.
        with quiet_downloads(), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*An input example was not provided", category=UserWarning
            )
            mlflow.pyfunc.save_model(
                path=str(path),
                python_model=str(work / CODE_FILE),
                artifacts={STATE_DICT: str(work / "state_dict.pt"), CONFIG: str(work / "config.yaml")},
                signature=serving_signature(config),
                pip_requirements=pip_requirements,
                mlflow_model=mlflow_model,
            )
        # The PyTorch flavour beside it: its data folder and its MLmodel entry.
        mlflow.pytorch.save_model(
            module, str(work / "pytorch"), serialization_format="pickle", pip_requirements=pip_requirements
        )
        flavour = Model.load(str(work / "pytorch")).flavors["pytorch"]
        shutil.copytree(work / "pytorch" / flavour["model_data"], Path(path) / flavour["model_data"])
    mlflow_model.add_flavor("pytorch", **flavour)
    mlflow_model.model_size_bytes = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    mlflow_model.save(os.path.join(str(path), "MLmodel"))


def log_model(
    pytorch_model: Any,
    config: SedwattConfig,
    *,
    name: str,
    run_id: str,
    step: int,
    pip_requirements: list[str] | None,
) -> Any:
    """Log the two-flavour model as a LoggedModel of ``run_id`` (``save_model`` writes it); returns the ModelInfo."""
    from mlflow.models import Model

    return Model.log(
        artifact_path=None,  # positional in MLflow 3.17's signature; ``name`` replaces it
        name=name,
        flavor=sys.modules[__name__],
        run_id=run_id,
        step=step,
        pytorch_model=pytorch_model,
        config=config,
        pip_requirements=pip_requirements,
        flavor_name="python_function",
    )


def saved_config(model_dir: Path | str) -> SedwattConfig | None:
    """The config inside a saved two-flavour model folder; None for a PyTorch-only folder."""
    from sedwatt.config import load_config

    path = Path(model_dir) / "artifacts" / "config.yaml"
    return load_config(path) if path.is_file() else None
