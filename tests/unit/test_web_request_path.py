"""The per-request shortcuts of services/common/web.py keep Flask's answers: ensure_sync's memo,
the security headers in one pass, the cookie-less session."""
from __future__ import annotations

import gc

from flask import Response, session

from services.common.web import SECURITY_HEADERS, ClinicFlask, CookieSessions, security_headers


def test_plain_functions_are_remembered_and_forgotten_with_them():
    app = ClinicFlask(__name__)

    def view():
        return "ok"

    assert app.ensure_sync(view) is view and app.ensure_sync(view) is view

    def one_request():
        def callback(response):
            return response
        assert app.ensure_sync(callback) is callback

    one_request()
    gc.collect()
    assert list(app._clinic_sync.keys()) == [view]


def test_security_headers_added_once_and_an_own_policy_kept_unframeable():
    plain = security_headers(Response("{}"))
    for name, value in SECURITY_HEADERS.items():
        assert plain.headers.getlist(name) == [value]
    own = Response("<p>", headers={"Content-Security-Policy": "default-src 'self'", "Cache-Control": "max-age=60"})
    own = security_headers(own)
    assert own.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert own.headers.getlist("Cache-Control") == ["max-age=60"]
    framed = security_headers(Response("<p>", headers={"content-security-policy": "frame-ancestors 'self'"}))
    assert framed.headers.getlist("Content-Security-Policy") == ["frame-ancestors 'self'"]


def test_a_request_without_cookies_gets_an_empty_session_and_with_one_its_session():
    app = ClinicFlask(__name__)
    app.secret_key = "test"
    app.session_interface = CookieSessions()

    @app.post("/set")
    def set_value():
        session["n"] = 1
        return "set"

    @app.get("/get")
    def get_value():
        return str(session.get("n"))

    client = app.test_client()
    assert client.get("/get").text == "None"
    assert client.post("/set").status_code == 200
    assert client.get("/get").text == "1"
