"""Revoking a credential with `clinic` ends it at once on every service."""
from __future__ import annotations

import uuid

import pytest
import requests

from services.admin.credentials import kiosk_revoke, staff_revoke

from .flow_helpers import report_body, submit

pytestmark = pytest.mark.e2e


def _get(url: str, token: str) -> int:
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def test_staff_revocation_applies_to_all_services_at_once(live_stack):
    name = f"sched-{uuid.uuid4().hex[:8]}"
    token = live_stack.staff_token("scheduler", name=name)
    urls = [f"{live_stack.base_url['triage']}/v1/rules", f"{live_stack.base_url['referral']}/v1/referrals"]
    assert [_get(url, token) for url in urls] == [200, 200]
    staff_revoke(live_stack.settings(), name)
    assert [_get(url, token) for url in urls] == [401, 401]


def test_kiosk_revocation_applies_at_once(live_stack):
    name = f"kiosk-{uuid.uuid4().hex[:8]}"
    key = live_stack.kiosk_key(name)
    intake = live_stack.base_url["intake"]
    assert submit(intake, key, report_body()).status_code == 202
    kiosk_revoke(live_stack.settings(), name)
    refused = submit(intake, key, report_body())
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_a_kiosk_key_is_not_a_staff_token(live_stack):
    key = live_stack.kiosk_key()
    assert _get(f"{live_stack.base_url['triage']}/v1/rules", key) == 401
    assert _get(f"{live_stack.base_url['referral']}/v1/referrals", key) == 401
