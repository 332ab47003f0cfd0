"""The search space, read from YAML: batch sizes (always split 1/4 + 1/4 + 1/2), optionally lr and epochs.

Default: total batch size in {4, 8, 16, 24, 32, 48, 64}, the paper's sizes and the DCASE default 48.
Every suggested value becomes an ordinary config override, so a trial trains exactly what
``sedwatt train --set ...`` would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from sedwatt.errors import SedwattError

DCASE_DEFAULT = {"batch_size": 48}


class FloatRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low: float
    high: float
    log: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if not 0 < self.low < self.high:
            raise ValueError(f"needs 0 < low < high (got {self.low}, {self.high})")
        return self


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: list[int] = [4, 8, 16, 24, 32, 48, 64]
    lr: FloatRange | None = None
    epochs: list[int] | None = None

    @field_validator("batch_size")
    @classmethod
    def _splittable(cls, sizes: list[int]) -> list[int]:
        if not sizes:
            raise ValueError("at least one batch size")
        bad = [b for b in sizes if b < 4 or b % 4]
        if bad:
            raise ValueError(f"batch size {bad[0]} cannot be split 1/4 + 1/4 + 1/2 (needs a multiple of 4)")
        return sizes

    @field_validator("epochs")
    @classmethod
    def _positive_epochs(cls, epochs: list[int] | None) -> list[int] | None:
        if epochs is not None and (not epochs or min(epochs) < 1):
            raise ValueError("epochs must list at least one value, each at least 1")
        return epochs

    def suggest(self, trial: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"batch_size": trial.suggest_categorical("batch_size", self.batch_size)}
        if self.lr is not None:
            params["lr"] = trial.suggest_float("lr", self.lr.low, self.lr.high, log=self.lr.log)
        if self.epochs:
            params["epochs"] = trial.suggest_categorical("epochs", self.epochs)
        return params

    def enqueue_default(self) -> dict[str, Any] | None:
        """The DCASE default (48) as a first trial, when the space contains it."""
        if DCASE_DEFAULT["batch_size"] not in self.batch_size:
            return None
        return dict(DCASE_DEFAULT)


def overrides_for(params: dict[str, Any]) -> list[str]:
    keys = {"batch_size": "train.batch_size", "lr": "train.lr", "epochs": "train.epochs"}
    return [f"{keys[k]}={v}" for k, v in params.items()]


def load_space(path: str | Path | None) -> SearchSpace:
    if not path:
        return SearchSpace()
    p = Path(path)
    if not p.is_file():
        raise SedwattError(f"{p}: search space file not found")
    try:
        tree = yaml.safe_load(p.read_text()) or {}
        return SearchSpace.model_validate(tree)
    except yaml.YAMLError:
        raise SedwattError(f"{p}: not valid YAML") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "space"
        raise SedwattError(f"{p}: field {field}: {err['msg'].removeprefix('Value error, ')}") from None
