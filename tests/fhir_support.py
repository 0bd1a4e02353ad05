"""Helpers for the FHIR interface's tests (tests/integration/test_fhir_*.py): a small clinic
in a time bubble of its own, and the outside check that an answer is valid FHIR."""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir.resources.R4B import get_fhir_model_class
from werkzeug.serving import make_server

from services.common.envelope import new_traceparent
from services.referral import booking
from tests.app_support import role_conn
from tests.referral_support import add_slots, decide, mrn, new_provider, next_bubble, referral_for_report

BASE = "/fhir/R4"
FHIR_JSON = "application/fhir+json"


def valid(resource: dict) -> dict:
    """The resource, after the fhir.resources R4B model of its type (a Bundle's entries
    included: its model validates each entry as its own type) has accepted it."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


@dataclass(frozen=True)
class Clinic:
    """now; one provider with four slots (three taken); five referrals:
    a: urgent, booked into slots[0], two reports   b: cancelled (had slots[1])
    c: urgent, completed in slots[2]               d: routine, booked into slots[1] when b left it
    e: routine, waitlisted                         slots[3]: free, after every window
    b2: urgent, waitlisted: b's patient again (same MRN), after b was cancelled"""

    now: datetime
    provider: dict
    slots: list[str]
    mrns: dict[str, str]
    referrals: dict[str, str]
    reports: dict[str, list[str]]


def build_clinic(settings) -> Clinic:
    now = next_bubble()
    day = timedelta(days=1)
    with role_conn(settings) as conn:
        provider = new_provider(conn)
        slots = add_slots(conn, provider, [now + day, now + day + timedelta(hours=1),
                                           now + day + timedelta(hours=2), now + 30 * day], now)
        mrns = {name: mrn() for name in "abcde"}
        reports = {"a": [decide(conn, "urgent", mrns["a"], now)],
                   "b": [decide(conn, "specialist", mrns["b"], now + timedelta(minutes=1))],
                   "c": [decide(conn, "urgent", mrns["c"], now + timedelta(minutes=2))]}
        reports["a"].append(decide(conn, "urgent", mrns["a"], now + timedelta(minutes=3)))
        referrals = {name: referral_for_report(conn, ids[0])["referral_id"] for name, ids in reports.items()}
        booking.cancel(conn, referrals["b"], "Patient moved away.", actor="dana", now=now + timedelta(minutes=4),
                       traceparent=new_traceparent())
        booking.complete(conn, referrals["c"], actor="dana", now=now + day + timedelta(hours=3),
                         traceparent=new_traceparent())
        reports["d"] = [decide(conn, "specialist", mrns["d"], now + timedelta(minutes=5))]
        reports["e"] = [decide(conn, "specialist", mrns["e"], now + timedelta(minutes=6))]
        reports["b2"] = [decide(conn, "urgent", mrns["b"], now + timedelta(minutes=7))]
        for name in ("d", "e", "b2"):
            referrals[name] = referral_for_report(conn, reports[name][0])["referral_id"]
    return Clinic(now, provider, slots, mrns, referrals, reports)


@contextlib.contextmanager
def serving(app):
    """The app behind a real HTTP server on 127.0.0.1 (for clients that speak HTTP): its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="fhir-test-server")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
