"""Intake's event contract, both directions.

Out: `clinic.report.submitted` on clinic.symptom-reports.v1, built when a report is stored.
In: triage decisions (clinic.triage-decisions.v1) and referral snapshots
(clinic.referral-events.v1), checked before the worker records them.

An incoming event whose data cannot be what the contract says is a PoisonEvent:
dead-lettered at once, not retried.
"""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from services.common import envelope
from services.common.inbox import PoisonEvent
from services.common.report_vocabulary import CLINICAL_SECTIONS

from .status_view import REFERRAL_STATUS_TO_REPORT_STATUS

EVENT_SOURCE = "/clinic/intake"
REPORT_SUBMITTED = "clinic.report.submitted"

# What triage and referral may say (contract values, not imports: services share events, not code).
CARE_LEVELS = ("urgent", "specialist", "self_care")
PRIORITIES = ("urgent", "routine")


# -- out: submitted reports --------------------------------------------------------------
def clinical_sections(body: dict) -> dict:
    """The clinical answers of a report body: what intake stores apart and sends on."""
    return {section: body[section] for section in CLINICAL_SECTIONS}


def display_name(patient: dict) -> str:
    return f"{patient['given_name']} {patient['family_name']}"


def report_event(report_id: str, patient: dict, clinical: dict, submitted_at: str) -> dict:
    # Downstream needs the clinical answers, and (for referrals) who the patient is: the
    # MRN as typed, the name, and the birth date, without which the referral service cannot
    # tell two patients with one MRN apart (patient matching, contract). Phone and email
    # stay in intake.
    data = {
        "report_id": report_id,
        "submitted_at": submitted_at,
        "patient": {"mrn": patient["mrn"], "display_name": display_name(patient),
                    "birth_date": str(patient["birth_date"])},
        **clinical,
    }
    return envelope.new_event(type=REPORT_SUBMITTED, source=EVENT_SOURCE, subject=report_id, data=data)


# -- in: decisions and referral snapshots ------------------------------------------------
class _Lenient(Schema):
    class Meta:
        unknown = INCLUDE  # producers may add fields; intake reads only what it shows


class DecisionDataSchema(_Lenient):
    report_id = fields.UUID(required=True)
    care_level = fields.String(required=True, validate=validate.OneOf(CARE_LEVELS))
    advice = fields.List(fields.String(), required=True)
    decided_at = fields.AwareDateTime(required=True)


class AppointmentDataSchema(_Lenient):
    slot_id = fields.UUID(required=True)
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    provider = fields.String(required=True)
    location = fields.String(required=True)


class ReferralDataSchema(_Lenient):
    referral_id = fields.UUID(required=True)
    report_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1))
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    status = fields.String(required=True, validate=validate.OneOf(tuple(REFERRAL_STATUS_TO_REPORT_STATUS)))
    sequence = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    appointment = fields.Nested(AppointmentDataSchema, required=True, allow_none=True)


def parse_decision(event: dict) -> dict:
    """A triage decision's data as sent, once it is known to be valid."""
    return _checked(DecisionDataSchema(), event)


def parse_referral_event(event: dict) -> dict:
    """A referral snapshot's data as sent (stored whole for the status view), once valid."""
    return _checked(ReferralDataSchema(), event)


def _checked(schema: Schema, event: dict) -> dict:
    # The data as sent, not as loaded: it is stored, and strings stay strings.
    data = event.get("data")
    try:
        schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise PoisonEvent(f"{event.get('type')}: invalid data: {exc.messages}") from exc
    return data
