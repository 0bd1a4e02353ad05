"""Patient identity stays where it belongs, through the real processes (`make run`'s stack).

Reports with distinctive names, birth dates, phones and MRNs go through the whole flow
(accepted, refused, replayed, triaged, referred, linked, closed); afterwards none of those
values is in any log file of the stack or in any service's /metrics, and the events on
Kafka never carry a phone. Report and decision events carry the MRN, display name and
birth date, which the referral service needs to book for a person and to tell two patients
with one MRN apart (contract, patient matching); referral events carry none of them."""
from __future__ import annotations

import json
import random
import time
import uuid
from datetime import date, timedelta

import psycopg
import pytest
import requests
from psycopg import sql

from tests.kafka_support import admin_security, read_topic

from services.common import envelope
from services.common.error_text import safe_error_text
from services.common.kafka_io import make_producer
from services.common.settings import TOPICS, dlq_topic

from .flow_helpers import SELF_CARE, SPECIALIST, URGENT, report_body, submit, wait_for_report

pytestmark = pytest.mark.e2e


def distinctive_patient() -> dict:
    tag = uuid.uuid4().hex[:10]
    rng = random.Random(tag)
    born = date(1931, 1, 1) + timedelta(days=rng.randrange(365 * 35))  # no timestamp in a log looks like it
    return {"mrn": f"MRN-PRIV-{tag}", "given_name": f"Givenpriv{tag}", "family_name": f"Familypriv{tag}",
            "birth_date": born.isoformat(), "phone": f"+4420{rng.randrange(10**7, 10**8)}"}


def with_patient(body: dict, patient: dict) -> dict:
    return {**body, "patient": dict(patient)}


def secrets_of(patient: dict) -> dict[str, str]:
    """Every form a value could take in a log line."""
    return {
        "mrn": patient["mrn"],
        "given_name": patient["given_name"],
        "family_name": patient["family_name"],
        "birth_date": patient["birth_date"],
        "birth_date_compact": patient["birth_date"].replace("-", ""),
        "phone": patient["phone"],
        "phone_digits": patient["phone"].lstrip("+"),
    }


def scan_logs(live_stack, secrets: dict[str, str]):
    """Every log file of the stack: (files, bytes scanned, [(file, label) found], all bytes)."""
    log_files = [p for p in (live_stack.state_dir / "logs").rglob("*") if p.is_file()]
    log_files += [p for p in live_stack.state_dir.glob("*.log") if p.is_file()]  # the console copy
    assert any(p.name.startswith("intake") for p in log_files), [p.name for p in log_files]
    found = []
    scanned_bytes = 0
    contents = []
    for path in log_files:
        content = path.read_bytes()
        contents.append(content)
        scanned_bytes += len(content)
        found += [(path.name, label) for label, value in secrets.items() if value.encode() in content]
    return log_files, scanned_bytes, found, b"".join(contents)


def test_patient_data_stays_out_of_logs_metrics_and_events(live_stack):
    intake = live_stack.base_url["intake"]
    key = live_stack.kiosk_key()
    staff = {"Authorization": f"Bearer {live_stack.staff_token('scheduler')}"}
    alice, bruno, carla = distinctive_patient(), distinctive_patient(), distinctive_patient()

    # Accepted: urgent, then a specialist report of the same patient (linked to the same
    # referral), and a self-care report of another.
    urgent = submit(intake, key, with_patient(report_body(**URGENT), alice), idempotency_key="priv-1")
    assert urgent.status_code == 202, urgent.text
    linked = submit(intake, key, with_patient(report_body(**SPECIALIST), alice))
    self_care = submit(intake, key, with_patient(report_body(**SELF_CARE), bruno))
    report_ids = [r.json()["report_id"] for r in (urgent, linked, self_care)]

    # A replay, a conflicting replay, and refusals carrying patient data.
    replay = submit(intake, key, with_patient(report_body(**URGENT), alice), idempotency_key="priv-1")
    assert replay.status_code == 202 and replay.json() == urgent.json()
    assert submit(intake, key, with_patient(report_body(**SELF_CARE), alice),
                  idempotency_key="priv-1").status_code == 409
    invalid = with_patient(report_body(**URGENT), carla)
    invalid["patient"]["nickname"] = carla["given_name"]
    invalid["pain"]["severity"] = 99
    refused = submit(intake, key, invalid)
    assert refused.status_code == 422
    assert carla["given_name"] not in refused.text  # errors name fields, never echo values
    bad_key = requests.post(f"{intake}/v1/reports", json=with_patient(report_body(), carla), timeout=10,
                            headers={"Authorization": "Bearer not-a-key"})
    assert bad_key.status_code == 401

    views = [wait_for_report(intake, key, report_id) for report_id in report_ids]
    assert views[0]["status"] in {"referred", "waitlisted"} and views[2]["status"] == "closed"
    # The linked report reaches its referral too.
    wait_for_report(intake, key, report_ids[1], until=lambda v: v["referral"] is not None)
    for report_id in report_ids:
        assert requests.get(f"{intake}/v1/reports/{report_id}", headers=staff, timeout=10).status_code == 200
    requests.get(f"{live_stack.base_url['referral']}/v1/referrals", params={"report_id": report_ids[0]},
                 headers=staff, timeout=10).raise_for_status()

    secrets = {f"{who}.{name}": value for who, patient in (("alice", alice), ("bruno", bruno), ("carla", carla))
               for name, value in secrets_of(patient).items()}

    # -- logs: every file the stack wrote ------------------------------------------------------
    log_files, scanned_bytes, found, all_logs = scan_logs(live_stack, secrets)
    # The scan is not vacuous: the report ids are there (services log ids, not people).
    assert any(report_id.encode() in all_logs for report_id in report_ids)
    assert found == [], f"patient data in logs: {found}"

    # -- metrics ----------------------------------------------------------------------------
    for service, url in live_stack.base_url.items():
        text = requests.get(f"{url}/metrics", timeout=10).text
        assert "clinic_http_requests_total" in text
        leaked = [label for label, value in secrets.items() if value in text]
        assert leaked == [], f"patient data in {service} /metrics: {leaked}"
    for service, url in live_stack.worker_metrics_url.items():
        text = requests.get(url, timeout=10).text
        assert "clinic_events_consumed_total" in text
        leaked = [label for label, value in secrets.items() if value in text]
        assert leaked == [], f"patient data in the {service} worker's /metrics: {leaked}"

    # -- events -----------------------------------------------------------------------------
    bootstrap = live_stack.env["CLINIC_KAFKA_BOOTSTRAP"]
    ours = {topic: [m for m in read_topic(bootstrap, topic) if m.key and m.key.decode() in report_ids]
            for topic in TOPICS}
    reports_topic = TOPICS[0]
    assert sorted(m.key.decode() for m in ours[reports_topic]) == sorted(report_ids)
    # A self-care decision needs no referral and carries no patient at all (issue 13).
    self_care_decisions = [m for m in ours[TOPICS[1]] if m.key.decode() == report_ids[2]]
    assert len(self_care_decisions) == 1
    assert "patient" not in json.loads(self_care_decisions[0].value)["data"]
    assert [label for label, v in secrets.items()
            if label.startswith("bruno.") and v in self_care_decisions[0].value.decode()] == []
    for topic in TOPICS[:2]:  # reports and decisions
        for message in ours[topic]:
            if message in self_care_decisions:
                continue
            patient = json.loads(message.value)["data"]["patient"]
            # what the referral service needs, nothing more
            assert set(patient) == {"mrn", "display_name", "birth_date"}, topic
    for topic, messages in ours.items():
        # The birth date only in the patient of report and decision events, never in referral events.
        kept_out = ("phone",) if topic in TOPICS[:2] else ("birth_date", "phone")
        for message in messages:
            value = message.value.decode()
            assert '"phone"' not in value, topic
            assert value.count('"birth_date"') == (
                1 if topic in TOPICS[:2] and message not in self_care_decisions else 0), topic
            leaked = [label for label, v in secrets.items()
                      if v in value and label.split(".")[1].startswith(kept_out)]
            assert leaked == [], f"{topic} carries {leaked}"
    print(f"\nprivacy scan: {len(log_files)} log files ({scanned_bytes} bytes), 6 /metrics, "
          f"{sum(len(m) for m in ours.values())} events; {len(secrets)} values looked for")


# -- errors that quote values: database errors and poison (issue 13 part 5) ------------------------
def _poison(topic: str, patient: dict, tag: str) -> list[tuple[str, bytes]]:
    """Messages no consumer of `topic` can apply, each carrying the patient's values: in a
    field the contract refuses, as an unknown field's name, as the event type, in broken JSON."""
    display = f"{patient['given_name']} {patient['family_name']}"
    report_id = str(uuid.uuid4())
    if topic == TOPICS[0]:
        event_type, source = "clinic.report.submitted", "/clinic/intake"
        data = {"report_id": report_id, "submitted_at": "2026-11-26T09:00:00+00:00",
                "patient": {"mrn": patient["mrn"], "display_name": display, "birth_date": patient["birth_date"]},
                "activity": {"sport": "running", "high_impact": patient["phone"]},
                "pain": {"severity": patient["mrn"], "side": display, "started_on": patient["birth_date"] + "x"},
                "function": {}, "home_care": {"improving": patient["phone"]}}
    elif topic == TOPICS[1]:
        event_type, source = "clinic.triage.decided", "/clinic/triage"
        data = {"report_id": report_id, "care_level": patient["mrn"], "advice": [], "decided_at": patient["birth_date"],
                "fired": [{"id": display, "reason": patient["phone"]}],
                "referral": {"priority": "urgent", "within_days": 400},
                "patient": {"mrn": patient["mrn"], "display_name": display, "birth_date": patient["phone"],
                            patient["given_name"].lower(): patient["family_name"]}}
    else:
        event_type, source = "referral.booked", "/clinic/referral"
        data = {"referral_id": report_id, "report_ids": [patient["mrn"]], "priority": display,
                "status": patient["phone"], "sequence": patient["birth_date"], "appointment": None}
    bad_data = envelope.new_event(type=event_type, source=source, subject=report_id, data=data)
    bad_type = {**bad_data, "type": display, "source": patient["mrn"], "id": patient["phone"]}
    not_json = b'{"patient": {"mrn": "' + patient["mrn"].encode() + b'", "name": "' + display.encode()
    poison = [envelope.encode(bad_data), envelope.encode(bad_type), not_json]
    if topic == TOPICS[1]:  # a well-formed decision for the patient, but for a 400-day window
        data = {"report_id": report_id, "care_level": "specialist", "advice": [], "fired": [],
                "decided_at": "2026-11-26T09:00:00+00:00", "referral": {"priority": "routine", "within_days": 400},
                "patient": {"mrn": patient["mrn"], "display_name": display, "birth_date": patient["birth_date"]}}
        poison.append(envelope.encode(envelope.new_event(type=event_type, source=source, subject=report_id,
                                                         data=data)))
    return [(f"privacy-poison-{tag}-{n}", value) for n, value in enumerate(poison)]


def _wait_for_dead_letters(bootstrap: str, expected: dict[tuple[str, str], set[str]], timeout: float = 90):
    """{(dlq topic, key): consumer groups} -> the dead letters, once each group has parked each."""
    deadline = time.monotonic() + timeout
    while True:
        letters = {topic: read_topic(bootstrap, topic) for topic in {t for t, _ in expected}}
        parked: dict[tuple[str, str], set[str]] = {}
        for topic, messages in letters.items():
            for m in messages:
                if m.key:
                    group = dict(m.headers or []).get("dlq.consumer_group", b"").decode()
                    parked.setdefault((topic, m.key.decode()), set()).add(group)
        missing = {k: groups - parked.get(k, set()) for k, groups in expected.items() if groups - parked.get(k, set())}
        if not missing:
            return letters
        assert time.monotonic() < deadline, f"not dead-lettered within {timeout}s: {missing}"
        time.sleep(1)


def test_database_errors_and_poison_leave_no_patient_value_in_logs_or_dead_letter_headers(live_stack):
    intake = live_stack.base_url["intake"]
    key = live_stack.kiosk_key()
    dave = distinctive_patient()
    # the same MRN, another birth date: another person, whose referral opens flagged
    other = {**distinctive_patient(), "mrn": dave["mrn"]}
    secrets = {f"{who}.{name}": value for who, patient in (("dave", dave), ("other", other))
               for name, value in secrets_of(patient).items()}
    secrets["dave.mrn_key"] = dave["mrn"].casefold()  # the referral service's compared form
    admin_url = live_stack.settings().admin_database_url
    probe = f"privacy_probe_{uuid.uuid4().hex[:12]}"

    first = submit(intake, key, with_patient(report_body(**URGENT), dave))
    assert first.status_code == 202, first.text
    first_id = first.json()["report_id"]
    wait_for_report(intake, key, first_id, until=lambda v: v["referral"] is not None)

    # A constraint the pipeline hits, whose DETAIL quotes the MRN: the flagged referral of the
    # other patient with dave's MRN fails to insert, three times, and is dead-lettered.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE UNIQUE INDEX {} ON referral.referrals (patient_mrn) WHERE patient_mrn = {}")
                     .format(sql.Identifier(probe), sql.Literal(dave["mrn"])))
    try:
        second = submit(intake, key, with_patient(report_body(**URGENT), other))
        assert second.status_code == 202, second.text
        second_id = second.json()["report_id"]

        # The same insert, by hand and rolled back: the raw error does quote the patient.
        with psycopg.connect(admin_url) as conn:
            conn.execute("CREATE TEMP TABLE probe_row AS SELECT * FROM referral.referrals WHERE patient_mrn = %s",
                         (dave["mrn"],))
            conn.execute("UPDATE probe_row SET referral_id = gen_random_uuid(), slot_id = NULL,"
                         " possible_duplicate_of = referral_id, possible_duplicate_mrn = patient_mrn")
            columns = sql.SQL(", ").join(
                sql.Identifier(c.name) for c in conn.execute("SELECT * FROM probe_row LIMIT 0").description
                if c.name != "priority_rank")  # generated
            with pytest.raises(psycopg.errors.UniqueViolation) as caught:
                conn.execute(sql.SQL("INSERT INTO referral.referrals ({c}) SELECT {c} FROM probe_row").format(c=columns))
            conn.rollback()
        raw = str(caught.value)
        assert dave["mrn"] in raw or dave["mrn"].casefold() in raw, "the raw database error quotes the MRN"
        assert safe_error_text(caught.value).startswith("UniqueViolation (SQLSTATE 23505")

        # Poison on every topic, carrying the patients' values.
        bootstrap = live_stack.env["CLINIC_KAFKA_BOOTSTRAP"]
        tag = uuid.uuid4().hex[:8]
        producer = make_producer(bootstrap, "privacy-poison", admin_security(bootstrap))
        sent: dict[str, list[tuple[str, bytes]]] = {}
        try:
            for topic, patient in zip(TOPICS, (dave, other, dave)):
                sent[topic] = _poison(topic, patient, f"{tag}-{topic.split('.')[1]}")
                for message_key, value in sent[topic]:
                    producer.send(topic, key=message_key.encode(), value=value,
                                  headers=[("traceparent", envelope.new_traceparent().encode())]).get(timeout=30)
        finally:
            producer.close(timeout=10)
        consumers = {TOPICS[0]: {"clinic-triage"}, TOPICS[1]: {"clinic-referral", "clinic-intake"},
                     TOPICS[2]: {"clinic-intake"}}
        expected = {(dlq_topic(topic), message_key): consumers[topic]
                    for topic, messages in sent.items() for message_key, _ in messages}
        # intake shows a decision's care level and reads no window: only the referral service refuses it
        expected[(dlq_topic(TOPICS[1]), sent[TOPICS[1]][3][0])] = {"clinic-referral"}
        expected[(dlq_topic(TOPICS[1]), second_id)] = {"clinic-referral"}
        letters = _wait_for_dead_letters(bootstrap, expected)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS referral.{}").format(sql.Identifier(probe)))

    ours = [m for messages in letters.values() for m in messages
            if m.key and (m.key.decode().startswith(f"privacy-poison-{tag}") or m.key.decode() == second_id)]
    assert len(ours) == sum(len(groups) for groups in expected.values())
    # Not vacuous: the dead letters' bodies (the messages as sent) do carry the values.
    for message in ours:
        assert any(v.encode() in message.value for v in (dave["mrn"], other["given_name"], other["family_name"])), \
            message.key
    database_letter = [m for m in ours if m.key.decode() == second_id]
    assert [dict(m.headers)["dlq.error_type"] for m in database_letter] == [b"UniqueViolation"]
    assert dict(database_letter[0].headers)["dlq.error"].startswith(f"UniqueViolation (SQLSTATE 23505, constraint {probe}".encode())
    # Every poison was refused for the rule it broke, named by field.
    reasons = {m.key.decode(): dict(m.headers)["dlq.error"].decode() for m in ours}
    assert any("pain.severity: Not a valid integer." in r for r in reasons.values()), reasons
    assert any("referral.within_days: Must be less than or equal to 14." in r for r in reasons.values()), reasons

    # -- every header of every dead letter, every log line ----------------------------------------
    headers_seen = 0
    leaked = []
    for topic, messages in letters.items():
        for message in messages:
            for name, value in message.headers or []:
                headers_seen += 1
                leaked += [(topic, message.offset, name, label) for label, v in secrets.items()
                           if v.encode() in (value or b"")]
    assert leaked == [], f"patient data in dead-letter headers: {leaked}"
    log_files, scanned_bytes, found, all_logs = scan_logs(live_stack, secrets)
    assert b"event handler failed" in all_logs and b"UniqueViolation" in all_logs  # the failures were logged
    assert found == [], f"patient data in logs: {found}"
    print(f"\nerror privacy: {len(ours)} dead letters of ours, {headers_seen} headers of "
          f"{sum(len(m) for m in letters.values())} dead letters, {len(log_files)} log files ({scanned_bytes} bytes); "
          f"{len(secrets)} values looked for")
