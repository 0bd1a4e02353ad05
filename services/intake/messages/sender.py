"""The sender: a thread of the intake worker that delivers queued patient messages.

For each due row, oldest first: mark it `sending` and commit, deliver it, then record what
happened (sent, failed, uncertain, or queued again with exponential backoff) and publish
that state in the same transaction. Several senders (one per worker process) share the
rows through FOR UPDATE SKIP LOCKED; an SMTP session is reused across a batch.

A sender holds a PostgreSQL advisory lock, keyed by its id, for as long as its connection
lives; its `sending` rows carry that id. A row found `sending` whose sender's lock is free
belongs to a sender that is gone (killed, its connection lost): the message may or may not
have reached the server, so it becomes `uncertain` and is never sent again. A process
killed mid-batch therefore leaves at most one such row (it marks one row at a time).
"""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import psycopg

from services.common import metrics
from services.common.db import connect
from services.common.error_text import safe_error_text
from services.common.settings import Settings

from . import compose, store
from .changes import Appointment, Change
from .contact import EMAIL, SMS
from .outcome import FAILED, SENT, TEMPORARY, UNCERTAIN, Outcome
from .sms_gateway import SmsGateway
from .smtp_mail import SmtpMailer
from .translations import Languages, load_languages

log = logging.getLogger(__name__)

# The advisory lock's first key: senders' locks, apart from anything else that locks (the
# second key is the sender's id).
LOCK_CLASS = 190_019
BATCH_SIZE = 50
IDLE_WAIT_S = 1.0  # also how soon a retry that falls due is picked up
RETRY_BASE_S = 30.0
RETRY_MAX_S = 3600.0
NO_SMTP = "no SMTP server configured"
NO_GATEWAY = "no SMS gateway configured"
NO_ADDRESS = "no address to send to"
SENDER_GONE = "the sender stopped while delivering: the patient may or may not have been told"


def retry_delay(attempts: int, base_s: float, max_s: float = RETRY_MAX_S) -> float:
    """Exponential backoff after the `attempts`-th temporary refusal."""
    return min(max_s, base_s * 2 ** max(0, attempts - 1))


def clinic_contact(settings: Settings) -> compose.ClinicContact:
    return compose.ClinicContact(name=settings.clinic_name, phone=settings.clinic_contact_phone,
                                 time_zone=settings.clinic_time_zone)


def render(row: store.MessageRow, clinic: compose.ClinicContact, languages: Languages) -> dict:
    """The row's words, in the language fixed on it when its change was told."""
    change = Change(row.change, row.sequence, Appointment.from_snapshot(row.appointment))
    language = languages.of(row.language)
    if row.channel == EMAIL:
        mail = compose.email(change, clinic, language)
        return {"subject": mail.subject, "text": mail.text, "html": mail.html}
    return {"text": compose.sms(change, clinic, language)}


class MessageSender:
    def __init__(self, settings: Settings, *, batch_size: int = BATCH_SIZE, retry_base_s: float = RETRY_BASE_S,
                 idle_wait_s: float = IDLE_WAIT_S, mailer_factory: Callable[[], SmtpMailer] | None = None,
                 languages: Languages | None = None):
        self.settings = settings
        self.batch_size = batch_size
        self.retry_base_s = retry_base_s
        self.idle_wait_s = idle_wait_s
        self.clinic = clinic_contact(settings)
        # Loaded here, at the worker's start: a missing catalogue stops it (translations.py).
        self.languages = languages or load_languages()
        self.mailer_factory = mailer_factory or self._configured_mailer
        self.gateway = (SmsGateway(settings.sms_gateway_url, settings.sms_gateway_token)
                        if settings.sms_gateway_url else None)
        self.sender_id: int | None = None
        self.delivered = 0  # rows taken to a final state or requeued (tests and the bench wait on it)

    def _configured_mailer(self) -> SmtpMailer | None:
        s = self.settings
        if not s.smtp_host:
            return None
        return SmtpMailer(s.smtp_host, s.smtp_port, s.smtp_from, username=s.smtp_username,
                          password=s.smtp_password, starttls=s.smtp_starttls)

    # -- the thread ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                with connect(self.settings.database_url, autocommit=True) as listen_conn, \
                        connect(self.settings.database_url) as conn:
                    listen_conn.execute(f"LISTEN {store.WAKE_CHANNEL}")
                    self.take_lock(conn)
                    backoff = 0.5
                    while not stop.is_set():
                        if self.run_batch(conn, stop) < self.batch_size:
                            for _ in listen_conn.notifies(timeout=self.idle_wait_s, stop_after=1):
                                pass
            except (psycopg.OperationalError, OSError) as exc:
                log.warning("patient message sender waiting for the database", extra={"error": safe_error_text(exc)})
            except Exception as exc:  # a bug: its frames, back off, go on
                log.exception("patient message sender failed; retrying", extra={"error": safe_error_text(exc)})
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def take_lock(self, conn: psycopg.Connection) -> None:
        """This connection's sender id, held (session advisory lock) until it closes."""
        self.sender_id = random.randint(1, 2**31 - 1)
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, self.sender_id))
        conn.commit()

    # -- one batch -------------------------------------------------------------------------
    def run_batch(self, conn: psycopg.Connection, stop: threading.Event | None = None) -> int:
        """Deliver up to batch_size due rows; how many were taken."""
        self.settle_orphans(conn)
        mailer = None
        taken = 0
        try:
            while taken < self.batch_size and not (stop is not None and stop.is_set()):
                with conn.transaction():
                    row = store.claim_next(conn)
                    if row is None:
                        break
                    taken += 1
                    reason = self._cannot_carry(row)
                    if reason:
                        store.finish_queued(conn, row.message_id, "not_sent", reason)
                        self.delivered += 1
                        continue
                    content = render(row, self.clinic, self.languages)
                    store.mark_sending(conn, row.message_id, self.sender_id, content)
                try:
                    if row.channel == EMAIL:
                        mailer = mailer or self.mailer_factory()
                        outcome = mailer.send(row.message_id, row.recipient, content)
                    else:
                        outcome = self.gateway.send(row.message_id, row.recipient, content["text"])
                except Exception as exc:  # a bug in a transport: it may have sent, so not again
                    log.exception("patient message transport failed", extra={"error": safe_error_text(exc)})
                    outcome = Outcome(UNCERTAIN, f"the transport failed: {type(exc).__name__}")
                with conn.transaction():
                    self._record(conn, row, outcome)
                self.delivered += 1
        finally:
            if mailer is not None:
                mailer.close()
            with conn.transaction():
                metrics.PATIENT_MESSAGES_QUEUED.set(store.queued_count(conn))
        return taken

    def _cannot_carry(self, row: store.MessageRow) -> str | None:
        if row.channel == EMAIL and not self.settings.smtp_host:
            return NO_SMTP
        if row.channel == SMS and self.gateway is None:
            return NO_GATEWAY
        if not row.recipient:  # purged, or a row written by hand
            return NO_ADDRESS
        return None

    def _record(self, conn: psycopg.Connection, row: store.MessageRow, outcome: Outcome) -> None:
        attempts = row.attempts + 1
        if outcome.kind == SENT:
            recorded = store.record_outcome(conn, row.message_id, self.sender_id, "sent", None)
        elif outcome.kind == UNCERTAIN:
            recorded = store.record_outcome(conn, row.message_id, self.sender_id, "uncertain", outcome.detail)
        elif outcome.kind == TEMPORARY and attempts < self.settings.message_max_attempts:
            recorded = store.record_outcome(conn, row.message_id, self.sender_id, "queued", outcome.detail,
                                            retry_in_s=retry_delay(attempts, self.retry_base_s))
            metrics.PATIENT_MESSAGES.labels(row.channel, "retry").inc()
        else:
            detail = outcome.detail if outcome.kind == FAILED else \
                f"gave up after {attempts} attempts: {outcome.detail}"
            recorded = store.record_outcome(conn, row.message_id, self.sender_id, "failed", detail)
        if recorded is None:
            log.error("a delivery's outcome came after its row was taken for orphaned; it stays uncertain",
                      extra={"message_id": row.message_id, "outcome": outcome.kind})
        elif outcome.kind != SENT:
            log.warning("patient message not delivered", extra={
                "message_id": row.message_id, "channel": row.channel, "status": recorded.status,
                "detail": outcome.detail})

    def settle_orphans(self, conn: psycopg.Connection) -> int:
        """Rows left `sending` by senders that are gone become uncertain; how many."""
        settled = 0
        with conn.transaction():
            for sender in store.senders_in_flight(conn):
                if sender == self.sender_id:  # our own lock is re-entrant: never test it
                    continue
                gone = conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (LOCK_CLASS, sender)).fetchone()[0]
                if gone:
                    settled += store.orphans_uncertain(conn, sender, SENDER_GONE)
        if settled:
            log.warning("messages left sending by a sender that is gone are uncertain", extra={"rows": settled})
        return settled

