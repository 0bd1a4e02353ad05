"""The TLS proxy (Debian's nginx, infra/proxy) in front of the live stack, as
`CLINIC_TLS_PROXY=1 make run` starts it: HTTPS with the generated certificate, HSTS, routing
to each service, plain HTTP redirected, /metrics out of reach, the forwarding headers the
proxy's own (a client's X-Forwarded-For is replaced), and its refusals in the one error shape."""
from __future__ import annotations

import http.client
import os
import socket
import ssl
import uuid
import warnings

import psycopg
import pytest
import requests
from requests.adapters import HTTPAdapter

from .flow_helpers import SELF_CARE, report_body

pytestmark = pytest.mark.e2e

HSTS = "max-age=31536000; includeSubDomains"


class FromAddress(HTTPAdapter):
    """Connections from another loopback address (Linux routes all of 127/8 to lo), so that
    the client the proxy sees (127.0.0.2) differs from the proxy the services see (127.0.0.1)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


@pytest.fixture(scope="module")
def https(tls_live_stack):
    session = requests.Session()
    session.verify = tls_live_stack.proxy_ca  # the local CA the stack made
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture(scope="module")
def kiosk_key(tls_live_stack):
    return tls_live_stack.kiosk_key()


@pytest.fixture(scope="module")
def scheduler(tls_live_stack):
    name = f"tls-scheduler-{uuid.uuid4().hex[:8]}"
    return name, tls_live_stack.staff_token("scheduler", name=name)


def is_error_shape(response: requests.Response, status: int, code: str) -> bool:
    body = response.json()
    return (response.status_code == status and response.headers["Content-Type"].startswith("application/json")
            and set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"])


def raw_get(stack, path: str) -> tuple[int, bytes]:
    """GET exactly `path` (no client-side normalisation of dots or escapes) over TLS."""
    context = ssl.create_default_context(cafile=stack.proxy_ca)
    connection = http.client.HTTPSConnection("localhost", int(stack.proxy_url.rsplit(":", 1)[1]),
                                             context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_each_service_is_reached_over_https_with_hsts(tls_live_stack, https):
    for svc, direct in tls_live_stack.base_url.items():
        title = requests.get(f"{direct}/openapi.json", timeout=10).json()["info"]["title"]
        for path in ("healthz", "readyz", "openapi.json"):
            response = https.get(f"{tls_live_stack.proxy_url}/{svc}/{path}", timeout=10)
            assert response.status_code == 200, (svc, path, response.text)
            assert response.headers["Strict-Transport-Security"] == HSTS
        assert response.json()["info"]["title"] == title  # the service named in the prefix
    for page, marker in (("/kiosk", "kiosk"), ("/kiosk/setup", "kiosk"), ("/queue", "Staff token")):
        response = https.get(f"{tls_live_stack.proxy_url}{page}", timeout=10)
        assert response.status_code == 200 and marker in response.text, page
        assert response.headers["Strict-Transport-Security"] == HSTS
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_api_paths_go_to_their_services(tls_live_stack, https, kiosk_key, scheduler):
    base = tls_live_stack.proxy_url
    staff = {"Authorization": f"Bearer {scheduler[1]}"}
    # intake: only intake knows kiosk keys
    sent = https.post(f"{base}/v1/reports", json=report_body(**SELF_CARE),
                      headers={"Authorization": f"Bearer {kiosk_key}"}, timeout=10)
    assert sent.status_code == 202, sent.text
    report_id = sent.json()["report_id"]
    assert sent.headers["Strict-Transport-Security"] == HSTS
    seen = https.get(f"{base}/v1/reports/{report_id}", headers={"Authorization": f"Bearer {kiosk_key}"},
                     timeout=10)
    assert seen.status_code == 200 and seen.json()["report_id"] == report_id
    # triage: the rule file; a decision (or its 404 while triage is deciding), in the one shape
    rules = https.get(f"{base}/v1/rules", headers=staff, timeout=10)
    assert rules.status_code == 200 and rules.json()
    decision = https.get(f"{base}/v1/decisions/{uuid.uuid4()}", headers=staff, timeout=10)
    assert is_error_shape(decision, 404, "not_found")
    # referral: the queue, slots, providers (a scheduler may not add one: the referral service's 403)
    assert "items" in https.get(f"{base}/v1/referrals", headers=staff, timeout=10).json()
    assert "items" in https.get(f"{base}/v1/slots", headers=staff, timeout=10).json()
    providers = https.post(f"{base}/v1/providers", json={}, headers=staff, timeout=10)
    assert is_error_shape(providers, 403, "forbidden"), providers.text


def test_errors_through_the_proxy_are_the_one_json_shape(tls_live_stack, https):
    base = tls_live_stack.proxy_url
    unauthorized = https.get(f"{base}/v1/referrals", timeout=10)  # the service's own 401
    assert is_error_shape(unauthorized, 401, "unauthorized")
    assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")
    assert unauthorized.headers["Strict-Transport-Security"] == HSTS
    for path in ("/", "/v1/nothing", "/kiosks"):  # the proxy's own 404
        missing = https.get(f"{base}{path}", timeout=10)
        assert is_error_shape(missing, 404, "not_found"), path
        assert missing.headers["Strict-Transport-Security"] == HSTS
        assert missing.headers["X-Content-Type-Options"] == "nosniff"
        assert missing.headers["Cache-Control"] == "no-store"
    huge = https.post(f"{base}/v1/reports", data=b"{" + b" " * (70 * 1024) + b"}",
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert is_error_shape(huge, 413, "payload_too_large")
    assert huge.headers["Strict-Transport-Security"] == HSTS


def test_plain_http_is_redirected_to_https(tls_live_stack):
    https_port = tls_live_stack.proxy_url.rsplit(":", 1)[1]
    for path in ("/queue", "/v1/reports?cursor=abc", "/metrics"):
        response = requests.get(f"{tls_live_stack.proxy_http_url}{path}", allow_redirects=False, timeout=10)
        assert response.status_code == 308, path
        assert response.headers["Location"] == f"https://localhost:{https_port}{path}"
        assert "Strict-Transport-Security" not in response.headers  # meaningless over http
    # plain http sent to the HTTPS port is sent to https too
    response = requests.get(f"http://localhost:{https_port}/queue", allow_redirects=False, timeout=10)
    assert response.status_code == 308
    assert response.headers["Location"] == f"https://localhost:{https_port}/queue"


def test_metrics_are_not_reachable_through_the_proxy(tls_live_stack):
    for path in ("/metrics", "/intake/metrics", "/referral/metrics", "//metrics", "/v1/reports/../../metrics",
                 "/v1/reports/%2e%2e/%2e%2e/metrics", "/kiosk/..%2fmetrics", "/METRICS", "/metrics/"):
        status, body = raw_get(tls_live_stack, path)
        assert status in (400, 404), (path, status)
        assert b"clinic_http_requests_total" not in body and b"# HELP" not in body, path
    # while the services still serve it on their own ports (Prometheus' way in)
    direct = requests.get(f"{tls_live_stack.base_url['intake']}/metrics", timeout=10)
    assert "clinic_http_requests_total" in direct.text


def test_only_tls_1_2_and_up_are_spoken(tls_live_stack):
    port = int(tls_live_stack.proxy_url.rsplit(":", 1)[1])

    def handshake(version: ssl.TLSVersion) -> str:
        context = ssl.create_default_context(cafile=tls_live_stack.proxy_ca)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer the old versions
        with warnings.catch_warnings():  # Python deprecates choosing them, which is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version()

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION"):  # the server's refusal
            handshake(old)


def test_the_services_see_the_client_address_the_proxy_saw_not_the_one_claimed(tls_live_stack, kiosk_key,
                                                                               scheduler):
    """A staff read is audited with the client's address (request.remote_addr, which the
    abuse limits count by too): the connection's source as the proxy saw it, whatever
    X-Forwarded-For/-Proto/-Host the client sent."""
    name, token = scheduler
    with requests.Session() as session:
        session.verify = tls_live_stack.proxy_ca
        session.trust_env = False
        session.mount("https://", FromAddress("127.0.0.2"))
        base = tls_live_stack.proxy_url
        report_id = session.post(f"{base}/v1/reports", json=report_body(**SELF_CARE),
                                 headers={"Authorization": f"Bearer {kiosk_key}"}, timeout=10).json()["report_id"]
        spoofed = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.9",
                   "X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example", "Forwarded": "for=198.51.100.1"}
        response = session.get(f"{base}/v1/reports/{report_id}", headers=spoofed, timeout=10)
        assert response.status_code == 200, response.text
    with psycopg.connect(tls_live_stack.settings().admin_database_url) as conn:
        rows = conn.execute("SELECT host(client_addr) FROM audit.access WHERE staff_name = %s "
                            "AND %s::uuid = ANY(record_ids)", (name, report_id)).fetchall()
    assert rows == [("127.0.0.2",)]


def test_a_service_that_does_not_answer_is_a_503_in_the_one_shape(tmp_path):
    """The proxy alone (`python -m infra.proxy run`'s runner) before APIs that are not there."""
    from infra.postgres import free_port
    from infra.proxy.runner import LocalProxy

    os.chmod(tmp_path, 0o711)  # nginx runs as www-data when we are root
    dead = {svc: f"127.0.0.1:{free_port()}" for svc in ("intake", "triage", "referral")}
    proxy = LocalProxy(tmp_path, "127.0.0.1", free_port(), free_port(), upstreams=dead)
    proc = proxy.start(tmp_path / "proxy.log")
    try:
        proxy.wait_ready()
        for path in ("/kiosk", "/v1/rules", "/queue", "/referral/readyz"):
            response = requests.get(f"{proxy.https_url}{path}", verify=str(proxy.ca_file), timeout=10)
            assert is_error_shape(response, 503, "unavailable"), (path, response.status_code)
            assert response.headers["Retry-After"] == "2"
            assert response.headers["Strict-Transport-Security"] == HSTS
    finally:
        proxy.stop(proc)
        proc.wait(timeout=10)
    assert proc.returncode == 0
