"""Every consumer checks what it consumes against the contract (issue 13 part 2): the
envelope, enumerations, ranges (both sides of each bound), UUIDs, zoned times, rule ids, and
`within_days` up to the referral service's setting. A bad event is a PoisonEvent whose
reason names the field and the rule and never a value of the event."""
from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common import settings as settings_module
from services.common.envelope import new_event
from services.common.inbox import PoisonEvent
from services.intake import events as intake_events
from services.intake.schemas import REPORT_EXAMPLE
from services.referral import events as referral_events
from services.referral.domain import DEFAULT_WINDOWS
from services.triage import events as triage_events
from services.triage.domain import default_rules_path, load_rules

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SECRET = "Zeynepsecret MRN-SECRET-99"


def report_event() -> dict:
    report_id = str(uuid.uuid4())
    patient = {"mrn": "MRN-0042", "given_name": "Ana", "family_name": "Silva", "birth_date": "1991-04-02"}
    clinical = {k: copy.deepcopy(REPORT_EXAMPLE[k]) for k in ("activity", "pain", "function", "home_care")}
    return intake_events.report_event(report_id, patient, clinical, NOW.isoformat())


def decision_event(care_level: str = "urgent", **data) -> dict:
    report_id = str(uuid.uuid4())
    terms = {"urgent": {"priority": "urgent", "within_days": 2},
             "specialist": {"priority": "routine", "within_days": 14}}.get(care_level)
    body = {"report_id": report_id, "care_level": care_level, "rules_version": "2026-11-1",
            "fired": [{"id": "URG-SEVERE", "reason": "severe"}], "advice": ["rest"], "referral": terms,
            "decided_at": NOW.isoformat(), "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva"}, **data}
    return new_event(type="clinic.triage.decided", source="/clinic/triage", subject=report_id, data=body)


def referral_event(**data) -> dict:
    """As the referral service builds one (services/referral/events.py)."""
    referral_id, report_id = str(uuid.uuid4()), str(uuid.uuid4())
    start = NOW + timedelta(days=1)
    view = {"referral_id": referral_id, "report_id": report_id, "report_ids": [report_id], "care_level": "urgent",
            "priority": "urgent", "status": "booked", "sequence": 1, "created_at": NOW,
            "window_ends_at": NOW + timedelta(days=2),
            "appointment": {"slot_id": str(uuid.uuid4()), "start": start, "end": start + timedelta(minutes=30),
                            "provider": "Dr. Costa", "location": "North"}}
    event = referral_events.referral_event(referral_events.BOOKED_EVENT, view)
    event["data"].update(data)
    return event


def old_referral_event(**data) -> dict:
    """As it was built before issue 15: every linked report in `report_ids`, no count."""
    event = referral_event(**data)
    event["data"].pop("report_count")
    event["data"]["report_ids"] = [event["data"]["report_id"]]
    event["data"].update(data)
    return event


def parse_report(event):
    return triage_events.parse_report_event(event)


def parse_decision_for_referral(event, max_window_days=referral_events.DEFAULT_MAX_WINDOW_DAYS):
    return referral_events.parse_decision(event, DEFAULT_WINDOWS, max_window_days)


CONSUMERS = {
    "triage<-report": (report_event, parse_report),
    "referral<-decision": (decision_event, parse_decision_for_referral),
    "intake<-decision": (decision_event, intake_events.parse_decision),
    "intake<-referral": (referral_event, intake_events.parse_referral_event),
    "intake<-referral (before issue 15)": (old_referral_event, intake_events.parse_referral_event),
}


def refused(parse, event) -> str:
    with pytest.raises(PoisonEvent) as caught:
        parse(event)
    reason = str(caught.value)
    assert "SECRET" not in reason.upper().replace("MUST", ""), reason
    assert SECRET not in reason and "Zeynep" not in reason
    return reason


def at(event: dict, path: str, value) -> dict:
    """A copy of `event` with data.<path> set (or removed, for value ...)."""
    event = copy.deepcopy(event)
    node = event["data"]
    *parents, last = path.split(".")
    for name in parents:
        node = node[name]
    if value is ...:
        node.pop(last)
    else:
        node[last] = value
    return event


# -- every consumer: what it is built from passes, and the envelope is checked ----------------
@pytest.mark.parametrize("name", CONSUMERS)
def test_what_the_producer_builds_passes(name):
    build, parse = CONSUMERS[name]
    parse(build())


@pytest.mark.parametrize("name", CONSUMERS)
@pytest.mark.parametrize("attribute, value, rule", [
    ("type", "clinic.report.withdrawn", "'clinic.report.withdrawn' is not"),  # one of ours: named
    ("type", SECRET, "type: another type is not"),                           # anything else: not
    ("source", SECRET, "source: must be /clinic/"),
    ("id", SECRET, "id: Not a valid UUID."),
    ("subject", SECRET, "subject: must equal data."),
    ("specversion", "0.3", "specversion: Must be equal to 1.0."),
    ("time", "2026-11-26T09:00:00", "time: Not a valid aware datetime."),
    ("datacontenttype", "text/plain", "datacontenttype"),
])
def test_the_envelope_is_checked_everywhere(name, attribute, value, rule):
    build, parse = CONSUMERS[name]
    event = build()
    event[attribute] = value
    assert rule in refused(parse, event)


@pytest.mark.parametrize("name", CONSUMERS)
def test_another_producers_event_type_is_refused(name):
    build, parse = CONSUMERS[name]
    other = {"triage<-report": "clinic.triage.decided", "referral<-decision": "clinic.report.submitted",
             "intake<-decision": "referral.booked", "intake<-referral": "clinic.triage.decided",
             "intake<-referral (before issue 15)": "clinic.triage.decided"}[name]
    event = build()
    event["type"] = other
    assert "type:" in refused(parse, event)


# -- triage: a report's answers ----------------------------------------------------------------
@pytest.mark.parametrize("path, good, bad", [
    ("pain.severity", 0, -1), ("pain.severity", 10, 11), ("pain.severity", 7, "7"), ("pain.severity", 7, 7.5),
    ("pain.severity", 7, True),
    ("pain.locations", ["groin"], []),
    ("pain.locations", ["groin", "inner_hip", "outer_hip", "upper_thigh", "buttock"], ["groin"] * 6),
    ("pain.locations", ["groin", "buttock"], ["groin", "groin"]),
    ("pain.locations", ["buttock"], [SECRET]),
    ("pain.side", "both", SECRET), ("pain.onset", "gradual", "slow"),
    ("pain.started_on", "2026-11-20", "20/11/2026"),
    ("pain.direct_trauma", None, "yes"), ("function.joint_locking", False, 0),
    ("function.instability", True, "true"), ("function.persistent_dysfunction", None, SECRET),
    ("activity.high_impact", False, None), ("activity.sport", "x" * 60, "x" * 61), ("activity.sport", "r", ""),
    ("home_care.days", 0, -1), ("home_care.days", 3650, 3651), ("home_care.days", 21, "21"),
    ("home_care.measures", [], [SECRET]), ("home_care.measures", ["rest", "ice"], ["ice", "ice"]),
    ("home_care.improving", "not_tried", "maybe"),
    ("patient.mrn", "M" * 64, "M" * 65), ("patient.mrn", "M", ""),
    ("patient.display_name", "A" * 201, "A" * 202),
    ("report_id", str(uuid.uuid4()), SECRET), ("submitted_at", NOW.isoformat(), "2026-11-26T09:00:00"),
])
def test_a_report_answer_on_each_side_of_its_rule(path, good, bad):
    event = report_event()
    if path == "report_id":  # the subject follows it
        ok, wrong = at(event, path, good), at(event, path, bad)
        ok["subject"], wrong["subject"] = good, bad
    else:
        ok, wrong = at(event, path, good), at(event, path, bad)
    parse_report(ok)
    reason = refused(parse_report, wrong)
    assert reason.startswith("report event data invalid: ") and path.split(".")[-1] in reason


def test_a_left_out_answer_is_the_engines_unknown_and_the_answers_pass_as_sent():
    event = at(report_event(), "pain.severity", ...)
    data = parse_report(event)
    assert "severity" not in data["pain"]
    assert data["pain"]["started_on"] == event["data"]["pain"]["started_on"]  # a string, as sent


# -- referral: the decision's terms --------------------------------------------------------------
@pytest.mark.parametrize("within_days, bound, ok", [
    (1, 14, True), (0, 14, False), (-3, 14, False), (14, 14, True), (15, 14, False), (21, 21, True),
    (22, 21, False),
])
def test_within_days_is_positive_and_at_most_the_setting(within_days, bound, ok):
    event = decision_event("specialist", referral={"priority": "routine", "within_days": within_days})
    if ok:
        assert parse_decision_for_referral(event, bound).windows.routine == timedelta(days=within_days)
    else:
        reason = refused(lambda e: parse_decision_for_referral(e, bound), event)
        assert "referral.within_days: Must be" in reason


def test_the_bound_defaults_to_the_largest_window_of_todays_rule_file():
    rules = load_rules(default_rules_path())
    largest = max(rules.referral_for(level).within_days for level in ("urgent", "specialist"))
    assert referral_events.DEFAULT_MAX_WINDOW_DAYS == largest == 14
    assert settings_module.load("referral", env={}).referral_max_window_days == largest
    assert settings_module.load("referral", env={"CLINIC_REFERRAL_MAX_WINDOW_DAYS": "21"}).referral_max_window_days == 21


@pytest.mark.parametrize("care_level, terms, rule", [
    ("urgent", {"priority": "routine", "within_days": 2}, "referral.priority: Must be urgent for care_level urgent"),
    ("specialist", {"priority": "urgent", "within_days": 2}, "referral.priority"),
    ("urgent", {"priority": SECRET, "within_days": 2}, "referral.priority: Must be one of: urgent, routine."),
    ("urgent", None, "referral: Required when care_level is urgent or specialist."),
    ("self_care", {"priority": "routine", "within_days": 14}, "referral: Must be null when care_level is self_care."),
    ("urgent", {"priority": "urgent", "within_days": "2"}, "referral.within_days: Not a valid integer."),
])
def test_the_terms_fit_the_care_level(care_level, terms, rule):
    event = decision_event(care_level, referral=terms)
    if care_level == "self_care":
        event["data"].pop("patient")
    assert rule in refused(parse_decision_for_referral, event)


@pytest.mark.parametrize("parse", [parse_decision_for_referral, intake_events.parse_decision])
@pytest.mark.parametrize("rule_id, ok", [
    ("URG-SEVERE", True), ("SELF-CARE", True), ("SPC-NOT-IMPROVING", True), ("X", True), ("SPC-2", True),
    ("urg-severe", False), ("URG SEVERE", False), ("URG--SEVERE", False), ("-URG", False), ("", False),
    ("URG-" + "X" * 61, False), (SECRET, False),
])
def test_rule_ids_have_the_rule_files_form(parse, rule_id, ok):
    event = decision_event(fired=[{"id": rule_id, "reason": "r"}])
    if ok:
        parse(event)
    else:
        assert "fired.0.id: " in refused(parse, event)


def test_every_rule_id_of_the_rule_file_passes():
    rules = load_rules(default_rules_path())
    fired = [{"id": rule.id, "reason": "r"} for rule in rules.rules]
    assert len(fired) >= 9
    parse_decision_for_referral(decision_event(fired=fired))
    intake_events.parse_decision(decision_event(fired=fired))


@pytest.mark.parametrize("parse", [parse_decision_for_referral, intake_events.parse_decision])
@pytest.mark.parametrize("path, bad", [
    ("care_level", SECRET), ("decided_at", "2026-11-26T09:00:00"), ("decided_at", SECRET), ("rules_version", ""),
    ("fired", SECRET), ("fired", [{"id": "URG-SEVERE"}]),
])
def test_a_decisions_fields(parse, path, bad):
    assert path in refused(parse, at(decision_event(), path, bad))


# Issue 18: the patient's texts in the report's language, with their ids, as triage sends them.
SPANISH_TEXTS = {"advice_ids": ["rest"], "safety_netting": [], "language": "es",
                 "fired": [{"id": "URG-SEVERE", "reason": "severe", "reason_id": "URG-SEVERE"}],
                 "patient_text": {"advice": ["descanso"], "reasons": ["grave"]}}


def test_a_decision_with_its_patient_texts_is_read_by_intake():
    data = intake_events.parse_decision(decision_event(**SPANISH_TEXTS))
    assert data["patient_text"] == {"advice": ["descanso"], "reasons": ["grave"]}


@pytest.mark.parametrize("path, bad, rule", [
    ("advice_ids", ["rest", "ice"], "advice_ids: Must have one entry per advice line."),
    ("advice_ids", [""], "advice_ids.0: "),
    ("safety_netting", ["ice"], "safety_netting: Must list only ids of advice_ids."),
    ("patient_text", {"advice": [], "reasons": ["grave"]}, "patient_text.advice: Must have one entry per advice line."),
    ("patient_text", {"advice": ["descanso"], "reasons": []}, "patient_text.reasons: Must have one entry per fired rule."),
    ("patient_text", {"advice": ["descanso"]}, "patient_text.reasons: "),
    ("patient_text", SECRET, "patient_text: "),
])
def test_patient_texts_that_do_not_line_up_with_the_decision_are_refused(path, bad, rule):
    assert rule in refused(intake_events.parse_decision, at(decision_event(**SPANISH_TEXTS), path, bad))


@pytest.mark.parametrize("path, bad", [("patient.mrn", "M" * 65), ("patient.mrn", ""), ("patient.birth_date", SECRET),
                                       ("patient.display_name", "")])
def test_a_decisions_patient(path, bad):
    assert path in refused(parse_decision_for_referral, at(decision_event(), path, bad))


def test_an_unknown_patient_field_is_refused_without_its_name():
    event = decision_event()
    event["data"]["patient"][SECRET] = "x"
    assert "patient: unknown field" in refused(parse_decision_for_referral, event)


# -- intake: referral snapshots ----------------------------------------------------------------
SNAPSHOT_FIELDS = [
    ("status", "waitlisted", SECRET), ("priority", "routine", "soon"), ("care_level", "specialist", "self"),
    ("sequence", 0, -1), ("sequence", 5, "5"),
    ("created_at", NOW.isoformat(), "2026-11-26T09:00:00"), ("window_ends_at", NOW.isoformat(), SECRET),
    ("appointment", None, {"slot_id": SECRET}), ("appointment.start", NOW.isoformat(), "2026-11-27T09:00:00"),
]


@pytest.mark.parametrize("path, good, bad", [
    *SNAPSHOT_FIELDS,
    ("report_id", None, SECRET), ("report_id", None, ...),  # the first report: required now
    ("linked_report_id", str(uuid.uuid4()), SECRET), ("linked_report_id", None, 3),
    ("report_count", 600, 0), ("report_count", 1, "2"), ("report_count", 2, 1.5),
    ("report_ids", None, []),  # the old form's list, if a producer still sends it
])
def test_a_referral_snapshots_fields(path, good, bad):
    event = referral_event()
    if good is not None:
        intake_events.parse_referral_event(at(event, path, good))
    reason = refused(intake_events.parse_referral_event, at(event, path, bad))
    assert path.split(".")[0] in reason


@pytest.mark.parametrize("path, good, bad", [
    *SNAPSHOT_FIELDS,
    ("report_ids", None, []), ("report_ids", None, [SECRET]),
    ("report_id", None, str(uuid.uuid4())),  # must be one of report_ids
])
def test_a_referral_snapshots_fields_before_issue_15(path, good, bad):
    event = old_referral_event()
    if good is not None:
        intake_events.parse_referral_event(at(event, path, good))
    reason = refused(intake_events.parse_referral_event, at(event, path, bad))
    assert path.split(".")[0] in reason


def test_the_old_form_needs_no_first_report_id():
    """report_id was optional beside report_ids: an old event without it is still read."""
    intake_events.parse_referral_event(at(old_referral_event(), "report_id", ...))


def test_the_reports_a_snapshot_names_in_either_form():
    first, linked, other = (str(uuid.uuid4()) for _ in range(3))
    new = referral_event(report_id=first)["data"]
    assert intake_events.reports_named(new) == [first]
    assert intake_events.reports_named({**new, "linked_report_id": linked}) == [first, linked]
    assert intake_events.reports_named({**new, "linked_report_id": None}) == [first]
    old = old_referral_event(report_id=first, report_ids=[first, other, linked])["data"]
    assert intake_events.reports_named(old) == [first, other, linked]
    # An old event read the way it was: every listed report, with or without report_id.
    del old["report_id"]
    assert intake_events.reports_named(old) == [first, other, linked]


@pytest.mark.parametrize("type_", intake_events.REFERRAL_EVENT_TYPES)
def test_every_referral_event_type_is_read(type_):
    assert type_ in {getattr(referral_events, name) for name in dir(referral_events) if name.endswith("_EVENT")}
    event = referral_event()
    event["type"] = type_
    intake_events.parse_referral_event(event)
