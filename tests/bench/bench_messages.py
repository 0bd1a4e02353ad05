"""Throughput of the patient message sender (issue 19) against a local SMTP server.

    .venv/bin/python tests/bench/bench_messages.py [--messages 2000] [--senders 1]

Not a test (pytest does not collect bench_*.py). It starts its own PostgreSQL in a temporary
folder, applies intake's migrations, queues `--messages` email rows (as the referral-event
handler writes them) and times the worker's own code (MessageSender.run_batch: per message,
claim and mark `sending` in one transaction, render, SMTP over a session reused per batch,
record `sent` and publish its event through the outbox in another) until every row is sent,
by `--senders` senders at once (threads, one connection each).

The ceiling, measured in the same run against the same server: the same number of messages,
built the same way, sent with smtplib over one connection and no database. The SMTP server
(aiosmtpd) runs in this process, so both figures share its cost and the GIL.
"""
from __future__ import annotations

import argparse
import smtplib
from email import policy
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from infra.postgres import running_postgres  # noqa: E402
from services.common import settings as settings_module  # noqa: E402
from services.common.db import apply_migrations  # noqa: E402
from services.intake.messages.sender import MessageSender, clinic_contact, render  # noqa: E402
from services.intake.messages.smtp_mail import build  # noqa: E402
from services.intake.messages.store import MessageRow  # noqa: E402
from services.intake.messages.translations import load_languages  # noqa: E402
from tests.patient_message_support import smtp_server  # noqa: E402

SENDER = "appointments@clinic.example.org"
APPOINTMENT = {"start": "2026-12-01T09:30:00+00:00", "provider": "Dr. Rui Costa", "location": "Clinic North, room 2"}


def queue(conn, count: int, run: str) -> None:
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO intake.patient_messages (message_id, referral_id, sequence, change, channel, recipient,"
                " appointment, status) VALUES (%s, %s, 1, 'booked', 'email', %s, %s, 'queued')",
                [(str(uuid.uuid4()), str(uuid.uuid4()), f"bench-{run}-{i}@example.org", Jsonb(APPOINTMENT))
                 for i in range(count)])


def ceiling(settings, port: int, count: int) -> float:
    """Messages per second with smtplib alone: the same messages, one connection, no database."""
    row = MessageRow(str(uuid.uuid4()), "", None, 1, "booked", "email", "queued", None, 0, 1, None, "x",
                     APPOINTMENT, None)
    content = render(row, clinic_contact(settings), load_languages())
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(count):
            to = f"ceiling-{i}@example.org"
            smtp.sendmail(SENDER, [to], build(str(uuid.uuid4()), SENDER, to, content).as_bytes(policy=policy.SMTP))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=1)
    args = parser.parse_args()

    with running_postgres() as pg, smtp_server() as (handler, port):
        env = {"CLINIC_STATE_DIR": str(pg.state_dir), "CLINIC_PG_PORT": str(pg.port),
               "CLINIC_DATABASE_URL": pg.role_url("intake"), "CLINIC_SMTP_HOST": "127.0.0.1",
               "CLINIC_SMTP_PORT": str(port), "CLINIC_SMTP_FROM": SENDER, "CLINIC_TIME_ZONE": "Europe/Lisbon",
               "CLINIC_CONTACT_PHONE": "+351 210 000 000", "CLINIC_NAME": "Clinic North"}
        settings = replace(settings_module.load("intake", env=env))
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            apply_migrations(conn, "intake", "services.intake")
            queue(conn, args.messages, "run")

        errors = []

        def sender():
            try:
                with psycopg.connect(settings.database_url) as connection:
                    worker = MessageSender(settings)
                    worker.take_lock(connection)
                    while worker.run_batch(connection):
                        pass
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=sender) for _ in range(args.senders)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert not errors, errors
        with psycopg.connect(settings.database_url) as conn:
            sent = conn.execute("SELECT count(*) FROM intake.patient_messages WHERE status = 'sent'").fetchone()[0]
            events = conn.execute("SELECT count(*) FROM intake.outbox").fetchone()[0]
        received = len(handler.received)
        assert sent == received == args.messages, (sent, received)
        rate = sent / elapsed
        top = ceiling(settings, port, args.messages)
        print(f"sender, {args.senders} sender(s): {sent:,} messages sent in {elapsed:.2f} s = {rate:,.0f} messages/s"
              f" ({events:,} events in the outbox; every message received once)")
        print(f"ceiling, smtplib alone on one connection, no database: {top:,.0f} messages/s"
              f" -> the sender runs at {rate / top:.0%} of it")


if __name__ == "__main__":
    main()
