"""The triage worker against the real broker and database: a report event becomes one
decision row and one decision event; duplicates change nothing; poison goes to the .dlq
topic with its error in the headers and the worker carries on."""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from tests.kafka_support import read_topic
from tests.triage_support import TriageWorker, clinical, decide_as_worker, produce, report_event, wait_for

from services.common import envelope
from services.common.envelope import new_traceparent
from services.common.settings import TOPIC_DECISIONS, TOPIC_REPORTS, dlq_topic
from services.triage import store
from services.triage.replay import DECISION_FIELDS, replay

pytestmark = pytest.mark.integration

INBOX_HAS = "SELECT event_id FROM triage.inbox WHERE event_id = %s"


def headers_of(message) -> dict[str, str]:
    return {key: value.decode() for key, value in message.headers}


def test_a_report_is_decided_once_stored_with_its_input_and_published(triage_settings, triage_conn, rules):
    report_id = str(uuid.uuid4())
    answers = clinical(severity=8, onset="sudden", trauma=True, locations=("groin",))
    first = report_event(answers, report_id=report_id)
    # The same report sent again as a new event (a new event id): still one decision per report.
    resent = report_event(answers, report_id=report_id)
    traceparent = new_traceparent()
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS,
            [(report_id, envelope.encode(first)), (report_id, envelope.encode(first)),
             (report_id, envelope.encode(resent))], traceparent=traceparent)

    with TriageWorker(triage_settings, rules):
        # Same key, same partition: once the last event is in the inbox, the others were handled.
        wait_for(INBOX_HAS, triage_conn, (resent["id"],), until=bool)
        wait_for("SELECT sent_at FROM triage.outbox WHERE key = %s", triage_conn, (report_id,),
                 until=lambda rows: rows and all(r[0] is not None for r in rows))

    inbox = triage_conn.execute("SELECT event_id FROM triage.inbox WHERE event_id = ANY(%s)",
                                ([first["id"], resent["id"]],)).fetchall()
    assert sorted(r[0] for r in inbox) == sorted([first["id"], resent["id"]])

    row = store.get_decision(triage_conn, report_id)
    assert row["care_level"] == "urgent"
    assert row["rules_version"] == rules.version == "2026-12-2"
    assert [f["id"] for f in row["fired"]] == ["URG-SEVERE", "URG-SUDDEN", "URG-TRAUMA"]
    assert row["likely_source"] == "joint"
    assert row["input_snapshot"] == answers           # the clinical answers only: no patient
    assert row["assessed_on"] == date(2026, 11, 26)

    outbox = triage_conn.execute("SELECT event_id::text, topic FROM triage.outbox WHERE key = %s",
                                 (report_id,)).fetchall()
    assert len(outbox) == 1 and outbox[0][1] == TOPIC_DECISIONS

    published = read_topic(triage_settings.kafka_bootstrap, TOPIC_DECISIONS, {report_id})
    assert len(published) == 1
    event = envelope.decode(published[0].value)
    assert event["id"] == outbox[0][0]
    assert event["type"] == "clinic.triage.decided" and event["subject"] == report_id
    data = event["data"]
    assert {k: data[k] for k in DECISION_FIELDS} == {k: row[k] for k in DECISION_FIELDS}
    assert data["decided_at"] == row["decided_at"].isoformat()
    assert data["referral"] == {"priority": "urgent", "within_days": 2}
    assert data["patient"] == first["data"]["patient"]
    # the decision carries the report's trace on, as a new span
    decision_traceparent = headers_of(published[0])["traceparent"]
    assert envelope.trace_id(decision_traceparent) == envelope.trace_id(traceparent)
    assert decision_traceparent != traceparent

    # and replaying the stored decision gives the same one
    replayed = replay(row, rules)
    for name in DECISION_FIELDS:
        assert replayed[name] == row[name], name


def test_poison_goes_to_the_dlq_with_its_error_and_the_worker_carries_on(triage_settings, triage_conn, rules):
    report_id = str(uuid.uuid4())
    good = report_event(clinical(), report_id=report_id)
    not_a_report = {**report_event(clinical(), report_id=report_id), "data": {"report_id": report_id}}
    wrong_type = {**report_event(clinical(), report_id=report_id), "type": "clinic.report.withdrawn"}
    # One key, so one partition: the good event comes after every bad one.
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [
        (report_id, b"{not json"),
        (report_id, json.dumps({"hello": "world"}).encode()),
        (report_id, envelope.encode(not_a_report)),
        (report_id, envelope.encode(wrong_type)),
        (report_id, envelope.encode(good)),
    ])

    with TriageWorker(triage_settings, rules) as running:
        wait_for(INBOX_HAS, triage_conn, (good["id"],), until=bool)

    row = store.get_decision(triage_conn, report_id)
    assert row["care_level"] == "self_care"
    # a dead-lettered event leaves no inbox row: once fixed, `clinic dlq replay` can apply it
    assert triage_conn.execute(INBOX_HAS, (not_a_report["id"],)).fetchone() is None

    parked = [m for m in read_topic(triage_settings.kafka_bootstrap, dlq_topic(TOPIC_REPORTS), {report_id})
              if headers_of(m)["dlq.consumer_group"] == running.group_id]
    assert [m.value for m in parked] == [b"{not json", json.dumps({"hello": "world"}).encode(),
                                         envelope.encode(not_a_report), envelope.encode(wrong_type)]
    errors = [(headers_of(m)["dlq.error_type"], headers_of(m)["dlq.error"]) for m in parked]
    assert errors[0][0] == "InvalidEvent" and errors[0][1].startswith("not JSON")
    assert errors[1][0] == "InvalidEvent" and errors[1][1].startswith("not a CloudEvent")
    assert errors[2][0] == "PoisonEvent" and "report event data invalid" in errors[2][1]
    assert "submitted_at" in errors[2][1]
    assert errors[3][0] == "PoisonEvent" and "clinic.report.withdrawn" in errors[3][1]
    for message in parked:
        headers = headers_of(message)
        assert headers["dlq.original_topic"] == TOPIC_REPORTS
        assert "traceparent" in headers   # the original headers are kept


def test_pain_duration_is_counted_to_the_utc_day_of_the_report(triage_settings, triage_conn, rules):
    """23:30 in New York on the 25th is the 26th in UTC: the contract's "today"."""
    report_id = str(uuid.uuid4())
    submitted = datetime(2026, 11, 25, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    # started 42 days before the 26th: persistent under UTC, one day short in New York time
    answers = clinical(pain_days=42, today=date(2026, 11, 26))
    decide_as_worker(triage_conn, rules, report_event(answers, report_id=report_id, submitted_at=submitted))
    row = store.get_decision(triage_conn, report_id)
    assert row["assessed_on"] == date(2026, 11, 26)
    assert [f["id"] for f in row["fired"]] == ["SPC-PERSISTENT-PAIN"]


def test_a_spanish_report_is_decided_in_english_and_told_in_spanish(triage_conn, rules):
    """Issue 18: the clinical record stays English; the patient's texts are in the report's
    language, stored with the decision and announced in its event."""
    event = report_event(clinical(severity=8))   # outer hip: no stress fracture suspected
    event["data"]["language"] = "es"
    decide_as_worker(triage_conn, rules, event)
    report_id = event["data"]["report_id"]

    row = store.get_decision(triage_conn, report_id)
    assert row["language"] == "es"
    assert row["advice"][0].startswith("A prompt medical assessment is indicated")
    assert row["patient_text"]["advice"][0].startswith("Está indicada una valoración médica sin demora")
    assert row["patient_text"]["reasons"] == [
        "Un dolor de 7 o más sobre 10 es intenso, y un dolor intenso requiere una valoración médica sin demora."]
    assert row["safety_netting"] == ["urgent-safety-net"] and len(row["advice_ids"]) == len(row["advice"])
    assert row["fired"] == [{"id": "URG-SEVERE", "reason": row["fired"][0]["reason"], "reason_id": "URG-SEVERE"}]
    (payload,) = triage_conn.execute("SELECT payload FROM triage.outbox WHERE key = %s", (report_id,)).fetchone()
    data = payload["data"]
    assert {k: data[k] for k in (*DECISION_FIELDS, "language")} == {k: row[k] for k in (*DECISION_FIELDS, "language")}
    assert replay(row, rules) == {k: v for k, v in data.items()
                                  if k not in ("report_id", "decided_at", "patient")}
