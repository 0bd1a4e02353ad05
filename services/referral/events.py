"""Events in and out of the referral service.

In: triage decisions (`clinic.triage-decisions.v1`), checked at the edge against the contract
(envelope, type, enums, UUIDs, zoned times, rule ids, `within_days` from 1 to the
CLINIC_REFERRAL_MAX_WINDOW_DAYS setting; `language` alone is read leniently, see
decision_language); and patient messages (`clinic.patient-messages.v1`,
docs/patient-messages.md: UUIDs, enums, zoned `at`, whole numbers from 0). Anything else is
a PoisonEvent whose reason names the field and the rule, never a value
(services/common/error_text.py).
Out: one `referral.*` event per change of a referral on `clinic.referral-events.v1`, whose
data is a snapshot of the referral of constant size (issue 15): its first report, but not the
list of every linked report (which grew with each link); instead `report_count`, and the
report a change linked (`linked_report_id`, on referral.linked and on a raise a link caused).
The intake service keeps only the newest snapshot per referral (by `sequence`) and learns
which reports belong to it from these two ids, so events may arrive late or twice without harm.
Each also names, in the extension attribute `fhirchanged` (issue 17), the resources of the FHIR
R4 interface the change altered, so that an integration can follow changes without polling.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import date, datetime

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.common import envelope
from services.common.error_text import safe_message, validation_reason
from services.common.inbox import PoisonEvent
from services.common.languages import read_language
from services.common.report_vocabulary import DEFAULT_LANGUAGE

from .domain import BOOKED, ROUTINE, URGENT, ReferralChange, Windows
from .domain.contact import CHANGES, CHANNELS, MESSAGE_STATUSES, PatientMessage

log = logging.getLogger(__name__)

EVENT_SOURCE = "/clinic/referral"

BOOKED_EVENT = "referral.booked"
WAITLISTED_EVENT = "referral.waitlisted"
RESCHEDULED_EVENT = "referral.rescheduled"
CANCELLED_EVENT = "referral.cancelled"
COMPLETED_EVENT = "referral.completed"
LINKED_EVENT = "referral.linked"
PRIORITY_RAISED_EVENT = "referral.priority_raised"

# The fields of a snapshot, in the order consumers read them (see module docstring); then
# `report_count`, and `linked_report_id` when the change linked a report.
SNAPSHOT_FIELDS = ("referral_id", "report_id", "care_level", "priority", "status", "sequence",
                   "created_at", "window_ends_at", "appointment")


# -- in: triage decisions -------------------------------------------------------------
# What triage publishes (contract values, not imports: services share events, not code).
DECISION_MADE = "clinic.triage.decided"
TRIAGE_SOURCE = "/clinic/triage"
CARE_LEVELS = ("urgent", "specialist", "self_care")
PRIORITY_BY_CARE_LEVEL = {"urgent": URGENT, "specialist": ROUTINE}  # self care: no referral
# A rule id as the triage rule file writes one (its loader refuses any other: URG-SEVERE,
# SPC-NOT-IMPROVING, SELF-CARE). Which ids exist is the rule file's business, which this
# service cannot read; the form is checked, and the ids are never acted on here.
RULE_ID_PATTERN = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$"
RULE_ID_MAX = 64
# The longest booking window a decision may ask for, in days: CLINIC_REFERRAL_MAX_WINDOW_DAYS,
# by default the largest window of today's rule file (routine_window_days: 14). A rule file
# with a longer window needs this setting raised first, or its decisions are dead-lettered:
# a forged or buggy decision cannot park a patient for months.
DEFAULT_MAX_WINDOW_DAYS = 14


class _FiredRuleSchema(Schema):
    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True, validate=[
        validate.Length(min=1, max=RULE_ID_MAX),
        validate.Regexp(RULE_ID_PATTERN, error=safe_message("Must be a rule id such as URG-SEVERE."))])
    reason = fields.String(required=True)


class _PatientSchema(Schema):
    mrn = fields.String(required=True, validate=validate.Length(min=1, max=64))
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=201))
    # Since patient matching (issue 12): absent in decisions made before it (parked in a
    # DLQ, say), which are still booked but can never be matched to an existing referral.
    birth_date = fields.Date(load_default=None, allow_none=True)


class _ReferralTermsSchema(Schema):
    class Meta:
        unknown = INCLUDE

    priority = fields.String(required=True, validate=validate.OneOf([URGENT, ROUTINE]))
    # the upper bound is the service's setting: _DecisionDataSchema checks it
    within_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class _DecisionDataSchema(Schema):
    class Meta:
        unknown = INCLUDE  # the decision carries much more than booking needs

    report_id = fields.UUID(required=True)
    care_level = fields.String(required=True, validate=validate.OneOf(CARE_LEVELS))
    decided_at = fields.AwareDateTime(required=True)
    rules_version = fields.String(validate=validate.Length(min=1, max=64))
    fired = fields.List(fields.Nested(_FiredRuleSchema))
    # Absent from self-care decisions (issue 13: no patient identity where no referral is
    # needed); required for the others, which are booked for a person.
    patient = fields.Nested(_PatientSchema, load_default=None)
    referral = fields.Nested(_ReferralTermsSchema, allow_none=True, load_default=None)

    def __init__(self, *, max_window_days: int = DEFAULT_MAX_WINDOW_DAYS, **kwargs):
        super().__init__(**kwargs)
        self.max_window_days = max_window_days

    @validates_schema
    def _patient_unless_self_care(self, data: dict, **_kwargs) -> None:
        if data.get("patient") is None and data.get("care_level") != "self_care":
            raise ValidationError("Missing data for required field.", "patient")

    @validates_schema
    def _terms_fit_the_care_level(self, data: dict, **_kwargs) -> None:
        """A consult's terms as triage's rule file states them: urgent is booked urgent,
        specialist routine, self care not at all; within the longest window allowed."""
        terms, level = data.get("referral"), data.get("care_level")
        if level not in PRIORITY_BY_CARE_LEVEL:
            if terms is not None:
                raise ValidationError(_NO_TERMS_FOR_SELF_CARE, "referral")
            return
        if terms is None:
            raise ValidationError(_TERMS_REQUIRED, "referral")
        errors = {}
        if terms["priority"] != PRIORITY_BY_CARE_LEVEL[level]:
            errors["priority"] = [_PRIORITY_OF_LEVEL]
        if terms["within_days"] > self.max_window_days:
            errors["within_days"] = [f"Must be less than or equal to {self.max_window_days}."]
        if errors:
            raise ValidationError(errors, "referral")


_NO_TERMS_FOR_SELF_CARE = safe_message("Must be null when care_level is self_care.")
_TERMS_REQUIRED = safe_message("Required when care_level is urgent or specialist.")
_PRIORITY_OF_LEVEL = safe_message("Must be urgent for care_level urgent, routine for specialist.")


@dataclass(frozen=True)
class Decision:
    report_id: str
    care_level: str
    patient_mrn: str | None  # None only for self care, which books nothing
    patient_name: str | None
    windows: Windows  # the triage rule file's windows, as the decision states them
    patient_birth_date: date | None = None  # None: the decision did not say (cannot be matched)
    language: str = DEFAULT_LANGUAGE  # the report's (REPORT_LANGUAGES); the patient is phoned in it


# One instance per schema (and window bound): building one, copying its nested fields, cost
# more than a load; a load keeps no state in the instance.
@functools.cache
def _decision_data_schema(max_window_days: int) -> Schema:
    return _DecisionDataSchema(max_window_days=max_window_days)


@functools.cache
def _patient_message_data_schema() -> Schema:
    return _PatientMessageDataSchema()


def parse_decision(event: dict, default_windows: Windows,
                   max_window_days: int = DEFAULT_MAX_WINDOW_DAYS) -> Decision:
    """The booking-relevant part of a triage decision; PoisonEvent when it cannot be one."""
    problems = envelope.contract_problems(event, types=(DECISION_MADE,), source=TRIAGE_SOURCE,
                                          subject_field="report_id")
    if problems:
        raise PoisonEvent(f"decision event invalid: {'; '.join(problems)}")
    try:
        data = envelope.load(_decision_data_schema(max_window_days), event["data"])
    except ValidationError as exc:
        raise PoisonEvent(f"decision event data invalid: {validation_reason(exc)}") from exc
    terms = data["referral"]
    windows = default_windows
    # The window length is a setting of triage's rule file: follow what the decision says.
    if terms:
        days = {URGENT: default_windows.urgent.days, ROUTINE: default_windows.routine.days}
        days[terms["priority"]] = terms["within_days"]
        windows = Windows.from_days(days[URGENT], days[ROUTINE])
    patient = data["patient"] or {}
    return Decision(report_id=str(data["report_id"]), care_level=data["care_level"],
                    patient_mrn=patient.get("mrn"), patient_name=patient.get("display_name"),
                    windows=windows, patient_birth_date=patient.get("birth_date"),
                    language=decision_language(data, str(data["report_id"])))


def decision_language(data: dict, report_id: str) -> str:
    """The language of the decision's report (issue 18): absent in decisions made before it,
    English. Laxer than the fields above on purpose: MRN, birth date and terms decide whom to
    book and when, so a bad one is poison; the language only tells a scheduler how to speak
    to the patient, and must never dead-letter a referral (triage reads a report's language
    the same way). One we do not know is English, and logged."""
    return read_language(data.get("language", DEFAULT_LANGUAGE), log=log, about="decision on report",
                         report_id=report_id, then="taken as English")


# -- in: patient messages (intake) -----------------------------------------------------
PATIENT_MESSAGE = "clinic.patient.message"
INTAKE_SOURCE = "/clinic/intake"
# Counters the store keeps in PostgreSQL integers: a larger one is refused here, at the
# edge, rather than failing the insert three times before it is dead-lettered.
_MAX_COUNT = 2**31 - 1
DETAIL_MAX = 2000
PHONE_MAX = 64  # intake's E.164 numbers are far shorter; the bound keeps the row small


def _count() -> fields.Integer:
    return fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=_MAX_COUNT))


class _PatientMessageDataSchema(Schema):
    class Meta:
        unknown = INCLUDE  # intake may add fields

    message_id = fields.UUID(required=True)
    referral_id = fields.UUID(required=True)
    # The report whose contact details were used; intake's column allows none (contract: a uuid).
    report_id = fields.UUID(required=True, allow_none=True)
    sequence = _count()
    change = fields.String(required=True, validate=validate.OneOf(CHANGES))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    status = fields.String(required=True, validate=validate.OneOf(MESSAGE_STATUSES))
    detail = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=DETAIL_MAX))
    attempts = _count()
    revision = _count()
    at = fields.AwareDateTime(required=True)
    callback_phone = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Length(min=1, max=PHONE_MAX))


def parse_patient_message(event: dict) -> PatientMessage:
    """One state of one patient message; PoisonEvent when the event is not one."""
    problems = envelope.contract_problems(event, types=(PATIENT_MESSAGE,), source=INTAKE_SOURCE,
                                          subject_field="message_id")
    if problems:
        raise PoisonEvent(f"patient message event invalid: {'; '.join(problems)}")
    try:
        data = envelope.load(_patient_message_data_schema(), event["data"])
    except ValidationError as exc:
        raise PoisonEvent(f"patient message event data invalid: {validation_reason(exc)}") from exc
    return PatientMessage(
        message_id=str(data["message_id"]), referral_id=str(data["referral_id"]),
        report_id=None if data["report_id"] is None else str(data["report_id"]), sequence=data["sequence"],
        change=data["change"], channel=data["channel"], status=data["status"], detail=data["detail"],
        attempts=data["attempts"], revision=data["revision"], at=data["at"], callback_phone=data["callback_phone"])


# -- out: referral events -------------------------------------------------------------
_TYPE_BY_ACTION = {
    "report_linked": LINKED_EVENT,
    "raised_to_urgent": PRIORITY_RAISED_EVENT,
    "booked": BOOKED_EVENT,
    "moved": RESCHEDULED_EVENT,
    "cancelled": CANCELLED_EVENT,
    "completed": COMPLETED_EVENT,
}


def event_type(change: ReferralChange) -> str:
    """Named after what the change did last: a link that also raised the priority is a raise."""
    action = change.history[-1].action
    if action == "created":
        return BOOKED_EVENT if change.referral.status == BOOKED else WAITLISTED_EVENT
    return _TYPE_BY_ACTION[action]


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def linked_report_id(change: ReferralChange) -> str | None:
    """The report this change linked to the referral (the newest of its reports), if it did."""
    if any(entry.action == "report_linked" for entry in change.history):
        return change.referral.report_ids[-1]
    return None


def snapshot_data(view: dict, linked_report_id: str | None = None) -> dict:
    """The event data from a referral view (store.referral_view): no patient identity, which
    intake already holds, and no list of reports, which grows with every link."""
    data = {name: _json_value(view[name]) for name in SNAPSHOT_FIELDS}
    data["report_count"] = len(view["report_ids"])
    if linked_report_id is not None:
        data["linked_report_id"] = linked_report_id
    return data


# -- out: the FHIR resources a change alters (issue 17) ---------------------------------------
# A CloudEvents extension attribute (its name: lowercase letters; its value: a string, as the
# CloudEvents type system has no lists): the relative references of the FHIR R4 interface
# (/fhir/R4/<reference>), space-separated, at most four. `subject` stays the referral id, which
# consumers check against data.referral_id; consumers that do not know the attribute ignore it.
FHIR_CHANGED = "fhirchanged"


def service_request_reference(referral_id: str) -> str:
    return f"ServiceRequest/{referral_id}"


def fhir_changed(change: ReferralChange) -> tuple[str, ...]:
    """What the change alters, in this order: the ServiceRequest (every change: its status,
    priority, reports or version); the Appointment (its id is the referral's) when the booking
    changed: a slot taken or freed, or the status of a referral that holds a slot (completed);
    then the Slot it took and the Slot it freed (busy/free); then the Patient when the change
    altered it (a report linked in another language: only links do, and they move no slot, so
    four at most). Nothing else: providers and schedules do not change with a referral."""
    referral = change.referral
    references = [service_request_reference(referral.referral_id)]
    status_changed = any(entry.from_status != entry.to_status for entry in change.history)
    if change.booked_slot_id or change.freed_slot_id or (status_changed and referral.slot_id):
        references.append(f"Appointment/{referral.referral_id}")
    references += [f"Slot/{slot_id}" for slot_id in (change.booked_slot_id, change.freed_slot_id) if slot_id]
    if change.patient_changed:
        references.append(f"Patient/{referral.referral_id}")
    return tuple(references)


def change_event(change: ReferralChange, view: dict) -> dict:
    """The event that announces `change`; `view`: the referral after it (store.referral_view)."""
    return referral_event(event_type(change), view, linked_report_id(change), fhir=fhir_changed(change))


def referral_event(type_: str, view: dict, linked_report_id: str | None = None,
                   fhir: tuple[str, ...] | None = None) -> dict:
    """`fhir`: fhir_changed's references; without a change to read them from, the ServiceRequest."""
    event = envelope.new_event(type=type_, source=EVENT_SOURCE, subject=view["referral_id"],
                               data=snapshot_data(view, linked_report_id))
    event[FHIR_CHANGED] = " ".join(fhir or (service_request_reference(view["referral_id"]),))
    return event
