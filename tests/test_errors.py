"""``first_line``: how a library's exception is quoted inside sedwatt's one-line user errors."""

from __future__ import annotations

import sqlite3

import sqlalchemy

from sedwatt.errors import first_line


def test_first_line_keeps_the_type_and_the_first_line_only():
    assert first_line(RuntimeError("Error(s) in loading state_dict for CRNN:\n\tMissing key(s): cnn.0")) == (
        "RuntimeError: Error(s) in loading state_dict for CRNN:"
    )
    assert first_line(ValueError("  \n  padded\nsecond")) == "ValueError: padded"


def test_first_line_of_an_exception_without_a_message_is_its_type():
    assert first_line(IndexError()) == "IndexError"
    assert first_line(KeyError("")) == "KeyError: ''"  # KeyError's str is the repr of its key


def test_first_line_prefers_the_drivers_own_message_and_is_bounded():
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database file"))
    assert first_line(wrapped) == "OperationalError: unable to open database file"
    assert len(first_line(OSError("x" * 1000))) == 300
    assert first_line(OSError("x" * 1000), limit=20) == "OSError: " + "x" * 11

