"""The one error type a user can cause.

Every mistake in user input (a file, a TSV row, a config field) is raised as ``SedwattError`` with a
single-line message naming the place and the problem; the CLI prints that line and exits with 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SedwattError(Exception):
    """A user-facing error: one line that names the file/row/field and what is wrong."""

    def __init__(self, message: str) -> None:
        # Keep messages on one line, whatever the caller formatted.
        super().__init__(" ".join(str(message).split()))


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` of a library's exception, to quote inside a one-line error.

    A database driver's own message (SQLAlchemy's ``orig``) is preferred to its wrapper's; an
    exception without a message is its type alone.
    """
    text = str(getattr(exc, "orig", None) or exc).strip()
    name = exc.__class__.__name__
    return (f"{name}: {text.splitlines()[0]}" if text else name)[:limit]


class DataProblems(SedwattError):
    """Several problems found while validating a dataset; ``problems`` keeps each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        first = self.problems[0] if self.problems else "no details"
        more = f" (and {len(self.problems) - 1} more; run `sedwatt check-data` to list them)" if len(self.problems) > 1 else ""
        super().__init__(f"{first}{more}")
