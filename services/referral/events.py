"""Events in and out of the referral service.

In: triage decisions (`clinic.triage-decisions.v1`), checked at the edge.
Out: one `referral.*` event per change of a referral on `clinic.referral-events.v1`, whose
data is a full snapshot of the referral: the intake service keeps only the newest one per
report (by `sequence`), so events may arrive late or twice without harm.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.common import envelope
from services.common.inbox import PoisonEvent

from .domain import BOOKED, ROUTINE, URGENT, ReferralChange, Windows

EVENT_SOURCE = "/clinic/referral"

BOOKED_EVENT = "referral.booked"
WAITLISTED_EVENT = "referral.waitlisted"
RESCHEDULED_EVENT = "referral.rescheduled"
CANCELLED_EVENT = "referral.cancelled"
COMPLETED_EVENT = "referral.completed"
LINKED_EVENT = "referral.linked"
PRIORITY_RAISED_EVENT = "referral.priority_raised"

# The fields of a snapshot, in the order consumers read them (see module docstring).
SNAPSHOT_FIELDS = ("referral_id", "report_id", "report_ids", "care_level", "priority", "status", "sequence",
                   "created_at", "window_ends_at", "appointment")


# -- in: triage decisions -------------------------------------------------------------
class _PatientSchema(Schema):
    mrn = fields.String(required=True, validate=validate.Length(min=1, max=64))
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=201))
    # Since patient matching (issue 12): absent in decisions made before it (parked in a
    # DLQ, say), which are still booked but can never be matched to an existing referral.
    birth_date = fields.Date(load_default=None, allow_none=True)


class _ReferralTermsSchema(Schema):
    class Meta:
        unknown = INCLUDE

    priority = fields.String(required=True)
    within_days = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


class _DecisionDataSchema(Schema):
    class Meta:
        unknown = INCLUDE  # the decision carries much more than booking needs

    report_id = fields.UUID(required=True)
    care_level = fields.String(required=True, validate=validate.OneOf(["urgent", "specialist", "self_care"]))
    decided_at = fields.AwareDateTime(required=True)
    # Absent from self-care decisions (issue 13: no patient identity where no referral is
    # needed); required for the others, which are booked for a person.
    patient = fields.Nested(_PatientSchema, load_default=None)
    referral = fields.Nested(_ReferralTermsSchema, allow_none=True, load_default=None)

    @validates_schema
    def _patient_unless_self_care(self, data: dict, **_kwargs) -> None:
        if data.get("patient") is None and data.get("care_level") != "self_care":
            raise ValidationError("Missing data for required field.", "patient")


@dataclass(frozen=True)
class Decision:
    report_id: str
    care_level: str
    patient_mrn: str | None  # None only for self care, which books nothing
    patient_name: str | None
    windows: Windows  # the triage rule file's windows, as the decision states them
    patient_birth_date: date | None = None  # None: the decision did not say (cannot be matched)


def parse_decision(event: dict, default_windows: Windows) -> Decision:
    """The booking-relevant part of a triage decision; PoisonEvent when it cannot be one."""
    try:
        data = _DecisionDataSchema().load(event.get("data") or {})
    except ValidationError as exc:
        raise PoisonEvent(f"decision event data invalid: {exc.messages}") from exc
    terms = data["referral"]
    windows = default_windows
    # The window length is a setting of triage's rule file: follow what the decision says.
    if terms and terms["priority"] in (URGENT, ROUTINE):
        days = {URGENT: default_windows.urgent.days, ROUTINE: default_windows.routine.days}
        days[terms["priority"]] = terms["within_days"]
        windows = Windows.from_days(days[URGENT], days[ROUTINE])
    patient = data["patient"] or {}
    return Decision(report_id=str(data["report_id"]), care_level=data["care_level"],
                    patient_mrn=patient.get("mrn"), patient_name=patient.get("display_name"),
                    windows=windows, patient_birth_date=patient.get("birth_date"))


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


def snapshot_data(view: dict) -> dict:
    """The event data from a referral view (store.referral_view): no patient identity,
    which intake already holds."""
    return {name: _json_value(view[name]) for name in SNAPSHOT_FIELDS}


def referral_event(type_: str, view: dict) -> dict:
    return envelope.new_event(type=type_, source=EVENT_SOURCE, subject=view["referral_id"],
                              data=snapshot_data(view))
