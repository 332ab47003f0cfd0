"""Starting a command the way a newcomer types it (bash, a shell without the venv), until it answers HTTP."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import stop_process_group

STARTUP_S = 180.0


def bare_env() -> dict[str, str]:
    """The newcomer's shell: no activated venv, no tracking URI exported."""
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error is a status, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a local test server
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@contextlib.contextmanager
def started(command: str, cwd: Path, ready_url: str) -> Iterator[subprocess.Popen]:
    """Run ``command`` as a user would type it (bash, own process group) until ``ready_url`` answers 200."""
    log = cwd / f"server-{abs(hash(command))}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=bare_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            with contextlib.suppress(OSError):
                if http_get(ready_url)[0] == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command!r} did not answer on {ready_url}:\n{log.read_text()[-3000:]}")
            time.sleep(1.0)
        yield proc
    finally:
        stop_process_group(proc)
