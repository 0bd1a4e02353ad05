"""Intake worker: relays reports to Kafka and keeps the kiosk status view current."""
from __future__ import annotations

from services.common import settings as settings_module
from services.common.inbox import Delivery, PoisonEvent
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS
from services.common.worker import run_worker

from . import store


def _data(event: dict, *keys: str) -> dict:
    data = event.get("data") or {}
    missing = [k for k in keys if k not in data]
    if missing:
        raise PoisonEvent(f"{event.get('type')}: data lacks {', '.join(missing)}")
    return data


def on_decision(conn, event: dict, delivery: Delivery) -> None:
    data = _data(event, "report_id", "care_level", "advice", "decided_at")
    store.record_decision(conn, data["report_id"], data["care_level"], data["advice"], data["decided_at"])


def on_referral_event(conn, event: dict, delivery: Delivery) -> None:
    data = _data(event, "referral_id", "report_ids", "priority", "status", "sequence")
    store.record_referral(conn, data["report_ids"], data, int(data["sequence"]))


def main() -> None:
    run_worker(settings_module.load("intake"), migrations_package="services.intake",
               handlers={TOPIC_DECISIONS: on_decision, TOPIC_REFERRAL_EVENTS: on_referral_event})
