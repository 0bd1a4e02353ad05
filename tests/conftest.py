"""Shared fixtures. Integration and end-to-end tests run against a real PostgreSQL and a
real Kafka broker, started once per test session by the project's own infra runners."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import pytest

from services.common import settings as settings_module
from services.common.kafka_sockets import close_refused_sockets
from tests.kafka_support import remember_admin
from tests.live_stack import kafka_brokers, kafka_lib_dir

REPO = Path(__file__).resolve().parents[1]

# Each service's fixtures (its settings, role connection, app...), next to its helpers;
# test modules import only the helpers.
pytest_plugins = ["tests.intake_support", "tests.triage_support", "tests.referral_support"]


def pytest_configure(config):
    # Tests' own kafka-python clients close a refused socket as the services' do.
    close_refused_sockets()


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
    """The session's broker; with CLINIC_KAFKA_BROKERS=3, a three-broker cluster instead
    (infra/kafka/cluster.py: every topic on 3 replicas, min.insync.replicas=2), which every
    test using this fixture then runs against (docs/kafka-cluster.md)."""
    from infra.kafka.cluster import LocalKafkaCluster
    from infra.kafka.runner import LocalKafka
    from infra.postgres import free_port

    if kafka_brokers() == 3:
        ports = [free_port() for _ in range(6)]
        broker = LocalKafkaCluster(infra_dir, ports[:3], ports[3:], lib_dir=kafka_lib_dir())
    else:
        broker = LocalKafka(infra_dir, port=free_port(), controller_port=free_port(), lib_dir=kafka_lib_dir())
    # SASL/SCRAM and ACLs as in `make run`: the services' settings (stack_env) find their
    # principals' passwords in infra_dir/secrets; tests' own clients act as clinic-admin
    # (tests/kafka_support.py); test workers use groups under their service's prefix.
    remember_admin(broker.bootstrap, broker.client_security())
    with broker.running():
        yield broker


# Every test client and local server talks from 127.0.0.1, and bad tokens are reused across
# tests: limits that no test trips unless it sets its own (tests/integration/test_auth_limits.py).
GENEROUS_LIMITS = {"CLINIC_AUTH_FAILURES_PER_ADDRESS": "100000", "CLINIC_AUTH_FAILURES_PER_CREDENTIAL": "100000",
                   "CLINIC_KIOSK_REPORTS_PER_HOUR": "100000"}


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
        **GENEROUS_LIMITS,
    }


@pytest.fixture(scope="session")
def settings_for(stack_env):
    """settings_for("triage") -> Settings for that service against the test infra."""
    def build(service: str) -> settings_module.Settings:
        return settings_module.load(service, env=dict(stack_env))

    return build


@pytest.fixture(scope="session")
def migrated_settings(settings_for):
    """migrated_settings("triage") -> that service's Settings, its migrations applied
    (the bootstrap has created what they need, btree_gist included)."""
    from services.common.db import apply_migrations

    def build(service: str) -> settings_module.Settings:
        import psycopg

        settings = settings_for(service)
        with psycopg.connect(settings.database_url) as conn:
            apply_migrations(conn, service, f"services.{service}")
        return settings

    return build


@pytest.fixture
def client(app):
    """The Flask test client of the module's `app` fixture."""
    return app.test_client()


@pytest.fixture
def admin_conn(pg):
    import psycopg

    with contextlib.closing(psycopg.connect(pg.admin_url(), autocommit=True)) as conn:
        yield conn


# -- the whole stack, started as `make run` starts it ----------------------------------------
@pytest.fixture(scope="session")
def live_stack():
    """`python -m infra.stack` on a temporary state folder and free ports, without demo data."""
    from tests.live_stack import running_stack

    with running_stack(prefix="clinic-stack-", ready_timeout=240) as stack:
        yield stack


@pytest.fixture(scope="session")
def tls_live_stack():
    """The same, with the TLS proxy (Debian's nginx, infra/proxy) in front: CLINIC_TLS_PROXY=1,
    the APIs trusting one proxy hop; `proxy_url`, `proxy_http_url` and `proxy_ca` say where."""
    from tests.live_stack import running_stack

    with running_stack(prefix="clinic-tls-stack-", ready_timeout=240, tls_proxy=True) as stack:
        yield stack
