"""The rules a triage decision fired reach the FHIR ServiceRequest's reasonCode (issue 17), on
the real PostgreSQL: the worker's decision batch (services/referral/decision_batch.py) keeps
them with each report's link (referral_reports.fired, migration 010), for a new patient in the
batch's INSERT and for a report added to an open referral through booking.apply_decision;
reads and searches then name each rule with its reason. Every answer is checked against the
fhir.resources R4B models (tests/fhir_support.valid)."""
from __future__ import annotations

import tempfile
from datetime import timedelta

import psycopg
import pytest
from psycopg import pq

from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS
from services.referral import decision_batch
from services.referral.app import create_app
from services.referral.fhir.ids import CARE_LEVEL_SYSTEM, TRIAGE_RULE_SYSTEM
from tests.app_support import flask_app
from tests.integration.test_referral_decision_round_trips import waits
from tests.fhir_support import BASE, FHIR_JSON, valid
from tests.referral_support import (add_slots, decision_event, mrn, new_provider, next_bubble,
                                    referral_for_report, staff_token)

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SEVERE = {"id": "URG-SEVERE", "reason": "Severe pain (8 or more) needs prompt assessment."}
NIGHT = {"id": "URG-NIGHT", "reason": "Pain that wakes the patient at night."}
CHRONIC = {"id": "SPEC-CHRONIC", "reason": "Pain for over three months."}


def event(care_level: str, patient: str, fired: list[dict] | None) -> dict:
    made = decision_event(care_level, patient)
    if fired is None:
        del made["data"]["fired"]  # a decision that does not say (the field is optional)
    else:
        made["data"]["fired"] = fired
    return made


def prepared(made: dict) -> decision_batch.Prepared:
    return decision_batch.prepare(made, Delivery(topic=TOPIC_DECISIONS, partition=0, offset=0,
                                                 key=made["data"]["report_id"], traceparent=TRACEPARENT))


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def decided(referral_settings):
    """One batch: patient a urgent (two rules), patient b specialist (one rule), a's second report
    (met before in the run: booking.apply_decision), patient c without `fired`. The events by name."""
    now = next_bubble()
    a, b, c = mrn(), mrn(), mrn()
    made = {"a1": event("urgent", a, [SEVERE, NIGHT]), "b": event("specialist", b, [CHRONIC]),
            "a2": event("urgent", a, [NIGHT, CHRONIC]), "c": event("specialist", c, None)}
    with psycopg.connect(referral_settings.database_url) as conn:
        add_slots(conn, new_provider(conn), [now + timedelta(hours=2)], now)
        conn.commit()
        with conn.transaction():
            decision_batch.write(conn, [prepared(e) for e in made.values()], now=now)
        return {name: e["data"]["report_id"] for name, e in made.items()}


@pytest.fixture
def get(client, referral_settings):
    headers = {"Authorization": f"Bearer {staff_token(referral_settings, 'scheduler')}"}

    def fetch(path: str) -> dict:
        response = client.get(BASE + path, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.content_type == FHIR_JSON
        return valid(response.get_json())

    return fetch


def rules(resource: dict) -> list[tuple[str, str, str]]:
    return [(c["coding"][0]["code"], c["coding"][0]["display"], c["text"]) for c in resource["reasonCode"]
            if c["coding"][0]["system"] == TRIAGE_RULE_SYSTEM]


def levels(resource: dict) -> list[str]:
    return [c["coding"][0]["code"] for c in resource["reasonCode"] if c["coding"][0]["system"] == CARE_LEVEL_SYSTEM]


def test_the_links_keep_what_each_decision_fired(referral_settings, decided):
    with psycopg.connect(referral_settings.database_url) as conn:
        stored = dict(conn.execute("SELECT report_id::text, fired FROM referral.referral_reports"
                                   " WHERE report_id = ANY(%s::uuid[])", (list(decided.values()),)).fetchall())
    assert stored == {decided["a1"]: [SEVERE, NIGHT], decided["b"]: [CHRONIC],
                      decided["a2"]: [NIGHT, CHRONIC], decided["c"]: None}


def test_a_read_names_every_rule_of_the_referrals_reports_once_with_its_reason(referral_settings, decided, get):
    with psycopg.connect(referral_settings.database_url) as conn:
        ids = {name: referral_for_report(conn, decided[name])["referral_id"] for name in decided}
    assert ids["a1"] == ids["a2"]  # a's second report joined a's open referral
    a = get(f"/ServiceRequest/{ids['a1']}")
    assert levels(a) == ["urgent"]
    assert rules(a) == [(r["id"], r["reason"], r["reason"]) for r in (SEVERE, NIGHT, CHRONIC)]
    b = get(f"/ServiceRequest/{ids['b']}")
    assert (levels(b), rules(b)) == (["specialist"], [(CHRONIC["id"], CHRONIC["reason"], CHRONIC["reason"])])
    c = get(f"/ServiceRequest/{ids['c']}")
    assert (levels(c), rules(c)) == (["specialist"], [])  # not known: the care level alone
    newest = get(f"/ServiceRequest/{ids['a1']}/_history")["entry"][0]["resource"]
    assert newest["reasonCode"] == a["reasonCode"]


def test_a_search_page_shows_the_same_reasons_as_the_read(referral_settings, decided, get):
    with psycopg.connect(referral_settings.database_url) as conn:
        referral_id, patient = conn.execute(
            "SELECT r.referral_id::text, r.patient_mrn FROM referral.referrals r"
            " JOIN referral.referral_reports rr USING (referral_id) WHERE rr.report_id = %s",
            (decided["a1"],)).fetchone()
    bundle = get(f"/ServiceRequest?patient.identifier={patient}")
    [found] = [e["resource"] for e in bundle["entry"] if e["resource"]["id"] == referral_id]
    assert found["reasonCode"] == get(f"/ServiceRequest/{referral_id}")["reasonCode"]
    assert [code for code, _d, _t in rules(found)] == ["URG-SEVERE", "URG-NIGHT", "SPEC-CHRONIC"]


def test_a_batch_whose_decisions_never_say_stores_not_known(referral_settings):
    """(The links' INSERT with only NULLs for the rules: an array psycopg cannot type by itself.)"""
    now = next_bubble()
    made = [event("urgent", mrn(), None), event("specialist", mrn(), None)]
    with psycopg.connect(referral_settings.database_url) as conn:
        with conn.transaction():
            decision_batch.write(conn, [prepared(e) for e in made], now=now)
        stored = conn.execute("SELECT fired FROM referral.referral_reports WHERE report_id = ANY(%s::uuid[])",
                              ([e["data"]["report_id"] for e in made],)).fetchall()
    assert stored == [(None,), (None,)]


def batch_waits(settings, made: list[dict]) -> int:
    """How many times decision_batch.write waits for the server on `made` (a libpq trace)."""
    with psycopg.connect(settings.database_url) as conn, tempfile.TemporaryFile("w+") as trace:
        conn.execute("SELECT 1").fetchone()  # connected, settled
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            with conn.transaction():
                decision_batch.write(conn, [prepared(e) for e in made], now=next_bubble())
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        return waits(trace.read())


def test_keeping_the_rules_makes_no_decision_wait_once_more(referral_settings):
    """A new patient, then that patient's second report (booking.apply_decision, then the rules'
    UPDATE in the pipeline): as many waits with the rules as when the decisions do not say."""
    def pair(fired: list[dict] | None) -> list[dict]:
        patient = mrn()
        return [event("urgent", patient, fired), event("urgent", patient, fired)]

    assert batch_waits(referral_settings, pair([SEVERE])) == batch_waits(referral_settings, pair(None))
