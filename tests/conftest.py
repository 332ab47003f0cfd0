"""Fixtures shared across test files; add yours below.

The real-service fixtures (a throwaway PostgreSQL cluster, moto's S3 server, the team MLflow server)
live in servers.py and start once per session, only when a test asks for them.
"""

from servers import mlflow_team_server, pg_cluster, s3_endpoint  # noqa: F401
