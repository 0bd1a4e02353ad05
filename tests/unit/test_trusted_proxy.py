"""CLINIC_TRUSTED_PROXY_HOPS: the services believe X-Forwarded-For/-Proto/-Host only when told
a proxy is in front (services/common/web.py wraps the app in Werkzeug's ProxyFix), and then
only the entries that proxy added; gunicorn itself believes none (services/common/gunicorn_conf.py)."""
from __future__ import annotations

import dataclasses

import pytest
from flask import jsonify, request

from services.common import settings as settings_module
from services.common import web

SPOOFED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}


class NoPool:
    def connection(self, *args, **kwargs):
        raise OSError("no database in unit tests")

    def close(self):
        pass


def echo_app(monkeypatch, hops: int):
    monkeypatch.setattr(web, "make_pool", lambda *args, **kwargs: NoPool())
    settings = dataclasses.replace(settings_module.load("intake", env={"CLINIC_SECRET_KEY": "k"}),
                                   trusted_proxy_hops=hops)
    app = web.build_app(settings, title="t", migrations_package="services.intake", import_name=__name__)

    @app.get("/echo")
    def echo():
        return jsonify(addr=request.remote_addr, scheme=request.scheme, secure=request.is_secure, host=request.host)

    return app.test_client()


def test_without_a_proxy_the_forwarding_headers_are_ignored(monkeypatch):
    client = echo_app(monkeypatch, 0)
    seen = client.get("/echo", headers=SPOOFED, environ_base={"REMOTE_ADDR": "10.0.0.5"},
                      base_url="http://clinic.lan:8001").json
    assert seen == {"addr": "10.0.0.5", "scheme": "http", "secure": False, "host": "clinic.lan:8001"}


def test_behind_one_proxy_its_values_are_the_request_s(monkeypatch):
    client = echo_app(monkeypatch, 1)
    # the proxy (10.0.0.2) replaced X-Forwarded-For with the address it saw
    seen = client.get("/echo", headers={"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https",
                                        "X-Forwarded-Host": "clinic.example"},
                      environ_base={"REMOTE_ADDR": "10.0.0.2"}, base_url="http://intake:8001").json
    assert seen == {"addr": "198.51.100.7", "scheme": "https", "secure": True, "host": "clinic.example"}


def test_behind_one_proxy_only_the_entry_it_added_counts(monkeypatch):
    """A proxy that appended to a client's list (nginx's $proxy_add_x_forwarded_for; ours
    replaces it) still cannot be fooled: the rightmost entry is the proxy's."""
    client = echo_app(monkeypatch, 1)
    seen = client.get("/echo", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7",
                                        "X-Forwarded-Proto": "http, https"},
                      environ_base={"REMOTE_ADDR": "10.0.0.2"}).json
    assert seen["addr"] == "198.51.100.7" and seen["secure"] is True


@pytest.mark.parametrize("raw, hops", [("0", 0), ("1", 1), (" 2 ", 2)])
def test_the_setting(raw, hops):
    assert settings_module.load("intake", env={"CLINIC_TRUSTED_PROXY_HOPS": raw}).trusted_proxy_hops == hops
    assert settings_module.load("intake", env={}).trusted_proxy_hops == 0


@pytest.mark.parametrize("raw", ["-1", "yes", "1.5", ""])
def test_a_setting_that_is_not_a_count_is_refused(raw):
    with pytest.raises(ValueError, match="CLINIC_TRUSTED_PROXY_HOPS"):
        settings_module.load("intake", env={"CLINIC_TRUSTED_PROXY_HOPS": raw})


def test_gunicorn_believes_no_forwarding_header():
    from gunicorn.config import Config

    from services.common import gunicorn_conf

    config = Config()
    config.set("forwarded_allow_ips", gunicorn_conf.forwarded_allow_ips)
    config.set("secure_scheme_headers", gunicorn_conf.secure_scheme_headers)
    assert config.forwarded_allow_ips == [] and config.secure_scheme_headers == {}
