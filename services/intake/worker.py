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
from services.common.inbox import BatchHandler, Delivery
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS, Settings
from services.common.worker import run_worker

from . import events, store
from .messages.sender import MessageSender


def _referral_event(event: dict, delivery: Delivery) -> tuple[dict, str]:
    # the traceparent of the patient messages this change may queue (messages/store.py)
    return events.parse_referral_event(event), child_traceparent(delivery.traceparent)


# A poll's events are read one by one and written in runs (BatchHandler, inbox.py):
# - a decision: its care level and advice for the report (store.record_decisions);
# - a referral event: intake keeps which reports belong to which referral (events name only
#   the first report and the one a change linked, issue 15; or, in events from before, all of
#   them), decides what the patient is to be told against the newest snapshot known before
#   this one (docs/patient-messages.md; the sender thread delivers it), and records the
#   snapshot; a run's events each see the ones before them (store.apply_referral_events).
on_decision = BatchHandler(prepare=lambda event, _delivery: events.parse_decision(event),
                           write=store.record_decisions)
on_referral_event = BatchHandler(prepare=_referral_event, write=store.apply_referral_events)


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
