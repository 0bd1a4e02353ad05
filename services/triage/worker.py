"""Triage worker: decides each reported case and publishes the decision."""
from __future__ import annotations

from functools import partial

from services.common import envelope
from services.common import settings as settings_module
from services.common.inbox import Delivery
from services.common.settings import TOPIC_REPORTS
from services.common.worker import run_worker

from . import store
from .domain import decide, load_rules, default_rules_path
from .events import parse_report_event

CLINICAL_KEYS = ("activity", "pain", "function", "home_care")


def on_report(rules, conn, event: dict, delivery: Delivery) -> None:
    data = parse_report_event(event)
    report_id = str(data["report_id"])
    snapshot = {k: data[k] for k in CLINICAL_KEYS}
    # Pain duration counts to the day the patient reported, so that a replay of this
    # decision later gives the same answer.
    assessed_on = data["submitted_at"].date()
    decision = decide(snapshot, rules, today=assessed_on).to_dict()
    store.save_decision(conn, report_id=report_id, decision=decision, input_snapshot=snapshot,
                        assessed_on=assessed_on, patient=dict(data["patient"]),
                        traceparent=envelope.child_traceparent(delivery.traceparent))


def main() -> None:
    rules = load_rules(default_rules_path())  # a bad rule file stops the worker here, at start
    run_worker(settings_module.load("triage"), migrations_package="services.triage",
               handlers={TOPIC_REPORTS: partial(on_report, rules)})
