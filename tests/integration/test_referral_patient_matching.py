"""Patient matching against the real database (contract, Referral service; issue 12 part 1):
a report joins an open referral only when the MRN (NFKC, trimmed, case-folded) *and* the
birth date match; a same-MRN report with another birth date gets a referral of its own,
flagged for review (the other referral's id and MRN, never its name), which the queue API
shows and filters on; races still end in one referral per patient; and the kiosk of the
report with another patient's MRN is never shown that patient's appointment."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import errors

from tests.app_support import flask_app
from tests.intake_support import report_body
from tests.referral_support import (
    BIRTH_DATE,
    add_slots,
    apply,
    decide,
    mrn,
    new_provider,
    outbox_events,
    referral_for_report,
    staff_token,
)

from services.common.db import make_pool
from services.common.envelope import new_traceparent
from services.common.inbox import Delivery, InboxConsumer
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS
from services.intake import worker as intake_worker
from services.referral import store
from services.referral import worker as referral_worker
from services.triage import events as triage_events

pytestmark = pytest.mark.integration

D = timedelta(days=1)
H = timedelta(hours=1)
OTHER_BIRTH_DATE = "1985-07-30"


@pytest.fixture(scope="module")
def referral_app(referral_settings):
    from services.referral.app import create_app

    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def scheduler(referral_settings):
    return {"Authorization": f"Bearer {staff_token(referral_settings, 'scheduler')}"}


def queue(referral_app, scheduler, **params) -> list[dict]:
    response = referral_app.test_client().get("/v1/referrals", query_string=params,
                                              headers=scheduler)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def item_for(referral_app, scheduler, report_id: str) -> dict:
    (item,) = queue(referral_app, scheduler, report_id=report_id)
    return item


# -- linking: MRN as compared and birth date ----------------------------------------------
@pytest.mark.parametrize("typed", ["mrn-{n}", "  MRN-{n} ", "ＭＲＮ－{n}", "Mrn-{n}\u3000"])
def test_the_same_mrn_typed_otherwise_with_the_same_birth_date_joins_the_open_referral(ref_conn, now, typed):
    number = uuid.uuid4().hex[:10].upper()
    first = decide(ref_conn, "specialist", f"MRN-{number}", now)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in number)
    second = decide(ref_conn, "urgent", typed.format(n=fullwidth if "ＭＲＮ" in typed else number), now + H)

    referral = referral_for_report(ref_conn, first)
    assert referral_for_report(ref_conn, second)["referral_id"] == referral["referral_id"]
    view = store.referral_view(ref_conn, referral["referral_id"], now + H)
    assert view["report_ids"] == [first, second]
    assert view["priority"] == "urgent"  # raised, as the contract says for the same patient
    assert view["patient"]["mrn"] == f"MRN-{number}"  # kept as the first report typed it
    assert view["possible_duplicate_of"] is None


def test_the_same_mrn_with_another_birth_date_is_never_linked_and_is_flagged(
        ref_conn, now, referral_app, scheduler):
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + 5 * D], now)  # inside 14 days, outside 2
    patient = mrn()
    tag = uuid.uuid4().hex[:6]
    theirs = decide(ref_conn, "specialist", patient, now, name=f"Rosa Owner {tag}")
    before = referral_for_report(ref_conn, theirs)
    assert before["status"] == "booked"

    # An urgent report typed with Rosa's MRN (otherwise cased) but another birth date.
    mine = decide(ref_conn, "urgent", patient.lower(), now + H, name=f"Tom Typo {tag}",
                  birth_date=OTHER_BIRTH_DATE)

    own = referral_for_report(ref_conn, mine)
    assert own["referral_id"] != before["referral_id"]
    assert (own["priority"], own["status"]) == ("urgent", "waitlisted")  # nothing free within 2 days
    # Rosa's referral is untouched: not raised, not moved, no link, no new event.
    assert referral_for_report(ref_conn, theirs) == before
    assert [e[0] for e in outbox_events(ref_conn, before["referral_id"])] == ["referral.booked"]

    item = item_for(referral_app, scheduler, mine)
    assert item["report_ids"] == [mine]
    assert item["patient"] == {"mrn": patient.lower(), "display_name": f"Tom Typo {tag}", "language": "en"}
    assert item["possible_duplicate_of"] == {"referral_id": before["referral_id"], "mrn": patient}
    assert f"Rosa Owner {tag}" not in json.dumps(item)  # never the other patient's name
    assert item_for(referral_app, scheduler, theirs)["possible_duplicate_of"] is None

    detail = referral_app.test_client().get(f"/v1/referrals/{own['referral_id']}", headers=scheduler).get_json()
    assert detail["possible_duplicate_of"] == item["possible_duplicate_of"]
    assert f"possible duplicate of referral {before['referral_id']}" in detail["history"][0]["reason"]
    assert f"Rosa Owner {tag}" not in json.dumps(detail)

    # The flagged referral's events are keyed by its own report and name no other referral.
    (event_type, key, data, _tp), = outbox_events(ref_conn, own["referral_id"])
    assert (event_type, key, data["report_id"], data["report_count"]) == ("referral.waitlisted", mine, mine, 1)
    assert before["referral_id"] not in json.dumps(data) and "possible_duplicate_of" not in data


def test_the_flagged_patients_next_report_joins_their_own_referral(ref_conn, now):
    patient = mrn()
    theirs = decide(ref_conn, "specialist", patient, now)
    mine = decide(ref_conn, "specialist", patient, now + H, birth_date=OTHER_BIRTH_DATE)
    again = decide(ref_conn, "urgent", f" {patient.upper()} ", now + 2 * H, birth_date=OTHER_BIRTH_DATE)

    own = referral_for_report(ref_conn, mine)
    assert referral_for_report(ref_conn, again)["referral_id"] == own["referral_id"]
    assert referral_for_report(ref_conn, again)["priority"] == "urgent"
    assert referral_for_report(ref_conn, theirs)["priority"] == "routine"
    assert store.referral_view(ref_conn, referral_for_report(ref_conn, theirs)["referral_id"], now)[
        "report_ids"] == [theirs]


def test_a_decision_without_a_birth_date_is_never_linked_but_flagged(ref_conn, now):
    """A decision made before birth dates were sent (replayed from a DLQ, say) cannot be matched."""
    patient = mrn()
    theirs = referral_for_report(ref_conn, decide(ref_conn, "specialist", patient, now))
    old = decide(ref_conn, "urgent", patient, now + H, birth_date=None)
    own = store.referral_view(ref_conn, referral_for_report(ref_conn, old)["referral_id"], now + H)
    assert own["referral_id"] != theirs["referral_id"] and own["report_ids"] == [old]
    assert own["possible_duplicate_of"] == {"referral_id": theirs["referral_id"], "mrn": patient}
    later = decide(ref_conn, "specialist", patient, now + 2 * H)  # the owner's next report still links
    assert referral_for_report(ref_conn, later)["referral_id"] == theirs["referral_id"]

    # Alone, such a decision is booked as usual, and then no one can join it (unknown birth date).
    lone = mrn()
    first = referral_for_report(ref_conn, decide(ref_conn, "specialist", lone, now, birth_date=None))
    second = decide(ref_conn, "specialist", lone, now + H)
    flagged = store.referral_view(ref_conn, referral_for_report(ref_conn, second)["referral_id"], now)
    assert flagged["possible_duplicate_of"] == {"referral_id": first["referral_id"], "mrn": lone}


def test_a_closed_referral_is_not_a_duplicate(ref_conn, referral_settings, now):
    from services.referral import booking

    patient = mrn()
    theirs = referral_for_report(ref_conn, decide(ref_conn, "specialist", patient, now))
    with ref_conn.transaction():
        booking.cancel(ref_conn, theirs["referral_id"], "moved away", actor="test", now=now + H,
                       traceparent=new_traceparent())
    mine = decide(ref_conn, "specialist", patient, now + 2 * H, birth_date=OTHER_BIRTH_DATE)
    own = store.referral_view(ref_conn, referral_for_report(ref_conn, mine)["referral_id"], now)
    assert own["possible_duplicate_of"] is None


# -- the database keeps it, whatever the code does -----------------------------------------
@pytest.fixture
def scratch(ref_conn):
    with ref_conn.transaction(force_rollback=True):
        yield ref_conn


def _raw_insert(conn, patient: str, birth_date: str | None, now, duplicate_of: str | None = None) -> str:
    referral_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_birth_date, possible_duplicate_of,"
        " possible_duplicate_mrn, patient_display_name, priority, status, created_at, window_ends_at, version)"
        " VALUES (%s, %s, %s, %s, %s, 'X', 'routine', 'waitlisted', %s, %s, 1)",
        (referral_id, patient, birth_date, duplicate_of, duplicate_of and patient, now, now + 14 * D))
    return referral_id


def test_the_database_allows_one_open_referral_per_mrn_key_and_birth_date(scratch, now):
    patient = mrn()
    first = _raw_insert(scratch, patient, BIRTH_DATE, now)
    # The key is filled in for rows inserted without one (and matches the service's for ASCII).
    assert scratch.execute("SELECT patient_mrn_key FROM referral.referrals WHERE referral_id = %s",
                           (first,)).fetchone()[0] == patient.lower()
    with pytest.raises(errors.UniqueViolation, match="referrals_one_open_per_patient"), scratch.transaction():
        _raw_insert(scratch, f" {patient.lower()} ", BIRTH_DATE, now, duplicate_of=first)
    # Another person with the MRN must carry the flag...
    with pytest.raises(errors.UniqueViolation, match="referrals_one_unflagged_open_per_mrn"), \
            scratch.transaction():
        _raw_insert(scratch, patient, OTHER_BIRTH_DATE, now)
    flagged = _raw_insert(scratch, patient, OTHER_BIRTH_DATE, now, duplicate_of=first)
    # ... and so must a report whose birth date is unknown; two of those never clash.
    _raw_insert(scratch, patient, None, now, duplicate_of=first)
    _raw_insert(scratch, patient, None, now, duplicate_of=flagged)
    with pytest.raises(errors.CheckViolation, match="referrals_not_a_duplicate_of_itself"), scratch.transaction():
        scratch.execute("UPDATE referral.referrals SET possible_duplicate_of = referral_id WHERE referral_id = %s",
                        (flagged,))
    with pytest.raises(errors.CheckViolation, match="referrals_duplicate_flag_whole"), scratch.transaction():
        scratch.execute("UPDATE referral.referrals SET possible_duplicate_mrn = NULL WHERE referral_id = %s",
                        (flagged,))


def test_the_sql_key_used_for_backfill_agrees_with_the_service_for_clinic_mrns(scratch):
    from services.referral.domain import mrn_key

    for typed in ("MRN-0042", " mrn-0042\t", "ＭＲＮ－００４２", "\u00a0Mrn-0042\u3000", "AB/12.34-x"):
        assert scratch.execute("SELECT referral.mrn_key(%s)", (typed,)).fetchone()[0] == mrn_key(typed)


# -- races -----------------------------------------------------------------------------------
def _race(referral_settings, first_args: dict, second_args: dict, now) -> tuple[str, dict]:
    """The first decision's transaction stays open while the second runs in another; the
    second's outcome (its report id, and the error it hit, if any)."""
    outcome = {"report": str(uuid.uuid4())}
    with psycopg.connect(referral_settings.database_url) as first:
        winner = apply(first, now=now, **first_args)

        def loser():
            with psycopg.connect(referral_settings.database_url) as second:
                try:
                    apply(second, now=now, report_id=outcome["report"], **second_args)
                except errors.UniqueViolation as exc:
                    outcome["error"] = exc

        thread = threading.Thread(target=loser)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # waiting on the winner's uncommitted row in a unique index
        first.commit()
        thread.join(timeout=10)
    return winner, outcome


def test_two_first_reports_of_one_patient_typed_differently_racing_end_in_one_referral(
        referral_settings, ref_conn, now):
    patient = mrn()
    winner, outcome = _race(referral_settings, {"care_level": "specialist", "mrn": patient},
                            {"care_level": "urgent", "mrn": patient.lower() + " "}, now)
    assert "referrals_one_open_per_patient" in str(outcome["error"])

    decide(ref_conn, "urgent", patient.lower() + " ", now, report_id=outcome["report"])  # the retry
    referral = referral_for_report(ref_conn, winner)
    assert referral_for_report(ref_conn, outcome["report"])["referral_id"] == referral["referral_id"]
    view = store.referral_view(ref_conn, referral["referral_id"], now)
    assert view["report_ids"] == [winner, outcome["report"]] and view["priority"] == "urgent"
    assert view["possible_duplicate_of"] is None


def test_two_first_reports_of_different_patients_with_one_mrn_racing_end_flagged(referral_settings, ref_conn, now):
    """Neither sees the other's referral; the index of unflagged open referrals per MRN refuses
    the second, and its retry opens a referral of its own, flagged against the first."""
    patient = mrn()
    winner, outcome = _race(referral_settings, {"care_level": "specialist", "mrn": patient},
                            {"care_level": "specialist", "mrn": patient, "birth_date": OTHER_BIRTH_DATE}, now)
    assert "referrals_one_unflagged_open_per_mrn" in str(outcome["error"])

    decide(ref_conn, "specialist", patient, now, report_id=outcome["report"], birth_date=OTHER_BIRTH_DATE)
    first = store.referral_view(ref_conn, referral_for_report(ref_conn, winner)["referral_id"], now)
    second = store.referral_view(ref_conn, referral_for_report(ref_conn, outcome["report"])["referral_id"], now)
    assert first["referral_id"] != second["referral_id"]
    assert (first["report_ids"], second["report_ids"]) == ([winner], [outcome["report"]])
    assert first["possible_duplicate_of"] is None
    assert second["possible_duplicate_of"] == {"referral_id": first["referral_id"], "mrn": patient}


def test_a_flagged_patients_two_first_reports_racing_end_in_one_flagged_referral(referral_settings, ref_conn, now):
    patient = mrn()
    theirs = referral_for_report(ref_conn, decide(ref_conn, "specialist", patient, now))["referral_id"]
    other = {"care_level": "specialist", "mrn": patient, "birth_date": OTHER_BIRTH_DATE}
    winner, outcome = _race(referral_settings, other, other, now)
    assert "referrals_one_open_per_patient" in str(outcome["error"])

    decide(ref_conn, "specialist", patient, now, report_id=outcome["report"], birth_date=OTHER_BIRTH_DATE)
    own = store.referral_view(ref_conn, referral_for_report(ref_conn, winner)["referral_id"], now)
    assert own["report_ids"] == [winner, outcome["report"]]
    assert own["possible_duplicate_of"] == {"referral_id": theirs, "mrn": patient}


# -- the queue API -------------------------------------------------------------------------
def test_the_queue_filters_on_the_possible_duplicate_flag(ref_conn, now, referral_app, scheduler):
    patients = [mrn(), mrn()]
    plain = [decide(ref_conn, "specialist", p, now + i * H) for i, p in enumerate(patients)]
    flagged = [decide(ref_conn, care, patients[0], now + (2 + i) * H, birth_date=born) for i, (care, born) in
               enumerate((("specialist", OTHER_BIRTH_DATE), ("urgent", "2001-01-01"), ("specialist", None)))]
    ours = set(plain + flagged)

    def report_ids(**params) -> list[str]:
        items, cursor = [], None
        while True:  # every page, as a client would (other tests' referrals are in the queue too)
            response = referral_app.test_client().get("/v1/referrals", headers=scheduler, query_string={
                "limit": 2, **params, **({"cursor": cursor} if cursor else {})}).get_json()
            items += response["items"]
            cursor = response["next_cursor"]
            if not cursor:
                return [item["report_id"] for item in items if item["report_id"] in ours]

    # urgent first, then oldest; only the flagged ones; and combined with the other filters
    assert report_ids(review="possible_duplicate") == [flagged[1], flagged[0], flagged[2]]
    assert report_ids(review="possible_duplicate", priority="routine") == [flagged[0], flagged[2]]
    assert report_ids(review="possible_duplicate", status="waitlisted") == report_ids(
        review="possible_duplicate", status="open") == [flagged[1], flagged[0], flagged[2]]
    assert set(report_ids()) == ours
    for item in queue(referral_app, scheduler, review="possible_duplicate", report_id=flagged[1]):
        assert item["possible_duplicate_of"]["mrn"] == patients[0]

    bad = referral_app.test_client().get("/v1/referrals", query_string={"review": "maybe"}, headers=scheduler)
    assert bad.status_code == 422
    assert [f["field"] for f in bad.get_json()["error"]["fields"]] == ["review"]


def test_the_openapi_document_describes_the_flag_and_its_filter(referral_app):
    spec = referral_app.test_client().get("/openapi.json").get_json()
    parameters = {p["name"]: p for p in spec["paths"]["/v1/referrals"]["get"]["parameters"]}
    # (apispec adds null to the enum of an optional parameter, as for status and priority)
    assert [v for v in parameters["review"]["schema"]["enum"] if v is not None] == ["possible_duplicate"]
    assert "Extension to the contract" in parameters["review"]["description"]
    referral = spec["components"]["schemas"]["Referral"]["properties"]["possible_duplicate_of"]
    assert "Extension to the contract" in referral["description"]
    flag = spec["components"]["schemas"]["PossibleDuplicate"]["properties"]
    assert set(flag) == {"referral_id", "mrn"}


# -- the kiosk: a report with another patient's MRN never shows their appointment ------------
@pytest.fixture(scope="module")
def intake_consumer(intake_settings):
    pool = make_pool(intake_settings.database_url, max_size=2, name="intake-test-matching")
    yield InboxConsumer(service="intake", pool=pool, kafka_bootstrap="127.0.0.1:1", group_id="unused",
                        handlers=intake_worker.HANDLERS)
    pool.close()


def _through_triage(intake_conn, report_id: str, care_level: str) -> dict:
    """The decision triage would publish for the report intake published (patient passed on)."""
    payload = intake_conn.execute("SELECT payload FROM intake.outbox WHERE key = %s", (report_id,)).fetchone()[0]
    data = triage_events.parse_report_event(payload)
    priority = {"urgent": "urgent", "specialist": "routine"}[care_level]
    decision = {"care_level": care_level, "rules_version": "test", "fired": [], "likely_source": "joint",
                "possible_causes": [], "notes": [], "advice": ["See the pain clinic."],
                "referral": {"priority": priority, "within_days": 2 if priority == "urgent" else 14}}
    return triage_events.decision_event(report_id, decision, payload["time"], dict(data["patient"]))


def test_a_report_with_another_patients_mrn_never_shows_their_appointment(
        intake_app, kiosk, intake_conn, intake_consumer, ref_conn, now, referral_app, scheduler):
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + 3 * D], now)  # one slot: Rosa's
    patient = mrn()
    client = intake_app.test_client()

    def submit(body) -> str:
        response = client.post("/v1/reports", json=body, headers=kiosk.headers)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["report_id"]

    rosa = submit(report_body(patient__mrn=patient, patient__birth_date=BIRTH_DATE, patient__given_name="Rosa"))
    tom = submit(report_body(patient__mrn=patient.lower(), patient__birth_date=OTHER_BIRTH_DATE,
                             patient__given_name="Tom"))
    for report_id, care in ((rosa, "specialist"), (tom, "urgent")):
        event = _through_triage(intake_conn, report_id, care)
        assert event["data"]["patient"]["birth_date"] == (BIRTH_DATE if report_id == rosa else OTHER_BIRTH_DATE)
        delivery = Delivery(topic=TOPIC_DECISIONS, partition=0, offset=0, key=report_id, traceparent=new_traceparent())
        with ref_conn.transaction():
            referral_worker.on_decision(ref_conn, event, delivery, now=now)
        assert intake_consumer._apply(event, delivery) == "applied"  # intake records the decision too

    # Every referral event the referral service wrote reaches intake's status view.
    for report_id in (rosa, tom):
        referral_id = referral_for_report(ref_conn, report_id)["referral_id"]
        for _type, key, _data, _tp in outbox_events(ref_conn, referral_id):
            assert key == report_id
        rows = ref_conn.execute("SELECT payload FROM referral.outbox WHERE payload->>'subject' = %s ORDER BY id",
                                (referral_id,)).fetchall()
        for (payload,) in rows:
            delivery = Delivery(topic=TOPIC_REFERRAL_EVENTS, partition=0, offset=0, key=report_id,
                                traceparent=new_traceparent())
            assert intake_consumer._apply(payload, delivery) == "applied"

    rosa_view = client.get(f"/v1/reports/{rosa}", headers=kiosk.headers).get_json()
    tom_view = client.get(f"/v1/reports/{tom}", headers=kiosk.headers).get_json()
    assert rosa_view["status"] == "referred" and rosa_view["referral"]["appointment"] is not None
    assert tom_view["status"] == "waitlisted"
    assert tom_view["referral"]["referral_id"] != rosa_view["referral"]["referral_id"]
    assert tom_view["referral"]["appointment"] is None
    assert rosa_view["referral"]["appointment"]["slot_id"] not in json.dumps(tom_view)
    assert rosa_view["referral"]["referral_id"] not in json.dumps(tom_view)

    # ... while the scheduler sees Tom's referral flagged against Rosa's, without her name.
    item = item_for(referral_app, scheduler, tom)
    assert item["possible_duplicate_of"] == {"referral_id": rosa_view["referral"]["referral_id"], "mrn": patient}
    assert "Rosa" not in json.dumps(item)
