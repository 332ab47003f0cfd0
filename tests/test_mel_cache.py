"""The mel cache hashes a clip's content once per (path, size, mtime), not on every access."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import sedwatt.features as features
from sedwatt.features import MelCache


@pytest.fixture
def hashes(monkeypatch):
    calls: list[str] = []
    real = features.content_hash

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(features, "content_hash", counting)
    return calls


def test_key_is_the_content_sha1_and_is_hashed_once(tmp_path, hashes):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    cache = MelCache(tmp_path / "cache", "fp")
    key = cache.content_key(clip)
    assert key == hashlib.sha1(clip.read_bytes()).hexdigest()
    assert cache.content_key(clip) == key
    # a new process (a DataLoader worker, a later run) reads the remembered hash instead of the clip
    assert MelCache(tmp_path / "cache", "fp").content_key(clip) == key
    assert len(hashes) == 1


def test_changed_clip_is_hashed_again(tmp_path, hashes):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"one")
    cache = MelCache(tmp_path / "cache", "fp")
    first = cache.content_key(clip)
    clip.write_bytes(b"other")  # new size
    second = cache.content_key(clip)
    assert second == hashlib.sha1(b"other").hexdigest() != first
    st = clip.stat()
    clip.write_bytes(b"OTHER")  # same size: only the mtime tells
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert MelCache(tmp_path / "cache", "fp").content_key(clip) == hashlib.sha1(b"OTHER").hexdigest()
    assert len(hashes) == 3


def test_torn_memo_is_recomputed(tmp_path, hashes):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"abc")
    cache = MelCache(tmp_path / "cache", "fp")
    cache.content_key(clip)
    for memo in cache.stat_dir.iterdir():
        memo.write_text("12")
    assert MelCache(tmp_path / "cache", "fp").content_key(clip) == hashlib.sha1(b"abc").hexdigest()
    assert len(hashes) == 2


def test_same_content_elsewhere_shares_the_mel(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "sub" / "b.wav"
    b.parent.mkdir()
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    cache = MelCache(tmp_path / "cache", "fp")
    cache.put(cache.content_key(a), np.ones((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(cache.get(cache.content_key(b)), np.ones((2, 3), dtype=np.float32))


def test_another_feature_config_reuses_the_hash(tmp_path, hashes):
    """The content hash is the clip's, not the features': a second fingerprint does not read the clip again."""
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"clip bytes")
    key = MelCache(tmp_path / "cache", "0123456789abcdef").content_key(clip)
    other = MelCache(tmp_path / "cache", "fedcba9876543210")
    assert other.content_key(clip) == key and len(hashes) == 1
    other.put(key, np.zeros((1, 1), dtype=np.float32))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["0123456789abcdef", "fedcba9876543210", "stat"]
