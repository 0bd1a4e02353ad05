"""Retention of patient identity (issue 13 part 3) on the real database and broker: the purge
pseudonymises exactly the closed cases older than the retention period, changes nothing the
second time, shares the work when two run at once, runs by itself in the worker, and
`clinic purge --dry-run` only tells; self-care decisions carry no patient on the broker.

The session database is shared: the rows here are this module's own (their kiosk, their
MRNs), and only these tests make rows closed long ago, which the purges look at.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.app_support import WorkerThread, role_conn
from tests.intake_support import new_kiosk
from tests.kafka_support import read_topic
from tests.triage_support import TriageWorker, clinical, produce, report_event, wait_for

from services.admin import cli
from services.common import envelope
from services.common import worker as worker_module
from services.common.inbox import Delivery
from services.common.purge import purge_now
from services.common.retention import RetentionPolicy, key_from_settings, mrn_pseudonym
from services.common.settings import TOPIC_DECISIONS, TOPIC_REPORTS
from services.intake import retention as intake_retention
from services.intake import store as intake_store
from services.intake import worker as intake_worker
from services.referral import store as referral_store
from services.referral import worker as referral_worker

pytestmark = pytest.mark.integration

DAYS = 30  # the default retention period, which these tests keep


@pytest.fixture
def conn(intake_conn):
    return intake_conn


@pytest.fixture(scope="module")
def kiosk_id(intake_settings):
    kiosk = new_kiosk(intake_settings)
    with role_conn(intake_settings) as connection:
        return connection.execute("SELECT kiosk_id FROM intake.kiosks WHERE name = %s", (kiosk.name,)).fetchone()[0]


def patient() -> dict:
    return {"mrn": f"MRN-{uuid.uuid4().hex[:10]}", "given_name": "Rowena", "family_name": "Quill",
            "birth_date": "1984-02-29", "phone": "+15550199", "email": "rq@example.org", "contact_consent": ["sms"]}


def add_report(conn, kiosk_id, *, care_level=None, referral_status=None, closed_days_ago=None) -> str:
    """A report as the API and the worker leave it; closed `closed_days_ago` days ago."""
    report_id = str(uuid.uuid4())
    referral = None if referral_status is None else {"referral_id": str(uuid.uuid4()), "status": referral_status,
                                                     "priority": "routine", "appointment": None}
    conn.execute(
        "INSERT INTO intake.reports (report_id, kiosk_id, body_hash, patient, clinical, care_level, referral)"
        " VALUES (%s, %s, 'h', %s, %s, %s, %s)",
        (report_id, kiosk_id, Jsonb(patient()), Jsonb({"pain": {"severity": 3}}), care_level,
         None if referral is None else Jsonb(referral)))
    if closed_days_ago is not None:
        conn.execute("UPDATE intake.reports SET closed_at = now() - %s * interval '1 day' WHERE report_id = %s",
                     (closed_days_ago, report_id))
    return report_id


def rows(conn, report_ids) -> dict[str, dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("SELECT * FROM intake.reports WHERE report_id = ANY(%s::uuid[])",
                            (list(report_ids),)).fetchall()
    return {str(r["report_id"]): r for r in found}


def purge(settings, store, table):
    with psycopg.connect(settings.database_url) as connection:
        return purge_now(connection, settings, store.pseudonymise_batch, table=table)


def test_the_closed_at_trigger_follows_the_kiosk_status_rule(conn, kiosk_id):
    cases = [(None, None), ("urgent", None), ("self_care", None), ("urgent", "booked"), ("urgent", "waitlisted"),
             ("urgent", "cancelled"), ("specialist", "completed"), (None, "completed"), (None, "booked")]
    for care_level, referral_status in cases:
        report_id = add_report(conn, kiosk_id, care_level=care_level, referral_status=referral_status)
        closed_at = rows(conn, [report_id])[report_id]["closed_at"]
        assert (closed_at is not None) is intake_retention.is_case_closed(care_level, referral_status), (
            care_level, referral_status)
    # As the worker records it: triaged, booked, then completed; the moment it closed stays.
    report_id = add_report(conn, kiosk_id)
    intake_store.record_decision(conn, report_id, "urgent", [], datetime.now(UTC).isoformat())
    assert rows(conn, [report_id])[report_id]["closed_at"] is None
    snapshot = {"referral_id": str(uuid.uuid4()), "status": "booked", "priority": "urgent", "appointment": None}
    referral_id = snapshot["referral_id"]
    intake_store.claim_reports(conn, referral_id, [report_id])
    intake_store.record_referral(conn, referral_id, snapshot, 1)
    assert rows(conn, [report_id])[report_id]["closed_at"] is None
    intake_store.record_referral(conn, referral_id, {**snapshot, "status": "completed"}, 2)
    closed_at = rows(conn, [report_id])[report_id]["closed_at"]
    assert closed_at is not None
    intake_store.record_referral(conn, referral_id, {**snapshot, "status": "completed"}, 3)
    assert rows(conn, [report_id])[report_id]["closed_at"] == closed_at


def test_the_purge_pseudonymises_exactly_the_reports_due_and_a_second_run_changes_nothing(
        conn, kiosk_id, intake_settings):
    due = {
        "self care, closed 40 days ago": add_report(conn, kiosk_id, care_level="self_care", closed_days_ago=40),
        "completed, 31 days ago": add_report(conn, kiosk_id, care_level="urgent", referral_status="completed",
                                             closed_days_ago=31),
        "cancelled, 30 days and a minute ago": add_report(conn, kiosk_id, care_level="specialist",
                                                          referral_status="cancelled", closed_days_ago=30.001),
    }
    kept = {
        "cancelled 10 days ago": add_report(conn, kiosk_id, care_level="urgent", referral_status="cancelled",
                                            closed_days_ago=10),
        "self care, today": add_report(conn, kiosk_id, care_level="self_care"),
        "booked long ago": add_report(conn, kiosk_id, care_level="urgent", referral_status="booked"),
        "triaged": add_report(conn, kiosk_id, care_level="urgent"),
        "received": add_report(conn, kiosk_id),
    }
    conn.execute("UPDATE intake.reports SET submitted_at = now() - interval '400 days'"
                 " WHERE report_id = ANY(%s::uuid[])", (list(kept.values()),))
    before = rows(conn, [*due.values(), *kept.values()])
    dry = intake_store.identity_due(conn, RetentionPolicy(DAYS))
    assert dry.due == len(due)

    result = purge(replace(intake_settings, retention_batch_size=2),
                   intake_store, "intake.reports")
    assert (result.pseudonymised, result.batches) == (3, 2)

    after = rows(conn, [*due.values(), *kept.values()])
    key = key_from_settings(intake_settings)
    for label, report_id in due.items():
        old, new = before[report_id], after[report_id]
        assert new["patient"] == {"mrn_pseudonym": mrn_pseudonym(key, old["patient"]["mrn"])}, label
        assert new["body_hash"] == "pseudonymised" and new["pseudonymised_at"] is not None, label
        unchanged = ("clinical", "care_level", "advice", "referral", "closed_at", "submitted_at", "kiosk_id")
        assert {c: new[c] for c in unchanged} == {c: old[c] for c in unchanged}, label
        for value in ("Rowena", "Quill", "1984-02-29", "5550199", "rq@example.org", old["patient"]["mrn"]):
            assert value not in str(new), (label, value)
    for label, report_id in kept.items():
        assert after[report_id] == before[report_id], label

    again = purge(intake_settings, intake_store, "intake.reports")
    assert again.pseudonymised == 0
    assert rows(conn, [*due.values(), *kept.values()]) == after
    assert intake_store.identity_due(conn, RetentionPolicy(DAYS)).due == 0


def test_two_purges_at_once_share_the_rows_without_deadlock_or_double_count(conn, kiosk_id, intake_settings):
    n = 3000
    conn.execute(
        "INSERT INTO intake.reports (report_id, kiosk_id, body_hash, patient, clinical, care_level)"
        " SELECT gen_random_uuid(), %s, 'h', jsonb_build_object('mrn', 'MRN-RACE-' || i, 'given_name', 'Race',"
        " 'family_name', 'Twin', 'birth_date', '1990-01-01'), '{}', 'self_care' FROM generate_series(1, %s) i",
        (kiosk_id, n))
    conn.execute("UPDATE intake.reports SET closed_at = now() - interval '45 days'"
                 " WHERE patient ->> 'given_name' = 'Race'")
    assert intake_store.identity_due(conn, RetentionPolicy(DAYS)).due == n
    settings = replace(intake_settings, retention_batch_size=100)
    start = threading.Barrier(2)
    results, errors = [], []

    def one_purge():
        try:
            with psycopg.connect(settings.database_url) as connection:
                start.wait(timeout=10)
                results.append(purge_now(connection, settings, intake_store.pseudonymise_batch,
                                         table="intake.reports"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_purge) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert sum(r.pseudonymised for r in results) == n
    assert all(r.pseudonymised > 0 for r in results), [r.pseudonymised for r in results]  # both did some
    left = conn.execute("SELECT count(*) FILTER (WHERE pseudonymised_at IS NULL),"
                        " count(*) FILTER (WHERE patient ? 'given_name') FROM intake.reports"
                        " WHERE body_hash = 'pseudonymised' OR patient ->> 'given_name' = 'Race'").fetchone()
    assert left == (0, 0)


def add_referral(conn, *, status: str, closed_days_ago: float, duplicate_of: tuple[str, str] | None = None) -> str:
    referral_id = str(uuid.uuid4())
    mrn = f"MRN-{uuid.uuid4().hex[:10]}"
    conn.execute(
        "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_mrn_key, patient_birth_date,"
        " patient_display_name, priority, status, created_at, window_ends_at, version, updated_at,"
        " possible_duplicate_of, possible_duplicate_mrn)"
        " VALUES (%s, %s, lower(%s), '1984-02-29', 'Rowena Quill', 'routine', %s,"
        " now() - %s * interval '1 day' - interval '20 days', now() - %s * interval '1 day', 2,"
        " now() - %s * interval '1 day', %s, %s)",
        (referral_id, mrn, mrn, status, closed_days_ago, closed_days_ago, closed_days_ago,
         duplicate_of and duplicate_of[0], duplicate_of and duplicate_of[1]))
    conn.execute("INSERT INTO referral.referral_reports (report_id, referral_id, position, care_level, linked_at)"
                 " VALUES (gen_random_uuid(), %s, 0, 'specialist', now() - interval '60 days')", (referral_id,))
    conn.execute(
        "INSERT INTO referral.referral_history (referral_id, sequence, at, actor, action, to_status, reason)"
        " VALUES (%s, 1, now() - interval '60 days', 'system', 'created', 'waitlisted', 'no free slot'),"
        " (%s, 2, now() - %s * interval '1 day', 'dana', 'cancelled', 'cancelled', 'moved away')",
        (referral_id, referral_id, closed_days_ago))
    return referral_id


def referral_rows(conn, ids) -> dict[str, dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("SELECT * FROM referral.referrals WHERE referral_id = ANY(%s::uuid[])",
                            (list(ids),)).fetchall()
    return {str(r["referral_id"]): r for r in found}


def test_closed_referrals_lose_their_patient_identity_and_keep_their_record(referral_settings):
    settings = referral_settings
    with role_conn(settings) as conn:
        other = add_referral(conn, status="cancelled", closed_days_ago=50)
        due = {"cancelled 40 days ago": add_referral(conn, status="cancelled", closed_days_ago=40),
               "flagged, cancelled 35 days ago": add_referral(
                   conn, status="cancelled", closed_days_ago=35, duplicate_of=(other, "mrn-other"))}
        kept = {"cancelled 5 days ago": add_referral(conn, status="cancelled", closed_days_ago=5),
                "waitlisted 90 days": add_referral(conn, status="waitlisted", closed_days_ago=90)}
        ids = [other, *due.values(), *kept.values()]
        before = referral_rows(conn, ids)
        history_before = {i: referral_store.history(conn, i) for i in ids}
        assert referral_store.identity_due(conn, RetentionPolicy(DAYS)).due == 3

        assert purge(settings, referral_store, "referral.referrals").pseudonymised == 3
        after = referral_rows(conn, ids)
        key = key_from_settings(settings)
        for label, referral_id in {**due, "other": other}.items():
            old, new = before[referral_id], after[referral_id]
            pseudonym = mrn_pseudonym(key, old["patient_mrn"])
            assert (new["patient_mrn"], new["patient_mrn_key"], new["patient_display_name"],
                    new["patient_birth_date"]) == (pseudonym, pseudonym, "(pseudonymised)", None), label
            assert new["possible_duplicate_mrn"] == (None if old["possible_duplicate_mrn"] is None
                                                     else mrn_pseudonym(key, "mrn-other")), label
            record = ("status", "priority", "created_at", "updated_at", "window_ends_at", "version",
                      "possible_duplicate_of", "slot_id")
            assert {c: new[c] for c in record} == {c: old[c] for c in record}, label
            assert referral_store.history(conn, referral_id) == history_before[referral_id], label
        view = referral_store.referral_view(conn, due["cancelled 40 days ago"], datetime.now(UTC))
        # the language is not identity: kept, like the record (how to speak to the patient)
        assert view["patient"] == {"mrn": after[due["cancelled 40 days ago"]]["patient_mrn"],
                                   "display_name": "(pseudonymised)", "language": "en"}
        for label, referral_id in kept.items():
            assert after[referral_id] == before[referral_id], label
        assert purge(settings, referral_store, "referral.referrals").pseudonymised == 0
        assert referral_rows(conn, ids) == after


def test_clinic_purge_dry_run_prints_and_changes_nothing_then_purge_does_it(
        conn, kiosk_id, intake_settings, stack_env, capsys, monkeypatch):
    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)
    report_ids = [add_report(conn, kiosk_id, care_level="self_care", closed_days_ago=days) for days in (33, 61)]
    before = rows(conn, report_ids)
    assert cli.main(["purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("intake: intake.reports:") and lines[1].startswith("referral:")
    assert "not yet pseudonymised: 2; oldest closed " in lines[0] and "(61 days ago)" in lines[0]
    assert lines[0].endswith("would pseudonymise 2")
    assert rows(conn, report_ids) == before

    assert cli.main(["purge", "--service", "intake"]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("pseudonymised 2 in 1 batch"), out
    assert all(r["pseudonymised_at"] is not None for r in rows(conn, report_ids).values())
    assert cli.main(["purge", "--dry-run", "--service", "intake"]) == 0
    assert "not yet pseudonymised: 0; oldest closed -" in capsys.readouterr().out


def test_clinic_purge_without_the_services_key_refuses_and_changes_nothing(
        conn, kiosk_id, stack_env, capsys, monkeypatch, tmp_path):
    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)
    for name in ("CLINIC_SECRET_KEY", "CLINIC_PSEUDONYM_KEY", "CLINIC_INTAKE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLINIC_INTAKE_DATABASE_URL", intake_url(stack_env))
    monkeypatch.setenv("CLINIC_STATE_DIR", str(tmp_path))  # no local secrets folder to fall back on
    report_ids = [add_report(conn, kiosk_id, care_level="self_care", closed_days_ago=45)]
    before = rows(conn, report_ids)

    assert cli.main(["purge", "--service", "intake"]) == 1

    assert "intake: no pseudonym key" in capsys.readouterr().err
    assert rows(conn, report_ids) == before


def intake_url(stack_env) -> str:
    from services.common.settings import load

    return load("intake", env=stack_env).database_url


def test_the_intake_worker_purges_by_itself(conn, kiosk_id, stack_env, settings_for):
    settings = replace(settings_for("intake"), retention_purge_interval_seconds=0.5)
    worker = WorkerThread(settings, migrations_package="services.intake", handlers=intake_worker.HANDLERS,
                          group_id=f"clinic-intake-test-{uuid.uuid4().hex[:8]}")
    # As intake's main() runs it: with the purge (WorkerThread itself passes no purge).
    worker.thread = threading.Thread(
        target=worker_module.run_worker, args=(settings,), daemon=True, name="intake-test-worker",
        kwargs={"migrations_package": "services.intake", "handlers": intake_worker.HANDLERS, "stop": worker.stop,
                "group_id": worker.group_id, "identity_purge": intake_worker.IDENTITY_PURGE})
    with worker:
        time.sleep(1.5)  # the first pass at start is over: this row is purged on the timer
        report_id = add_report(conn, kiosk_id, care_level="self_care", closed_days_ago=DAYS + 1)
        found = wait_for("SELECT pseudonymised_at, patient FROM intake.reports WHERE report_id = %s", conn,
                         (report_id,), until=lambda r: r and r[0][0] is not None, timeout=30)
    assert set(found[0][1]) == {"mrn_pseudonym"}


def test_a_self_care_decision_on_the_broker_has_no_patient_and_the_consumers_take_it(
        triage_settings, triage_conn, rules, intake_settings, conn, kiosk_id, referral_settings):
    answers = clinical()  # a few days of mild pain: self care
    event = report_event(answers)
    report_id = event["subject"]
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(report_id, envelope.encode(event))])
    with TriageWorker(triage_settings, rules):
        wait_for("SELECT sent_at FROM triage.outbox WHERE key = %s", triage_conn, (report_id,),
                 until=lambda r: r and all(row[0] is not None for row in r))
    published = read_topic(triage_settings.kafka_bootstrap, TOPIC_DECISIONS, {report_id})
    assert len(published) == 1
    decision = envelope.decode(published[0].value)
    assert decision["data"]["care_level"] == "self_care"
    assert "patient" not in decision["data"]
    raw = published[0].value.decode()
    for value in (event["data"]["patient"]["mrn"], "Ana Silva", "1991-04-02"):
        assert value not in raw

    # Both consumers of decisions take it as it is (their handlers, in their transactions).
    delivery = Delivery(topic=TOPIC_DECISIONS, partition=published[0].partition, offset=published[0].offset,
                        key=report_id, traceparent=envelope.new_traceparent())
    with psycopg.connect(referral_settings.database_url) as ref_conn:
        referral_worker.on_decision(ref_conn, decision, delivery)
        assert ref_conn.execute("SELECT count(*) FROM referral.referral_reports WHERE report_id = %s",
                                (report_id,)).fetchone()[0] == 0
    conn.execute("INSERT INTO intake.reports (report_id, kiosk_id, body_hash, patient, clinical)"
                 " VALUES (%s, %s, 'h', '{}', '{}')", (report_id, kiosk_id))
    intake_worker.on_decision(conn, decision, delivery)
    assert rows(conn, [report_id])[report_id]["care_level"] == "self_care"
    assert rows(conn, [report_id])[report_id]["closed_at"] is not None
