"""Triage worker: decides each reported case and publishes the decision."""
from __future__ import annotations

from datetime import datetime, timezone
from functools import partial

from services.common import envelope
from services.common import settings as settings_module
from services.common.inbox import BatchHandler, Delivery, Handler
from services.common.settings import TOPIC_REPORTS
from services.common.worker import run_worker

from . import events, store
from .domain import RuleSet, decide, default_rules_path, load_rules


def decide_report(rules: RuleSet, event: dict, delivery: Delivery) -> store.NewDecision:
    """The decision for a report event, made without I/O; PoisonEvent when it is not one."""
    data = events.parse_report_event(event)
    snapshot = events.clinical_answers(data)
    # Pain duration counts to the day the patient reported ("today" in UTC, as the contract
    # says), not to the day we happen to process it, so a replay later gives the same answer.
    assessed_on = data["submitted_at"].astimezone(timezone.utc).date()
    return store.NewDecision(
        report_id=str(data["report_id"]), decision=decide(snapshot, rules, today=assessed_on).to_dict(),
        input_snapshot=snapshot, assessed_on=assessed_on, patient=dict(data["patient"]),
        traceparent=envelope.child_traceparent(delivery.traceparent), decided_at=datetime.now(timezone.utc))


def on_report(rules: RuleSet, conn, event: dict, delivery: Delivery) -> None:
    """One report event, in the caller's transaction: its decision and the decision's event."""
    store.save_decisions(conn, [decide_report(rules, event, delivery)])


def handlers(rules: RuleSet) -> dict[str, Handler]:
    """Topic -> handler, for run_worker: a poll's reports are decided one by one and stored
    together (BatchHandler)."""
    return {TOPIC_REPORTS: BatchHandler(prepare=partial(decide_report, rules), write=store.save_decisions)}


def main() -> None:
    rules = load_rules(default_rules_path())  # a bad rule file stops the worker here, at start
    run_worker(settings_module.load("triage"), migrations_package="services.triage",
               handlers=handlers(rules))
