"""Referral worker: turns triage decisions into referrals and relays referral events."""
from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from services.common import envelope
from services.common import settings as settings_module
from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS
from services.common.worker import run_worker

from . import booking
from .domain import DEFAULT_WINDOWS
from . import store
from .events import DEFAULT_MAX_WINDOW_DAYS, parse_decision

# The retention purge (services/common/purge.py): closed referrals lose their patient's
# identity CLINIC_RETENTION_IDENTITY_DAYS after closing.
IDENTITY_PURGE = (store.pseudonymise_batch, "referral.referrals")


def on_decision(conn, event: dict, delivery: Delivery, *, now: datetime | None = None,
                max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> None:
    """Runs in the inbox transaction; any error rolls it back and the event is retried (a
    PoisonEvent: dead-lettered). `max_window_days`: CLINIC_REFERRAL_MAX_WINDOW_DAYS."""
    decision = parse_decision(event, DEFAULT_WINDOWS, max_window_days)
    if decision.care_level == "self_care":
        return  # no referral, and (since issue 13) no patient identity in the event either
    # The window counts from when the referral is made, i.e. now, not from the decision.
    booking.apply_decision(conn, decision, now or datetime.now(UTC),
                           envelope.child_traceparent(delivery.traceparent))


def main() -> None:
    settings = settings_module.load("referral")
    run_worker(settings, migrations_package="services.referral",
               handlers={TOPIC_DECISIONS: partial(on_decision, max_window_days=settings.referral_max_window_days)},
               identity_purge=IDENTITY_PURGE)
