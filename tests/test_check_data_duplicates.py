"""Exactly repeated strong-label rows: `sedwatt check-data` warns (file, lines, row) and still exits 0."""

from __future__ import annotations

import logging
import shutil

import pytest

from desed_mini import make_mini_desed
from sedwatt.cli import main
from sedwatt.config import load_config
from sedwatt.data import tsv
from sedwatt.data.scan import load_clips

SYNTH_TSV = "metadata/train/synthetic21_train/soundscapes.tsv"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return make_mini_desed(tmp_path_factory.mktemp("desed_mini_dup"))


@pytest.fixture
def duplicated(mini, tmp_path):
    """The mini DESED with 0.wav's Dog event (line 2) written twice more, once with other digits."""
    root = tmp_path / "dup"
    shutil.copytree(mini, root)
    path = root / SYNTH_TSV
    lines = path.read_text().splitlines()
    assert lines[1] == "0.wav\t0.213\t2.540\tDog"  # what the warning must quote
    path.write_text(
        path.read_text()
        + "0.wav\t0.213\t2.540\tDog\n"  # line 8: the same row
        + "0.wav\t0.2130\t2.54\tDog\n"  # line 9: the same event, written differently
        + "0.wav\t0.213\t2.540\tCat\n"  # line 10: same times, another label: not a duplicate
    )
    return root


def test_check_data_warns_about_a_duplicated_row_and_exits_0(duplicated, capsys):
    assert main(["check-data", str(duplicated), "--sets", "synth_train", "synth_val"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {duplicated / SYNTH_TSV}:2: duplicated row '0.wav 0.213 2.540 Dog' "
        "(same clip, onset, offset and label) at lines 2, 8, 9"
    ]
    assert "OK, 1 warning(s)" in out
    # the rows are kept: 5 events in the file + 3 appended
    assert "synth_train       4 clips, 8 events" in out


def test_check_data_without_duplicates_gives_no_warning(mini, capsys):
    assert main(["check-data", str(mini)]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err and "warning" not in out
    assert f"{mini}: OK (fingerprint " in out


def test_duplicates_alongside_a_problem_still_exit_2(duplicated, capsys):
    path = duplicated / SYNTH_TSV
    path.write_text(path.read_text() + "2.wav\t1.0\t2.0\tUnicorn\n")
    assert main(["check-data", str(duplicated), "--sets", "synth_train"]) == 2
    err = capsys.readouterr().err
    assert "unknown label 'Unicorn'" in err and "duplicated row '0.wav 0.213 2.540 Dog'" in err


def test_reader_reports_each_repeated_row_once(duplicated):
    problems: list[str] = []
    warnings: list[str] = []
    labels = tsv.read_strong(duplicated / SYNTH_TSV, tuple(load_config().data.classes), problems, warnings)
    assert not problems
    assert len(warnings) == 1 and warnings[0].endswith("at lines 2, 8, 9")
    assert labels.events["0.wav"].count((0.213, 2.54, "Dog")) == 3
    # without a warnings list the reader behaves as before
    assert (
        tsv.read_strong(duplicated / SYNTH_TSV, tuple(load_config().data.classes), []).events == labels.events
    )


def test_training_loads_the_data_and_logs_one_summary_line(duplicated, tmp_path, caplog):
    config = load_config(None, [f"data.cache_dir={tmp_path / 'cache'}", "train.progress=false"])
    with caplog.at_level(logging.WARNING, logger="sedwatt.data.scan"):
        scan = load_clips(duplicated, config)
    assert len(scan.warnings) == 1
    summary = [r.getMessage() for r in caplog.records if r.name == "sedwatt.data.scan"]
    assert len(summary) == 1 and "1 warning(s)" in summary[0] and "sedwatt check-data" in summary[0]
