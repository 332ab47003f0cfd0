"""Fixtures shared across test files; add yours below.

The real-service fixtures (a throwaway PostgreSQL cluster, moto's S3 server, the team MLflow server)
live in servers.py and start once per session, only when a test asks for them.
"""

import pytest

from servers import mlflow_team_server, pg_cluster, s3_endpoint  # noqa: F401


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The generator's tiny preset with 4 s clips, made once per test session."""
    from sedwatt.cli import main

    root = tmp_path_factory.mktemp("tiny") / "data"
    assert main(["make-data", str(root), "--preset", "tiny", "--seed", "1", "--clip-seconds", "4"]) == 0
    return root
