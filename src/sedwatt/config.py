"""One typed configuration tree, loaded from YAML with ``--set a.b=c`` overrides.

Every field has the DCASE 2022 recipe's value as its default, so ``configs/dcase2022.yaml`` only
has to say what it is, and a reduced CPU config only says what it changes. Unknown keys are
errors: a typo in a config must not silently train the default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sedwatt.errors import SedwattError

DESED_CLASSES: tuple[str, ...] = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the DESED-layout dataset is and how clips become fixed-length 16 kHz mono."""

    root: Path | None = None
    sample_rate: int = 16000
    clip_seconds: float = 10.0
    classes: tuple[str, ...] = DESED_CLASSES
    weak_val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    weak_split_seed: int = 42
    # Recipe quirk (baseline.md §6): StronglyAnnotatedSet.dropna() drops clips without events.
    drop_no_event_clips: bool = False
    random_crop: bool = True
    feature_cache: bool = True
    cache_dir: Path | None = None
    num_workers: int = 0


class FeatureConfig(_Section):
    """Log-mel features exactly as the recipe (baseline.md §1)."""

    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8000.0
    amin: float = 1e-5
    db_min: float = -50.0
    db_max: float = 80.0


class ModelConfig(_Section):
    """CRNN sizes; the defaults give the recipe's 1,112,420 trainable parameters."""

    n_classes: int = 10
    channels: list[int] = [16, 32, 64, 128, 128, 128, 128]
    kernel_size: int = 3
    pools: list[tuple[int, int]] = [(2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)]
    conv_dropout: float = 0.5
    bn_eps: float = 1e-3
    bn_momentum: float = 0.99
    rnn_hidden: int = 128
    rnn_layers: int = 2
    rnn_dropout: float = 0.0
    head_dropout: float = 0.5
    # Same Bernoulli(1-p) distribution from a cheaper random stream (8 mask bits per random byte);
    # only valid for p = 0.5. Off = torch's own dropout, bit-for-bit the upstream behaviour.
    fast_dropout: bool = False
    channels_last: bool = False

    @model_validator(mode="after")
    def _pools_match_channels(self) -> ModelConfig:
        if len(self.pools) != len(self.channels):
            raise ValueError(f"model.pools has {len(self.pools)} entries but model.channels has {len(self.channels)}")
        return self

    @property
    def time_pooling(self) -> int:
        factor = 1
        for t, _ in self.pools:
            factor *= t
        return factor


class TrainConfig(_Section):
    """Mean-teacher training, recipe values (baseline.md §3)."""

    epochs: int = Field(200, ge=1)
    batch_size: int = Field(48, ge=4)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    rampup_epochs: float = 50.0
    rampup_exponent: float = -5.0
    consistency_max: float = 2.0
    ema_max_decay: float = 0.999
    mixup_prob: float = 0.5
    mixup_alpha: float = 0.2
    seed: int = 42
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    val_batch_size: int = 24
    # Recipe quirk (baseline.md §3): nothing sets the lr before the first step, so step 1 runs at max lr.
    first_step_full_lr: bool = True
    # Early stopping. patience 200 at 200 epochs = the recipe's no-op.
    patience: int | None = 200
    # "Progress slows down": stop when the best val_f1 improved by less than this relative amount
    # over the last `slowdown_window` epochs. None = off (recipe behaviour).
    slowdown_min_rel_gain: float | None = None
    slowdown_window: int = 10
    # Energy-aware stop: relative F1 gain per kWh over the window below this → stop. None = off.
    min_rel_gain_per_kwh: float | None = None
    out_dir: Path = Path("outputs")
    # torch.compile the student and the teacher (benchmarks/model_levers.py --compile: ~8 % on the CPU model step).
    compile: bool = False
    progress: bool = True

    @field_validator("batch_size")
    @classmethod
    def _divisible_by_four(cls, value: int) -> int:
        if value % 4:
            raise ValueError(
                f"batch size {value} cannot be split 1/4 synthetic + 1/4 weak + 1/2 unlabelled: it must be a multiple of 4"
            )
        return value

    @property
    def batch_split(self) -> tuple[int, int, int]:
        """(synthetic strong, weak, unlabelled) per batch: the recipe's 12 + 12 + 24 for 48."""
        quarter = self.batch_size // 4
        return quarter, quarter, self.batch_size - 2 * quarter


class ValidationConfig(_Section):
    """Per-epoch validation: threshold, median filter, and the intersection criteria."""

    threshold: float = 0.5
    median_filter: int = 7
    dtc: float = 0.7  # the paper's per-epoch F1
    gtc: float = 0.7
    checkpoint_dtc: float = 0.5  # the recipe's obj_metric F1
    checkpoint_gtc: float = 0.5
    # PSDS at evaluation: psds_eval (the reference) or sed_scores_eval (same values to ~1e-16 on the 50
    # thresholds, 7-10x faster; needs `pip install sed_scores_eval`, rejects touching same-class references).
    psds_backend: Literal["psds_eval", "sed_scores_eval"] = "psds_eval"


class EnergyConfig(_Section):
    """CodeCarbon, offline: no network call ever."""

    enabled: bool = True
    country_iso_code: str = "FRA"
    measure_power_secs: float = 15.0
    tracking_mode: Literal["machine", "process"] = "machine"
    force_cpu_power_w: float | None = None
    force_ram_power_w: float | None = None
    # Pre-Volta GPUs have no NVML energy counter: sample NVML power at this interval and integrate.
    nvml_sample_secs: float = 1.0


class TrackingConfig(_Section):
    """MLflow: experiment and registry names (the URI comes from MLFLOW_TRACKING_URI)."""

    experiment: str = "sedwatt"
    registered_model_name: str | None = "sedwatt-crnn"
    log_model: bool = True
    log_checkpoints: bool = True


class SedwattConfig(_Section):
    """The whole resolved configuration of a run."""

    name: str = "dcase2022"
    data: DataConfig = DataConfig()
    features: FeatureConfig = FeatureConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    validation: ValidationConfig = ValidationConfig()
    energy: EnergyConfig = EnergyConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _model_matches_data(self) -> SedwattConfig:
        if self.model.n_classes != len(self.data.classes):
            raise ValueError(
                f"model.n_classes is {self.model.n_classes} but data.classes lists {len(self.data.classes)} classes"
            )
        return self

    @property
    def n_samples(self) -> int:
        return int(round(self.data.clip_seconds * self.data.sample_rate))

    @property
    def n_feature_frames(self) -> int:
        """STFT frames with center=True: 1 + samples // hop (626 for 10 s)."""
        return 1 + self.n_samples // self.features.hop_length

    @property
    def n_label_frames(self) -> int:
        """Output frames, the recipe's arithmetic: int(int(samples / hop) / pooling) (156 for 10 s)."""
        return int(int(self.n_samples / self.features.hop_length) / self.model.time_pooling)

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame: hop × pooling / sr (0.064 s in the recipe)."""
        return self.features.hop_length * self.model.time_pooling / self.data.sample_rate

    def flat(self) -> dict[str, str]:
        """Flattened ``a.b = value`` view, as logged to MLflow params."""
        return flatten(self.model_dump(mode="json"))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = "null" if value is None else str(value)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=c`` → (["a", "b"], yaml value of c)."""
    if "=" not in text:
        raise SedwattError(f"--set {text!r}: expected key=value, e.g. --set train.epochs=3")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise SedwattError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise SedwattError(f"--set {text!r}: value is not valid YAML ({exc.__class__.__name__})") from None
    return key.split("."), value


def apply_overrides(tree: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = tree
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SedwattError(f"--set {text!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> SedwattConfig:
    """Read a YAML config (None = recipe defaults) and apply ``key=value`` overrides."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise SedwattError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise SedwattError(f"{p}{where}: not valid YAML") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise SedwattError(f"{p}: expected a mapping at the top level")
        tree = loaded
    tree = apply_overrides(tree, overrides)
    try:
        return SedwattConfig.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        raise SedwattError(f"{source}: field {field}: {msg}") from None


def save_config(config: SedwattConfig, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return p
