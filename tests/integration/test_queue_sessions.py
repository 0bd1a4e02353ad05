"""The queue page's server-side sessions (services/common/sessions.py) through the referral
app's test client, against the real PostgreSQL: sign-out and revocation end a session at
once (a copied cookie no longer works), idle and absolute timeouts (short settings), the
cookie's attributes over https, loopback http and other plain http, failed sign-ins limited."""
from __future__ import annotations

import dataclasses
import re
import time
import uuid

import pytest

from tests.app_support import flask_app
from tests.referral_support import staff_token

from services.common.auth import hash_secret
from services.referral.app import create_app

pytestmark = pytest.mark.integration

HOST_COOKIE = "__Host-clinic_session"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, token: str, base_url: str = "http://localhost", **environ):
    form = client.get("/queue", base_url=base_url, environ_base=environ).get_data(as_text=True)
    return client.post("/queue/sign-in", data={"token": token, "csrf_token": csrf_of(form)}, base_url=base_url,
                       environ_base=environ)


def session_cookie(response, name: str = HOST_COOKIE) -> str:
    header = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{name}="))
    return header


def cookie_value(response, name: str = HOST_COOKIE) -> str:
    return session_cookie(response, name).split(";")[0].split("=", 1)[1]


def with_cookie(app, value: str, name: str = HOST_COOKIE):
    """Another browser, holding a copy of the cookie."""
    other = app.test_client()
    other.set_cookie(name, value, domain="localhost")
    return other


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def token(referral_settings):
    return staff_token(referral_settings, "scheduler")


def test_sign_out_ends_the_session_and_a_copied_cookie_no_longer_works(app, client, token, ref_conn):
    value = cookie_value(sign_in(client, token))
    thief = with_cookie(app, value)
    assert thief.get("/v1/referrals").status_code == 200

    csrf = csrf_of(client.get("/queue").get_data(as_text=True))
    response = client.post("/queue/sign-out", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert "Max-Age=0" in session_cookie(response) or "Expires=Thu, 01 Jan 1970" in session_cookie(response)
    assert ref_conn.execute("SELECT count(*) FROM referral.staff_sessions WHERE session_hash = %s",
                            (hash_secret(value),)).fetchone() == (0,)
    assert thief.get("/v1/referrals").status_code == 401
    assert "Staff token" in thief.get("/queue").get_data(as_text=True)


def test_sign_out_without_the_session_csrf_token_does_not_end_it(client, token):
    sign_in(client, token)
    client.post("/queue/sign-out", data={"csrf_token": "forged"})
    assert client.get("/v1/referrals").status_code == 200


def test_revoking_the_token_ends_its_sessions_at_once(app, client, referral_settings):
    from services.admin.credentials import staff_add, staff_revoke

    name = f"leaver-{uuid.uuid4().hex[:8]}"
    value = cookie_value(sign_in(client, staff_add(referral_settings, name, "scheduler")))
    copy = with_cookie(app, value)
    assert copy.get("/v1/referrals").status_code == 200
    staff_revoke(referral_settings, name)
    assert copy.get("/v1/referrals").status_code == 401
    assert client.get("/v1/referrals").status_code == 401
    assert "Staff token" in client.get("/queue").get_data(as_text=True)


@pytest.fixture
def short_app(referral_settings, request):
    idle_s, max_s = request.param
    settings = dataclasses.replace(referral_settings, session_idle_minutes=idle_s / 60,
                                   session_max_hours=max_s / 3600)
    with flask_app(create_app, settings) as app:
        yield app


@pytest.mark.parametrize("short_app", [(2.0, 3600.0)], indirect=True)
def test_the_idle_timeout_ends_a_session_that_only_the_page_refreshes(short_app, token):
    client = short_app.test_client()
    sign_in(client, token)
    for _ in range(3):  # activity restarts the idle timeout
        time.sleep(1.0)
        assert client.get("/v1/referrals").status_code == 200
    for _ in range(2):  # the page's own refresh does not
        time.sleep(0.8)
        assert client.get("/v1/referrals", headers={"X-Clinic-Background": "1"}).status_code == 200
    time.sleep(0.6)
    assert client.get("/v1/referrals", headers={"X-Clinic-Background": "1"}).status_code == 401
    assert client.get("/v1/referrals").status_code == 401
    assert "Staff token" in client.get("/queue").get_data(as_text=True)


@pytest.mark.parametrize("short_app", [(3600.0, 3.0)], indirect=True)
def test_the_absolute_timeout_ends_even_an_active_session(short_app, token):
    client = short_app.test_client()
    response = sign_in(client, token)
    assert "Max-Age=3" in session_cookie(response)
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        assert client.get("/v1/referrals").status_code == 200
        time.sleep(0.5)
    time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
    assert client.get("/v1/referrals").status_code == 401


@pytest.mark.parametrize("base_url, name, secure", [
    ("https://clinic.example", HOST_COOKIE, True),      # behind the TLS proxy (X-Forwarded-Proto: https)
    ("http://127.0.0.1:8003", HOST_COOKIE, True),       # loopback: a secure context for Chromium
    ("http://localhost:8003", HOST_COOKIE, True),
    ("http://clinic.lan:8003", "clinic_session", False),  # plain http elsewhere: a browser would drop Secure
])
def test_the_cookie_attributes(client, token, base_url, name, secure):
    response = sign_in(client, token, base_url=base_url)
    assert response.status_code == 303
    cookie = session_cookie(response, name)
    attributes = [part.strip() for part in cookie.split(";")[1:]]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes and "Path=/" in attributes
    assert not any(a.lower().startswith("domain") for a in attributes)
    assert ("Secure" in attributes) is secure
    assert client.get("/v1/referrals", base_url=base_url).status_code == 200


def test_failed_sign_ins_are_limited_per_address(referral_settings):
    settings = dataclasses.replace(referral_settings, auth_failures_per_address=3)
    address = f"192.0.2.{uuid.uuid4().int % 250 + 1}"
    with flask_app(create_app, settings) as app:
        client = app.test_client()
        statuses = [sign_in(client, f"staff_wrong-{uuid.uuid4().hex}", REMOTE_ADDR=address).status_code
                    for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        limited = sign_in(client, f"staff_wrong-{uuid.uuid4().hex}", REMOTE_ADDR=address)
        assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 300
        assert "Too many failed sign-ins" in limited.get_data(as_text=True)
        # Another address is not limited.
        assert sign_in(client, staff_token(referral_settings, "scheduler"),
                       REMOTE_ADDR="198.51.100.7").status_code == 303
