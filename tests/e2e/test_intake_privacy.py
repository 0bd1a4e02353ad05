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
import uuid
from datetime import date, timedelta

import pytest
import requests

from tests.kafka_support import read_topic

from services.common.settings import TOPICS

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
    log_files = [p for p in (live_stack.state_dir / "logs").rglob("*") if p.is_file()]
    log_files += [p for p in live_stack.state_dir.glob("*.log") if p.is_file()]  # the console copy
    assert any(p.name.startswith("intake") for p in log_files), [p.name for p in log_files]
    found = []
    scanned_bytes = 0
    for path in log_files:
        content = path.read_bytes()
        scanned_bytes += len(content)
        found += [(path.name, label) for label, value in secrets.items() if value.encode() in content]
    # The scan is not vacuous: the report ids are there (services log ids, not people).
    all_logs = b"".join(p.read_bytes() for p in log_files)
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
