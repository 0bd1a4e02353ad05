"""Intake's SQL: kiosks, reports with their outbox event, and the status view."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from services.common import outbox
from services.common.auth import hash_secret
from services.common.report_vocabulary import DEFAULT_LANGUAGE
from services.common.retention import DueSummary, RetentionPolicy
from services.common.settings import TOPIC_REPORTS

from . import decision_texts, events, retention
from .messages import store as message_store

SCHEMA = "intake"


@dataclass(frozen=True)
class Kiosk:
    kiosk_id: str
    name: str


@dataclass(frozen=True)
class Accepted:
    report_id: str
    created: bool
    conflict: bool = False


def find_kiosk(conn: psycopg.Connection, key: str) -> Kiosk | None:
    row = conn.execute(
        "SELECT kiosk_id::text, name FROM intake.kiosks WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_secret(key),),
    ).fetchone()
    return Kiosk(*row) if row else None


def identify_kiosk(conn: psycopg.Connection, key: str) -> tuple[Kiosk, bool] | None:
    """The kiosk whose key this is, and whether the key is still in force (a revoked one is
    named in the refusal's log line); one probe of the key_hash index."""
    row = conn.execute(
        "SELECT kiosk_id::text, name, revoked_at IS NULL FROM intake.kiosks WHERE key_hash = %s",
        (hash_secret(key),),
    ).fetchone()
    return (Kiosk(*row[:2]), row[2]) if row else None


def add_kiosk(conn: psycopg.Connection, name: str, key: str) -> None:
    conn.execute("INSERT INTO intake.kiosks (name, key_hash) VALUES (%s, %s)", (name, hash_secret(key)))


def revoke_kiosk(conn: psycopg.Connection, name: str) -> bool:
    cur = conn.execute(
        "UPDATE intake.kiosks SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,)
    )
    return cur.rowcount == 1


def accept_report(conn: psycopg.Connection, *, kiosk: Kiosk, body: dict, body_hash: str,
                  idempotency_key: str | None, traceparent: str) -> Accepted:
    """Store the report and its event atomically (nothing is acknowledged before commit): one
    statement, so on the API's autocommit connection one round trip instead of BEGIN, two
    INSERTs and COMMIT (issue 15). The event's `submitted_at` is the row's, set by the
    database (jsonb_set) as it is inserted."""
    patient = body["patient"]
    clinical = events.clinical_sections(body)
    language = events.report_language(body)
    report_id = str(uuid.uuid4())
    event = events.report_event(report_id, patient, clinical, submitted_at=None, language=language)
    row = conn.execute(
        "WITH report AS (INSERT INTO intake.reports"
        "   (report_id, kiosk_id, idempotency_key, body_hash, patient, clinical, language)"
        "   VALUES (%s, %s, %s, %s, %s, %s, %s)"
        "   ON CONFLICT ON CONSTRAINT reports_idempotency DO NOTHING RETURNING submitted_at),"
        " announced AS (INSERT INTO intake.outbox (event_id, topic, key, payload, traceparent)"
        "   SELECT %s, %s, %s, jsonb_set(%s::jsonb, '{data,submitted_at}', to_jsonb(report.submitted_at)), %s"
        "   FROM report)"
        " SELECT pg_notify(%s, '') FROM report",
        (report_id, kiosk.kiosk_id, idempotency_key, body_hash, Jsonb(patient), Jsonb(clinical), language,
         event["id"], TOPIC_REPORTS, report_id, Jsonb(event), traceparent, outbox.outbox_channel(SCHEMA)),
    ).fetchone()
    if row is not None:
        return Accepted(report_id, created=True)
    # Same kiosk, same key: a retry (same body) or a mistake (another body).
    existing_id, existing_hash = conn.execute(
        "SELECT report_id::text, body_hash FROM intake.reports WHERE kiosk_id = %s AND idempotency_key = %s",
        (kiosk.kiosk_id, idempotency_key),
    ).fetchone()
    return Accepted(existing_id, created=False, conflict=existing_hash != body_hash)


@dataclass(frozen=True)
class ReportView:
    report_id: str
    kiosk_id: str
    care_level: str | None
    advice: list
    referral: dict | None
    language: str = DEFAULT_LANGUAGE
    outcome: dict | None = None   # decision_texts.shown's detail, None until triage has decided


def get_report(conn: psycopg.Connection, report_id: str) -> ReportView | None:
    row = conn.execute(
        "SELECT report_id::text, kiosk_id::text, care_level, advice, referral, language, outcome"
        " FROM intake.reports WHERE report_id = %s",
        (report_id,),
    ).fetchone()
    return ReportView(*row) if row else None


def record_decision(conn: psycopg.Connection, report_id: str, care_level: str, advice: list,
                    decided_at: str, outcome: dict | None = None) -> None:
    """Triage makes one decision per report; should another ever come, the newest wins,
    whatever order they arrive in."""
    conn.execute(
        "UPDATE intake.reports SET care_level = %s, advice = %s, outcome = %s, decided_at = %s, updated_at = now()"
        " WHERE report_id = %s AND (decided_at IS NULL OR decided_at <= %s::timestamptz)",
        (care_level, Jsonb(advice), Jsonb(outcome) if outcome is not None else None, decided_at, report_id,
         decided_at),
    )


def record_decisions(conn: psycopg.Connection, decisions: list[dict]) -> None:
    """record_decision for a run of decisions (events.parse_decision's data), in one statement
    whose answer is not needed (in a pipeline it waits for nothing): per report, the newest of
    the run (the later one of a tie, as one by one), kept if it is not older than the one
    stored. Arrays go binary (%b), as in tell_changes. What is stored of each is what the
    kiosk shows (decision_texts.shown): the advice in the report's language, and its detail."""
    if not decisions:
        return
    texts = [decision_texts.shown(d) for d in decisions]
    conn.execute(
        "UPDATE intake.reports r SET care_level = d.care_level, advice = d.advice, outcome = d.outcome,"
        " decided_at = d.decided_at, updated_at = now()"
        " FROM (SELECT DISTINCT ON (report_id) * FROM unnest(%b::uuid[], %b::text[], %b::jsonb[], %b::jsonb[],"
        "   %b::timestamptz[], %b::integer[]) AS u (report_id, care_level, advice, outcome, decided_at, ordinal)"
        "  ORDER BY report_id, decided_at DESC, ordinal DESC) AS d"
        " WHERE r.report_id = d.report_id AND (r.decided_at IS NULL OR r.decided_at <= d.decided_at)",
        ([str(d["report_id"]) for d in decisions], [d["care_level"] for d in decisions],
         [Jsonb(advice) for advice, _ in texts], [Jsonb(detail) for _, detail in texts],
         [d["decided_at"] for d in decisions], list(range(len(decisions)))))


def claim_reports(conn: psycopg.Connection, referral_id: str, report_ids: list[str]) -> None:
    """Note that these reports belong to the referral, first locking the referral's reports
    (those known and those named, in report_id order, so that two events of one referral, a
    replay beside the live stream say, take their turns and never deadlock).

    One statement (one round trip, none of its own in a pipeline): the function of migration
    005 runs the lock, then the update, which finds every row it changes locked already."""
    conn.execute("SELECT intake.claim_reports(%s::uuid, %s::uuid[])", (referral_id, report_ids))


def record_referral(conn: psycopg.Connection, referral_id: str, snapshot: dict, sequence: int) -> None:
    """Give every report of the referral its newest snapshot: this one, or a newer one another
    of its reports already holds. An older event arriving late changes nothing, and a report
    whose link is learnt after newer snapshots of the referral catches up with them (migration
    006's intake.record_referral, which apply_referral_events runs too)."""
    conn.execute("SELECT intake.record_referral(%s::uuid, %s::jsonb, %s::integer)",
                 (referral_id, Jsonb(snapshot), sequence))


def apply_referral_events(conn: psycopg.Connection, told: list[tuple[dict, str | None]]) -> list:
    """What worker.on_referral_event does (claim the reports named, tell the patient, record the
    snapshot) for a run of referral snapshots (events.parse_referral_event's data, each with the
    traceparent of its messages' events), in their order, in two statements: migration 006's
    intake.apply_referral_snapshots claims, reads what is known and records, event after event
    (every event sees the ones before it, as one by one), and messages.store.tell_changes writes
    the patient messages from what each one saw, without waiting. The message rows written."""
    if not told:
        return []
    claimants, named, named_by, snapshots, sequences = [], [], [], [], []
    for ordinal, (snapshot, _traceparent) in enumerate(told, start=1):
        claimants.append(str(snapshot["referral_id"]))
        for report_id in events.reports_named(snapshot):
            named.append(report_id)
            named_by.append(ordinal)
        snapshots.append(Jsonb(snapshot))
        sequences.append(snapshot["sequence"])
    rows = conn.execute(
        "SELECT a.ordinal, a.previous, a.newest_report_id, a.newest_patient, now(), a.newest_language"
        " FROM intake.apply_referral_snapshots(%b::uuid[], %b::uuid[], %b::integer[], %b::jsonb[], %b::integer[])"
        " AS a ORDER BY a.ordinal", (claimants, named, named_by, snapshots, sequences)).fetchall()
    known = [message_store.known_of(claimants[ordinal - 1], previous, report_id, patient, now, language)
             for ordinal, previous, report_id, patient, now, language in rows]
    return message_store.tell_changes(
        conn, [(snapshot, k, traceparent) for (snapshot, traceparent), k in zip(told, known)])


# -- retention (services/intake/retention.py decides; README "Data protection") ----------
_DUE = ("closed_at <= now() - %(days)s * interval '1 day' AND pseudonymised_at IS NULL")


def identity_due(conn: psycopg.Connection, policy: RetentionPolicy) -> DueSummary:
    """How many reports are due to lose their patient's identity, and the oldest closing."""
    count, oldest = conn.execute(
        f"SELECT count(*), min(closed_at) FROM intake.reports WHERE {_DUE}",
        {"days": policy.identity_days}).fetchone()
    return DueSummary(service=SCHEMA, table="intake.reports", due=count, oldest_closed_at=oldest)


def pseudonymise_batch(conn: psycopg.Connection, policy: RetentionPolicy, key: bytes | None, limit: int) -> int:
    """Pseudonymise up to `limit` due reports in one transaction; how many it did.

    The rows are claimed with FOR UPDATE SKIP LOCKED: two purges at once (two workers, a
    worker and `clinic purge`) take different rows and never wait for each other, and a
    worker recording an event on a claimed report waits for this short transaction only.
    The guard on pseudonymised_at makes a second run change nothing."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT report_id, patient, care_level, referral ->> 'status', closed_at, pseudonymised_at, now()"
            f" FROM intake.reports WHERE {_DUE}"
            " ORDER BY closed_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
            {"days": policy.identity_days, "limit": limit}).fetchall()
        ids, patients = [], []
        for report_id, patient, care_level, referral_status, closed_at, pseudonymised_at, now in rows:
            # The SQL found the candidates; the rule decides (a row the trigger would not
            # have marked closed, edited by hand say, is left alone).
            if retention.is_due(policy, care_level=care_level, referral_status=referral_status,
                                closed_at=closed_at, pseudonymised_at=pseudonymised_at, now=now):
                ids.append(report_id)
                patients.append(Jsonb(retention.pseudonymised_patient(patient, key)))
        if not ids:
            return 0
        done = conn.execute(
            "UPDATE intake.reports r SET patient = v.patient, body_hash = %s, pseudonymised_at = now()"
            " FROM unnest(%s::uuid[], %s::jsonb[]) AS v(report_id, patient)"
            # the ANY() lets the planner find the rows by primary key, not by a scan of the table
            " WHERE r.report_id = ANY(%s::uuid[]) AND r.report_id = v.report_id AND r.pseudonymised_at IS NULL",
            (retention.PSEUDONYMISED_BODY_HASH, ids, patients, ids)).rowcount
        # The patient messages sent with these reports' contact details keep what was told and
        # when (status, change, channel), not to whom nor the words (they name the time and place).
        conn.execute(
            "UPDATE intake.patient_messages SET recipient = NULL, content = NULL, pseudonymised_at = now()"
            " WHERE report_id = ANY(%s::uuid[]) AND pseudonymised_at IS NULL", (ids,))
        return done
