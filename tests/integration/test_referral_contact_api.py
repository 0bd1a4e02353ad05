"""Patient messages in the queue API (issue 19), on the real database through the Flask test
client: each referral's messages and "contact needed", the contact_needed filter with keyset
pagination, POST /v1/referrals/<id>/contacted (auth, body, audit), the worker handler's
newest-revision rule, and the identity purge blanking the phone to call back on."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.app_support import flask_app
from tests.referral_support import (decide, mrn, patient_message_event, referral_for_report, staff_token,
                                    tell)

from services.common.inbox import PoisonEvent
from services.common.retention import RetentionPolicy
from services.referral import booking, store
from services.referral.app import create_app

pytestmark = pytest.mark.integration

PHONE = "+441632960123"
MIN = timedelta(minutes=1)


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def scheduler_name_and_headers(referral_settings):
    from services.admin.credentials import staff_add

    name = f"contact-sched-{uuid.uuid4().hex[:8]}"
    return name, {"Authorization": f"Bearer {staff_add(referral_settings, name, 'scheduler')}"}


@pytest.fixture(scope="module")
def scheduler(scheduler_name_and_headers):
    return scheduler_name_and_headers[1]


@pytest.fixture(scope="module")
def admin(referral_settings):
    return {"Authorization": f"Bearer {staff_token(referral_settings, 'admin')}"}


def new_referral(conn, now, care_level: str = "specialist") -> tuple[str, str]:
    """A referral made by the worker's handler (waitlisted: no slots in this bubble); (referral id, report id)."""
    report_id = decide(conn, care_level, mrn(), now)
    return referral_for_report(conn, report_id)["referral_id"], report_id


def detail(client, headers, referral_id) -> dict:
    response = client.get(f"/v1/referrals/{referral_id}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def walk(client, headers, query: str, limit: int) -> list[dict]:
    """Every item of the filtered queue, page by page."""
    items, cursor = [], None
    while True:
        url = f"/v1/referrals?{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


# -- what the API shows ---------------------------------------------------------------------------
def test_each_referral_shows_its_messages_and_whether_a_person_must_call(client, scheduler, ref_conn, now):
    referral_id, report_id = new_referral(ref_conn, now)
    assert detail(client, scheduler, referral_id)["contact"] == {
        "needed": False, "callback_phone": None, "contacted_at": None, "messages": [], "contacts": []}

    email = patient_message_event(referral_id, report_id=report_id, channel="email", status="sent",
                                  change="waitlisted", at=now + MIN)
    sms = patient_message_event(referral_id, report_id=report_id, channel="sms", status="failed",
                                change="waitlisted", at=now + 2 * MIN, detail="gateway refused (400)",
                                callback_phone=PHONE, revision=3, attempts=2)
    for event in (email, sms):
        tell(ref_conn, event)

    contact = detail(client, scheduler, referral_id)["contact"]
    assert contact == {
        "needed": True, "callback_phone": PHONE, "contacted_at": None, "contacts": [],
        "messages": [
            {"message_id": email["data"]["message_id"], "change": "waitlisted", "channel": "email", "status": "sent",
             "detail": None, "attempts": 1, "at": (now + MIN).isoformat()},
            {"message_id": sms["data"]["message_id"], "change": "waitlisted", "channel": "sms", "status": "failed",
             "detail": "gateway refused (400)", "attempts": 2, "at": (now + 2 * MIN).isoformat()}]}
    [item] = client.get(f"/v1/referrals?report_id={report_id}", headers=scheduler).get_json()["items"]
    assert item["contact"] == {key: value for key, value in contact.items() if key != "contacts"}


@pytest.mark.parametrize("status, needed", [("queued", False), ("sent", False), ("failed", True),
                                            ("uncertain", True), ("not_sent", True)])
def test_contact_is_needed_for_failed_uncertain_and_not_sent_messages(client, scheduler, ref_conn, now,
                                                                       status, needed):
    referral_id, _ = new_referral(ref_conn, now)
    tell(ref_conn, patient_message_event(referral_id, status=status, channel="phone" if status == "not_sent"
                                         else "sms", at=now))
    assert detail(client, scheduler, referral_id)["contact"]["needed"] is needed


def test_the_newest_revision_of_a_message_wins_whatever_order_it_comes_in(client, scheduler, ref_conn, now):
    referral_id, _ = new_referral(ref_conn, now)
    message_id = str(uuid.uuid4())

    def state(status, revision, minutes):
        return patient_message_event(referral_id, message_id=message_id, channel="sms", status=status,
                                     revision=revision, at=now + minutes * MIN)

    failed = state("failed", 3, 3)
    tell(ref_conn, failed)
    tell(ref_conn, state("queued", 1, 1))  # late
    tell(ref_conn, state("queued", 2, 2))  # late
    tell(ref_conn, {**failed, "id": str(uuid.uuid4())})  # the same state again, another event id
    [shown] = detail(client, scheduler, referral_id)["contact"]["messages"]
    assert (shown["status"], shown["at"]) == ("failed", (now + 3 * MIN).isoformat())
    assert detail(client, scheduler, referral_id)["contact"]["needed"] is True

    tell(ref_conn, state("sent", 4, 4))  # a retry that went through: newer, so it counts
    contact = detail(client, scheduler, referral_id)["contact"]
    assert ([m["status"] for m in contact["messages"]], contact["needed"]) == (["sent"], False)


def test_a_message_id_known_for_another_referral_is_dead_lettered(ref_conn, now):
    first, _ = new_referral(ref_conn, now)
    second, _ = new_referral(ref_conn, now)
    event = patient_message_event(first, status="failed", at=now)
    tell(ref_conn, event)
    moved = patient_message_event(second, message_id=event["data"]["message_id"], revision=2, at=now)
    with pytest.raises(PoisonEvent, match="message_id"):
        tell(ref_conn, moved)
    assert ref_conn.execute("SELECT referral_id::text, revision FROM referral.patient_messages"
                            " WHERE message_id = %s", (event["data"]["message_id"],)).fetchone() == (first, 1)


def test_a_message_for_a_referral_not_made_yet_is_kept_without_a_flag(ref_conn, now):
    referral_id = str(uuid.uuid4())
    event = patient_message_event(referral_id, status="failed", at=now)
    tell(ref_conn, event)  # no error: kept for when the referral comes
    assert ref_conn.execute("SELECT status FROM referral.patient_messages WHERE message_id = %s",
                            (event["data"]["message_id"],)).fetchone() == ("failed",)
    assert ref_conn.execute("SELECT count(*) FROM referral.referrals WHERE referral_id = %s",
                            (referral_id,)).fetchone() == (0,)


# -- the filter, with keyset pagination -------------------------------------------------------------
def test_the_contact_needed_filter_pages_through_exactly_the_flagged_referrals(client, scheduler, ref_conn, now):
    mine = [new_referral(ref_conn, now, "urgent" if i % 3 == 0 else "specialist")[0] for i in range(7)]
    needed = set(mine[::2])  # 4 of them
    for referral_id in mine:
        tell(ref_conn, patient_message_event(referral_id, status="failed" if referral_id in needed else "sent",
                                             at=now))

    flagged = walk(client, scheduler, "contact_needed=true", limit=2)
    ids = [item["referral_id"] for item in flagged]
    assert len(ids) == len(set(ids)), "a referral on two pages"
    assert all(item["contact"]["needed"] for item in flagged)
    assert needed <= set(ids) and not (set(mine) - needed) & set(ids)
    keys = [(item["priority"] != "urgent", item["created_at"], item["referral_id"]) for item in flagged]
    assert keys == sorted(keys), "urgent first, then oldest, across pages"

    urgent = walk(client, scheduler, "contact_needed=true&priority=urgent", limit=1)
    assert {i["referral_id"] for i in urgent} >= {r for r in needed if r in mine[::3]}
    assert all(i["priority"] == "urgent" and i["contact"]["needed"] for i in urgent)

    others = walk(client, scheduler, "contact_needed=false&status=waitlisted", limit=200)
    assert set(mine) - needed <= {i["referral_id"] for i in others}
    assert not needed & {i["referral_id"] for i in others}
    assert not any(i["contact"]["needed"] for i in others)


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", ""])
def test_the_filter_takes_true_or_false_only(client, scheduler, value):
    response = client.get(f"/v1/referrals?contact_needed={value}", headers=scheduler)
    assert response.status_code == 422
    assert [f["field"] for f in response.get_json()["error"]["fields"]] == ["contact_needed"]


# -- marking the patient contacted -----------------------------------------------------------------
def test_marking_contacted_clears_the_flag_until_a_newer_failure(client, scheduler_name_and_headers, ref_conn,
                                                                   now, admin_conn):
    name, scheduler = scheduler_name_and_headers
    referral_id, _ = new_referral(ref_conn, now)
    failed_at = datetime.now(UTC) - 10 * MIN  # the action's time is the server's clock: now, for real
    tell(ref_conn, patient_message_event(referral_id, status="failed", at=failed_at, callback_phone=PHONE))

    response = client.post(f"/v1/referrals/{referral_id}/contacted", headers=scheduler,
                           json={"note": "  Phoned; knows she is on the waiting list. "})
    assert response.status_code == 200, response.get_data(as_text=True)
    contact = response.get_json()["contact"]
    contacted_at = datetime.fromisoformat(contact["contacted_at"])
    assert contact["needed"] is False and contact["callback_phone"] == PHONE
    assert abs(contacted_at - datetime.now(UTC)) < MIN
    assert [(c["actor"], c["note"]) for c in contact["contacts"]] == [
        (name, "Phoned; knows she is on the waiting list.")]
    flagged = {i["referral_id"] for i in walk(client, scheduler, "contact_needed=true", limit=200)}
    assert referral_id not in flagged

    # audited like the other actions, in the same transaction
    row = admin_conn.execute(
        "SELECT action, record_type, record_ids::text[], endpoint, staff_name FROM audit.access"
        " WHERE staff_name = %s AND action = 'contacted'", (name,)).fetchone()
    assert row == ("contacted", "referral", [referral_id], "POST /v1/referrals/<referral_id>/contacted", name)

    # a state of a message from before the call (late) changes nothing ...
    tell(ref_conn, patient_message_event(referral_id, status="uncertain", at=contacted_at - MIN))
    assert detail(client, scheduler, referral_id)["contact"]["needed"] is False
    # ... one from after it needs a person again
    tell(ref_conn, patient_message_event(referral_id, status="not_sent", channel="phone",
                                         at=contacted_at + MIN, callback_phone=PHONE))
    assert detail(client, scheduler, referral_id)["contact"]["needed"] is True
    assert referral_id in {i["referral_id"] for i in walk(client, scheduler, "contact_needed=true", limit=200)}


@pytest.mark.parametrize("kwargs", [{}, {"json": {}}, {"json": {"note": None}},
                                    {"data": b"", "content_type": "application/json"}])
def test_the_body_is_optional(client, admin, ref_conn, now, kwargs):
    referral_id, _ = new_referral(ref_conn, now)
    response = client.post(f"/v1/referrals/{referral_id}/contacted", headers=admin, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["contact"]["contacts"][0]["note"] is None


@pytest.mark.parametrize("body, field", [({"note": ""}, "note"), ({"note": 5}, "note"), ({"note": "x" * 501}, "note"),
                                         ({"note": "a\u200bb"}, "note"), ({"reason": "x"}, "reason")])
def test_a_bad_note_is_a_422_naming_it(client, scheduler, ref_conn, now, body, field):
    referral_id, _ = new_referral(ref_conn, now)
    response = client.post(f"/v1/referrals/{referral_id}/contacted", headers=scheduler, json=body)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.get_json()["error"]["fields"]]
    assert detail(client, scheduler, referral_id)["contact"]["contacts"] == []


def test_a_body_that_is_not_json_is_a_415_and_bad_json_a_400(client, scheduler, ref_conn, now):
    referral_id, _ = new_referral(ref_conn, now)
    path = f"/v1/referrals/{referral_id}/contacted"
    assert client.post(path, headers=scheduler, data="note=hi", content_type="text/plain").status_code == 415
    assert client.post(path, headers=scheduler, data="{", content_type="application/json").status_code == 400


@pytest.mark.parametrize("referral_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_referral_is_a_404(client, scheduler, referral_id):
    response = client.post(f"/v1/referrals/{referral_id}/contacted", headers=scheduler)
    assert response.status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer kiosk_not-a-staff-token"}])
def test_marking_contacted_needs_a_staff_token(client, ref_conn, now, headers):
    referral_id, _ = new_referral(ref_conn, now)
    response = client.post(f"/v1/referrals/{referral_id}/contacted", headers=headers, json={})
    assert response.status_code == 401
    assert ref_conn.execute("SELECT contacted_at FROM referral.referrals WHERE referral_id = %s",
                            (referral_id,)).fetchone() == (None,)


def test_the_openapi_document_lists_the_action_and_the_filter(client):
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/v1/referrals/{referral_id}/contacted"]["post"]
    assert {"200", "401", "403", "404", "415", "422"} <= set(operation["responses"])
    assert "default" not in operation["responses"] and "409" not in operation["responses"]
    assert operation["requestBody"]["required"] is False
    parameters = {p["name"] for p in spec["paths"]["/v1/referrals"]["get"]["parameters"]}
    assert "contact_needed" in parameters


# -- retention --------------------------------------------------------------------------------------
def test_the_identity_purge_blanks_the_callback_phone_and_the_contact_notes(client, scheduler, ref_conn, now,
                                                                            referral_settings):
    referral_id, _ = new_referral(ref_conn, now)
    tell(ref_conn, patient_message_event(referral_id, status="not_sent", channel="phone",
                                         at=datetime.now(UTC) - MIN, callback_phone=PHONE))
    assert client.post(f"/v1/referrals/{referral_id}/contacted", headers=scheduler,
                       json={"note": f"Rang {PHONE}"}).status_code == 200
    booking.cancel(ref_conn, referral_id, "Patient asked to cancel.", actor="test", now=now,
                   traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    ref_conn.execute("UPDATE referral.referrals SET updated_at = now() - interval '40 days' WHERE referral_id = %s",
                     (referral_id,))
    while store.pseudonymise_batch(ref_conn, RetentionPolicy(30), b"k" * 32, 1000):
        pass  # other tests' closed referrals may be due too

    contact = detail(client, scheduler, referral_id)["contact"]
    assert contact["callback_phone"] is None and [c["note"] for c in contact["contacts"]] == [None]
    assert ref_conn.execute("SELECT count(*) FROM referral.patient_messages WHERE referral_id = %s"
                            " AND callback_phone IS NOT NULL", (referral_id,)).fetchone() == (0,)
    assert contact["needed"] is False and len(contact["messages"]) == 1  # the record of what was told stays

    # a late state of a message of a forgotten patient brings no phone back
    tell(ref_conn, patient_message_event(referral_id, status="not_sent", channel="phone",
                                         at=datetime.now(UTC), callback_phone=PHONE))
    assert detail(client, scheduler, referral_id)["contact"]["callback_phone"] is None
