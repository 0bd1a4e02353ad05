"""A real SMTP server (aiosmtpd, in-process) and a local SMS gateway (http.server) that record
what they received, for the patient message tests and bench; and the test-side view of the
rows and events (services/intake/messages)."""
from __future__ import annotations

import contextlib
import email
import email.policy
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from infra.postgres import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class RecordingSmtpHandler:
    """Takes every message (250) unless `script` says otherwise: each entry, used once and in
    order, answers one DATA ("451 ...", "550 ...") or, "drop", closes the connection once the
    server has the whole message (the client never learns it was taken)."""
    received: list[Received] = field(default_factory=list)
    refused_rcpt: set[str] = field(default_factory=set)
    script: deque = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            answer = self.script.popleft() if self.script else "250 OK"
            if answer == "250 OK" or answer == "drop":
                self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if answer == "drop":
            server.transport.close()
            return "250 OK"  # never reaches the client
        return answer

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]


@contextlib.contextmanager
def smtp_server(handler: RecordingSmtpHandler | None = None) -> Iterator[tuple[RecordingSmtpHandler, int]]:
    handler = handler or RecordingSmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@dataclass
class SmsRequest:
    headers: dict[str, str]
    body: dict


class SmsRecorder:
    """A local SMS gateway: records each POST, answers `script`'s statuses in order, then 202."""

    def __init__(self):
        self.requests: list[SmsRequest] = []
        self.script: deque[int] = deque()
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with recorder.lock:
                    recorder.requests.append(SmsRequest(dict(self.headers), body))
                    status = recorder.script.popleft() if recorder.script else 202
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/sms"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def to(self, number: str) -> list[SmsRequest]:
        with self.lock:
            return [r for r in self.requests if r.body.get("to") == number]

    def __enter__(self) -> SmsRecorder:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def message_rows(conn, referral_id: str) -> list[dict]:
    cur = conn.execute(
        "SELECT message_id::text, report_id::text, sequence, change, channel, status, detail, attempts, revision,"
        " recipient, content, sender FROM intake.patient_messages WHERE referral_id = %s"
        " ORDER BY sequence, channel", (referral_id,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def message_events(conn, referral_id: str) -> list[dict]:
    """The clinic.patient.message events intake's outbox holds for this referral, in order."""
    return [row[0] for row in conn.execute(
        "SELECT payload FROM intake.outbox WHERE topic = 'clinic.patient-messages.v1' AND key = %s ORDER BY id",
        (referral_id,))]


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g}s: {what}")
