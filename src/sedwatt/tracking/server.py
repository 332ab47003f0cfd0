"""``make server``: the team's MLflow tracking server, started the one way we tested.

PostgreSQL holds runs and the model registry, an S3-compatible store (AWS, MinIO, moto) holds the
artifacts *behind* the server (``--artifacts-destination``: clients need no cloud credentials), and
MLflow's basic-auth app refuses anonymous clients. Signed-in users read everything but write only to the
experiments and registered models they created (``--default-permission READ``; the creator gets MANAGE and
can grant a teammate EDIT through MLflow's permission API). Every secret travels in environment variables
(MLflow reads ``MLFLOW_BACKEND_STORE_URI``/``MLFLOW_ARTIFACTS_DESTINATION`` itself), never on the
command line where ``ps`` would show it; the auth database URI, which MLflow only reads from its
config file, goes into a 0600 file in the state folder.

Run ``python -m sedwatt.tracking.server --help``; environment::

    MLFLOW_BACKEND_STORE_URI        postgresql+psycopg://USER:PASSWORD@HOST:5432/DB   (required)
    MLFLOW_ARTIFACTS_DESTINATION    s3://BUCKET/PREFIX                                 (required)
    MLFLOW_S3_ENDPOINT_URL          http://minio:9000 (omit for AWS S3)
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   (or any other boto3 credential source)
    MLFLOW_FLASK_SERVER_SECRET_KEY  random string, the same for every server process   (required)
    MLFLOW_AUTH_ADMIN_USERNAME      default "admin"
    MLFLOW_AUTH_ADMIN_PASSWORD      needed the first time, to create the admin user
    SEDWATT_AUTH_DB_URI             users/permissions database (default: the backend store)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from sedwatt.atomic import write_atomic
from sedwatt.errors import SedwattError

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def load_env_file(path: Path, environ: dict[str, str]) -> None:
    """``KEY=VALUE`` lines (``#`` comments, optional quotes); variables already set win."""
    if not path.is_file():
        raise SedwattError(f"{path}: env file not found")
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SedwattError(f"{path} line {number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        environ.setdefault(key, value)


def check_environment(environ: dict[str, str]) -> None:
    """Fail before starting anything, with one line naming the missing piece."""
    if not environ.get("MLFLOW_BACKEND_STORE_URI"):
        raise SedwattError(
            "MLFLOW_BACKEND_STORE_URI is not set: give the PostgreSQL store, e.g. "
            "postgresql+psycopg://mlflow:PASSWORD@127.0.0.1:5432/mlflowdb"
        )
    destination = environ.get("MLFLOW_ARTIFACTS_DESTINATION", "")
    if not destination:
        raise SedwattError("MLFLOW_ARTIFACTS_DESTINATION is not set: give the artifact bucket, e.g. s3://mlflow/artifacts")
    if destination.startswith("s3://"):
        import boto3

        session = boto3.Session(
            aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY"),
            profile_name=environ.get("AWS_PROFILE") or None,
        )
        if session.get_credentials() is None:
            raise SedwattError(
                f"MLFLOW_ARTIFACTS_DESTINATION={destination}: no S3 credentials "
                "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and MLFLOW_S3_ENDPOINT_URL for MinIO)"
            )
    if not environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        raise SedwattError(
            "MLFLOW_FLASK_SERVER_SECRET_KEY is not set: the basic-auth app needs a fixed random secret, "
            "e.g. export MLFLOW_FLASK_SERVER_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    if importlib.util.find_spec("flask_wtf") is None:
        raise SedwattError("MLflow's basic-auth app needs Flask-WTF: pip install 'mlflow[auth]' (or Flask-WTF)")


def write_auth_config(path: Path, database_uri: str, default_permission: str, cache_ttl_s: int = 60) -> Path:
    """The basic-auth ini, 0600 (it holds the auth DB URI with its password), written atomically.

    ``cache_ttl_s``: how long a checked username/password is remembered per worker. Without it every
    request pays a PBKDF2 check (~0.2-0.3 s each on 2 vCPUs, a ``log_model`` makes dozens); the cost
    is that a changed or deleted password may keep working that long on the other workers.
    """
    # configparser interpolates '%': URL-encoded passwords must be escaped.
    text = (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {int(cache_ttl_s)}\n"
    )
    return write_atomic(path, text, mode=0o600)


def server_command(args: argparse.Namespace) -> list[str]:
    """The ``mlflow server`` argv: no secret in it (store and bucket come from the environment)."""
    mlflow_exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow") or "mlflow"
    command = [
        mlflow_exe, "server",
        "--app-name", "basic-auth",
        "--host", args.host,
        "--port", str(args.port),
        "--workers", str(args.workers),
        "--serve-artifacts",
    ]  # fmt: skip
    if args.allowed_hosts:
        command += ["--allowed-hosts", args.allowed_hosts]
    return command


def server_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    env = dict(environ)
    auth_db = env.pop("SEDWATT_AUTH_DB_URI", "") or env["MLFLOW_BACKEND_STORE_URI"]
    ini = write_auth_config(Path(args.state_dir) / "basic_auth.ini", auth_db, args.default_permission, args.auth_cache_ttl)
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
    env.setdefault("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    # A job runner and 7 huey consumers per server otherwise (docs/stack.md §1): nothing here uses them.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sedwatt.tracking.server",
        description="Start the team MLflow server: PostgreSQL store, proxied S3 artifacts, basic-auth.",
    )
    parser.add_argument("--host", default=os.environ.get("SEDWATT_SERVER_HOST", "127.0.0.1"),
                        help="interface to bind (default 127.0.0.1; 0.0.0.0 to serve the team network)")  # fmt: skip
    parser.add_argument("--port", type=int, default=int(os.environ.get("SEDWATT_SERVER_PORT", "5000")))
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    parser.add_argument(
        "--allowed-hosts",
        default=os.environ.get("MLFLOW_SERVER_ALLOWED_HOSTS"),
        help="Host headers to accept when clients use a DNS name; REPLACES MLflow's localhost default, "
        "so list them too, with ports: 'mlflow.lab:*,localhost:*,127.0.0.1:*'",
    )
    parser.add_argument(
        "--default-permission",
        choices=PERMISSIONS,
        default="READ",
        help="what every signed-in user may do on experiments and models someone else created (default READ: "
        "everyone sees every run, writes only to their own; owners grant EDIT per experiment, see README). "
        "EDIT lets any teammate log into, retag or rename anyone's runs",
    )
    parser.add_argument(
        "--auth-cache-ttl",
        type=int,
        default=60,
        metavar="S",
        help="seconds a verified password is cached per worker (default 60; 0 = check every request, ~0.3 s each)",
    )
    parser.add_argument("--state-dir", default=str(Path.home() / ".sedwatt" / "server"),
                        help="where the auth config is written (default ~/.sedwatt/server)")  # fmt: skip
    parser.add_argument("--env-file", type=Path, default=None, help="KEY=VALUE file read first (set variables win)")
    parser.add_argument("--print-command", action="store_true", help="print the mlflow command and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    try:
        if args.env_file is not None:
            load_env_file(args.env_file, environ)
        check_environment(environ)
        command = server_command(args)
        if args.print_command:
            print(" ".join(command))
            return 0
        env = server_environment(args, environ)
    except SedwattError as exc:
        print(f"sedwatt server: error: {exc}", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK and not args.allowed_hosts:
        print(
            "sedwatt server: note: clients that reach this server by a DNS name get 403 until you pass "
            "--allowed-hosts 'NAME:*,localhost:*,127.0.0.1:*'",
            file=sys.stderr,
        )
    print(f"sedwatt server: http://{args.host}:{args.port} (basic-auth; artifacts proxied to "
          f"{environ['MLFLOW_ARTIFACTS_DESTINATION']})", file=sys.stderr, flush=True)  # fmt: skip
    # exec: the server keeps this process id, so stopping it (or its process group) stops MLflow.
    os.execvpe(command[0], command, env)
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
