"""Which decisions of a run may be booked together (domain.first_meetings), and the batch
handler's prepare step (checks only, no I/O)."""
from __future__ import annotations

import pytest

from services.common.inbox import BatchHandler, Delivery, PoisonEvent
from services.common.settings import TOPIC_DECISIONS
from services.referral import decision_batch, worker
from services.referral.domain import first_meetings
from tests.referral_support import decision_event

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_every_first_meeting_of_a_report_and_of_an_mrn_is_first():
    assert first_meetings([("r1", "MRN-1"), ("r2", "MRN-2"), ("r3", "MRN-3")]) == [True, True, True]


def test_an_mrn_met_before_as_compared_is_not_first():
    run = [("r1", "MRN-1"), ("r2", " mrn-1 "), ("r3", "ＭＲＮ-1"), ("r4", "MRN-2")]
    assert first_meetings(run) == [True, False, False, True]


def test_a_report_met_before_is_not_first_even_with_another_mrn():
    assert first_meetings([("r1", "MRN-1"), ("r1", "MRN-2"), ("r2", "MRN-2")]) == [True, False, False]


def test_an_empty_run():
    assert first_meetings([]) == []


def _delivery(event: dict) -> Delivery:
    return Delivery(topic=TOPIC_DECISIONS, partition=0, offset=0, key=event["data"]["report_id"],
                    traceparent=TRACEPARENT)


def test_prepare_keeps_the_decision_and_the_trace_of_its_events():
    event = decision_event("urgent", "MRN-7")
    prepared = decision_batch.prepare(event, _delivery(event))
    assert prepared.decision.report_id == event["data"]["report_id"]
    assert prepared.decision.care_level == "urgent"
    trace_id = TRACEPARENT.split("-")[1]
    assert prepared.traceparent.split("-")[1] == trace_id and prepared.traceparent != TRACEPARENT


def test_prepare_refuses_a_window_longer_than_the_setting_naming_the_field():
    event = decision_event("specialist", "MRN-7")
    event["data"]["referral"]["within_days"] = 20
    with pytest.raises(PoisonEvent, match="within_days"):
        worker.decisions_handler(max_window_days=14).prepare(event, _delivery(event))
    assert decision_batch.prepare(event, _delivery(event), max_window_days=30).decision.windows.routine.days == 20


def test_the_worker_consumes_decisions_in_batches():
    assert isinstance(worker.handlers()[TOPIC_DECISIONS], BatchHandler)
