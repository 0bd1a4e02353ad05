"""Intake worker: relays reports to Kafka and keeps the kiosk status view current.

Each handler runs inside the inbox transaction (services/common/inbox.py), so an event
delivered twice is applied once. Events may also come out of order, across topics (a
referral event before the decision that caused it) and within one (an older referral
snapshot after a newer one): the handlers only record facts, each guarded so that an
older fact never replaces a newer one, and status_view derives the status from them.

The events are checked (and poison refused) by events.py, intake's event contract.
"""
from __future__ import annotations

import threading

from services.common import settings as settings_module
from services.common.envelope import child_traceparent
from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS, Settings
from services.common.worker import run_worker

from . import events, store
from .messages import store as message_store
from .messages.sender import MessageSender


def on_decision(conn, event: dict, delivery: Delivery) -> None:
    data = events.parse_decision(event)
    store.record_decision(conn, data["report_id"], data["care_level"], data["advice"], data["decided_at"])


def on_referral_event(conn, event: dict, delivery: Delivery) -> None:
    data = events.parse_referral_event(event)
    referral_id = str(data["referral_id"])
    # Intake keeps which reports belong to which referral: events name only the first report
    # and the one a change linked (issue 15), or, in events from before, all of them.
    store.claim_reports(conn, referral_id, events.reports_named(data))
    # What the patient is to be told is decided against the newest snapshot known before
    # this one is recorded (docs/patient-messages.md); the sender thread delivers it.
    message_store.tell_change(conn, data, child_traceparent(delivery.traceparent))
    store.record_referral(conn, referral_id, data, data["sequence"])


HANDLERS = {TOPIC_DECISIONS: on_decision, TOPIC_REFERRAL_EVENTS: on_referral_event}
# The retention purge (services/common/purge.py): reports of closed cases lose their
# patient's identity CLINIC_RETENTION_IDENTITY_DAYS after closing.
IDENTITY_PURGE = (store.pseudonymise_batch, "intake.reports")


def run(settings: Settings, *, group_id: str | None = None, stop: threading.Event | None = None) -> None:
    """The intake worker: consumer, outbox relay, retention purge and patient message sender."""
    run_worker(settings, migrations_package="services.intake", handlers=HANDLERS, identity_purge=IDENTITY_PURGE,
               background=(MessageSender(settings).run,), group_id=group_id, stop=stop)


def main() -> None:
    run(settings_module.load("intake"))
