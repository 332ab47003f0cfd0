from pathlib import Path

import pytest

from sedwatt.config import load_config
from sedwatt.errors import SedwattError

ROOT = Path(__file__).resolve().parents[1]


def test_recipe_defaults_frame_arithmetic():
    cfg = load_config()
    assert cfg.n_samples == 160000
    assert cfg.n_feature_frames == 626
    assert cfg.n_label_frames == 156
    assert cfg.frame_seconds == pytest.approx(0.064)
    assert cfg.train.batch_split == (12, 12, 24)


@pytest.mark.parametrize("name", ["dcase2022.yaml", "cpu_demo.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.n_label_frames > 0


def test_overrides_are_typed_and_nested():
    cfg = load_config(None, ["train.epochs=3", "train.lr=5e-4", "model.channels=[8,16]", "model.pools=[[2,2],[2,2]]"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 5e-4
    assert cfg.model.channels == [8, 16] and cfg.model.time_pooling == 4


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.batch_size=10", "multiple of 4"),
        ("train.epochz=3", "train.epochz"),
        ("train.epochs=abc", "train.epochs"),
        ("epochs", "expected key=value"),
        ("model.channels=[8,16]", "model.pools"),
    ],
)
def test_bad_overrides_give_one_line_naming_the_field(override, fragment):
    with pytest.raises(SedwattError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_bad_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(SedwattError, match="bad.yaml"):
        load_config(bad)


def test_flat_params_cover_the_whole_tree():
    flat = load_config().flat()
    assert flat["train.batch_size"] == "48"
    assert flat["model.channels"] == "[16, 32, 64, 128, 128, 128, 128]"
    assert "energy.country_iso_code" in flat
