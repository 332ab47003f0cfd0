"""A tracking-server outage on cue: a real ``mlflow server`` behind a TCP proxy that a test switches off and on.

Stopping and restarting the server itself takes seconds and cannot be timed to a moment inside a
run; closing the proxy's listening socket is instant, and clients see what they see when a server
is down: connection refused (open connections are cut too).

The fixtures at the bottom (registered in conftest.py) start one such server for the session:
``outage_server`` (the proxy) and ``outage_tracking`` (MLflow pointed at it, failing fast);
``outage_from_run_creation`` takes the server away the moment a run exists.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import free_port, port_open, stop_process_group


class OutageProxy:
    """Forwards 127.0.0.1:<port> to ``upstream_port`` while up; refuses connections while down."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.outages = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self.listener is not None

    def up(self) -> None:
        with self.lock:
            if self.listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self.lock:
            if self.listener is None:
                return
            self.outages += 1
            listener, self.listener = self.listener, None
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.listener is not listener:  # went down meanwhile
                    client.close()
                    upstream.close()
                    return
                self.connections.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self.lock:
                self.connections.discard(source)
                self.connections.discard(target)


@contextlib.contextmanager
def mlflow_server_behind_proxy(root: Path) -> Iterator[OutageProxy]:
    """``mlflow server`` on a SQLite store with proxied artifacts under ``root``; yields the (up) proxy."""
    import requests

    port = free_port()
    log = open(root / "mlflow-server.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    proxy = OutageProxy(port)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError("mlflow server exited: " + (root / "mlflow-server.log").read_text()[-2000:])
            if port_open(port):
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                    params={"max_results": 1}, timeout=5).status_code == 200:  # fmt: skip
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server not ready: " + (root / "mlflow-server.log").read_text()[-2000:])
            time.sleep(0.5)
        proxy.up()
        yield proxy
    finally:
        proxy.down()
        stop_process_group(process)


# --- pytest fixtures (registered in conftest.py) ------------------------------------------------


@pytest.fixture(scope="session")
def outage_server(tmp_path_factory) -> Iterator[OutageProxy]:
    """One ``mlflow server`` behind an up proxy for the whole session (~10 s to start, once)."""
    with mlflow_server_behind_proxy(tmp_path_factory.mktemp("outage-server")) as proxy:
        yield proxy


@pytest.fixture
def outage_tracking(outage_server: OutageProxy, monkeypatch, tmp_path):
    """An ``MlflowClient`` of the server, MLflow pointed at it and failing fast (a refused request fails now,
    not after backoffs), the CWD in ``tmp_path``; the outage count starts at 0, the server is up after."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", outage_server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    outage_server.outages = 0
    yield mlflow.MlflowClient(outage_server.url)
    outage_server.up()
    mlflow.set_tracking_uri(None)


def outage_from_run_creation(monkeypatch, server: OutageProxy) -> None:
    """The server goes away as soon as a run exists (before the command's first write to it)."""
    import sedwatt.tracking

    original = sedwatt.tracking.start_tracked_run

    @contextlib.contextmanager
    def start_then_fail(**kwargs):
        with original(**kwargs) as run:
            server.down()
            yield run

    monkeypatch.setattr(sedwatt.tracking, "start_tracked_run", start_then_fail)
