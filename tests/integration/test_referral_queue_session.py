"""The /queue page's sign-in, session cookie and CSRF protection, through the test client."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.app_support import flask_app
from tests.referral_support import decide, mrn, referral_for_report, staff_token

from services.common.auth import hash_secret
from services.referral.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def token(referral_settings):
    return staff_token(referral_settings, "scheduler")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, token: str):
    form = client.get("/queue").get_data(as_text=True)
    return client.post("/queue/sign-in", data={"token": token, "csrf_token": csrf_of(form)})


def test_the_page_asks_for_a_token_first(client):
    response = client.get("/queue")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<label for="token">Staff token</label>' in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    for asset in re.findall(r'(?:href|src)="(/queue/static/[^"]+)"', html) or ["missing"]:
        with client.get(asset) as served:
            assert served.status_code == 200, asset


def test_signing_in_sets_a_strict_http_only_host_cookie_holding_an_opaque_id(app, client, token, ref_conn):
    response = sign_in(client, token)
    assert response.status_code == 303 and response.headers["Location"].endswith("/queue")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-clinic_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43 and token not in cookie and hash_secret(token) not in cookie
    # Only the id's hash is stored, in the referral schema.
    assert ref_conn.execute("SELECT count(*) FROM referral.staff_sessions WHERE session_hash = %s",
                            (hash_secret(value),)).fetchone() == (1,)

    page = client.get("/queue")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="queue"' in html
    assert re.search(r'<meta name="csrf-token" content="[^"]+">', html)
    assert client.get("/v1/referrals").status_code == 200  # the cookie works for the JSON API


def test_a_wrong_token_or_a_missing_form_token_is_refused(client, token):
    response = sign_in(client, "staff_wrong")
    assert response.status_code == 401
    assert "not valid" in response.get_data(as_text=True)
    response = client.post("/queue/sign-in", data={"token": token})
    assert response.status_code == 403
    assert client.get("/v1/referrals").status_code == 401


def test_api_writes_with_the_cookie_need_the_csrf_header(client, token, ref_conn, now):
    referral_id = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))["referral_id"]
    sign_in(client, token)
    url = f"/v1/referrals/{referral_id}/cancel"

    response = client.post(url, json={"reason": "forged"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "csrf_failed"
    response = client.post(url, json={"reason": "forged"}, headers={"X-CSRF-Token": "guess"})
    assert response.status_code == 403

    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/queue").get_data(as_text=True)).group(1)
    response = client.post(url, json={"reason": "patient called"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"


def test_signing_out_ends_the_session(client, token):
    sign_in(client, token)
    csrf = csrf_of(client.get("/queue").get_data(as_text=True))
    response = client.post("/queue/sign-out", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert client.get("/v1/referrals").status_code == 401
    assert "Staff token" in client.get("/queue").get_data(as_text=True)


def test_a_revoked_token_signs_the_page_out(client, referral_settings):
    from services.admin.credentials import staff_add, staff_revoke

    name = f"leaver-{uuid.uuid4().hex[:8]}"
    sign_in(client, staff_add(referral_settings, name, "scheduler"))
    assert 'id="queue"' in client.get("/queue").get_data(as_text=True)
    staff_revoke(referral_settings, name)
    assert "Staff token" in client.get("/queue").get_data(as_text=True)
    assert client.get("/v1/referrals").status_code == 401
