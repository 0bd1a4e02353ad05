"""The intake worker's handlers keep GET /v1/reports/<id> current, against the real database.

Events are applied exactly as the worker's consumer applies them (InboxConsumer._apply:
one transaction with the inbox row), without Kafka, so that the order of arrival is the
test's to choose: twice, out of order across topics, an older snapshot after a newer one.
The full Kafka path is covered end to end (tests/e2e).
"""
from __future__ import annotations

import copy
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.intake_support import report_body, staff_headers

from services.common.db import make_pool
from services.common.envelope import new_event, new_traceparent
from services.common.inbox import Delivery, InboxConsumer, PoisonEvent
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS
from services.intake import worker
from services.referral.events import (BOOKED_EVENT, CANCELLED_EVENT, LINKED_EVENT, RESCHEDULED_EVENT,
                                      WAITLISTED_EVENT, referral_event)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ADVICE = {"urgent": ["Stop running until you are seen."], "self_care": ["Rest for two weeks."],
          "specialist": ["Avoid deep squats."]}


@pytest.fixture
def app(intake_app):
    """Intake's app, whose test client is `client` (tests/conftest.py)."""
    return intake_app


@pytest.fixture(scope="module")
def consumer(intake_settings):
    """The worker's consumer, used only to apply events (its Kafka side is never started)."""
    pool = make_pool(intake_settings.database_url, max_size=2, name="intake-test-status")
    yield InboxConsumer(service="intake", pool=pool, kafka_bootstrap="127.0.0.1:1", group_id="unused",
                        handlers=worker.HANDLERS)
    pool.close()


def deliver(consumer, topic: str, event: dict) -> str:
    """'applied' or 'duplicate', as the consumer counts it."""
    delivery = Delivery(topic=topic, partition=0, offset=0, key=event["data"].get("report_id"),
                        traceparent=new_traceparent())
    return consumer._apply(event, delivery)


def english_detail(care_level: str) -> dict:
    """What the status view adds for a decision without patient texts (made before issue 18)."""
    return {"language": "en", "reasons": [{"rule": "X", "reason_id": None, "text": "test"}],
            "advice_items": [{"id": None, "text": line, "safety_netting": False} for line in ADVICE[care_level]]}


def decision(report_id: str, care_level: str, decided_at: datetime = T0) -> dict:
    """A decision event as triage publishes it (services/triage/store.save_decision)."""
    referral = None if care_level == "self_care" else {
        "priority": "urgent" if care_level == "urgent" else "routine",
        "within_days": 2 if care_level == "urgent" else 14}
    data = {"report_id": report_id, "care_level": care_level, "rules_version": "2026-11-1",
            "fired": [{"id": "X", "reason": "test"}], "likely_source": "joint", "possible_causes": [],
            "notes": [], "advice": ADVICE[care_level], "referral": referral,
            "decided_at": decided_at.isoformat(),
            "patient": {"mrn": "MRN-x", "display_name": "Ana Silva"}}
    return new_event(type="clinic.triage.decided", source="/clinic/triage", subject=report_id, data=data)


def snapshot(report_ids: list[str], *, status: str, sequence: int, referral_id: str,
             priority: str = "urgent", slot: bool = True, linked: str | None = None, old_form: bool = False) -> dict:
    """A referral event as the referral service publishes it (services/referral/events.py):
    `report_ids` are the referral's reports at that point, `linked` the one the change linked.
    `old_form`: as published before issue 15, with every report in `report_ids` (such events
    wait in topics and DLQs at the upgrade)."""
    start = T0 + timedelta(days=1)
    view = {
        "referral_id": referral_id, "report_id": report_ids[0], "report_ids": report_ids,
        "care_level": "urgent" if priority == "urgent" else "specialist", "priority": priority,
        "status": status, "sequence": sequence, "created_at": T0, "window_ends_at": T0 + timedelta(days=2),
        "appointment": {"slot_id": str(uuid.uuid4()), "start": start, "end": start + timedelta(minutes=30),
                        "provider": "Dr. Rui Costa", "location": "Clinic North"} if slot else None,
    }
    type_ = LINKED_EVENT if linked else {"booked": BOOKED_EVENT, "waitlisted": WAITLISTED_EVENT,
                                         "cancelled": CANCELLED_EVENT}.get(status, RESCHEDULED_EVENT)
    event = referral_event(type_, view, linked_report_id=linked)
    if old_form:
        del event["data"]["report_count"]
        event["data"].pop("linked_report_id", None)
        event["data"]["report_ids"] = list(report_ids)
    else:
        assert "report_ids" not in event["data"]
    return event


@pytest.fixture
def new_report(client, kiosk):
    def make() -> str:
        response = client.post("/v1/reports", json=report_body(), headers=kiosk.headers)
        assert response.status_code == 202
        return response.get_json()["report_id"]

    return make


@pytest.fixture
def view(client, kiosk):
    def read(report_id: str) -> dict:
        response = client.get(f"/v1/reports/{report_id}", headers=kiosk.headers)
        assert response.status_code == 200
        return response.get_json()

    return read


def test_decision_then_booking(consumer, new_report, view):
    report_id = new_report()
    assert view(report_id)["status"] == "received"

    assert deliver(consumer, TOPIC_DECISIONS, decision(report_id, "urgent")) == "applied"
    assert view(report_id) == {"report_id": report_id, "status": "triaged", "care_level": "urgent",
                               "advice": ADVICE["urgent"], "referral": None, **english_detail("urgent")}

    booked = snapshot([report_id], status="booked", sequence=1, referral_id=str(uuid.uuid4()))
    assert deliver(consumer, TOPIC_REFERRAL_EVENTS, booked) == "applied"
    shown = view(report_id)
    data = booked["data"]
    assert shown["status"] == "referred" and shown["care_level"] == "urgent"
    assert shown["referral"] == {"referral_id": data["referral_id"], "priority": "urgent", "status": "booked",
                                 "appointment": data["appointment"]}
    assert set(shown["referral"]["appointment"]) == {"slot_id", "start", "end", "provider", "location"}


def test_self_care_ends_closed_without_a_referral(consumer, new_report, view):
    report_id = new_report()
    deliver(consumer, TOPIC_DECISIONS, decision(report_id, "self_care"))
    assert view(report_id) == {"report_id": report_id, "status": "closed", "care_level": "self_care",
                               "advice": ADVICE["self_care"], "referral": None, **english_detail("self_care")}


def test_a_referral_event_before_its_decision(consumer, new_report, view):
    report_id = new_report()
    referral_id = str(uuid.uuid4())
    deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([report_id], status="waitlisted", sequence=1,
                                                      referral_id=referral_id, slot=False))
    early = view(report_id)
    assert early["status"] == "waitlisted" and early["care_level"] is None and early["advice"] == []
    assert early["referral"]["appointment"] is None

    deliver(consumer, TOPIC_DECISIONS, decision(report_id, "urgent"))
    late = view(report_id)
    assert late["status"] == "waitlisted" and late["care_level"] == "urgent"
    assert late["advice"] == ADVICE["urgent"] and late["referral"]["referral_id"] == referral_id


def test_the_same_event_twice_is_applied_once(consumer, new_report, view, intake_conn):
    report_id = new_report()
    decided = decision(report_id, "urgent")
    booked = snapshot([report_id], status="booked", sequence=1, referral_id=str(uuid.uuid4()))
    assert deliver(consumer, TOPIC_DECISIONS, decided) == "applied"
    assert deliver(consumer, TOPIC_REFERRAL_EVENTS, booked) == "applied"
    before = view(report_id)
    updated_at = intake_conn.execute("SELECT updated_at FROM intake.reports WHERE report_id = %s",
                                     (report_id,)).fetchone()

    assert deliver(consumer, TOPIC_DECISIONS, copy.deepcopy(decided)) == "duplicate"
    assert deliver(consumer, TOPIC_REFERRAL_EVENTS, copy.deepcopy(booked)) == "duplicate"

    assert view(report_id) == before
    assert intake_conn.execute("SELECT updated_at FROM intake.reports WHERE report_id = %s",
                               (report_id,)).fetchone() == updated_at  # not even touched
    inbox = intake_conn.execute("SELECT count(*) FROM intake.inbox WHERE event_id = ANY(%s)",
                                ([decided["id"], booked["id"]],)).fetchone()[0]
    assert inbox == 2


def test_an_older_snapshot_after_a_newer_one_changes_nothing(consumer, new_report, view):
    report_id = new_report()
    referral_id = str(uuid.uuid4())
    deliver(consumer, TOPIC_DECISIONS, decision(report_id, "urgent"))
    waitlisted = snapshot([report_id], status="waitlisted", sequence=1, referral_id=referral_id, slot=False)
    booked = snapshot([report_id], status="booked", sequence=2, referral_id=referral_id)
    cancelled = snapshot([report_id], status="cancelled", sequence=3, referral_id=referral_id, slot=False)

    # Newest first, then the older ones late (each a distinct event: the inbox lets them in).
    for event in (cancelled, booked, waitlisted):
        assert deliver(consumer, TOPIC_REFERRAL_EVENTS, event) == "applied"

    shown = view(report_id)
    assert shown["status"] == "closed"
    assert shown["referral"]["status"] == "cancelled" and shown["referral"]["appointment"] is None


def test_snapshots_in_order_follow_the_referral(consumer, new_report, view):
    report_id = new_report()
    referral_id = str(uuid.uuid4())
    deliver(consumer, TOPIC_DECISIONS, decision(report_id, "specialist"))
    steps = [("waitlisted", "waitlisted", False), ("booked", "referred", True), ("completed", "closed", True)]
    for sequence, (referral_status, report_status, slot) in enumerate(steps, start=1):
        deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([report_id], status=referral_status, sequence=sequence,
                                                          referral_id=referral_id, priority="routine",
                                                          slot=slot))
        shown = view(report_id)
        assert (shown["status"], shown["referral"]["status"]) == (report_status, referral_status)


def test_a_linked_report_shows_the_referral_it_joined(consumer, new_report, view):
    first, second = new_report(), new_report()
    referral_id = str(uuid.uuid4())
    deliver(consumer, TOPIC_DECISIONS, decision(first, "specialist"))
    deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([first], status="booked", sequence=1,
                                                      referral_id=referral_id, priority="routine"))
    deliver(consumer, TOPIC_DECISIONS, decision(second, "urgent"))
    # The urgent report joins the open referral and raises it.
    deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([first, second], status="booked", sequence=2,
                                                      referral_id=referral_id, priority="urgent", linked=second))
    for report_id in (first, second):
        shown = view(report_id)
        assert shown["status"] == "referred"
        assert shown["referral"]["referral_id"] == referral_id and shown["referral"]["priority"] == "urgent"
    assert view(first)["care_level"] == "specialist" and view(second)["care_level"] == "urgent"
    # The referral's next events name neither report: they reach both all the same.
    deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([first, second], status="cancelled", sequence=3,
                                                      referral_id=referral_id, slot=False))
    assert [view(r)["referral"]["status"] for r in (first, second)] == ["cancelled", "cancelled"]


def referral_of(conn, report_id: str) -> tuple:
    """(referral_id, sequence of the snapshot held) of a report, as intake stores them."""
    row = conn.execute("SELECT referral_id::text, referral_sequence FROM intake.reports WHERE report_id = %s",
                       (report_id,)).fetchone()
    return tuple(row)


def test_a_report_linked_after_newer_snapshots_shows_the_newest(consumer, new_report, view, intake_conn):
    """Out of order (a redelivery, a replay): the link of `second` (sequence 2) comes after the
    referral's sequence-3 snapshot, which could not name it; `second` still shows sequence 3."""
    first, second = new_report(), new_report()
    referral_id = str(uuid.uuid4())
    booked = snapshot([first], status="booked", sequence=1, referral_id=referral_id)
    linked = snapshot([first, second], status="booked", sequence=2, referral_id=referral_id, linked=second)
    waitlisted = snapshot([first, second], status="waitlisted", sequence=3, referral_id=referral_id, slot=False)
    for event in (booked, waitlisted, linked):
        assert deliver(consumer, TOPIC_REFERRAL_EVENTS, event) == "applied"
    for report_id in (first, second):
        shown = view(report_id)
        assert (shown["status"], shown["referral"]["status"], shown["referral"]["appointment"]) == (
            "waitlisted", "waitlisted", None), report_id
        assert referral_of(intake_conn, report_id) == (referral_id, 3)


def test_links_in_any_order_reach_every_report(consumer, new_report, view, intake_conn):
    first, second, third = new_report(), new_report(), new_report()
    referral_id = str(uuid.uuid4())
    events = [snapshot([first], status="waitlisted", sequence=1, referral_id=referral_id, slot=False),
              snapshot([first, second], status="waitlisted", sequence=2, referral_id=referral_id, slot=False,
                       linked=second),
              snapshot([first, second, third], status="waitlisted", sequence=3, referral_id=referral_id,
                       slot=False, linked=third),
              snapshot([first, second, third], status="booked", sequence=4, referral_id=referral_id)]
    for event in reversed(events):  # newest first: each link arrives after the newer snapshots
        assert deliver(consumer, TOPIC_REFERRAL_EVENTS, event) == "applied"
    booked = events[-1]["data"]
    for report_id in (first, second, third):
        assert view(report_id)["referral"] == {"referral_id": referral_id, "priority": "urgent",
                                               "status": "booked", "appointment": booked["appointment"]}
        assert referral_of(intake_conn, report_id) == (referral_id, 4)


def test_another_referrals_snapshot_reaches_only_its_own_reports(consumer, new_report, view):
    mine, theirs = new_report(), new_report()
    my_referral, their_referral = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([mine], status="booked", sequence=1, referral_id=my_referral))
    deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([theirs], status="waitlisted", sequence=5,
                                                      referral_id=their_referral, slot=False))
    assert view(mine)["referral"]["referral_id"] == my_referral and view(mine)["status"] == "referred"
    assert view(theirs)["referral"]["referral_id"] == their_referral


@pytest.mark.parametrize("order", ["as published", "old replayed last", "newest first"])
def test_a_backlog_of_old_and_new_events_ends_with_the_newest_everywhere(consumer, new_report, view, order,
                                                                           intake_conn):
    """The upgrade: events published before issue 15 (every report in `report_ids`) still in the
    topic, or replayed from a DLQ later, among events of the new form."""
    first, second, third = new_report(), new_report(), new_report()
    referral_id = str(uuid.uuid4())
    old = [snapshot([first], status="waitlisted", sequence=1, referral_id=referral_id, slot=False, old_form=True),
           snapshot([first, second], status="waitlisted", sequence=2, referral_id=referral_id, slot=False,
                    old_form=True, linked=second)]
    new = [snapshot([first, second, third], status="booked", sequence=3, referral_id=referral_id, linked=third),
           snapshot([first, second, third], status="booked", sequence=4, referral_id=referral_id)]
    assert "report_ids" in old[1]["data"] and "linked_report_id" in new[0]["data"]
    backlog = {"as published": old + new, "old replayed last": new + old, "newest first": new[::-1] + old[::-1]}
    for event in backlog[order]:
        assert deliver(consumer, TOPIC_REFERRAL_EVENTS, event) == "applied"
    for report_id in (first, second, third):
        assert view(report_id)["referral"]["appointment"] == new[-1]["data"]["appointment"], report_id
        assert referral_of(intake_conn, report_id) == (referral_id, 4)


def test_an_older_decision_after_a_newer_one_changes_nothing(consumer, new_report, view):
    report_id = new_report()
    deliver(consumer, TOPIC_DECISIONS, decision(report_id, "urgent", decided_at=T0 + timedelta(minutes=5)))
    deliver(consumer, TOPIC_DECISIONS, decision(report_id, "self_care", decided_at=T0))
    shown = view(report_id)
    assert shown["care_level"] == "urgent" and shown["status"] == "triaged"


def test_staff_see_the_same_view(consumer, new_report, view, client, intake_settings):
    report_id = new_report()
    deliver(consumer, TOPIC_DECISIONS, decision(report_id, "urgent"))
    staff = client.get(f"/v1/reports/{report_id}", headers=staff_headers(intake_settings))
    assert staff.status_code == 200 and staff.get_json() == view(report_id)


def test_events_for_an_unknown_report_are_recorded_and_harmless(consumer, intake_conn):
    unknown = str(uuid.uuid4())
    event = decision(unknown, "urgent")
    assert deliver(consumer, TOPIC_DECISIONS, event) == "applied"
    assert intake_conn.execute("SELECT count(*) FROM intake.reports WHERE report_id = %s",
                               (unknown,)).fetchone()[0] == 0


def _broken(event: dict, **changes) -> dict:
    event = copy.deepcopy(event)
    event["id"] = str(uuid.uuid4())
    for key, value in changes.items():
        if value is ...:
            del event["data"][key]
        else:
            event["data"][key] = value
    return event


@pytest.mark.parametrize("topic, changes", [
    (TOPIC_DECISIONS, {"report_id": "not-a-uuid"}),
    (TOPIC_DECISIONS, {"care_level": "panic"}),
    (TOPIC_DECISIONS, {"advice": ...}),
    (TOPIC_DECISIONS, {"decided_at": "yesterday"}),
    (TOPIC_REFERRAL_EVENTS, {"report_ids": []}),
    (TOPIC_REFERRAL_EVENTS, {"report_id": ...}),
    (TOPIC_REFERRAL_EVENTS, {"linked_report_id": "not-a-uuid"}),
    (TOPIC_REFERRAL_EVENTS, {"report_count": 0}),
    (TOPIC_REFERRAL_EVENTS, {"status": "lost"}),
    (TOPIC_REFERRAL_EVENTS, {"sequence": "7"}),
    (TOPIC_REFERRAL_EVENTS, {"appointment": {"slot_id": "x"}}),
])
def test_invalid_event_data_is_poison_and_changes_nothing(consumer, new_report, view, intake_conn, topic, changes):
    report_id = new_report()
    before = view(report_id)
    good = decision(report_id, "urgent") if topic == TOPIC_DECISIONS else snapshot(
        [report_id], status="booked", sequence=1, referral_id=str(uuid.uuid4()))
    bad = _broken(good, **changes)

    with pytest.raises(PoisonEvent):
        deliver(consumer, topic, bad)

    assert view(report_id) == before
    # The inbox row went with the rolled-back transaction: nothing claims it was applied.
    assert intake_conn.execute("SELECT count(*) FROM intake.inbox WHERE event_id = %s",
                               (bad["id"],)).fetchone()[0] == 0


def test_the_upgrade_gives_reports_holding_a_snapshot_their_referral(consumer, new_report, intake_conn):
    """Migration 004's backfill, run again on a report as it was before (a snapshot, no
    referral_id): the report belongs to that snapshot's referral, and the next event of the
    new form, which does not name it, reaches it."""
    from importlib import resources

    first, linked, alone = new_report(), new_report(), new_report()
    referral_id = str(uuid.uuid4())
    for event in (snapshot([first, linked], status="booked", sequence=2, referral_id=referral_id, old_form=True),
                  snapshot([alone], status="waitlisted", sequence=1, referral_id=str(uuid.uuid4()), slot=False)):
        deliver(consumer, TOPIC_REFERRAL_EVENTS, event)
    intake_conn.execute("UPDATE intake.reports SET referral_id = NULL WHERE report_id = ANY(%s::uuid[])",
                        ([first, linked],))
    sql = resources.files("services.intake").joinpath("migrations/004_report_referral.sql").read_text()
    backfill = re.search(r"^UPDATE intake\.reports .*?;", sql, re.MULTILINE | re.DOTALL).group(0)
    intake_conn.execute(backfill)
    assert referral_of(intake_conn, first) == referral_of(intake_conn, linked) == (referral_id, 2)

    deliver(consumer, TOPIC_REFERRAL_EVENTS, snapshot([first, linked], status="cancelled", sequence=3,
                                                      referral_id=referral_id, slot=False))
    assert referral_of(intake_conn, linked) == (referral_id, 3)
    assert referral_of(intake_conn, alone)[1] == 1
