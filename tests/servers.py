"""Real services for integration tests: a throwaway PostgreSQL 15 cluster, moto's S3 over HTTP, the team server.

Why real ones: the team server's failure modes (driver URIs, auth app, proxied S3 artifacts, the Host
check, a server that dies mid-run) only show up against the real processes. Each service runs in its
own process group and is stopped by killing that group, also when a test fails, so nothing is left
behind. The context managers work on their own (benchmarks, debugging); the pytest fixtures at the
bottom wrap them session-wide and are registered in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
STARTUP_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """SIGTERM the whole group (the server and every worker it forked), SIGKILL what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    # Workers can outlive their parent (docs/stack.md §1): kill the group even if the leader is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def find_pg_bin() -> Path | None:
    for candidate in PG_BIN_DIRS:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("postgres") else None


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass
class PostgresCluster:
    port: int
    socket_dir: Path
    user: str
    password: str
    database: str
    process: subprocess.Popen

    def uri(self, database: str | None = None, driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database or self.database}"


@contextlib.contextmanager
def postgres_cluster(databases: tuple[str, ...] = ("mlflowdb",)) -> Iterator[PostgresCluster]:
    """initdb + postgres in the foreground (own process group), a password-protected role owning ``databases``."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise RuntimeError("PostgreSQL binaries (initdb, postgres) not found")
    # pytest's tmp dirs are 0700 root: the postgres user could not enter them. /tmp is world-traversable.
    base = Path(tempfile.mkdtemp(prefix="sedwatt-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    password = secrets.token_hex(12)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if as_postgres:
        shutil.chown(pwfile, "postgres", "postgres")
    process: subprocess.Popen | None = None
    try:
        subprocess.run(
            [*as_postgres, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        port = free_port()
        log = open(base / "server.log", "wb")  # noqa: SIM115 - closed with the process below
        process = subprocess.Popen(
            [*as_postgres, str(pg_bin / "postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=60"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        psql = [*as_postgres, str(pg_bin / "psql"), "-h", str(base), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run([*psql, "-c", "select 1"], capture_output=True)
            if ready.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {(base / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        user = "mlflow"
        statements = [f"CREATE ROLE {user} LOGIN PASSWORD '{password}'"]
        statements += [f"CREATE DATABASE {db} OWNER {user}" for db in databases]
        for sql in statements:
            subprocess.run([*psql, "-c", sql], check=True, capture_output=True)
        yield PostgresCluster(port, base, user, password, databases[0], process)
    finally:
        if process is not None:
            # SIGINT = PostgreSQL's "fast shutdown"; stop_process_group escalates if needed.
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)
            stop_process_group(process)
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Database:
    """A database of the cluster: ``uri`` (the cluster's role, its ``password``), ``name``, and ``admin``, the
    superuser's ``psycopg.connect`` arguments (over the socket, autocommit, no dbname) for looking inside."""

    uri: str
    name: str
    admin: dict[str, object]
    password: str


@contextlib.contextmanager
def new_database(pg: PostgresCluster, prefix: str) -> Iterator[Database]:
    """A new, empty database owned by the cluster's role, dropped afterwards (no schema: whoever opens it
    first creates it)."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin: dict[str, object] = {"host": str(pg.socket_dir), "port": pg.port, "user": "postgres",
                                "autocommit": True}  # fmt: skip
    with psycopg.connect(dbname="postgres", **admin) as conn:
        conn.execute(f"CREATE DATABASE {name} OWNER {pg.user}")
    try:
        yield Database(pg.uri(name), name, admin, pg.password)
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(dbname="postgres", **admin) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- S3 (moto) ----------------------------------------------------------------------------------


@dataclass
class S3Endpoint:
    url: str
    bucket: str
    access_key: str
    secret_key: str
    process: subprocess.Popen

    def env(self) -> dict[str, str]:
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):  # boto3 client, for reading back what the server wrote
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )  # fmt: skip


@contextlib.contextmanager
def moto_s3(bucket: str = "mlflow") -> Iterator[S3Endpoint]:
    """moto's S3 server as a separate process (HTTP, as a MinIO would be), with ``bucket`` created."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    command = [str(moto)] if moto.is_file() else [sys.executable, "-m", "moto.server"]
    process = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto S3 server did not start")
            time.sleep(0.2)
        endpoint = S3Endpoint(f"http://127.0.0.1:{port}", bucket, "AKIA" + secrets.token_hex(8).upper(),
                              "s3-" + secrets.token_hex(16), process)  # fmt: skip
        endpoint.client().create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        stop_process_group(process)


# --- the team server ----------------------------------------------------------------------------


@dataclass
class TeamServer:
    """``python -m sedwatt.tracking.server`` (mlflow server + basic-auth) that a test can stop and restart."""

    port: int
    env: dict[str, str]
    state_dir: Path
    admin_user: str
    admin_password: str
    secrets: list[str] = field(default_factory=list)  # every credential, for leak scans
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import requests

        log = open(self.state_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sedwatt.tracking.server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--state-dir", str(self.state_dir)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_tail()}")
            try:
                # /health skips auth and the Host check; ask the real API (as admin) to know it is serving.
                response = requests.get(
                    f"{self.url}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                    auth=(self.admin_user, self.admin_password), timeout=5,
                )  # fmt: skip
                if response.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready after {STARTUP_TIMEOUT_S:.0f} s: {self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)
            self.process = None
        deadline = time.monotonic() + 15
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)

    def log_tail(self, chars: int = 3000) -> str:
        path = self.state_dir / "server.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def team_server_env(pg: PostgresCluster, s3: S3Endpoint, admin_user: str, admin_password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env.update(s3.env())
    env.update(
        {
            "MLFLOW_BACKEND_STORE_URI": pg.uri(),
            "MLFLOW_ARTIFACTS_DESTINATION": f"s3://{s3.bucket}/artifacts",
            "SEDWATT_AUTH_DB_URI": pg.uri(),
            "MLFLOW_AUTH_ADMIN_USERNAME": admin_user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }
    )
    return env


@contextlib.contextmanager
def team_server(pg: PostgresCluster, s3: S3Endpoint) -> Iterator[TeamServer]:
    state_dir = Path(tempfile.mkdtemp(prefix="sedwatt-server-"))
    admin_user, admin_password = "admin", "adm-" + secrets.token_hex(12)
    env = team_server_env(pg, s3, admin_user, admin_password)
    server = TeamServer(
        port=free_port(), env=env, state_dir=state_dir, admin_user=admin_user, admin_password=admin_password,
        secrets=[admin_password, pg.password, s3.secret_key, env["MLFLOW_FLASK_SERVER_SECRET_KEY"]],
    )  # fmt: skip
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


# --- pytest fixtures (session-wide: each service starts once) ------------------------------------


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL binaries (initdb, postgres) are not installed: apt-get install postgresql-15")
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def optuna_db(pg_cluster: PostgresCluster) -> Iterator[Database]:
    """A new, empty PostgreSQL database per test for an Optuna study (its processes create the schema)."""
    with new_database(pg_cluster, "optuna") as database:
        yield database


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def mlflow_team_server(pg_cluster: PostgresCluster, s3_endpoint: S3Endpoint) -> Iterator[TeamServer]:
    import importlib.util

    if importlib.util.find_spec("flask_wtf") is None:
        pytest.fail("MLflow's basic-auth app needs Flask-WTF: add 'Flask-WTF' (or mlflow[auth]) to the dependencies")
    with team_server(pg_cluster, s3_endpoint) as server:
        yield server
