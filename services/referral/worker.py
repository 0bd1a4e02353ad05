"""Referral worker: turns triage decisions into referrals and relays referral events."""
from __future__ import annotations

from datetime import UTC, datetime

from services.common import envelope
from services.common import settings as settings_module
from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS
from services.common.worker import run_worker

from . import booking
from .domain import DEFAULT_WINDOWS
from . import store
from .events import parse_decision

# The retention purge (services/common/purge.py): closed referrals lose their patient's
# identity CLINIC_RETENTION_IDENTITY_DAYS after closing.
IDENTITY_PURGE = (store.pseudonymise_batch, "referral.referrals")


def on_decision(conn, event: dict, delivery: Delivery, *, now: datetime | None = None) -> None:
    """Runs in the inbox transaction; any error rolls it back and the event is retried."""
    decision = parse_decision(event, DEFAULT_WINDOWS)
    if decision.care_level == "self_care":
        return  # no referral, and (since issue 13) no patient identity in the event either
    # The window counts from when the referral is made, i.e. now, not from the decision.
    booking.apply_decision(conn, decision, now or datetime.now(UTC),
                           envelope.child_traceparent(delivery.traceparent))


def main() -> None:
    run_worker(settings_module.load("referral"), migrations_package="services.referral",
               handlers={TOPIC_DECISIONS: on_decision}, identity_purge=IDENTITY_PURGE)
