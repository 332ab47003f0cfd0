"""One typed configuration tree, loaded from YAML with ``--set a.b=c`` overrides.

Every field has the DCASE 2022 recipe's value as its default, so ``configs/dcase2022.yaml`` only
has to say what it is, and a reduced CPU config only says what it changes. Unknown keys are
errors: a typo in a config must not silently train the default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

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
    # allow_inf_nan=False: no float field of a run may be NaN or ±inf (`--set train.lr=.nan` is refused here).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class DataConfig(_Section):
    """Where the DESED-layout dataset is and how clips become fixed-length 16 kHz mono."""

    root: Path | None = None
    sample_rate: int = Field(16000, gt=0)
    clip_seconds: float = Field(10.0, gt=0)
    classes: tuple[str, ...] = Field(DESED_CLASSES, min_length=1)
    weak_val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    weak_split_seed: int = 42
    # Recipe quirk (docs/recipe.md §7): StronglyAnnotatedSet.dropna() drops clips without events.
    drop_no_event_clips: bool = False
    random_crop: bool = True
    feature_cache: bool = True
    cache_dir: Path | None = None
    num_workers: int = Field(0, ge=0)

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"class names must be unique; repeated: {', '.join(repeated)}")
        return value


class FeatureConfig(_Section):
    """Log-mel features exactly as the recipe (docs/recipe.md §1)."""

    n_fft: int = Field(2048, ge=2)
    win_length: int = Field(2048, ge=1)
    hop_length: int = Field(256, ge=1)
    n_mels: int = Field(128, ge=1)
    f_min: float = Field(0.0, ge=0)
    f_max: float = Field(8000.0, gt=0)
    amin: float = Field(1e-5, gt=0)
    db_min: float = -50.0
    db_max: float = 80.0

    @model_validator(mode="after")
    def _ordered(self) -> FeatureConfig:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} is longer than n_fft {self.n_fft}")
        if self.f_max <= self.f_min:
            raise ValueError(f"f_max {self.f_max} must be above f_min {self.f_min}")
        if self.db_max <= self.db_min:
            raise ValueError(f"db_max {self.db_max} must be above db_min {self.db_min}")
        return self


class ModelConfig(_Section):
    """CRNN sizes; the defaults give the recipe's 1,112,420 trainable parameters."""

    n_classes: int = Field(10, ge=1)
    channels: list[Annotated[int, Field(ge=1)]] = Field([16, 32, 64, 128, 128, 128, 128], min_length=1)
    kernel_size: int = Field(3, ge=1)
    pools: list[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]] = Field(
        [(2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)], min_length=1
    )
    conv_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    bn_eps: float = Field(1e-3, gt=0)
    bn_momentum: float = Field(0.99, ge=0.0, le=1.0)
    rnn_hidden: int = Field(128, ge=1)
    rnn_layers: int = Field(2, ge=1)
    rnn_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    head_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    # Same Bernoulli(1-p) distribution from a cheaper random stream (8 mask bits per random byte);
    # only valid for p = 0.5. Off = torch's own dropout, bit-for-bit the upstream behaviour.
    fast_dropout: bool = False
    channels_last: bool = False

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"kernel size {value} must be odd (the convolution pads k // 2 to keep the map's size)")
        return value

    @model_validator(mode="after")
    def _pools_match_channels(self) -> ModelConfig:
        if len(self.pools) != len(self.channels):
            raise ValueError(f"model.pools has {len(self.pools)} entries but model.channels has {len(self.channels)}")
        if self.fast_dropout:
            for name in ("conv_dropout", "head_dropout"):
                if getattr(self, name) not in (0.0, 0.5):
                    raise ValueError(f"{name} {getattr(self, name)}: fast_dropout draws Bernoulli(0.5) masks only (use 0, 0.5 or fast_dropout false)")
        return self

    @property
    def time_pooling(self) -> int:
        factor = 1
        for t, _ in self.pools:
            factor *= t
        return factor


class TrainConfig(_Section):
    """Mean-teacher training, recipe values (docs/recipe.md §3)."""

    epochs: int = Field(200, ge=1)
    batch_size: int = Field(48, ge=4)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] = (0.9, 0.999)
    rampup_epochs: float = Field(50.0, ge=0)
    rampup_exponent: float = Field(-5.0, le=0)
    consistency_max: float = Field(2.0, ge=0)
    ema_max_decay: float = Field(0.999, ge=0.0, le=1.0)
    mixup_prob: float = Field(0.5, ge=0.0, le=1.0)
    mixup_alpha: float = Field(0.2, gt=0)
    seed: int = Field(42, ge=0, lt=2**31)
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    val_batch_size: int = Field(24, ge=1)
    # Recipe quirk (docs/recipe.md §7): nothing sets the lr before the first step, so step 1 runs at max lr.
    first_step_full_lr: bool = True
    # Early stopping. patience 200 at 200 epochs = the recipe's no-op.
    patience: int | None = Field(200, ge=1)
    # "Progress slows down": stop when the best val_f1 improved by less than this relative amount
    # over the last `slowdown_window` epochs. None = off (recipe behaviour).
    slowdown_min_rel_gain: float | None = Field(None, ge=0)
    slowdown_window: int = Field(10, ge=1)
    # Energy-aware stop: relative F1 gain per kWh over the window below this → stop. None = off.
    min_rel_gain_per_kwh: float | None = Field(None, ge=0)
    out_dir: Path = Path("outputs")
    # Intra-op threads; None = this job's share of the CPUs it may use (sedwatt.threads), or OMP_NUM_THREADS.
    num_threads: int | None = Field(None, ge=1)
    # Keep freed CPU memory for the next step (glibc mallopt; sedwatt/memory.py): ~1.6x faster CPU steps, higher peak RSS.
    reuse_freed_memory: bool = True
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

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"device {value!r}: expected auto, cpu, cuda, cuda:N or mps")
        return value

    @property
    def batch_split(self) -> tuple[int, int, int]:
        """(synthetic strong, weak, unlabelled) per batch: the recipe's 12 + 12 + 24 for 48."""
        quarter = self.batch_size // 4
        return quarter, quarter, self.batch_size - 2 * quarter


class ValidationConfig(_Section):
    """Per-epoch validation: threshold, median filter, and the intersection criteria."""

    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    median_filter: int = Field(7, ge=1)
    dtc: float = Field(0.7, gt=0.0, le=1.0)  # the paper's per-epoch F1
    gtc: float = Field(0.7, gt=0.0, le=1.0)
    checkpoint_dtc: float = Field(0.5, gt=0.0, le=1.0)  # the recipe's obj_metric F1
    checkpoint_gtc: float = Field(0.5, gt=0.0, le=1.0)
    # PSDS at evaluation: psds_eval (the reference) or sed_scores_eval (same values to ~1e-16 on the 50
    # thresholds, 7-10x faster; needs `pip install sed_scores_eval`, rejects touching same-class references).
    psds_backend: Literal["psds_eval", "sed_scores_eval"] = "psds_eval"


class EnergyConfig(_Section):
    """CodeCarbon, offline: no network call ever."""

    enabled: bool = True
    country_iso_code: str = Field("FRA", pattern=r"^[A-Z]{3}$")
    measure_power_secs: float = Field(15.0, gt=0)
    # process: the job is charged the machine's CPU and RAM energy × its share of the machine's CPU time
    # (energy/attribution.py); machine: the whole machine's. CodeCarbon itself always measures the machine.
    tracking_mode: Literal["machine", "process"] = "process"
    # An epoch whose process CPU-time share is below this is flagged (a warning in machine mode).
    contended_share: float = Field(0.8, gt=0, le=1)
    force_cpu_power_w: float | None = Field(None, gt=0)
    force_ram_power_w: float | None = Field(None, gt=0)
    # Pre-Volta GPUs have no NVML energy counter: sample NVML power at this interval and integrate.
    nvml_sample_secs: float = Field(1.0, gt=0)


class TrackingConfig(_Section):
    """MLflow: experiment and registry names (the URI comes from MLFLOW_TRACKING_URI)."""

    experiment: str = "sedwatt"
    registered_model_name: str | None = "sedwatt-crnn"
    log_model: bool = True
    log_checkpoints: bool = True
    # MLflow system metrics on training runs (system/cpu_utilization_percentage, memory, GPU utilisation and
    # power): one background thread sampling every MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL seconds (10 by
    # default). None = follow MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.
    system_metrics: bool | None = True


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
        nyquist = self.data.sample_rate / 2
        if self.features.f_max > nyquist:
            raise ValueError(f"features.f_max {self.features.f_max} Hz is above the Nyquist frequency {nyquist:g} Hz of data.sample_rate")
        if self.features.hop_length > self.n_samples:
            raise ValueError(f"features.hop_length {self.features.hop_length} is longer than a clip ({self.n_samples} samples)")
        if self.n_label_frames < 1:
            raise ValueError(
                f"a {self.data.clip_seconds:g} s clip gives {self.n_feature_frames} feature frames, pooled below one "
                f"output frame by model.pools (time pooling {self.model.time_pooling})"
            )
        freq = self.features.n_mels
        for _, f in self.model.pools:
            freq //= f
        if freq < 1:
            raise ValueError(f"features.n_mels {self.features.n_mels} is pooled below one frequency bin by model.pools")
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

    def to_yaml(self) -> str:
        """The resolved config as YAML in field order: every run's, model's and evaluation's ``config.yaml``.

        ``load_config`` reads it back to an equal config.
        """
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = "null" if value is None else str(value)
    return out


class Override(str):
    """A ``key=value`` override that remembers the flag it came from (``--epochs 0``), for error messages.

    Plain strings are ``--set`` overrides; the CLI's convenience flags wrap theirs in this, so a value
    refused by the config names the flag the user typed, not the YAML file.
    """

    flag: str

    def __new__(cls, text: str, flag: str) -> Override:
        obj = super().__new__(cls, text)
        obj.flag = flag
        return obj


def override_label(text: str) -> str:
    """How the user wrote an override: its flag, else ``--set key=value``."""
    return getattr(text, "flag", None) or f"--set {text}"


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


def _source_of(loc: tuple[Any, ...], overrides: list[str] | tuple[str, ...], default: str) -> str:
    """Where the refused value came from, for the error line.

    An override at or above the refused location (``model.conv_dropout=…`` for that field, or
    ``model={…}`` for the section) replaced it whole: the last such one is named, else the file or
    defaults. Overrides below it (``model.rnn_hidden=…`` under a section-level or cross-field check)
    only changed part of it, and which part the check refused is unknown, so all of them are listed:
    ``defaults with --set a=…, --set b=…``.
    """
    where = [str(x) for x in loc]
    base, inside = default, []
    for text in overrides:
        path = parse_override(text)[0]
        if len(path) <= len(where) and path == where[: len(path)]:
            base, inside = override_label(text), []  # replaced the refused value and whatever set it before
        elif path[: len(where)] == where:
            inside.append(override_label(text))
    return f"{base} with {', '.join(inside)}" if inside else base


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> SedwattConfig:
    """Read a YAML config (None = recipe defaults) and apply ``key=value`` overrides.

    A refused value gives one line naming where it came from (the flag, ``--set``, or the file) and
    the field; every numeric field carries its real bounds, so nothing out of range reaches torch.
    """
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
        loc = tuple(x for x in err["loc"] if not isinstance(x, int))
        msg = err["msg"].removeprefix("Value error, ")
        field = f" field {'.'.join(str(x) for x in loc)}:" if loc else ""  # a cross-field check names its fields
        raise SedwattError(f"{_source_of(loc, overrides, source)}:{field} {msg}") from None
