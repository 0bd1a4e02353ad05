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


# -- the whole stack, started as `make run` starts it ----------------------------------------
class LiveStack:
    """`python -m infra.stack` in a temporary state folder, on free ports, without demo data."""

    def __init__(self, state_dir: Path, env: dict[str, str]):
        self.state_dir = state_dir
        self.env = env
        self.base_url = {svc: f"http://127.0.0.1:{env[f'CLINIC_{svc.upper()}_PORT']}"
                         for svc in settings_module.SERVICES}
        self.proc = None

    def settings(self, service: str = "") -> settings_module.Settings:
        return settings_module.load(service, env=self.env)

    def kiosk_key(self, name: str | None = None) -> str:
        import uuid

        from services.cli import kiosk_add

        return kiosk_add(self.settings(), name or f"kiosk-{uuid.uuid4().hex[:8]}")

    def staff_token(self, role: str = "scheduler", name: str | None = None) -> str:
        import uuid

        from services.cli import staff_add

        return staff_add(self.settings(), name or f"{role}-{uuid.uuid4().hex[:8]}", role)


def _wait_ready(stack: LiveStack, timeout: float) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    pending = dict(stack.base_url)
    while pending and time.monotonic() < deadline:
        if stack.proc.poll() is not None:
            raise RuntimeError(f"infra.stack exited with {stack.proc.returncode}; see {stack.state_dir}/logs")
        for svc, url in list(pending.items()):
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        pending.pop(svc)
            except OSError:
                pass
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"not ready after {timeout}s: {sorted(pending)}; see {stack.state_dir}/logs")


def free_port_pair() -> int:
    """A free port whose next port is free too (the Kafka controller listens there)."""
    import socket

    from infra.postgres import free_port

    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


@pytest.fixture(scope="session")
def live_stack():
    import signal
    import subprocess
    import sys

    from infra.postgres import free_port

    state_dir = Path(tempfile.mkdtemp(prefix="clinic-stack-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
        "CLINIC_STATE_DIR": str(state_dir),
        "CLINIC_DEMO": "0",
        "CLINIC_KAFKA_LIB_DIR": str(_kafka_lib_dir()),
        "CLINIC_PG_PORT": str(free_port()),
        "CLINIC_KAFKA_PORT": str(free_port_pair()),
        "CLINIC_INTAKE_PORT": str(free_port()),
        "CLINIC_TRIAGE_PORT": str(free_port()),
        "CLINIC_REFERRAL_PORT": str(free_port()),
        "CLINIC_SECRET_KEY": "test-secret",
    }
    env["CLINIC_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{env['CLINIC_KAFKA_PORT']}"
    env["CLINIC_ADMIN_DATABASE_URL"] = f"postgresql://clinic_admin:clinic_admin@127.0.0.1:{env['CLINIC_PG_PORT']}/clinic"
    stack = LiveStack(state_dir, env)
    try:
        with open(state_dir / "stack-console.log", "wb") as console:
            stack.proc = subprocess.Popen([sys.executable, "-m", "infra.stack"], env=env, cwd=REPO,
                                          stdout=console, stderr=subprocess.STDOUT)
            try:
                _wait_ready(stack, timeout=240)
                yield stack
            finally:
                stack.proc.send_signal(signal.SIGTERM)
                try:
                    stack.proc.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    stack.proc.kill()
                    stack.proc.wait()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
