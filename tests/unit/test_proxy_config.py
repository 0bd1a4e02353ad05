"""The TLS proxy's configuration (infra/proxy): what it routes where, what it never exposes, and
that the compose copy is the template rendered (`python -m infra.proxy render --compose`)."""
from __future__ import annotations

import dataclasses
import re

import pytest

from infra.proxy.config import COMPOSE_CONF, COMPOSE_PARAMS, render
from services.common.web import MAX_BODY_BYTES, SECURITY_HEADERS

CONF = render(COMPOSE_PARAMS)
LOCATION = re.compile(r"location (=|\^~) (\S+)\s*\{\s*proxy_pass http://clinic_(\w+)(\S*);")
ROUTES = [(kind, path, svc, rewrite) for kind, path, svc, rewrite in LOCATION.findall(CONF)]


def routed_to(path: str) -> str | None:
    """The service nginx sends `path` to: an exact match first, else the longest ^~ prefix
    (the only kinds of location here; no regular expressions), else nobody (the JSON 404)."""
    for kind, location, svc, _ in ROUTES:
        if kind == "=" and location == path:
            return svc
    prefixes = [(location, svc) for kind, location, svc, _ in ROUTES if kind == "^~" and path.startswith(location)]
    return max(prefixes, key=lambda p: len(p[0]))[1] if prefixes else None


# Every route the services serve (their Flask url_map), but /metrics.
SERVICE_PATHS = {
    "intake": ["/kiosk", "/kiosk/setup", "/kiosk/setup/staff-check", "/kiosk/static/kiosk.js", "/v1/reports",
               "/v1/reports/0b7c6f39-6a5e-4b0e-9a59-5d2f4a6a0c11"],
    "triage": ["/v1/decisions/0b7c6f39-6a5e-4b0e-9a59-5d2f4a6a0c11", "/v1/rules"],
    "referral": ["/queue", "/queue/sign-in", "/queue/sign-out", "/queue/static/queue.js", "/v1/providers",
                 "/v1/referrals", "/v1/referrals/0b7c6f39-6a5e-4b0e-9a59-5d2f4a6a0c11",
                 "/v1/referrals/x/cancel", "/v1/referrals/x/complete", "/v1/referrals/x/reschedule",
                 "/v1/slots", "/v1/slots/bulk"],
}


def test_the_compose_configuration_is_the_template_rendered():
    assert COMPOSE_CONF.read_text() == CONF, "run: python -m infra.proxy render --compose > infra/proxy/compose.conf"


def test_no_placeholder_is_left():
    assert not re.search(r"\{\{\w+\}\}", CONF)


@pytest.mark.parametrize("svc, path", [(svc, path) for svc, paths in SERVICE_PATHS.items() for path in paths])
def test_every_service_path_goes_to_its_service(svc, path):
    assert routed_to(path) == svc


@pytest.mark.parametrize("svc", SERVICE_PATHS)
def test_health_and_api_description_under_the_service_s_name(svc):
    for name in ("healthz", "readyz", "openapi.json"):
        assert ("=", f"/{svc}/{name}", svc, f"/{name}") in ROUTES


@pytest.mark.parametrize("path", ["/metrics", "/intake/metrics", "/referral/metrics", "/", "/kiosks", "/queues",
                                  "/v1/reportsx", "/v1/rulesx", "/v1/rules/x", "/v1/providers/x", "/healthz",
                                  "/readyz", "/openapi.json", "/v1/decisions"])
def test_nothing_else_is_routed(path):
    assert routed_to(path) is None


def test_metrics_appear_nowhere():
    directives = "\n".join(line for line in CONF.splitlines() if not line.lstrip().startswith("#"))
    assert "metrics" not in directives


def test_tls_1_2_and_1_3_only_and_hsts_on_every_answer():
    assert re.findall(r"ssl_protocols ([^;]+);", CONF) == ["TLSv1.2 TLSv1.3"]
    hsts = 'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;'
    https_server = CONF[CONF.index("ssl http2;"):]
    # at the server level and in every location with add_headers of its own (nginx does not
    # inherit add_header into a block that has any)
    blocks = re.split(r"\n        location ", https_server)
    assert hsts in blocks[0]
    for block in blocks[1:]:
        if "add_header" in block:
            assert hsts in block
    for name, value in SECURITY_HEADERS.items():
        assert f'add_header {name} "{value}" always;' in https_server


def test_plain_http_only_redirects():
    http_server = CONF[CONF.index("listen 80;"):CONF.index("listen 443")]
    assert "return 308 https://$host$request_uri;" in http_server and "proxy_pass" not in http_server


def test_the_forwarding_headers_are_the_proxy_s_own():
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in CONF  # replaced, not appended to
    assert "proxy_add_x_forwarded_for" not in CONF
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in CONF
    assert "proxy_set_header X-Forwarded-Host $clinic_forwarded_host;" in CONF
    for dropped in ("X-Forwarded-Port", "X-Forwarded-Prefix", "X-Real-IP", "Forwarded"):
        assert f'proxy_set_header {dropped} "";' in CONF


def test_the_body_limit_is_the_services():
    assert f"client_max_body_size {MAX_BODY_BYTES // 1024}k;" in CONF


def test_a_local_port_is_named_in_the_redirects():
    local = dataclasses.replace(COMPOSE_PARAMS, https_public_port=8443)
    assert "return 308 https://$host:8443$request_uri;" in render(local)


@pytest.mark.parametrize("field", ["cert_file", "intake_upstream", "https_listen"])
def test_a_value_cannot_add_directives(field):
    with pytest.raises(ValueError):
        render(dataclasses.replace(COMPOSE_PARAMS, **{field: "x; include /etc/passwd"}))
