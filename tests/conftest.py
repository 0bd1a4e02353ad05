"""Shared fixtures. Integration and end-to-end tests run against a real PostgreSQL and a
real Kafka broker, started once per test session by the project's own infra runners."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from services.common import settings as settings_module

REPO = Path(__file__).resolve().parents[1]


def _kafka_lib_dir() -> Path:
    # Jars are cached under the repo's state folder and shared by every run (make run too).
    return Path(os.environ.get("CLINIC_KAFKA_LIB_DIR", REPO / ".state" / "kafka" / "lib"))


@pytest.fixture(scope="session")
def infra_dir():
    path = Path(tempfile.mkdtemp(prefix="clinic-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(infra_dir):
    from infra.postgres import running_postgres

    with running_postgres(state_dir=infra_dir) as server:
        yield server


@pytest.fixture(scope="session")
def kafka(infra_dir):
    from infra.kafka.runner import TOPICS, LocalKafka
    from infra.postgres import free_port

    broker = LocalKafka(infra_dir, port=free_port(), controller_port=free_port(), lib_dir=_kafka_lib_dir())
    broker.ensure_jars()
    broker.ensure_formatted()
    proc = broker.start()
    try:
        broker.wait_ready()
        broker.ensure_topics(TOPICS)
        yield broker
    finally:
        broker.stop(proc)


@pytest.fixture(scope="session")
def stack_env(pg, kafka, infra_dir) -> dict[str, str]:
    """Environment variables that point a process (or settings.load) at the test infra."""
    return {
        "CLINIC_STATE_DIR": str(infra_dir),
        "CLINIC_PG_HOST": "127.0.0.1",
        "CLINIC_PG_PORT": str(pg.port),
        "CLINIC_DB_NAME": "clinic",
        "CLINIC_ADMIN_DATABASE_URL": pg.admin_url(),
        "CLINIC_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "CLINIC_SECRET_KEY": "test-secret",
    }


@pytest.fixture(scope="session")
def settings_for(stack_env):
    """settings_for("triage") -> Settings for that service against the test infra."""
    def build(service: str) -> settings_module.Settings:
        return settings_module.load(service, env=dict(stack_env))

    return build


@pytest.fixture
def admin_conn(pg):
    import psycopg

    with contextlib.closing(psycopg.connect(pg.admin_url(), autocommit=True)) as conn:
        yield conn
