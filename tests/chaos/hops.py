"""Where a slow report spent its time: each hop's timestamp, from its submission on.

A report's events are keyed by its id in every service's outbox (created_at, sent_at), and
each consumer's inbox row (received_at: the start of the transaction that applied it)
carries the event id: so the chain intake outbox -> triage inbox -> triage outbox ->
referral inbox -> referral outbox -> intake inbox can be read back after the fact.
"""
from __future__ import annotations

import psycopg

SCHEMAS = ("intake", "triage", "referral")


def hops(conn: psycopg.Connection, report_id: str) -> list[tuple[float, str]]:
    """(seconds after submitted_at, what happened), in time order."""
    submitted = conn.execute("SELECT submitted_at FROM intake.reports WHERE report_id = %s::uuid",
                             (report_id,)).fetchone()
    if submitted is None:
        return []
    t0 = submitted[0]
    found: list[tuple[float, str]] = []
    for schema in SCHEMAS:
        rows = conn.execute(f"SELECT event_id::text, topic, payload->>'type', created_at, sent_at FROM {schema}.outbox"
                            " WHERE key = %s", (report_id,)).fetchall()
        for event_id, topic, kind, created, sent in rows:
            what = f"{schema} event {kind or topic}"
            found.append(((created - t0).total_seconds(), f"{what} written"))
            if sent is not None:
                found.append(((sent - t0).total_seconds(), f"{what} acked by Kafka"))
            for consumer in SCHEMAS:
                got = conn.execute(f"SELECT received_at FROM {consumer}.inbox WHERE event_id = %s",
                                   (event_id,)).fetchone()
                if got is not None:
                    found.append(((got[0] - t0).total_seconds(), f"{what} applied by {consumer}"))
    return sorted(found)


def describe(conn: psycopg.Connection, report_id: str, took_s: float) -> str:
    """One line: the report, when it was submitted (UTC, to match the logs), each hop."""
    submitted = conn.execute("SELECT to_char(submitted_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS')"
                             " FROM intake.reports WHERE report_id = %s::uuid", (report_id,)).fetchone()
    steps = ", ".join(f"+{at:.1f}s {what}" for at, what in hops(conn, report_id))
    return f"report {report_id[:8]} submitted {submitted[0] if submitted else '?'} final after {took_s:.1f}s: {steps}"
