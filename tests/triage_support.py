"""Helpers and fixtures (a pytest plugin: tests/conftest.py) for the triage service's
integration tests.

The session database and broker are shared with every other test, so each test makes
its own report ids and looks only at rows and messages carrying them.
"""
from __future__ import annotations

import functools
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from tests.app_support import WorkerThread, role_conn
from tests.kafka_support import admin_security
from services.common.envelope import new_traceparent
from services.common.inbox import Delivery
from services.common.kafka_io import make_producer
from services.common.settings import TOPIC_REPORTS
from services.intake.events import report_event as intake_report_event
from services.triage import worker
from services.triage.domain import default_rules_path, load_rules
from services.triage.translations import load_catalogues

ASSESSED_ON = date(2026, 11, 26)


@pytest.fixture(scope="session")
def rules():
    return load_rules(default_rules_path())


@functools.cache
def catalogues():
    """The shipped catalogues of the patient texts, as the worker loads them at start."""
    return load_catalogues()


@pytest.fixture(scope="session")
def triage_settings(migrated_settings):
    return migrated_settings("triage")


@pytest.fixture
def triage_conn(triage_settings):
    with role_conn(triage_settings) as conn:
        yield conn


# -- reports ---------------------------------------------------------------------------------
def clinical(*, severity: int = 4, onset: str = "gradual", trauma: bool | None = False,
             locations: tuple[str, ...] = ("outer_hip",), locking: bool | None = False,
             instability: bool | None = False, dysfunction: bool | None = False,
             pain_days: int = 5, home_days: int = 0, improving: str = "not_tried",
             high_impact: bool | None = True, today: date = ASSESSED_ON) -> dict:
    """The clinical part of a report body (what intake puts in its event)."""
    return {
        "activity": {"sport": "running", "high_impact": high_impact},
        "pain": {"locations": list(locations), "side": "left", "severity": severity, "onset": onset,
                 "started_on": (today - timedelta(days=pain_days)).isoformat(), "direct_trauma": trauma},
        "function": {"joint_locking": locking, "instability": instability,
                     "persistent_dysfunction": dysfunction},
        "home_care": {"measures": ["rest", "ice"] if home_days else [], "days": home_days,
                      "improving": improving},
    }


def report_event(answers: dict, *, report_id: str | None = None,
                 submitted_at: datetime | None = None) -> dict:
    """A report event exactly as intake builds it."""
    report_id = report_id or str(uuid.uuid4())
    submitted_at = submitted_at or datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)
    patient = {"mrn": f"MRN-{uuid.uuid4().hex[:10]}", "given_name": "Ana", "family_name": "Silva",
               "birth_date": "1991-04-02", "phone": "+15550100"}
    return intake_report_event(report_id, patient, answers, submitted_at.isoformat())


def decide_as_worker(conn, rules, event: dict) -> None:
    """The worker's handler, in one transaction, without Kafka (nor the inbox row)."""
    delivery = Delivery(topic=TOPIC_REPORTS, partition=0, offset=0, key=event["subject"],
                        traceparent=new_traceparent())
    with conn.transaction():
        worker.on_report(rules, catalogues(), conn, event, delivery)


# -- Kafka -----------------------------------------------------------------------------------
def produce(bootstrap: str, topic: str, messages: list[tuple[str, bytes]], traceparent: str | None = None) -> None:
    """(key, value) pairs, in order; the same key keeps them in one partition, in that order."""
    traceparent = traceparent or new_traceparent()
    producer = make_producer(bootstrap, f"triage-test-{uuid.uuid4().hex[:6]}", admin_security(bootstrap))
    try:
        for key, value in messages:
            producer.send(topic, key=key.encode(), value=value,
                          headers=[("traceparent", traceparent.encode())]).get(timeout=30)
    finally:
        producer.close(timeout=5)


class TriageWorker(WorkerThread):
    """What `clinic worker triage` runs, with its own consumer group so that other tests'
    committed offsets do not matter."""

    def __init__(self, settings, rules):
        super().__init__(settings, migrations_package="services.triage", handlers=worker.handlers(rules, catalogues()),
                         group_id=f"clinic-triage-test-{uuid.uuid4().hex[:8]}")  # triage's ACLs allow clinic-triage-*


def wait_for(query, conn, params, until, timeout: float = 60.0):
    """Poll a query until `until(rows)` holds; the rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = conn.execute(query, params).fetchall()
        if until(rows):
            return rows
        assert time.monotonic() < deadline, f"timed out waiting for: {query} {params} (last: {rows})"
        time.sleep(0.2)
