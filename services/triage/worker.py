"""Triage worker: decides each reported case and publishes the decision."""
from __future__ import annotations

from datetime import datetime, timezone
from functools import partial

from services.common import envelope
from services.common import settings as settings_module
from services.common.inbox import Delivery, Handler
from services.common.settings import TOPIC_REPORTS
from services.common.worker import run_worker

from . import events, store
from .domain import RuleSet, decide, default_rules_path, load_rules


def on_report(rules: RuleSet, conn, event: dict, delivery: Delivery) -> None:
    """Runs inside the consumer's transaction (with the inbox row): decision + outbox event."""
    data = events.parse_report_event(event)
    report_id = str(data["report_id"])
    snapshot = events.clinical_answers(data)
    # Pain duration counts to the day the patient reported ("today" in UTC, as the contract
    # says), not to the day we happen to process it, so a replay later gives the same answer.
    assessed_on = data["submitted_at"].astimezone(timezone.utc).date()
    decision = decide(snapshot, rules, today=assessed_on).to_dict()
    store.save_decision(conn, report_id=report_id, decision=decision, input_snapshot=snapshot,
                        assessed_on=assessed_on, patient=dict(data["patient"]),
                        traceparent=envelope.child_traceparent(delivery.traceparent),
                        # known here rather than returned by the insert: the event can then
                        # be written in the same round trip (store.save_decision)
                        decided_at=datetime.now(timezone.utc))


def handlers(rules: RuleSet) -> dict[str, Handler]:
    """Topic -> handler, for run_worker."""
    return {TOPIC_REPORTS: partial(on_report, rules)}


def main() -> None:
    rules = load_rules(default_rules_path())  # a bad rule file stops the worker here, at start
    run_worker(settings_module.load("triage"), migrations_package="services.triage",
               handlers=handlers(rules))
