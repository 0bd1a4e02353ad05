"""The referral API through the Flask test client, against the real database: every
endpoint, its errors (401/403/404/409/415/422) and the queue's keyset pagination."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.app_support import flask_app
from tests.referral_support import (add_slots, decide, fhir_changes, mrn, new_provider, referral_for_report,
                                    staff_token)

from services.referral import slot_store
from services.referral.app import create_app

pytestmark = pytest.mark.integration

D = timedelta(days=1)
M30 = timedelta(minutes=30)


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def admin(referral_settings):
    return {"Authorization": f"Bearer {staff_token(referral_settings, 'admin')}"}


@pytest.fixture(scope="module")
def scheduler(referral_settings):
    return {"Authorization": f"Bearer {staff_token(referral_settings, 'scheduler')}"}


def iso(value: datetime) -> str:
    return value.isoformat()


def fields_of(response) -> dict[str, str]:
    error = response.get_json()["error"]
    return {f["field"]: f["message"] for f in error.get("fields", [])}


def provider_body(**overrides) -> dict:
    return {"name": f"Clinic {uuid.uuid4()}", "specialty": "pain_management", "location": "Room 2", **overrides}


# -- auth -------------------------------------------------------------------------------
ENDPOINTS = [
    ("get", "/v1/providers"), ("post", "/v1/providers"), ("post", "/v1/slots"), ("post", "/v1/slots/bulk"),
    ("get", "/v1/slots"), ("get", "/v1/referrals"), ("get", f"/v1/referrals/{uuid.uuid4()}"),
    ("post", f"/v1/referrals/{uuid.uuid4()}/reschedule"), ("post", f"/v1/referrals/{uuid.uuid4()}/cancel"),
    ("post", f"/v1/referrals/{uuid.uuid4()}/complete"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer kiosk_not-a-staff-token"},
                                     {"Authorization": "Basic abc"}])
def test_every_endpoint_needs_a_staff_token(client, method, path, headers):
    response = getattr(client, method)(path, headers=headers, json={})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/v1/providers", "/v1/slots", "/v1/slots/bulk"])
def test_providers_and_slots_are_added_by_admins_only(client, scheduler, path):
    response = client.post(path, headers=scheduler, json={})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_a_revoked_token_stops_working_at_once(client, referral_settings):
    from services.admin.credentials import staff_add, staff_revoke

    name = f"leaver-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {staff_add(referral_settings, name, 'scheduler')}"}
    assert client.get("/v1/providers", headers=headers).status_code == 200
    staff_revoke(referral_settings, name)
    assert client.get("/v1/providers", headers=headers).status_code == 401


# -- providers --------------------------------------------------------------------------
def test_an_admin_adds_a_provider(client, admin, scheduler):
    body = provider_body()
    response = client.post("/v1/providers", headers=admin, json=body)
    assert response.status_code == 201
    created = response.get_json()
    assert {k: created[k] for k in body} == body
    uuid.UUID(created["provider_id"])
    listed = client.get("/v1/providers", headers=scheduler).get_json()
    assert created["provider_id"] in [p["provider_id"] for p in listed["items"]]
    assert listed["next_cursor"] is None


@pytest.mark.parametrize(("body", "field"), [
    (provider_body(specialty="orthopaedics"), "specialty"),
    (provider_body(name="   "), "name"),
    ({"specialty": "pain_management", "location": "x"}, "name"),
    (provider_body(location=None), "location"),
    (provider_body(extra=1), "extra"),
])
def test_a_bad_provider_is_a_422_naming_the_field(client, admin, body, field):
    response = client.post("/v1/providers", headers=admin, json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_failed"
    assert field in fields_of(response)


def test_the_same_provider_twice_is_a_conflict(client, admin):
    body = provider_body()
    assert client.post("/v1/providers", headers=admin, json=body).status_code == 201
    response = client.post("/v1/providers", headers=admin, json=body)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "provider_exists"


def test_bodies_must_be_json(client, admin):
    response = client.post("/v1/providers", headers=admin, data="name=x",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    response = client.post("/v1/providers", headers=admin, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


# -- slots ------------------------------------------------------------------------------
@pytest.fixture
def provider(ref_conn):
    return new_provider(ref_conn)


def test_an_admin_adds_one_slot(client, admin, provider, now):
    body = {"provider_id": provider["provider_id"], "start": iso(now + D), "end": iso(now + D + M30)}
    response = client.post("/v1/slots", headers=admin, json=body)
    assert response.status_code == 201
    slot = response.get_json()
    assert (slot["provider_id"], slot["free"], slot["referral_id"]) == (provider["provider_id"], True, None)
    assert datetime.fromisoformat(slot["start"]) == now + D
    assert slot["provider"] == provider["name"] and slot["location"] == "Room 1"


def test_a_list_of_slots_is_added_all_or_nothing(client, admin, provider, ref_conn, now):
    good = [{"provider_id": provider["provider_id"], "start": iso(now + i * D), "end": iso(now + i * D + M30)}
            for i in (2, 1)]
    response = client.post("/v1/slots", headers=admin, json=good)
    assert response.status_code == 201
    items = response.get_json()["items"]
    assert [datetime.fromisoformat(s["start"]) for s in items] == [now + D, now + 2 * D]  # start order

    bad = [{"provider_id": provider["provider_id"], "start": iso(now + 3 * D), "end": iso(now + 3 * D + M30)},
           {"provider_id": provider["provider_id"], "start": iso(now + 4 * D), "end": iso(now + 4 * D - M30)}]
    response = client.post("/v1/slots", headers=admin, json=bad)
    assert response.status_code == 422
    assert fields_of(response) == {"1.end": "Must be after start."}
    page = slot_store.slots_page(ref_conn, provider_id=provider["provider_id"], free=None, start_from=None,
                                 start_to=None, after=None, limit=10)[0]
    assert len(page) == 2  # nothing of the refused list was stored


def test_slot_errors_name_the_field(client, admin, provider, now):
    pid = provider["provider_id"]
    client.post("/v1/slots", headers=admin, json={"provider_id": pid, "start": iso(now + D), "end": iso(now + D + M30)})
    yesterday = datetime.now(UTC) - D
    cases = [
        ({"provider_id": pid, "start": iso(now + 2 * D), "end": iso(now + 2 * D - M30)}, "end", "Must be after start."),
        ({"provider_id": pid, "start": iso(yesterday), "end": iso(yesterday + M30)}, "start", "Must not be in the past."),
        ({"provider_id": str(uuid.uuid4()), "start": iso(now + D), "end": iso(now + D + M30)}, "provider_id",
         "No such provider."),
        ({"provider_id": pid, "start": "2300-01-01T09:00:00", "end": iso(now)}, "start",
         "Must include a time zone offset, like +00:00."),
        ({"provider_id": pid, "start": iso(now + 2 * D), "end": iso(now + 3 * D)}, "end",
         "A slot may last at most 12 hours."),
    ]
    for body, field, message in cases:
        response = client.post("/v1/slots", headers=admin, json=body)
        assert response.status_code == 422, body
        assert fields_of(response) == {field: message}
    overlapping = {"provider_id": pid, "start": iso(now + D + timedelta(minutes=10)), "end": iso(now + D + M30 * 2)}
    response = client.post("/v1/slots", headers=admin, json=overlapping)
    assert response.status_code == 422
    assert fields_of(response)["start"].startswith("Overlaps the provider's slot")
    response = client.post("/v1/slots", headers=admin, json=[
        {"provider_id": pid, "start": iso(now + 5 * D), "end": iso(now + 5 * D + M30)},
        {"provider_id": pid, "start": iso(now + 5 * D + M30 / 2), "end": iso(now + 5 * D + M30 * 2)}])
    assert fields_of(response) == {"1.start": "Overlaps slot 0 of this request."}
    long_one = {"provider_id": pid, "start": iso(now + 6 * D), "end": iso(now + 6 * D + 4 * M30)}
    inside = [{"provider_id": pid, "start": iso(now + 6 * D + k * M30), "end": iso(now + 6 * D + (k + 1) * M30)}
              for k in (2, 1)]
    response = client.post("/v1/slots", headers=admin, json=[*inside, long_one])
    assert fields_of(response) == {"0.start": "Overlaps slot 2 of this request.",
                                   "1.start": "Overlaps slot 2 of this request."}
    assert fields_of(client.post("/v1/slots", headers=admin, json=[])) == {"": "Send 1 to 500 slots."}
    assert fields_of(client.post("/v1/slots", headers=admin, json="x")) == {"": "Must be a JSON object."}


def test_a_new_slot_goes_to_the_waitlist_in_the_same_request(client, admin, provider, ref_conn, now):
    report_id = decide(ref_conn, "urgent", mrn(), now)  # nothing free: waitlisted
    soon = datetime.now(UTC)
    # The API adds it "now" (this century); the waiting referral's window (in the bubble) holds it.
    response = client.post("/v1/slots", headers=admin, json={"provider_id": provider["provider_id"],
                                                             "start": iso(now + D), "end": iso(now + D + M30)})
    assert soon < now
    slot = response.get_json()
    assert slot["free"] is False
    referral_id = referral_for_report(ref_conn, report_id)["referral_id"]
    assert slot["referral_id"] == referral_id
    assert fhir_changes(ref_conn, referral_id) == [  # issue 17
        ("referral.waitlisted", [f"ServiceRequest/{referral_id}"]),
        ("referral.booked", [f"ServiceRequest/{referral_id}", f"Appointment/{referral_id}", f"Slot/{slot['slot_id']}"])]


def test_a_week_of_slots_in_one_call(client, admin, provider, now):
    monday = (now + 7 * D).date() - timedelta(days=(now + 7 * D).weekday())
    body = {"provider_id": provider["provider_id"], "from": monday.isoformat(),
            "to": (monday + timedelta(days=6)).isoformat(), "daily_start": "09:00", "daily_end": "17:00",
            "minutes": 30, "weekdays": [1, 2, 3, 4, 5]}
    response = client.post("/v1/slots/bulk", headers=admin, json=body)
    assert response.status_code == 201
    items = response.get_json()["items"]
    assert len(items) == 5 * 16
    starts = [datetime.fromisoformat(s["start"]) for s in items]
    assert starts[0] == datetime.combine(monday, datetime.min.time(), tzinfo=UTC).replace(hour=9)
    assert starts[-1].hour == 16 and starts[-1].minute == 30 and starts[-1].weekday() == 4
    again = client.post("/v1/slots/bulk", headers=admin, json=body)
    assert again.status_code == 422
    assert fields_of(again)[""].startswith("The series overlaps 80 existing slot(s)")


def test_a_series_in_a_local_time_zone(client, admin, provider, now):
    day = (now + 3 * D).date()
    body = {"provider_id": provider["provider_id"], "from": day.isoformat(), "to": day.isoformat(),
            "daily_start": "09:00", "daily_end": "10:00", "minutes": 20, "weekdays": [1, 2, 3, 4, 5, 6, 7],
            "time_zone": "America/New_York"}
    items = client.post("/v1/slots/bulk", headers=admin, json=body).get_json()["items"]
    assert [datetime.fromisoformat(s["start"]).hour for s in items] in ([14, 14, 14], [13, 13, 13])


@pytest.mark.parametrize(("change", "field"), [
    ({"daily_end": "08:00"}, "daily_end"), ({"to": "2299-01-01"}, "to"), ({"daily_start": "9am"}, "daily_start"),
    ({"minutes": 0}, "minutes"), ({"weekdays": [0]}, "weekdays.0"), ({"time_zone": "Mars/Base"}, "time_zone"),
    ({"from": "2300/01/01"}, "from"), ({"provider_id": str(uuid.uuid4())}, "provider_id"),
])
def test_a_bad_series_is_a_422_naming_the_field(client, admin, provider, now, change, field):
    # Every weekday, so that the unchanged series is never empty (a weekend would make it so).
    body = {"provider_id": provider["provider_id"], "from": (now + D).date().isoformat(),
            "to": (now + 2 * D).date().isoformat(), "daily_start": "09:00", "daily_end": "17:00",
            "weekdays": [1, 2, 3, 4, 5, 6, 7], **change}
    response = client.post("/v1/slots/bulk", headers=admin, json=body)
    assert response.status_code == 422
    assert field in fields_of(response)


def test_a_too_large_or_empty_series_is_refused(client, admin, provider, now):
    body = {"provider_id": provider["provider_id"], "from": (now + D).date().isoformat(),
            "to": (now + 80 * D).date().isoformat(), "daily_start": "00:00", "daily_end": "23:55", "minutes": 5,
            "weekdays": [1, 2, 3, 4, 5, 6, 7]}
    assert "more than 2000 slots" in fields_of(client.post("/v1/slots/bulk", headers=admin, json=body))[""]
    body.update(to=(now + D).date().isoformat(), weekdays=[((now + D).isoweekday() % 7) + 1])
    assert "makes no slot" in fields_of(client.post("/v1/slots/bulk", headers=admin, json=body))[""]


def test_listing_slots_with_filters_and_pages(client, admin, scheduler, provider, ref_conn, now):
    starts = [now + D + i * M30 for i in range(5)]
    slot_ids = add_slots(ref_conn, provider, starts, now)
    decide(ref_conn, "specialist", mrn(), now)  # books the first
    base = {"provider_id": provider["provider_id"]}

    def get(**params):
        response = client.get("/v1/slots", headers=scheduler, query_string={**base, **params})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    assert [s["slot_id"] for s in get()["items"]] == slot_ids
    assert [s["slot_id"] for s in get(free="true")["items"]] == slot_ids[1:]
    assert [s["slot_id"] for s in get(free="false")["items"]] == slot_ids[:1]
    assert [s["slot_id"] for s in get(**{"from": iso(starts[2]), "to": iso(starts[4])})["items"]] == slot_ids[2:4]
    unencoded_plus = iso(starts[3]).replace("+", " ")  # what "?from=...+00:00" sent as is becomes
    assert [s["slot_id"] for s in get(**{"from": unencoded_plus})["items"]] == slot_ids[3:]
    assert len(get(**{"from": (now + 2 * D).date().isoformat()})["items"]) == 0
    first = get(limit=2)
    second = get(limit=2, cursor=first["next_cursor"])
    third = get(limit=2, cursor=second["next_cursor"])
    assert [s["slot_id"] for p in (first, second, third) for s in p["items"]] == slot_ids
    assert third["next_cursor"] is None


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "x"}, "limit"),
    ({"free": "yes"}, "free"), ({"from": "tomorrow"}, "from"), ({"provider_id": "7"}, "provider_id"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
])
def test_bad_slot_queries_are_a_422_naming_the_parameter(client, scheduler, params, field):
    response = client.get("/v1/slots", headers=scheduler, query_string=params)
    assert response.status_code == 422
    assert field in fields_of(response)


# -- the queue --------------------------------------------------------------------------
def test_queue_items_have_the_contract_fields(client, scheduler, provider, ref_conn, now):
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    report_id = decide(ref_conn, "specialist", mrn(), now, name="Ana Silva")
    response = client.get("/v1/referrals", headers=scheduler, query_string={"report_id": report_id})
    assert response.status_code == 200
    body = response.get_json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert set(item) >= {"referral_id", "report_id", "report_ids", "patient", "care_level", "priority", "status",
                         "created_at", "window_ends_at", "breached", "appointment"}
    assert item["report_id"] == report_id and item["report_ids"] == [report_id]
    assert item["patient"]["display_name"] == "Ana Silva"
    assert (item["care_level"], item["priority"], item["status"], item["breached"]) == (
        "specialist", "routine", "booked", False)
    assert item["appointment"] == {"slot_id": slot, "start": iso(now + D), "end": iso(now + D + M30),
                                   "provider": provider["name"], "location": "Room 1"}
    assert datetime.fromisoformat(item["window_ends_at"]) == now + 14 * D


def test_the_queue_filters_by_status_priority_and_any_linked_report(client, scheduler, ref_conn, now):
    patient = mrn()
    first = decide(ref_conn, "specialist", patient, now)
    second = decide(ref_conn, "specialist", patient, now + timedelta(hours=1))
    urgent = decide(ref_conn, "urgent", mrn(), now)

    def ids(**params):
        response = client.get("/v1/referrals", headers=scheduler, query_string={"limit": 200, **params})
        assert response.status_code == 200
        return {i["report_id"] for i in response.get_json()["items"]}

    assert ids(report_id=second) == {first}
    assert ids(report_id=urgent, priority="urgent") == {urgent}
    assert ids(report_id=urgent, priority="routine") == set()
    assert ids(report_id=urgent, status="waitlisted") == {urgent}
    assert ids(report_id=urgent, status="open") == {urgent}
    assert ids(report_id=urgent, status="booked") == set()


def test_the_queue_pages_through_everything_urgent_first_then_oldest(client, scheduler, ref_conn, now):
    mine = set()
    for i in range(7):  # waitlisted, with created_at in the bubble: after every real-time referral
        care = "urgent" if i % 3 == 0 else "specialist"
        report_id = decide(ref_conn, care, mrn(), now + i * timedelta(minutes=1))
        mine.add(referral_for_report(ref_conn, report_id)["referral_id"])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"status": "waitlisted", "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/referrals", headers=scheduler, query_string=params).get_json()
        seen += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    keys = [(0 if i["priority"] == "urgent" else 1, i["created_at"], i["referral_id"]) for i in seen]
    assert len({i["referral_id"] for i in seen}) == len(seen)  # no item twice
    assert mine <= {i["referral_id"] for i in seen}            # none missed
    assert keys == sorted(keys, key=lambda k: (k[0], datetime.fromisoformat(k[1]), k[2]))
    assert pages == -(-len(seen) // 3)
    ours = [i for i in seen if i["referral_id"] in mine]
    assert [i["priority"] for i in ours] == ["urgent"] * 3 + ["routine"] * 4


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "lost"}, "status"), ({"priority": "high"}, "priority"), ({"report_id": "42"}, "report_id"),
    ({"limit": "500"}, "limit"), ({"cursor": "!!!"}, "cursor"),
])
def test_bad_queue_queries_are_a_422_naming_the_parameter(client, scheduler, params, field):
    response = client.get("/v1/referrals", headers=scheduler, query_string=params)
    assert response.status_code == 422
    assert field in fields_of(response)


def test_a_cursor_of_another_list_is_refused(client, scheduler, admin, provider, now):
    slots = [{"provider_id": provider["provider_id"], "start": iso(now + i * D), "end": iso(now + i * D + M30)}
             for i in (1, 2)]
    client.post("/v1/slots", headers=admin, json=slots)
    cursor = client.get("/v1/slots", headers=scheduler,
                        query_string={"provider_id": provider["provider_id"], "limit": 1}).get_json()["next_cursor"]
    response = client.get("/v1/referrals", headers=scheduler, query_string={"cursor": cursor})
    assert fields_of(response) == {"cursor": "Not a cursor from this list; start again without it."}


def test_a_referral_with_its_history(client, scheduler, ref_conn, now):
    report_id = decide(ref_conn, "urgent", mrn(), now)
    referral_id = referral_for_report(ref_conn, report_id)["referral_id"]
    body = client.get(f"/v1/referrals/{referral_id}", headers=scheduler).get_json()
    assert body["referral_id"] == referral_id and body["status"] == "waitlisted"
    assert body["breached"] is False
    [entry] = body["history"]
    assert (entry["sequence"], entry["actor"], entry["action"], entry["to_status"]) == (1, "system", "created",
                                                                                        "waitlisted")
    assert "waitlisted" in entry["reason"]


@pytest.mark.parametrize("referral_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_referral_is_a_404(client, scheduler, referral_id):
    for response in (client.get(f"/v1/referrals/{referral_id}", headers=scheduler),
                     client.post(f"/v1/referrals/{referral_id}/cancel", headers=scheduler, json={"reason": "x"}),
                     client.post(f"/v1/referrals/{referral_id}/complete", headers=scheduler),
                     client.post(f"/v1/referrals/{referral_id}/reschedule", headers=scheduler,
                                 json={"slot_id": str(uuid.uuid4())})):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


# -- actions ----------------------------------------------------------------------------
def test_reschedule_books_a_waitlisted_referral_and_moves_a_booked_one(client, scheduler, provider, ref_conn, now):
    report_id = decide(ref_conn, "urgent", mrn(), now)
    referral_id = referral_for_report(ref_conn, report_id)["referral_id"]
    slots = add_slots(ref_conn, provider, [now + 5 * D, now + 6 * D], now)  # outside its 2-day window

    response = client.post(f"/v1/referrals/{referral_id}/reschedule", headers=scheduler, json={"slot_id": slots[0]})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["appointment"]["slot_id"]) == ("booked", slots[0])
    assert body["history"][-1]["action"] == "booked" and body["history"][-1]["actor"].startswith("scheduler-")

    body = client.post(f"/v1/referrals/{referral_id}/reschedule", headers=scheduler,
                       json={"slot_id": slots[1]}).get_json()
    assert body["appointment"]["slot_id"] == slots[1]
    assert body["history"][-1]["action"] == "moved"
    assert slot_store.slot_views(ref_conn, [slots[0]])[0]["free"] is True
    # issue 17: the booking names the slot it took; the move the one it took, then the one it freed
    request, appointment = f"ServiceRequest/{referral_id}", f"Appointment/{referral_id}"
    assert fhir_changes(ref_conn, referral_id) == [
        ("referral.waitlisted", [request]), ("referral.booked", [request, appointment, f"Slot/{slots[0]}"]),
        ("referral.rescheduled", [request, appointment, f"Slot/{slots[1]}", f"Slot/{slots[0]}"])]


def test_reschedule_conflicts_and_errors(client, scheduler, provider, ref_conn, now):
    taken = add_slots(ref_conn, provider, [now + D], now)[0]
    holder = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))["referral_id"]
    other = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))["referral_id"]

    def reschedule(referral_id, slot_id):
        return client.post(f"/v1/referrals/{referral_id}/reschedule", headers=scheduler, json={"slot_id": slot_id})

    for referral_id, message in ((other, "is already booked"), (holder, "already booked into slot")):
        response = reschedule(referral_id, taken)
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "slot_taken"
        assert message in response.get_json()["error"]["message"]

    response = reschedule(other, str(uuid.uuid4()))
    assert response.status_code == 422 and fields_of(response) == {"slot_id": "No such slot."}
    response = reschedule(other, "nope")
    assert response.status_code == 422 and fields_of(response) == {"slot_id": "Must be a UUID."}

    with ref_conn.transaction():  # a slot that has started cannot be booked, even by hand
        [(past, _)] = slot_store.insert_slots(ref_conn, provider["provider_id"],
                                              [(datetime.now(UTC) - D, datetime.now(UTC) - D + M30)])
    response = reschedule(other, past)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "slot_in_past"

    client.post(f"/v1/referrals/{other}/cancel", headers=scheduler, json={"reason": "moved away"})
    # issue 17: a waitlisted referral had no appointment: its cancellation changes its request only
    assert fhir_changes(ref_conn, other)[-1] == ("referral.cancelled", [f"ServiceRequest/{other}"])
    response = reschedule(other, past)
    assert response.status_code == 409
    assert response.get_json()["error"] == {"code": "invalid_transition",
                                            "message": "Cannot reschedule a cancelled referral."}


def test_cancel_needs_a_reason_and_frees_the_slot_for_the_waitlist(client, scheduler, provider, ref_conn, now):
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    holder = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))["referral_id"]
    waiting = referral_for_report(ref_conn, decide(ref_conn, "urgent", mrn(), now))["referral_id"]
    url = f"/v1/referrals/{holder}/cancel"

    for body in ({}, {"reason": "  "}, {"reason": None}):
        response = client.post(url, headers=scheduler, json=body)
        assert response.status_code == 422 and "reason" in fields_of(response)
    response = client.post(url, headers=scheduler, json={"reason": "Patient feels better"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["appointment"]) == ("cancelled", None)
    assert body["history"][-1]["reason"] == "Patient feels better"

    given = client.get(f"/v1/referrals/{waiting}", headers=scheduler).get_json()
    assert (given["status"], given["appointment"]["slot_id"]) == ("booked", slot)
    # issue 17: the cancellation frees the slot, which the waiting referral's booking takes
    assert fhir_changes(ref_conn, holder)[-1] == (
        "referral.cancelled", [f"ServiceRequest/{holder}", f"Appointment/{holder}", f"Slot/{slot}"])
    assert fhir_changes(ref_conn, waiting) == [
        ("referral.waitlisted", [f"ServiceRequest/{waiting}"]),
        ("referral.booked", [f"ServiceRequest/{waiting}", f"Appointment/{waiting}", f"Slot/{slot}"])]

    again = client.post(url, headers=scheduler, json={"reason": "twice"})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invalid_transition"


def test_complete_only_a_booked_referral(client, admin, scheduler, provider, ref_conn, now):
    add_slots(ref_conn, provider, [now + D], now)
    booked = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))["referral_id"]
    waiting = referral_for_report(ref_conn, decide(ref_conn, "specialist", mrn(), now))["referral_id"]

    response = client.post(f"/v1/referrals/{booked}/complete", headers=admin)
    assert response.status_code == 200
    assert response.get_json()["status"] == "completed"
    assert response.get_json()["appointment"] is not None  # the slot stays as a record
    # issue 17: the appointment's status changes with the referral's; the slot stays busy
    assert fhir_changes(ref_conn, booked)[-1] == (
        "referral.completed", [f"ServiceRequest/{booked}", f"Appointment/{booked}"])

    for referral_id in (booked, waiting):
        response = client.post(f"/v1/referrals/{referral_id}/complete", headers=scheduler)
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "invalid_transition"


def test_the_openapi_document_describes_the_referral_api(client):
    spec = client.get("/openapi.json").get_json()
    for path in ("/v1/providers", "/v1/slots", "/v1/slots/bulk", "/v1/referrals", "/v1/referrals/{referral_id}",
                 "/v1/referrals/{referral_id}/reschedule", "/v1/referrals/{referral_id}/cancel",
                 "/v1/referrals/{referral_id}/complete"):
        assert path in spec["paths"], path
    bulk = spec["paths"]["/v1/slots/bulk"]["post"]
    assert "a week of 30-minute weekday slots" in bulk["requestBody"]["description"].lower()
    one_or_many = spec["paths"]["/v1/slots"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert len(one_or_many["oneOf"]) == 2
