"""Small HTTP helpers for end-to-end tests (plain requests against the live stack)."""
from __future__ import annotations

import time
import uuid
from datetime import date, timedelta

import requests

FINAL_STATUSES = {"referred", "waitlisted", "closed"}


def report_body(*, severity: int = 4, onset: str = "gradual", trauma: bool | None = False,
                locking: bool | None = False, mrn: str | None = None, days_ago: int = 5) -> dict:
    return {
        "patient": {"mrn": mrn or f"MRN-{uuid.uuid4().hex[:10]}", "given_name": "Ana",
                    "family_name": "Silva", "birth_date": "1991-04-02", "phone": "+15550100"},
        "activity": {"sport": "running", "high_impact": True},
        "pain": {"locations": ["outer_hip"], "side": "left", "severity": severity, "onset": onset,
                 "started_on": (date.today() - timedelta(days=days_ago)).isoformat(),
                 "direct_trauma": trauma},
        "function": {"joint_locking": locking, "instability": False, "persistent_dysfunction": False},
        "home_care": {"measures": [], "days": 0, "improving": "not_tried"},
    }


URGENT = dict(severity=8, onset="sudden", trauma=True)
SPECIALIST = dict(locking=True)
SELF_CARE = dict()


def submit(base_url: str, key: str, body: dict, idempotency_key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return requests.post(f"{base_url}/v1/reports", json=body, headers=headers, timeout=10)


def wait_for_report(base_url: str, key: str, report_id: str, until=lambda r: r["status"] in FINAL_STATUSES,
                    timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        response = requests.get(f"{base_url}/v1/reports/{report_id}",
                                headers={"Authorization": f"Bearer {key}"}, timeout=10)
        response.raise_for_status()
        last = response.json()
        if until(last):
            return last
        time.sleep(0.3)
    raise AssertionError(f"report {report_id} did not reach the expected state; last seen: {last}")
