"""API hygiene on the real database, through each service's app: deep and huge JSON, Unicode
format characters, the security headers, 405 with Allow, the OpenAPI documents' statuses;
and through a real gunicorn, oversized request lines and headers in the one error shape."""
from __future__ import annotations

import socket

import pytest
import requests

from tests.app_support import flask_app
from tests.gunicorn_support import running_gunicorn
from tests.intake_support import error_of, kiosk_report_ids, report_body, staff_headers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def intake(intake_settings):
    from services.intake.app import create_app

    with flask_app(create_app, intake_settings) as app:
        yield app.test_client()


@pytest.fixture(scope="module")
def referral(referral_settings):
    from services.referral.app import create_app

    with flask_app(create_app, referral_settings) as app:
        yield app.test_client()


@pytest.fixture(scope="module")
def triage(triage_settings):
    from services.triage.app import create_app

    with flask_app(create_app, triage_settings) as app:
        yield app.test_client()


@pytest.fixture(scope="module")
def admin(referral_settings):
    return staff_headers(referral_settings, "admin")


def post_raw(client, path, data: bytes, headers):
    return client.post(path, data=data, headers={**headers, "Content-Type": "application/json"})


# -- deep and huge JSON ------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"[" * 30_000 + b"]" * 30_000, b'{"patient":' * 3000 + b"1" + b"}" * 3000])
def test_deeply_nested_json_is_a_400_in_the_error_shape(intake, kiosk, intake_conn, body):
    response = post_raw(intake, "/v1/reports", body, kiosk.headers)
    assert response.status_code == 400
    assert "nests JSON deeper than 32 levels" in error_of(response)["message"]
    assert kiosk_report_ids(intake_conn, kiosk) == []


def test_deep_json_to_a_view_that_reads_its_own_body_is_a_400(referral, admin):
    response = post_raw(referral, "/v1/slots", b"[" * 30_000 + b"]" * 30_000, admin)
    assert response.status_code == 400 and error_of(response)["code"] == "bad_request"


def test_huge_json_is_a_413_in_the_error_shape(intake, referral, kiosk, admin):
    huge = b"[" + b"1," * 40_000 + b"1]"
    for client, path, headers in ((intake, "/v1/reports", kiosk.headers), (referral, "/v1/slots", admin),
                                  (referral, "/v1/providers", admin)):
        response = post_raw(client, path, huge, headers)
        assert response.status_code == 413, path
        assert error_of(response)["message"] == "The request body is over 64 KiB."


# -- Unicode format characters -----------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("patient__given_name", "Ana\u200b"), ("patient__family_name", "\u202eavliS"),
    ("patient__mrn", "MRN-\u206642\u2069"), ("activity__sport", "run\u200dning"),
])
def test_format_characters_are_refused_in_names_and_free_text(intake, kiosk, intake_conn, field, value):
    response = intake.post("/v1/reports", json=report_body(**{field: value}), headers=kiosk.headers)
    assert response.status_code == 422
    (failure,) = error_of(response)["fields"]
    assert failure["field"] == field.replace("__", ".") and "Cf" in failure["message"]
    assert kiosk_report_ids(intake_conn, kiosk) == []


def test_format_characters_are_refused_in_the_referral_api(referral, admin):
    response = referral.post("/v1/providers", json={"name": "Dr\u200b Who", "specialty": "pain_management",
                                                    "location": "Room 1"}, headers=admin)
    assert response.status_code == 422 and error_of(response)["fields"][0]["field"] == "name"


# -- headers -------------------------------------------------------------------------------
def assert_safe_headers(response, page: bool = False):
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    if page or response.mimetype == "application/json":
        assert response.headers["Cache-Control"] == "no-store"


def test_every_kind_of_answer_carries_the_security_headers(intake, referral, triage, kiosk, admin):
    answers = [
        intake.post("/v1/reports", json=report_body(), headers=kiosk.headers),  # 202
        intake.get("/v1/reports/00000000-0000-4000-8000-000000000000", headers=kiosk.headers),  # 404
        intake.get("/v1/reports/x"),  # 401
        intake.get("/healthz"), intake.get("/openapi.json"), intake.get("/nowhere"),
        referral.get("/v1/referrals", headers=admin), triage.get("/v1/rules", headers=admin),
        referral.put("/v1/referrals", headers=admin),  # 405
    ]
    for response in answers:
        assert_safe_headers(response)
    for client, path in ((intake, "/kiosk"), (intake, "/kiosk/setup"), (referral, "/queue")):
        page = client.get(path)
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert_safe_headers(page, page=True)
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in page.headers["Content-Security-Policy"]


# -- 405 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/v1/reports", {"POST", "OPTIONS"}), ("DELETE", "/v1/reports/x", {"GET", "HEAD", "OPTIONS"}),
    ("PATCH", "/healthz", {"GET", "HEAD", "OPTIONS"}),
])
def test_405_names_the_allowed_methods(intake, method, path, allowed):
    response = intake.open(path, method=method)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == allowed
    assert error_of(response)["code"] == "method_not_allowed"


# -- OpenAPI: every status, no default --------------------------------------------------------
def test_openapi_lists_every_status_and_no_default(intake, referral, triage):
    for client in (intake, referral, triage):
        spec = client.get("/openapi.json").get_json()
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if method == "parameters":
                    continue
                responses = operation["responses"]
                assert "default" not in responses, (path, method)
                assert {"400", "401", "414", "429", "431", "500", "503"} <= set(responses), (path, method)
                if "requestBody" in operation:
                    assert {"413", "415", "422"} <= set(responses), (path, method)


def test_openapi_schemas_carry_the_servers_rules(intake):
    schemas = intake.get("/openapi.json").get_json()["components"]["schemas"]
    mrn = schemas["Patient"]["properties"]["mrn"]
    assert mrn["minLength"] == 1 and "\\u200B" in mrn["pattern"] and "maxLength" not in mrn
    assert "anyOf" in schemas["Report"]["properties"]["home_care"]


# -- request line and header limits, through a real gunicorn ---------------------------------
@pytest.fixture(scope="module")
def gunicorn_url(stack_env, tmp_path_factory):
    with running_gunicorn("intake", stack_env, tmp_path_factory.mktemp("gunicorn") / "intake.log") as url:
        yield url


def raw_exchange(url: str, request: bytes) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("request_bytes, status, code", [
    (b"GET /v1/reports/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "header_fields_too_large"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(120)) + b"\r\n",
     431, "header_fields_too_large"),
    (b"NOT A REQUEST\r\n\r\n", 400, "bad_request"),
])
def test_the_http_servers_own_refusals_are_the_one_json_error_shape(gunicorn_url, request_bytes, status, code):
    answered, headers, body = raw_exchange(gunicorn_url, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/json" and headers["x-content-type-options"] == "nosniff"
    error = requests.models.complexjson.loads(body)["error"]
    assert error["code"] == code and error["message"]


def test_a_request_just_under_the_limits_reaches_the_app(gunicorn_url):
    response = requests.get(f"{gunicorn_url}/v1/reports/{'a' * 3900}", headers={"X-Big": "a" * 8000}, timeout=10)
    assert response.status_code == 401  # the app answered
