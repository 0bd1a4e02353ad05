"""Helpers and fixtures (a pytest plugin: tests/conftest.py) for the intake service's
integration tests.

The session database is shared with every other test, so each test makes its own kiosks
(uuid names) and patients (uuid MRNs) and looks only at rows carrying them, except where a
test checks that a refused request wrote nothing at all (global row counts, which no
other test changes while it runs).
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import timedelta

import psycopg
import pytest

from tests.app_support import flask_app, role_conn
from services.admin.credentials import kiosk_add, kiosk_revoke, staff_add
from services.intake.schemas import utc_today


def report_body(**changes) -> dict:
    """A valid report with a fresh MRN; `section__field=value` changes (`...` deletes the key)."""
    body = {
        "patient": {"mrn": f"MRN-{uuid.uuid4().hex[:12]}", "given_name": "Ana", "family_name": "Silva",
                    "birth_date": "1991-04-02", "phone": "+15550100"},
        "activity": {"sport": "running", "high_impact": True},
        "pain": {"locations": ["groin"], "side": "left", "severity": 8, "onset": "sudden",
                 "started_on": (utc_today() - timedelta(days=6)).isoformat(), "direct_trauma": True},
        "function": {"joint_locking": False, "instability": False, "persistent_dysfunction": False},
        "home_care": {"measures": ["rest", "ice"], "days": 21, "improving": "no"},
    }
    body = copy.deepcopy(body)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        target, key_name = (body[section], name) if name else (body, section)
        if value is ...:
            del target[key_name]
        else:
            target[key_name] = value
    return body


@dataclass(frozen=True)
class KioskCreds:
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def new_kiosk(settings) -> KioskCreds:
    name = f"kiosk-test-{uuid.uuid4().hex[:10]}"
    return KioskCreds(name, kiosk_add(settings, name))


def revoke(settings, kiosk: KioskCreds) -> None:
    kiosk_revoke(settings, kiosk.name)


def staff_headers(settings, role: str = "scheduler") -> dict[str, str]:
    token = staff_add(settings, f"intake-test-{role}-{uuid.uuid4().hex[:8]}", role)
    return {"Authorization": f"Bearer {token}"}


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Every row intake has written: reports and outbox events."""
    return {table: conn.execute(f"SELECT count(*) FROM intake.{table}").fetchone()[0]
            for table in ("reports", "outbox")}


def kiosk_report_ids(conn: psycopg.Connection, kiosk: KioskCreds) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT r.report_id::text FROM intake.reports r JOIN intake.kiosks k USING (kiosk_id)"
        " WHERE k.name = %s ORDER BY r.submitted_at", (kiosk.name,))]


def error_of(response) -> dict:
    """The one error shape (services/common/errors.py), checked, and its inner object."""
    body = response.get_json() if hasattr(response, "get_json") else response.json()  # Flask or requests
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"} and {"code", "message"} <= set(error), error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.fixture(scope="session")
def intake_settings(migrated_settings):
    return migrated_settings("intake")


@pytest.fixture
def intake_conn(intake_settings):
    with role_conn(intake_settings) as conn:
        yield conn


@pytest.fixture(scope="module")
def intake_app(intake_settings):
    from services.intake.app import create_app

    with flask_app(create_app, intake_settings) as app:
        yield app


@pytest.fixture
def kiosk(intake_settings) -> KioskCreds:
    return new_kiosk(intake_settings)
