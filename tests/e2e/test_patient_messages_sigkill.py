"""Exactly once under SIGKILL: the intake worker process (`services.intake.worker.run`, as
`clinic worker intake` runs it, with its own consumer group) is killed mid-batch while its
sender delivers a few hundred messages to a real SMTP server in this process, then started
again, several times. Afterwards no message was received twice, every message is `sent` or
`uncertain`, each `sent` one was received once, and there are no more `uncertain` messages
than kills (a sender marks one row `sending` at a time: only it can be in doubt)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import psycopg
import pytest

from tests.patient_message_support import RecordingSmtpHandler, smtp_server, wait_until

pytestmark = pytest.mark.e2e

MESSAGES = 300
KILLS = 4


class SlowHandler(RecordingSmtpHandler):
    """A server that takes 10 ms over each message: a kill lands mid-delivery more often."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


def queue_messages(conn, run: str) -> list[str]:
    """MESSAGES queued email rows, as the referral-event handler writes them."""
    addresses = [f"kill-{run}-{i}@example.org" for i in range(MESSAGES)]
    with conn.transaction():
        for i, address in enumerate(addresses):
            conn.execute(
                "INSERT INTO intake.patient_messages (message_id, referral_id, sequence, change, channel, recipient,"
                " appointment, status) VALUES (%s, %s, 1, 'booked', 'email', %s, %s, 'queued')",
                (str(uuid.uuid4()), str(uuid.uuid4()), address,
                 psycopg.types.json.Jsonb({"start": "2026-12-01T09:30:00+00:00", "provider": "Dr. Rui Costa",
                                           "location": "Clinic North"})))
        conn.execute("NOTIFY intake_patient_messages")
    return addresses


def start_worker(stack_env: dict, smtp_port: int, log_path, group: str) -> subprocess.Popen:
    env = {**os.environ, **stack_env, "CLINIC_SMTP_HOST": "127.0.0.1", "CLINIC_SMTP_PORT": str(smtp_port),
           "CLINIC_SMTP_FROM": "appointments@clinic.example.org", "CLINIC_SERVICE": "intake"}
    code = ("from services.common.settings import load; from services.intake.worker import run;"
            f" run(load('intake'), group_id={group!r})")
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)


def statuses(conn, addresses: list[str]) -> Counter:
    return Counter(status for (status,) in conn.execute(
        "SELECT status FROM intake.patient_messages WHERE recipient = ANY(%s)", (addresses,)))


@pytest.mark.timeout(300)
def test_no_message_is_sent_twice_when_the_sending_worker_is_sigkilled_mid_batch(
        intake_settings, intake_conn, stack_env, tmp_path, record_property, capsys):
    run, group = uuid.uuid4().hex[:8], f"clinic-intake-kill-{uuid.uuid4().hex[:8]}"
    handler = SlowHandler()
    with smtp_server(handler) as (_, port):
        addresses = queue_messages(intake_conn, run)
        received = lambda: sum(len(handler.to(a)) for a in addresses)  # noqa: E731
        kills = 0
        for _ in range(KILLS):
            worker = start_worker(stack_env, port, tmp_path / "worker.log", group)
            try:
                before = received()
                wait_until(lambda: received() >= before + 25, 60, "the worker sending")
                time.sleep(0.003 * kills)  # not always at the same point of a delivery
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
            kills += 1
        worker = start_worker(stack_env, port, tmp_path / "worker.log", group)
        try:
            wait_until(lambda: set(statuses(intake_conn, addresses)) <= {"sent", "uncertain"}, 120,
                       f"every message sent or uncertain: {statuses(intake_conn, addresses)}")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()[-3000:]

    final = statuses(intake_conn, addresses)
    per_address = {a: len(handler.to(a)) for a in addresses}
    sent = {a for (a,) in intake_conn.execute(
        "SELECT recipient FROM intake.patient_messages WHERE recipient = ANY(%s) AND status = 'sent'", (addresses,))}
    with capsys.disabled():
        print(f"\nSIGKILL proof: {MESSAGES} messages, {kills} kills mid-batch: {dict(final)};"
              f" received {sum(per_address.values())}, at most once each: {max(per_address.values()) <= 1}")
    record_property("patient_messages_sigkill", dict(final))
    assert sum(final.values()) == MESSAGES
    assert max(per_address.values()) <= 1, "a message was received twice"
    assert all(per_address[a] == 1 for a in sent), "a message recorded sent was not received"
    assert final["uncertain"] <= kills
