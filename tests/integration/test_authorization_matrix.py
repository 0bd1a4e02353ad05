"""Who may call what: every endpoint of every service (read from each app's Flask url_map,
so a new endpoint without a row here fails the test) x every kind of caller, on the real
database, with the expected status of each cell written below.

Callers: none (no Authorization), kiosk (the kiosk that sent the report used in paths),
other kiosk (another kiosk in force), scheduler, admin, revoked (a revoked kiosk key *and* a
revoked admin token: both must get the cell's status). Ids in paths are real where it
matters (the kiosk's own report); otherwise unknown ids, so an allowed caller gets 404 and a
refused one its 401/403 first: authorization is decided before existence is revealed.

The failed-authentication limits (429) are raised out of reach here: this test is about who
is allowed, the limiter is tested on its own. The matrix is printed (and kept in
docs/measurements.md).
"""
from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.app_support import flask_app, role_conn
from tests.intake_support import new_kiosk, report_body, revoke
from tests.referral_support import new_provider, staff_token

pytestmark = pytest.mark.integration

CALLERS = ("none", "kiosk", "other kiosk", "scheduler", "admin", "revoked")
UNKNOWN = "00000000-0000-4000-8000-000000000000"

# (service, METHOD, rule): statuses for none, kiosk, other kiosk, scheduler, admin, revoked
MATRIX: dict[tuple[str, str, str], tuple[int, ...]] = {
    # -- intake ---------------------------------------------------------------------------
    ("intake", "GET", "/healthz"): (200, 200, 200, 200, 200, 200),
    ("intake", "GET", "/readyz"): (200, 200, 200, 200, 200, 200),
    ("intake", "GET", "/metrics"): (200, 200, 200, 200, 200, 200),
    ("intake", "GET", "/openapi.json"): (200, 200, 200, 200, 200, 200),
    ("intake", "POST", "/v1/reports"): (401, 202, 202, 401, 401, 401),
    ("intake", "GET", "/v1/reports/<report_id>"): (401, 200, 404, 200, 200, 401),
    ("intake", "GET", "/kiosk"): (200, 200, 200, 200, 200, 200),
    ("intake", "GET", "/kiosk/setup"): (200, 200, 200, 200, 200, 200),
    ("intake", "POST", "/kiosk/setup/staff-check"): (401, 401, 401, 204, 204, 401),
    ("intake", "GET", "/kiosk/static/<path:filename>"): (200, 200, 200, 200, 200, 200),
    # -- triage ---------------------------------------------------------------------------
    ("triage", "GET", "/healthz"): (200, 200, 200, 200, 200, 200),
    ("triage", "GET", "/readyz"): (200, 200, 200, 200, 200, 200),
    ("triage", "GET", "/metrics"): (200, 200, 200, 200, 200, 200),
    ("triage", "GET", "/openapi.json"): (200, 200, 200, 200, 200, 200),
    ("triage", "GET", "/v1/decisions/<report_id>"): (401, 401, 401, 404, 404, 401),
    ("triage", "GET", "/v1/rules"): (401, 401, 401, 200, 200, 401),
    # -- referral -------------------------------------------------------------------------
    ("referral", "GET", "/healthz"): (200, 200, 200, 200, 200, 200),
    ("referral", "GET", "/readyz"): (200, 200, 200, 200, 200, 200),
    ("referral", "GET", "/metrics"): (200, 200, 200, 200, 200, 200),
    ("referral", "GET", "/openapi.json"): (200, 200, 200, 200, 200, 200),
    ("referral", "POST", "/v1/providers"): (401, 401, 401, 403, 201, 401),
    ("referral", "GET", "/v1/providers"): (401, 401, 401, 200, 200, 401),
    ("referral", "POST", "/v1/slots"): (401, 401, 401, 403, 201, 401),
    ("referral", "POST", "/v1/slots/bulk"): (401, 401, 401, 403, 201, 401),
    ("referral", "GET", "/v1/slots"): (401, 401, 401, 200, 200, 401),
    ("referral", "GET", "/v1/referrals"): (401, 401, 401, 200, 200, 401),
    ("referral", "GET", "/v1/referrals/<referral_id>"): (401, 401, 401, 404, 404, 401),
    ("referral", "POST", "/v1/referrals/<referral_id>/reschedule"): (401, 401, 401, 404, 404, 401),
    ("referral", "POST", "/v1/referrals/<referral_id>/cancel"): (401, 401, 401, 404, 404, 401),
    ("referral", "POST", "/v1/referrals/<referral_id>/complete"): (401, 401, 401, 404, 404, 401),
    ("referral", "POST", "/v1/referrals/<referral_id>/contacted"): (401, 401, 401, 404, 404, 401),
    # The schedulers' page: the sign-in form for everyone (a bearer header signs no one in);
    # its forms need the page's CSRF token, which none of these callers has.
    ("referral", "GET", "/queue"): (200, 200, 200, 200, 200, 200),
    ("referral", "POST", "/queue/sign-in"): (403, 403, 403, 403, 403, 403),
    ("referral", "POST", "/queue/sign-out"): (303, 303, 303, 303, 303, 303),
    ("referral", "GET", "/queue/static/<path:filename>"): (200, 200, 200, 200, 200, 200),
    # Read-only FHIR (docs/fhir.md): staff as /v1; its CapabilityStatement public as /openapi.json.
    ("referral", "GET", "/fhir/R4/metadata"): (200, 200, 200, 200, 200, 200),
    ("referral", "GET", "/fhir/R4/ServiceRequest"): (401, 401, 401, 200, 200, 401),
    ("referral", "GET", "/fhir/R4/ServiceRequest/<referral_id>"): (401, 401, 401, 404, 404, 401),
    ("referral", "GET", "/fhir/R4/ServiceRequest/<referral_id>/_history"): (401, 401, 401, 404, 404, 401),
    ("referral", "GET", "/fhir/R4/Appointment"): (401, 401, 401, 200, 200, 401),
    ("referral", "GET", "/fhir/R4/Appointment/<referral_id>"): (401, 401, 401, 404, 404, 401),
    ("referral", "GET", "/fhir/R4/Patient/<referral_id>"): (401, 401, 401, 404, 404, 401),
    ("referral", "GET", "/fhir/R4/Slot"): (401, 401, 401, 200, 200, 401),
    ("referral", "GET", "/fhir/R4/Slot/<slot_id>"): (401, 401, 401, 404, 404, 401),
    ("referral", "GET", "/fhir/R4/Schedule/<provider_id>"): (401, 401, 401, 404, 404, 401),
    ("referral", "GET", "/fhir/R4/HealthcareService/<provider_id>"): (401, 401, 401, 404, 404, 401),
    ("referral", "GET", "/fhir/R4/Location/<provider_id>"): (401, 401, 401, 404, 404, 401),
}

STATIC_FILES = {"intake": "kiosk.js", "referral": "queue.js"}


def endpoints(app) -> list[tuple[str, str]]:
    return sorted((method, rule.rule) for rule in app.url_map.iter_rules()
                  for method in rule.methods - {"HEAD", "OPTIONS"})


def _settings(settings):
    """The service's settings with the failed-authentication limits out of reach."""
    fields = {f.name for f in dataclasses.fields(settings)}
    raised = {name: 1_000_000 for name in ("auth_failures_per_address", "auth_failures_per_credential",
                                           "kiosk_reports_per_hour") if name in fields}
    return dataclasses.replace(settings, **raised)


@pytest.fixture(scope="module")
def callers(intake_settings, referral_settings):
    """Authorization headers per caller; "revoked" holds two (kiosk key, admin token)."""
    kiosk, other, gone = new_kiosk(intake_settings), new_kiosk(intake_settings), new_kiosk(intake_settings)
    revoke(intake_settings, gone)
    from services.admin.credentials import staff_revoke

    gone_admin_name = f"matrix-revoked-{uuid.uuid4().hex[:8]}"
    from services.admin.credentials import staff_add

    gone_admin = staff_add(referral_settings, gone_admin_name, "admin")
    staff_revoke(referral_settings, gone_admin_name)

    def bearer(secret):
        return {"Authorization": f"Bearer {secret}"}

    return {
        "none": [{}],
        "kiosk": [kiosk.headers],
        "other kiosk": [other.headers],
        "scheduler": [bearer(staff_token(referral_settings, "scheduler"))],
        "admin": [bearer(staff_token(referral_settings, "admin"))],
        "revoked": [gone.headers, bearer(gone_admin)],
        "_kiosk": kiosk,
    }


@pytest.fixture(scope="module")
def apps(intake_settings, triage_settings, referral_settings):
    from services.intake.app import create_app as intake_app
    from services.referral.app import create_app as referral_app
    from services.triage.app import create_app as triage_app

    with flask_app(intake_app, _settings(intake_settings)) as intake, \
            flask_app(triage_app, _settings(triage_settings)) as triage, \
            flask_app(referral_app, _settings(referral_settings)) as referral:
        yield {"intake": intake, "triage": triage, "referral": referral}


@pytest.fixture(scope="module")
def report_id(apps, callers):
    response = apps["intake"].test_client().post("/v1/reports", json=report_body(),
                                                 headers=callers["_kiosk"].headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()["report_id"]


@pytest.fixture(scope="module")
def provider_id(referral_settings):
    with role_conn(referral_settings) as conn:
        return str(new_provider(conn)["provider_id"])


_slot_hour = iter(range(10_000))


def request_for(service: str, method: str, rule: str, report_id: str, provider_id: str) -> tuple[str, dict | None]:
    """The path to call and a body an allowed caller would have accepted."""
    path = (rule.replace("<report_id>", report_id if service == "intake" else UNKNOWN)
            .replace("<referral_id>", UNKNOWN).replace("<provider_id>", UNKNOWN).replace("<slot_id>", UNKNOWN)
            .replace("<path:filename>", STATIC_FILES.get(service, "")))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=900, hours=next(_slot_hour))
    bodies = {
        "/v1/reports": report_body(),
        "/v1/providers": {"name": f"Matrix clinic {uuid.uuid4().hex[:8]}", "specialty": "pain_management",
                          "location": "Room 1"},
        "/v1/slots": {"provider_id": provider_id, "start": start.isoformat(),
                      "end": (start + timedelta(minutes=30)).isoformat()},
        "/v1/slots/bulk": {"provider_id": provider_id, "from": (start + timedelta(days=3000)).date().isoformat(),
                           "to": (start + timedelta(days=3000)).date().isoformat(), "daily_start": "09:00",
                           "daily_end": "09:30", "weekdays": [1, 2, 3, 4, 5, 6, 7]},
        "/v1/referrals/<referral_id>/reschedule": {"slot_id": UNKNOWN},
        "/v1/referrals/<referral_id>/cancel": {"reason": "Matrix test."},
        "/v1/referrals/<referral_id>/contacted": {"note": "Matrix test."},
    }
    return path, (bodies.get(rule, {}) if method == "POST" else None)


def test_every_endpoint_has_a_row(apps):
    found = {(service, method, rule) for service, app in apps.items() for method, rule in endpoints(app)}
    assert found - set(MATRIX) == set(), "endpoints without a row in MATRIX (add one, with who may call it)"
    assert set(MATRIX) - found == set(), "rows for endpoints that no longer exist"


def test_authorization_matrix(apps, callers, report_id, provider_id, pytestconfig):
    answered: dict[tuple, list[str]] = {}
    wrong = []
    for (service, method, rule), expected in MATRIX.items():
        client = apps[service].test_client()
        cells = []
        for caller, status in zip(CALLERS, expected):
            got = set()
            for headers in callers[caller]:
                path, body = request_for(service, method, rule, report_id, provider_id)
                with client.open(path, method=method, json=body, headers=headers) as response:
                    got.add(response.status_code)
            cells.append("/".join(str(s) for s in sorted(got)))
            if got != {status}:
                wrong.append(f"{service} {method} {rule} as {caller}: expected {status}, got {sorted(got)}")
        answered[(service, method, rule)] = cells
    print_matrix(pytestconfig, answered)
    assert wrong == [], "\n".join(wrong)


def print_matrix(pytestconfig, answered: dict) -> None:
    header = "| service | endpoint | " + " | ".join(CALLERS) + " |"
    lines = [header, "|" + "---|" * (len(CALLERS) + 2)]
    for (service, method, rule), cells in answered.items():
        lines.append(f"| {service} | `{method} {rule}` | " + " | ".join(cells) + " |")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter:
            reporter.write_line(line)
