"""The team-server launcher without starting anything: checks, the auth file, argv free of secrets."""

from __future__ import annotations

import argparse
import configparser
import stat

import pytest

from sedwatt.errors import SedwattError
from sedwatt.tracking import server

PG = "postgresql+psycopg://mlflow:pg%2Fsecret@127.0.0.1:5432/mlflowdb"


def good_env(**changes: str) -> dict[str, str]:
    env = {
        "MLFLOW_BACKEND_STORE_URI": PG,
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow/artifacts",
        "AWS_ACCESS_KEY_ID": "AKIA123",
        "AWS_SECRET_ACCESS_KEY": "s3-secret-value",
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-value",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-secret-value",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v}


def args(tmp_path, *extra: str) -> argparse.Namespace:
    return server.build_parser().parse_args(["--state-dir", str(tmp_path / "state"), *extra])


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_BACKEND_STORE_URI is not set"),
        ("MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_ARTIFACTS_DESTINATION is not set"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_FLASK_SERVER_SECRET_KEY is not set"),
    ],
)
def test_missing_settings_are_named_before_anything_starts(missing, message):
    with pytest.raises(SedwattError, match=message):
        server.check_environment(good_env(**{missing: ""}))


def test_s3_destination_without_credentials_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SedwattError, match="no S3 credentials"):
        server.check_environment(good_env(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY=""))


def test_command_line_carries_no_secret_and_binds_loopback(tmp_path):
    command = server.server_command(args(tmp_path))
    joined = " ".join(command)
    assert command[1] == "server" and "--app-name basic-auth" in joined
    assert "--host 127.0.0.1" in joined and "--serve-artifacts" in joined
    for secret in ("pg%2Fsecret", "s3-secret-value", "flask-secret-value", "admin-secret-value", "s3://"):
        assert secret not in joined


def test_allowed_hosts_are_passed_through(tmp_path):
    command = server.server_command(args(tmp_path, "--allowed-hosts", "mlflow.lab:*,localhost:*"))
    assert command[command.index("--allowed-hosts") + 1] == "mlflow.lab:*,localhost:*"


def test_environment_gets_a_private_auth_config(tmp_path):
    env = server.server_environment(args(tmp_path, "--default-permission", "EDIT"), good_env())
    ini = tmp_path / "state" / "basic_auth.ini"
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(ini)
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    parsed = configparser.ConfigParser()
    parsed.read(ini)
    assert parsed["mlflow"]["database_uri"] == PG  # '%' survived configparser's interpolation
    assert parsed["mlflow"]["default_permission"] == "EDIT"  # a team that opts in to shared writing
    assert parsed.getint("mlflow", "auth_cache_ttl_seconds") == 60
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_BACKEND_STORE_URI"] == PG  # MLflow reads the store from the environment


def test_separate_auth_database(tmp_path):
    other = "postgresql+psycopg://auth:pw@127.0.0.1:5432/auth"
    env = server.server_environment(args(tmp_path), good_env(SEDWATT_AUTH_DB_URI=other))
    parsed = configparser.ConfigParser()
    parsed.read(env["MLFLOW_AUTH_CONFIG_PATH"])
    assert parsed["mlflow"]["database_uri"] == other
    assert "SEDWATT_AUTH_DB_URI" not in env
    # Without the flag a teammate may read, not write, what others created.
    assert parsed["mlflow"]["default_permission"] == "READ"


def test_env_file_fills_only_unset_variables(tmp_path):
    path = tmp_path / "server.env"
    path.write_text("# team settings\nexport A=1\nB='two words'\nC=\"3\"\n")
    environ = {"C": "kept"}
    server.load_env_file(path, environ)
    assert environ == {"A": "1", "B": "two words", "C": "kept"}
    path.write_text("not a setting\n")
    with pytest.raises(SedwattError, match="line 1"):
        server.load_env_file(path, {})


def test_main_reports_a_user_error_in_one_line(monkeypatch, capsys, tmp_path):
    for name in list(good_env()):
        monkeypatch.delenv(name, raising=False)
    assert server.main(["--state-dir", str(tmp_path), "--print-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sedwatt server: error: MLFLOW_BACKEND_STORE_URI") and "\n" not in err
