"""A report accepted in the statement that checks its kiosk's key and quota (issue 15).

store.accept_report's INSERTs as common table expressions on auth's `admitted` (the kiosk, when
its key is in force and this request within its quota), run by auth.admitted_statement with
the key's lookup and the quota's hit: one round trip and one commit per POST instead of two.
The same rows as store.accept_report writes (the report, its event with the row's submitted_at,
the outbox's NOTIFY), only for an admitted kiosk: nothing for a 401 or a 429.
"""
from __future__ import annotations

import uuid

import psycopg
from psycopg.types.json import Jsonb

from services.common import outbox
from services.common.settings import TOPIC_REPORTS

from .. import events, store
from . import auth

_CTES = (
    "report AS (INSERT INTO intake.reports (report_id, kiosk_id, idempotency_key, body_hash, patient, clinical,"
    "   language)"
    "   SELECT %(report_id)s, admitted.kiosk_id, %(idempotency_key)s, %(body_hash)s, %(patient)s, %(clinical)s,"
    "          %(language)s"
    "   FROM admitted"
    "   ON CONFLICT ON CONSTRAINT reports_idempotency DO NOTHING RETURNING submitted_at),"
    " announced AS (INSERT INTO intake.outbox (event_id, topic, key, payload, traceparent)"
    "   SELECT %(event_id)s, %(topic)s, %(event_key)s,"
    "          jsonb_set(%(event)s::jsonb, '{data,submitted_at}', to_jsonb(report.submitted_at)), %(traceparent)s"
    "   FROM report)")
# Whether the report was stored, and its NOTIFY (a scalar subquery: evaluated with the row,
# once, and only when a report was stored).
_COLUMNS = "EXISTS (SELECT FROM report), (SELECT pg_notify(%(channel)s, '') FROM report)"


def accept(conn: psycopg.Connection, *, body: dict, body_hash: str, idempotency_key: str | None,
           traceparent: str) -> tuple[store.Kiosk, store.Accepted]:
    """The kiosk (401 or 429 raised as require_kiosk would) and the report accepted: stored with
    its event, or, for an Idempotency-Key this kiosk already used, store.accept_report's answer
    (the earlier report's id, or a conflict)."""
    patient = body["patient"]
    clinical = events.clinical_sections(body)
    language = events.report_language(body)
    report_id = str(uuid.uuid4())
    event = events.report_event(report_id, patient, clinical, submitted_at=None, language=language)
    kiosk, (created, _) = auth.admitted_statement(conn, _CTES, _COLUMNS, {
        "report_id": report_id, "idempotency_key": idempotency_key, "body_hash": body_hash,
        "patient": Jsonb(patient), "clinical": Jsonb(clinical), "language": language, "event_id": event["id"], "topic": TOPIC_REPORTS,
        "event_key": report_id, "event": Jsonb(event), "traceparent": traceparent, "channel": outbox.outbox_channel(store.SCHEMA)})
    if created:
        return kiosk, store.Accepted(report_id, created=True)
    # The key already used (a retry, or a mistake): store.accept_report finds which, writing nothing.
    return kiosk, store.accept_report(conn, kiosk=kiosk, body=body, body_hash=body_hash,
                                      idempotency_key=idempotency_key, traceparent=traceparent)
