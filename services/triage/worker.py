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
from .domain.patient_text import recorded
from .translations import Catalogues, load_catalogues


def decide_report(rules: RuleSet, catalogues: Catalogues, event: dict, delivery: Delivery) -> store.NewDecision:
    """The decision for a report event, made without I/O; PoisonEvent when it is not one.
    Its English texts are the clinical record; the patient's, in the report's language, go
    beside them (`language`, `patient_text`)."""
    data = events.parse_report_event(event)
    snapshot = events.clinical_answers(data)
    # Pain duration counts to the day the patient reported ("today" in UTC, as the contract
    # says), not to the day we happen to process it, so a replay later gives the same answer.
    assessed_on = data["submitted_at"].astimezone(timezone.utc).date()
    decision = decide(snapshot, rules, today=assessed_on)
    language = data["language"]
    return store.NewDecision(
        report_id=str(data["report_id"]),
        decision=recorded(decision, rules, language, catalogues.lookup(language)),
        input_snapshot=snapshot, assessed_on=assessed_on, patient=dict(data["patient"]),
        traceparent=envelope.child_traceparent(delivery.traceparent), decided_at=datetime.now(timezone.utc))


def on_report(rules: RuleSet, catalogues: Catalogues, conn, event: dict, delivery: Delivery) -> None:
    """One report event, in the caller's transaction: its decision and the decision's event."""
    store.save_decisions(conn, [decide_report(rules, catalogues, event, delivery)])


def handlers(rules: RuleSet, catalogues: Catalogues) -> dict[str, Handler]:
    """Topic -> handler, for run_worker: a poll's reports are decided one by one and stored
    together (BatchHandler)."""
    return {TOPIC_REPORTS: BatchHandler(prepare=partial(decide_report, rules, catalogues),
                                        write=store.save_decisions)}


def main() -> None:
    # A bad rule file, or a supported language without its catalogue, stops the worker here, at start.
    rules = load_rules(default_rules_path())
    catalogues = load_catalogues()
    run_worker(settings_module.load("triage"), migrations_package="services.triage",
               handlers=handlers(rules, catalogues))
