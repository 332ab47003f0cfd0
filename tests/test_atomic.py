"""Write-then-rename: a failed write leaves the old file whole and no temporary file behind."""

from __future__ import annotations

import stat

import pytest

from sedwatt.atomic import _umask_mode, atomic_path, write_atomic


def test_write_replaces_whole_file_and_keeps_bytes(tmp_path):
    target = tmp_path / "sub" / "a.csv"
    write_atomic(target, "x,y\n1,2\n")
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.csv"]


def test_failure_keeps_old_content_and_cleans_up(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_default_mode_follows_umask(tmp_path):
    import os

    write_atomic(tmp_path / "first.csv", "a\n")  # the mode is read once per process ...
    old = os.umask(0o027)
    _umask_mode.cache_clear()  # ... so a umask change is seen only after the cache is cleared
    try:
        target = write_atomic(tmp_path / "runs.csv", "a\n")
        again = write_atomic(tmp_path / "again.csv", "a\n")  # from the cache
    finally:
        os.umask(old)
        _umask_mode.cache_clear()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and stat.S_IMODE(again.stat().st_mode) == 0o640
    assert _umask_mode() == 0o666 & ~old


def test_mode_is_applied(tmp_path):
    # mkstemp alone gives 0o600: ask for something else to see the mode take effect
    target = write_atomic(tmp_path / "report.html", "<p>", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
