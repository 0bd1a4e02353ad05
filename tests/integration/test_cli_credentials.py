"""The `clinic` console script against the real database: keys and tokens are printed once,
stored only as hashes, and revocation takes effect at once."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from services.common.auth import hash_secret

pytestmark = pytest.mark.integration

CLINIC = Path(sys.executable).with_name("clinic")


@pytest.fixture
def clinic(stack_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **stack_env}
        return subprocess.run([str(CLINIC), *args], env=env, capture_output=True, text=True, timeout=60)

    return run


def test_kiosk_add_prints_one_key_and_stores_only_its_hash(clinic, admin_conn):
    name = f"kiosk-{uuid.uuid4().hex[:8]}"
    result = clinic("kiosk", "add", name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiosk_")
    key = lines[0]
    stored = admin_conn.execute("SELECT key_hash FROM intake.kiosks WHERE name = %s", (name,)).fetchone()
    assert stored == (hash_secret(key),)
    assert key not in str(admin_conn.execute("SELECT * FROM intake.kiosks WHERE name = %s", (name,)).fetchall())


def test_staff_add_and_revoke(clinic, admin_conn):
    name = f"sched-{uuid.uuid4().hex[:8]}"
    result = clinic("staff", "add", name, "--role", "scheduler")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    row = admin_conn.execute("SELECT role, token_hash, revoked_at FROM identity.staff WHERE name = %s",
                             (name,)).fetchone()
    assert row == ("scheduler", hash_secret(token), None)
    assert clinic("staff", "revoke", name).returncode == 0
    assert admin_conn.execute("SELECT revoked_at IS NOT NULL FROM identity.staff WHERE name = %s",
                              (name,)).fetchone() == (True,)


def test_duplicate_names_and_unknown_revocations_are_one_line_errors(clinic):
    name = f"kiosk-{uuid.uuid4().hex[:8]}"
    assert clinic("kiosk", "add", name).returncode == 0
    again = clinic("kiosk", "add", name)
    assert again.returncode == 1
    assert again.stderr.strip() == f"clinic: a kiosk named {name!r} already exists"
    missing = clinic("staff", "revoke", "nobody-" + name)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_bad_role_is_refused_by_the_parser(clinic):
    result = clinic("staff", "add", "x", "--role", "superuser")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_unreachable_database_is_a_one_line_error(stack_env):
    env = {**os.environ, **stack_env, "CLINIC_INTAKE_DATABASE_URL": "postgresql://intake:intake@127.0.0.1:1/clinic"}
    result = subprocess.run([str(CLINIC), "kiosk", "add", "x"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("clinic: cannot reach the database") and result.stderr.count("\n") == 1
