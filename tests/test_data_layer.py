"""The DESED loader: TSV problems, resampling/down-mixing, crops, labels, the heterogeneous sampler."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from desed_mini import SYNTH, make_mini_desed
from sedwatt.config import load_config
from sedwatt.data import tsv
from sedwatt.data.datasets import ClipDataset, build_training_data, split_weak
from sedwatt.data.encoder import LabelEncoder
from sedwatt.data.sampler import HeterogeneousBatchSampler
from sedwatt.data.scan import load_clips, scan_dataset
from sedwatt.errors import DataProblems, SedwattError

CLASSES = load_config().data.classes


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_desed(tmp_path_factory.mktemp("desed_mini"))


def _config(tmp_path, **extra):
    overrides = [f"data.cache_dir={tmp_path / 'cache'}", "train.progress=false"]
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return load_config(None, overrides)


def test_mini_desed_loads_to_recipe_shapes(mini, tmp_path):
    cfg = _config(tmp_path, **{"train.batch_size": 4, "data.weak_val_fraction": 0.25})
    scan = load_clips(mini, cfg)
    data = build_training_data(scan, cfg)
    mel, strong, weak, _ = data.synth[0]
    assert mel.shape == (128, 626) and mel.dtype == torch.float32
    assert strong.shape == (10, 156) and weak.shape == (10,)
    # 0.wav: Dog 0.213–2.540 s → frames floor(0.213·15.625)=3 .. ceil(2.540·15.625)=40 (exclusive)
    dog = CLASSES.index("Dog")
    on = np.flatnonzero(strong[dog].numpy())
    assert on[0] == 3 and on[-1] == 39
    assert weak[dog] == 1 and weak[CLASSES.index("Vacuum_cleaner")] == 1
    # the clip without events is kept (it counts for false positives) with all-zero labels
    empty = [c for c in scan.sets["synth_train"].clips if c.name == "1.wav"][0]
    assert empty.events == ()
    assert len(data.weak) == 3 and len(data.weak_val) == 1
    w_mel, w_strong, w_weak, _ = data.weak[0]
    assert w_strong.sum() == 0 and w_weak.sum() >= 1
    assert len(data.unlabelled) == 4


def test_44k_stereo_is_resampled_and_averaged_like_16k_mono(tmp_path):
    """The same signal stored as 44.1 kHz stereo and 16 kHz mono gives (nearly) the same mel."""
    import torchaudio.functional as AF

    from sedwatt.data.audio import read_audio

    rng = np.random.default_rng(0)
    left = rng.standard_normal(44100 * 2).astype(np.float32) * 0.1
    stereo = np.stack([left, left * 0.5], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100, subtype="FLOAT")
    wave = read_audio(tmp_path / "s.wav", 16000)
    expected = AF.resample(torch.from_numpy(stereo.mean(axis=1)), 44100, 16000).numpy()
    assert wave.shape == (32000,)
    np.testing.assert_allclose(wave, expected, atol=1e-6)


def test_longer_clip_is_cropped_and_labels_move_with_the_crop(tmp_path):
    cfg = _config(tmp_path, **{"data.clip_seconds": 2.0, "data.feature_cache": False})
    sr = 16000
    wave = np.zeros(sr * 4, dtype=np.float32)
    wave[int(2.5 * sr) : int(3.0 * sr)] = 0.5  # energy only where the event is
    sf.write(tmp_path / "long.wav", wave, sr)
    from sedwatt.data.scan import Clip

    clip = Clip(tmp_path / "long.wav", 4.0, events=((2.5, 3.0, "Dishes"),))
    ds = ClipDataset([clip], cfg, random_crop=True, cache=None, seed=3)
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        mel, strong, _, _ = ds[0]
        start = ds._crop_start(0, wave.shape[0]) / sr
        seen.add(start)
        labelled = strong[CLASSES.index("Dishes")].numpy() > 0
        enc = LabelEncoder.from_config(cfg)
        if 2.5 - start < 2.0 and 3.0 - start > 0:
            first = int(np.floor(max(2.5 - start, 0) / enc.frame_seconds))
            assert labelled[first]
        else:
            assert not labelled.any()
    assert len(seen) > 1  # crops differ across epochs
    ds.set_epoch(2)
    a = ds[0][0]
    ds.set_epoch(2)
    assert torch.equal(a, ds[0][0])  # and are reproducible


def test_feature_parameters_match_torchaudio(tmp_path):
    import torchaudio

    from sedwatt.features import MelExtractor, log_normalise

    cfg = load_config()
    x = torch.randn(2, 16000 * 10) * 0.1
    ours = MelExtractor(cfg.features, 16000)(x)
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=2048, win_length=2048, hop_length=256, f_min=0, f_max=8000, n_mels=128,
        window_fn=torch.hamming_window, wkwargs={"periodic": False}, power=1,
    )(x)
    assert ours.shape == (2, 128, 626)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    db = (20 * torch.log10(ref.clamp(min=1e-5))).clamp(-50, 80)
    lo = db.amin(dim=(1, 2), keepdim=True)
    hi = db.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(log_normalise(ours, cfg.features), (db - lo) / (hi - lo + 1e-8))


def test_mel_cache_is_used_and_invalidated(mini, tmp_path):
    cfg = _config(tmp_path)
    scan = load_clips(mini, cfg)
    data = build_training_data(scan, cfg)
    first = data.synth[0][0]
    cache_files = list((tmp_path / "cache").rglob("*.npy"))
    assert cache_files
    # a cached entry is what is served: poison it and see it come back
    poisoned = np.full_like(first.numpy(), 7.0)
    for f in cache_files:
        np.save(f, poisoned)
    assert torch.all(data.synth[0][0] == 7.0)
    # other feature parameters → another cache folder, recomputed
    cfg2 = _config(tmp_path, **{"features.n_mels": 256})
    data2 = build_training_data(load_clips(mini, cfg2), cfg2)
    assert data2.synth[0][0].shape[0] == 256
    # other file content → another key
    clip = data.synth.clips[0]
    audio, sr = sf.read(clip.path)
    sf.write(clip.path, audio * 0.5, sr, subtype="PCM_16")
    assert not torch.all(data.synth[0][0] == 7.0)


@pytest.mark.parametrize("batch", [4, 8, 16, 32, 48])
def test_sampler_composition(batch):
    cfg = load_config(None, [f"train.batch_size={batch}"])
    split = cfg.train.batch_split
    assert split == (batch // 4, batch // 4, batch // 2)
    sizes = [100, 60, 150]
    sampler = HeterogeneousBatchSampler(sizes, split, seed=1)
    assert len(sampler) == min(s // b for s, b in zip(sizes, split, strict=True))
    seen = Counter()
    for indices in sampler:
        assert len(indices) == batch
        s, w, u = indices[: split[0]], indices[split[0] : split[0] + split[1]], indices[split[0] + split[1] :]
        assert all(0 <= i < 100 for i in s)
        assert all(100 <= i < 160 for i in w)
        assert all(160 <= i < 310 for i in u)
        seen.update(indices)
    assert max(seen.values()) == 1  # without replacement within an epoch


def test_sampler_is_a_function_of_seed_and_epoch():
    a = HeterogeneousBatchSampler([40, 40, 80], (2, 2, 4), seed=5)
    b = HeterogeneousBatchSampler([40, 40, 80], (2, 2, 4), seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)


def test_unsplittable_batch_and_too_small_sets_are_clear_errors():
    with pytest.raises(SedwattError, match="multiple of 4"):
        load_config(None, ["train.batch_size=10"])
    with pytest.raises(SedwattError, match="weak set has 2 clips"):
        HeterogeneousBatchSampler([40, 2, 80], (4, 4, 8), names=("synthetic", "weak", "unlabelled"))


def test_weak_split_matches_the_recipe():
    """weak_df.sample(frac=0.9, random_state=42) on 1578 rows gives 1420 / 158 (docs/recipe.md §3)."""
    from pathlib import Path

    from sedwatt.data.scan import Clip

    clips = [Clip(Path(f"{i}.wav"), 10.0, labels=("Dog",)) for i in range(1578)]
    train, held = split_weak(clips, 0.1, 42)
    assert (len(train), len(held)) == (1420, 158)
    assert not {c.name for c in train} & {c.name for c in held}


def _break(root):
    """Plant one fault of every kind the issue lists, each in a different file."""
    m = root / "metadata"
    a = root / "audio"
    synth_tsv = m / "train/synthetic21_train/soundscapes.tsv"
    synth_tsv.write_text(
        synth_tsv.read_text()
        + "missing.wav\t1.0\t2.0\tDog\n"  # audio referenced but absent
        + "0.wav\t3.0\t2.0\tCat\n"  # onset > offset
        + "2.wav\t1.0\t2.0\tUnicorn\n"  # unknown label
        + "3.wav\t9.5\t12.0\tDog\n"  # outside the clip
    )
    (m / "train/weak.tsv").write_text("filename\tlabels\nx.wav\tDog\n")  # missing column
    (m / "validation/synthetic21_validation/durations.tsv").write_text("")  # empty TSV
    (a / "train/unlabel_in_domain/Yabc_0.000_10.000.wav").write_bytes(b"not audio")  # unreadable
    sf.write(a / "train/unlabel_in_domain/Yempty.wav", np.zeros((0, 1), dtype=np.float32), 16000)  # empty audio


def test_check_lists_every_problem(mini, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(mini, broken)
    _break(broken)
    problems = scan_dataset(broken, load_config(), progress=False).problems
    text = "\n".join(problems)
    for fragment in [
        "missing.wav: audio file not found",
        "onset 3.0 is after offset 2.0",
        "unknown label 'Unicorn'",
        "lies outside the clip",
        "missing column(s) event_labels",
        "durations.tsv: empty TSV",
        "Yabc_0.000_10.000.wav: unreadable audio",
        "Yempty.wav: empty audio",
    ]:
        assert fragment in text, fragment
    # every message names a file; TSV row problems name the line
    assert all("/" in p for p in problems)
    assert any("soundscapes.tsv:8: missing.wav" in p for p in problems)
    with pytest.raises(DataProblems) as info:
        load_clips(broken, load_config(None, ["train.progress=false"]))
    assert len(info.value.problems) == len(problems)
    assert "\n" not in str(info.value)


def test_tsv_reader_keeps_empty_label_rows(mini):
    problems: list[str] = []
    labels = tsv.read_strong(mini / "metadata/train/synthetic21_train/soundscapes.tsv", CLASSES, problems)
    assert not problems
    assert labels.events["1.wav"] == []
    assert set(labels.events) == set(SYNTH)


def test_encoder_round_trip_within_one_frame():
    """events → frames → events (the one decoder) lands within one 64 ms frame of the truth."""
    from sedwatt.metrics import decode

    cfg = load_config()
    enc = LabelEncoder.from_config(cfg)
    rng = np.random.default_rng(0)
    for _ in range(50):
        label = CLASSES[int(rng.integers(len(CLASSES)))]
        onset = float(rng.uniform(0, 8))
        offset = float(min(onset + rng.uniform(0.5, 2), 10.0))
        frames = enc.encode_strong([(onset, offset, label)])[None]
        events = decode(
            frames, ["a.wav"], threshold=0.5, median_filter=1,
            frame_seconds=cfg.frame_seconds, clip_seconds=cfg.data.clip_seconds, classes=CLASSES,
        )  # fmt: skip
        assert len(events) == 1
        row = events.iloc[0]
        assert row.event_label == label
        assert abs(row.onset - onset) <= enc.frame_seconds + 1e-9
        assert abs(min(row.offset, 9.984) - min(offset, 9.984)) <= enc.frame_seconds + 1e-9


def test_generated_and_real_layout_load_to_the_same_shapes(mini, tiny_data, tmp_path):
    cfg = _config(tmp_path, **{"train.batch_size": 4, "data.weak_val_fraction": 0.25, "data.clip_seconds": 4.0})
    items = []
    for root in (mini, tiny_data):
        data = build_training_data(load_clips(root, cfg), cfg)
        items.append([ds[0] for ds in (data.synth, data.weak, data.unlabelled, data.synth_val)])
    for (mel_a, strong_a, weak_a, _), (mel_b, strong_b, weak_b, _) in zip(*items, strict=True):
        assert mel_a.shape == mel_b.shape == (128, 251)
        assert strong_a.shape == strong_b.shape == (10, 62)
        assert weak_a.shape == weak_b.shape == (10,)
        assert mel_a.dtype == mel_b.dtype and strong_a.dtype == strong_b.dtype
