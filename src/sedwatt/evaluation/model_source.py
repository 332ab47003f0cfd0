"""From a model URI to the training run behind it: which weights to load and which config they were trained with.

An evaluation is logged next to (and nested under) the run that trained the model, so the URI has
to lead back to that run: a registered version (``models:/NAME/VERSION``, ``models:/NAME/latest``,
``models:/NAME@ALIAS``) through the version's ``run_id``, a LoggedModel (``models:/m-…``) through its
``source_run_id``, a run's model (``runs:/RUN_ID/PATH``) directly. The config is the training run's
``config.yaml`` artifact unless the user gives one. Every failure is one ``SedwattError`` line.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedwatt.config import SedwattConfig, load_config
from sedwatt.errors import SedwattError, first_line

FORMS = "models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest, models:/m-ID or runs:/RUN_ID/PATH"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model URI: ``load_uri`` pins what is loaded (a registry alias is resolved to its version)."""

    uri: str
    load_uri: str
    training_run_id: str
    experiment_id: str
    registered_name: str | None = None
    version: str | None = None
    model_id: str | None = None
    run_name: str | None = None
    run_tags: dict[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        """Tags an evaluation run carries to say what it evaluated."""
        tags = {"sedwatt.model_uri": self.uri}
        if self.registered_name:
            tags["sedwatt.registered_model"] = self.registered_name
        if self.version:
            tags["sedwatt.model_version"] = self.version
        if self.model_id:
            tags["sedwatt.model_id"] = self.model_id
        return tags


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow download bar for a config file and a 4 MB model (a user's own setting wins)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def _bad(uri: str, problem: str) -> SedwattError:
    return SedwattError(f"--model-uri {uri}: {problem}")


def _split(uri: str) -> tuple[str, list[str]]:
    scheme, sep, rest = uri.strip().partition(":/")
    parts = [p for p in rest.strip("/").split("/") if p] if sep else []
    if scheme not in ("models", "runs") or not parts:
        raise _bad(uri, f"not a model URI (expected {FORMS})")
    return scheme, parts


def _version(client: Any, uri: str, name: str, version: str | None, alias: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        if version is not None:
            return client.get_model_version(name, version)
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        what = f"alias {alias!r}" if alias is not None else f"version {version}" if version else "any version"
        raise _bad(uri, f"registered model {name!r} has no {what} in this tracking store") from None
    if not versions:
        raise _bad(uri, f"registered model {name!r} has no version in this tracking store")
    return max(versions, key=lambda v: int(v.version))


def _logged_model_id(source: str | None) -> str | None:
    """``m-…`` of a version registered from ``models:/m-…`` (the version's model_id is not always set)."""
    prefix = "models:/"
    if source and source.startswith(prefix) and "/" not in source[len(prefix) :] and "@" not in source:
        return source[len(prefix) :]
    return None


def resolve_model_uri(uri: str, client: Any = None) -> ModelSource:
    """The training run behind ``uri`` (see the module docstring); nothing is downloaded."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = client or mlflow.MlflowClient()
    scheme, parts = _split(uri)
    name = version = model_id = None
    if scheme == "runs":
        if len(parts) < 2:
            raise _bad(uri, "a runs:/ URI needs the model's path after the run id, e.g. runs:/RUN_ID/model")
        run_id, load_uri = parts[0], uri.strip()
    elif len(parts) == 1 and "@" not in parts[0]:
        model_id = parts[0]
        try:
            logged = client.get_logged_model(model_id)
        except MlflowException:
            hint = " (for a registered model give models:/NAME/VERSION or models:/NAME@ALIAS)"
            raise _bad(uri, f"no logged model {model_id!r} in this tracking store{hint}") from None
        run_id, load_uri = logged.source_run_id, f"models:/{model_id}"
        if not run_id:
            raise _bad(uri, f"logged model {model_id!r} records no source run")
    elif len(parts) == 1 or len(parts) == 2:
        if len(parts) == 1:
            name, _, alias = parts[0].rpartition("@")
            wanted = None
        else:
            name, alias, wanted = parts[0], None, parts[1]
            if wanted.lower() == "latest":
                wanted = None
            elif not wanted.isdigit():
                raise _bad(uri, f"{wanted!r} is not a version number (stages are not supported; use an alias)")
        if not name or alias == "":
            raise _bad(uri, f"not a model URI (expected {FORMS})")
        mv = _version(client, uri, name, wanted, alias)
        name, version = mv.name, str(mv.version)
        model_id = getattr(mv, "model_id", None) or _logged_model_id(mv.source)
        run_id, load_uri = mv.run_id, f"models:/{mv.name}/{mv.version}"
        if not run_id:
            raise _bad(uri, f"registered model {name!r} version {version} records no training run")
    else:
        raise _bad(uri, f"not a model URI (expected {FORMS})")
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise _bad(uri, f"its training run {run_id} is not in this tracking store") from None
    return ModelSource(
        uri=uri.strip(),
        load_uri=load_uri,
        training_run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        registered_name=name,
        version=version,
        model_id=model_id,
        run_name=run.info.run_name,
        run_tags=dict(run.data.tags),
    )


def training_config(source: ModelSource, config_path: str | Path | None, overrides: list[str] | tuple[str, ...]) -> SedwattConfig:
    """``config_path`` if given, else the training run's ``config.yaml`` artifact; then the overrides."""
    if config_path:
        return load_config(config_path, overrides)
    import mlflow

    with tempfile.TemporaryDirectory(prefix="sedwatt-config-") as folder, quiet_downloads():
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=source.training_run_id, artifact_path="config.yaml", dst_path=folder
            )
        except Exception:
            raise SedwattError(
                f"training run {source.training_run_id}: no config.yaml artifact; give the config with --config"
            ) from None
        return load_config(path, overrides)


def load_model(source: ModelSource, device: Any) -> Any:
    """The logged model on ``device``, in eval mode: weights-only where the model allows it (``pyfunc.load_saved``).

    Only an older, PyTorch-only model is unpickled, which can run code: loading that trusts whoever
    logged or registered it.
    """
    import mlflow.artifacts
    import torch

    from sedwatt.serving.pyfunc import load_saved

    try:
        with tempfile.TemporaryDirectory(prefix="sedwatt-model-") as folder, quiet_downloads():
            local = mlflow.artifacts.download_artifacts(artifact_uri=source.load_uri, dst_path=folder)
            model, _config = load_saved(local, device)
    except SedwattError:
        raise
    except Exception as exc:
        raise SedwattError(
            f"--model-uri {source.uri}: the model could not be loaded ({first_line(exc)})"
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise SedwattError(f"--model-uri {source.uri}: not a PyTorch model ({type(model).__name__})")
    return model
