"""After the run: did every acknowledged report end where it should, exactly once?

Read straight from the databases as clinic_admin (each service's own tables) and, for a
sample, through the intake API as the kiosk that sent it. The expected care level is the
pure engine's (services.triage.domain.decide) on the very body the kiosk sent, counted
to the UTC day intake stored it, as the triage worker does.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC

import psycopg
import requests
from psycopg.rows import dict_row

from services.triage.domain import decide, default_rules_path, load_rules

from .kafka_probe import CONSUMERS_OF, Parked, Poison
from .load import Submission

CLINICAL = ("activity", "pain", "function", "home_care")
REPORT_STATUS = {"booked": "referred", "waitlisted": "waitlisted", "cancelled": "closed", "completed": "closed"}
EXPECTED_ERROR_TYPE = {"not_json": "InvalidEvent", "not_cloudevent": "InvalidEvent", "bad_data": "PoisonEvent"}


@dataclass
class ReportVerdict:
    sub: Submission
    expected_level: str | None = None
    lost: list[str] = field(default_factory=list)     # acked, but not (rightly) final
    doubled: list[str] = field(default_factory=list)  # an effect more than once
    dead_lettered: int = 0


@dataclass
class Verdict:
    reports: list[ReportVerdict]
    problems: list[str]               # run-wide findings (each one fails the run)
    notes: list[str]                  # figures worth printing
    unacked_stored: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not any(r.lost or r.doubled or r.dead_lettered for r in self.reports)


def _fetch(admin_url: str, kiosk_ids: list[str]):
    with psycopg.connect(admin_url, row_factory=dict_row, connect_timeout=10) as conn:
        conn.execute("SET statement_timeout = '120s'")
        reports = conn.execute(
            "SELECT report_id::text, kiosk_id::text, idempotency_key, submitted_at, care_level, referral,"
            " referral_sequence, patient->>'mrn' AS mrn FROM intake.reports WHERE kiosk_id = ANY(%s::uuid[])",
            (kiosk_ids,)).fetchall()
        ids = [r["report_id"] for r in reports]
        report_events = {r["key"]: r["n"] for r in conn.execute(
            "SELECT key, count(*) AS n FROM intake.outbox WHERE key = ANY(%s) GROUP BY key", (ids,))}
        decisions = {r["report_id"]: r for r in conn.execute(
            "SELECT report_id::text, care_level FROM triage.decisions WHERE report_id = ANY(%s::uuid[])",
            (ids,)).fetchall()}
        decision_events = {r["key"]: r["n"] for r in conn.execute(
            "SELECT key, count(*) AS n FROM triage.outbox WHERE key = ANY(%s) GROUP BY key", (ids,))}
        links = {r["report_id"]: r for r in conn.execute(
            "SELECT report_id::text, referral_id::text, care_level FROM referral.referral_reports"
            " WHERE report_id = ANY(%s::uuid[])", (ids,)).fetchall()}
        mrns = sorted({r["mrn"] for r in reports})
        referrals = conn.execute(
            "SELECT referral_id::text, patient_mrn, priority, status, slot_id::text, version"
            " FROM referral.referrals WHERE patient_mrn = ANY(%s)", (mrns,)).fetchall()
        double_booked = conn.execute(
            "SELECT slot_id::text, count(*) FROM referral.referrals WHERE slot_id IS NOT NULL"
            " GROUP BY slot_id HAVING count(*) > 1").fetchall()
        slots = conn.execute("SELECT count(*) AS n, count(*) FILTER (WHERE r.slot_id IS NOT NULL) AS booked"
                             " FROM referral.slots s LEFT JOIN referral.referrals r ON r.slot_id = s.slot_id"
                             ).fetchone()
        unsent = {svc: conn.execute(f"SELECT count(*) FROM {svc}.outbox WHERE sent_at IS NULL").fetchone()["count"]
                  for svc in ("intake", "triage", "referral")}
    return reports, report_events, decisions, decision_events, links, referrals, double_booked, slots, unsent


def check(*, admin_url: str, intake_url: str, kiosks: dict[str, tuple[str, str]], submissions: list[Submission],
          dead_letters: list[Parked], poisons: list[Poison], api_sample: int | None = 300,
          seed: int = 1) -> Verdict:
    """kiosks: name -> (kiosk_id, key)."""
    rules = load_rules(default_rules_path())
    kiosk_names = {kid: name for name, (kid, _key) in kiosks.items()}
    (reports, report_events, decisions, decision_events, links, referrals, double_booked, slots,
     unsent) = _fetch(admin_url, [kid for kid, _key in kiosks.values()])
    problems: list[str] = []
    notes: list[str] = []

    by_key = {(kiosk_names[r["kiosk_id"]], r["idempotency_key"]): r for r in reports}
    subs_by_key = {(s.kiosk, s.key): s for s in submissions}
    phantom = [r["report_id"] for k, r in by_key.items() if k not in subs_by_key]
    if phantom:
        problems.append(f"{len(phantom)} stored report(s) no kiosk sent (e.g. {phantom[:3]})")

    # The engine's level for every stored report (acknowledged or not: both may be triaged).
    level_of: dict[str, str] = {}
    for key, row in by_key.items():
        sub = subs_by_key.get(key)
        if sub is not None:
            snapshot = {k: sub.body[k] for k in CLINICAL}
            level_of[row["report_id"]] = decide(snapshot, rules, today=row["submitted_at"].astimezone(UTC).date()).care_level

    referrals_of = defaultdict(list)
    for ref in referrals:
        referrals_of[ref["patient_mrn"]].append(ref)
    referral_by_id = {ref["referral_id"]: ref for ref in referrals}
    parked_by_key = defaultdict(list)
    for parked in dead_letters:
        parked_by_key[parked.key].append(parked)

    verdicts = []
    for sub in submissions:
        v = ReportVerdict(sub)
        verdicts.append(v)
        if sub.other_ids:
            v.doubled.append(f"the same Idempotency-Key got other report ids {sorted(sub.other_ids)}")
        if not sub.acked:
            continue
        row = by_key.get((sub.kiosk, sub.key))
        if row is None:
            v.lost.append("acknowledged but not stored")
            continue
        rid = row["report_id"]
        if rid != sub.report_id:
            v.doubled.append(f"acked as {sub.report_id} but stored as {rid}")
        v.dead_lettered = len(parked_by_key.get(rid, []))
        expected = v.expected_level = level_of[rid]
        events = report_events.get(rid, 0)
        if events != 1:
            (v.doubled if events > 1 else v.lost).append(f"{events} report events in intake's outbox")
        decision = decisions.get(rid)
        if decision is None:
            v.lost.append("no triage decision")
        elif decision["care_level"] != expected:
            v.lost.append(f"decided {decision['care_level']}, the engine says {expected}")
        devents = decision_events.get(rid, 0)
        if devents > 1:
            v.doubled.append(f"{devents} decision events")
        elif devents == 0 and decision is not None:
            v.lost.append("decision without its event")
        if row["care_level"] != expected:
            v.lost.append(f"intake shows care level {row['care_level']}, expected {expected}")
        link = links.get(rid)
        if expected == "self_care":
            if link is not None:
                v.doubled.append("a self-care report was linked to a referral")
            if row["referral"] is not None:
                v.lost.append("self-care report shows a referral")
            continue
        if link is None:
            v.lost.append(f"{expected} report not linked to any referral")
            continue
        ref = referral_by_id.get(link["referral_id"])
        if ref is None or ref["patient_mrn"] != row["mrn"]:
            v.lost.append("linked to another patient's referral")
            continue
        snapshot = row["referral"] or {}
        if snapshot.get("referral_id") != ref["referral_id"]:
            v.lost.append("intake does not show the report's referral")
        elif row["referral_sequence"] != ref["version"]:
            v.lost.append(f"intake shows referral version {row['referral_sequence']}, referral has {ref['version']}")
        elif snapshot.get("status") != ref["status"] or ref["status"] not in ("booked", "waitlisted"):
            v.lost.append(f"referral status {ref['status']} / intake shows {snapshot.get('status')}")

    # Patients: one referral each if any of their stored reports needs one, holding all of them.
    reports_of = defaultdict(list)
    for row in reports:
        if row["report_id"] in level_of:
            reports_of[row["mrn"]].append(row)
    verdict_of = {v.sub.report_id: v for v in verdicts if v.sub.acked}
    for mrn, rows in reports_of.items():
        needing = [r for r in rows if level_of[r["report_id"]] in ("urgent", "specialist")]
        refs = referrals_of.get(mrn, [])
        last = max(needing or rows, key=lambda r: r["submitted_at"])
        blame = verdict_of.get(last["report_id"])
        if len(refs) > 1:
            message = f"patient has {len(refs)} referrals"
            (blame.doubled.append(message) if blame else problems.append(f"{mrn}: {message}"))
        elif needing and not refs:
            message = "patient needing a referral has none"
            (blame.lost.append(message) if blame else problems.append(f"{mrn}: {message}"))
        elif refs and not needing:
            problems.append(f"{mrn}: a referral for a patient with self-care reports only")
        if needing and len(refs) == 1:
            want = "urgent" if any(level_of[r["report_id"]] == "urgent" for r in needing) else "routine"
            if refs[0]["priority"] != want:
                message = f"referral priority {refs[0]['priority']}, expected {want}"
                (blame.lost.append(message) if blame else problems.append(f"{mrn}: {message}"))

    if double_booked:
        problems.append(f"{len(double_booked)} slot(s) booked twice: {double_booked[:3]}")
    if any(unsent.values()):
        problems.append(f"outbox rows never sent: {unsent}")
    notes.append(f"slots: {slots['n']} in all, {slots['booked']} booked; referrals for our patients: "
                 f"{len(referrals)} ({sum(1 for r in referrals if r['status'] == 'booked')} booked, "
                 f"{sum(1 for r in referrals if r['status'] == 'waitlisted')} waitlisted); "
                 f"repeat patients: {sum(1 for rows in reports_of.values() if len(rows) > 1)}")

    # Dead letters: our poison exactly once per consuming group; nothing else of ours.
    _check_poison(dead_letters, poisons, problems, notes)
    ours = {r["report_id"] for r in reports}
    poison_keys = {p.key for p in poisons}
    stray = [p for p in dead_letters if p.key not in poison_keys and p.key not in ours
             and "dlq.replayed_from" not in p.headers]
    if stray:
        notes.append(f"{len(stray)} dead letter(s) of other origin (other tests' or replays): "
                     f"{sorted({(p.dlq, p.key) for p in stray})[:5]}")

    _check_api_sample(intake_url, kiosks, verdicts, api_sample, seed, problems)
    unacked_stored = sum(1 for s in submissions if not s.acked and (s.kiosk, s.key) in by_key)
    return Verdict(verdicts, problems, notes, unacked_stored)


def _check_poison(dead_letters: list[Parked], poisons: list[Poison], problems: list[str], notes: list[str]) -> None:
    firsts = [p for p in dead_letters if "dlq.replayed_from" not in p.headers]
    for poison in poisons:
        for group in CONSUMERS_OF[poison.topic]:
            found = [p for p in firsts if p.key == poison.key and p.group == group]
            if len(found) != 1:
                problems.append(f"poison {poison.kind} on {poison.topic} is in its .dlq {len(found)} time(s) "
                                f"for {group} (expected once)")
                continue
            parked = found[0]
            if parked.dlq != f"{poison.topic}.dlq" or parked.origin[0] != poison.topic:
                problems.append(f"poison {poison.key} parked in {parked.dlq} from {parked.origin[0]}")
            if not parked.headers.get("dlq.error") or parked.headers.get("dlq.error_type") != EXPECTED_ERROR_TYPE[poison.kind]:
                problems.append(f"poison {poison.key} ({group}): error headers {parked.headers.get('dlq.error_type')}:"
                                f" {parked.headers.get('dlq.error')!r}")
    expected = sum(len(CONSUMERS_OF[p.topic]) for p in poisons)
    notes.append(f"poison: {len(poisons)} message(s) injected, {expected} dead letters expected (one per consuming "
                 f"group), {sum(1 for p in firsts if p.key in {q.key for q in poisons})} found")


def _check_api_sample(intake_url, kiosks, verdicts, sample, seed, problems) -> None:
    """GET /v1/reports/<id> as the kiosk that sent it: the kiosk's view agrees."""
    acked = [v for v in verdicts if v.sub.acked and v.expected_level and not v.lost]
    if sample is not None and len(acked) > sample:
        acked = random.Random(seed).sample(acked, sample)
    wrong = []
    with requests.Session() as session:
        session.trust_env = False
        for v in acked:
            key = kiosks[v.sub.kiosk][1]
            response = session.get(f"{intake_url}/v1/reports/{v.sub.report_id}",
                                   headers={"Authorization": f"Bearer {key}"}, timeout=15)
            if response.status_code != 200:
                wrong.append(f"{v.sub.report_id}: HTTP {response.status_code}")
                continue
            view = response.json()
            if view["care_level"] != v.expected_level:
                wrong.append(f"{v.sub.report_id}: care level {view['care_level']} (expected {v.expected_level})")
            elif v.expected_level == "self_care" and (view["status"] != "closed" or view["referral"] is not None):
                wrong.append(f"{v.sub.report_id}: self care shown as {view['status']}")
            elif v.expected_level != "self_care" and (
                    view["referral"] is None or view["status"] != REPORT_STATUS[view["referral"]["status"]]
                    or view["status"] not in ("referred", "waitlisted")):
                wrong.append(f"{v.sub.report_id}: shown as {view['status']} with referral {view['referral']}")
    if wrong:
        problems.append(f"{len(wrong)} of {len(acked)} sampled reports look wrong through the API: {wrong[:3]}")
