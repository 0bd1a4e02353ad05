"""Intake worker: relays reports to Kafka and keeps the kiosk status view current.

Each handler runs inside the inbox transaction (services/common/inbox.py), so an event
delivered twice is applied once. Events may also come out of order, across topics (a
referral event before the decision that caused it) and within one (an older referral
snapshot after a newer one): the handlers only record facts, each guarded so that an
older fact never replaces a newer one, and status_view derives the status from them.

The events are checked (and poison refused) by events.py, intake's event contract.
"""
from __future__ import annotations

from services.common import settings as settings_module
from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS
from services.common.worker import run_worker

from . import events, store


def on_decision(conn, event: dict, delivery: Delivery) -> None:
    data = events.parse_decision(event)
    store.record_decision(conn, data["report_id"], data["care_level"], data["advice"], data["decided_at"])


def on_referral_event(conn, event: dict, delivery: Delivery) -> None:
    data = events.parse_referral_event(event)
    store.record_referral(conn, data["report_ids"], data, data["sequence"])


HANDLERS = {TOPIC_DECISIONS: on_decision, TOPIC_REFERRAL_EVENTS: on_referral_event}
# The retention purge (services/common/purge.py): reports of closed cases lose their
# patient's identity CLINIC_RETENTION_IDENTITY_DAYS after closing.
IDENTITY_PURGE = (store.pseudonymise_batch, "intake.reports")


def main() -> None:
    run_worker(settings_module.load("intake"), migrations_package="services.intake", handlers=HANDLERS,
               identity_purge=IDENTITY_PURGE)
