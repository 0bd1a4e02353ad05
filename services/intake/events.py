"""Intake's event contract, both directions.

Out: `clinic.report.submitted` on clinic.symptom-reports.v1, built when a report is stored;
`clinic.patient.message` on clinic.patient-messages.v1, one per state a patient message
reaches (docs/patient-messages.md).
In: triage decisions (clinic.triage-decisions.v1) and referral snapshots
(clinic.referral-events.v1), checked before the worker records them.

An incoming event that cannot be what the contract says (its envelope: type, source, UUID
id, subject; its data: UUIDs, enumerations, zoned times, rule ids, ranges) is a PoisonEvent:
dead-lettered at once, not retried, with a reason that names the field and the rule and
never a value (services/common/error_text.py).
"""
from __future__ import annotations

import functools

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.common import envelope
from services.common.error_text import safe_message, validation_reason
from services.common.inbox import PoisonEvent
from services.common.report_vocabulary import CLINICAL_SECTIONS, DEFAULT_LANGUAGE

from .status_view import REFERRAL_STATUS_TO_REPORT_STATUS

EVENT_SOURCE = "/clinic/intake"
REPORT_SUBMITTED = "clinic.report.submitted"
PATIENT_MESSAGE = "clinic.patient.message"

# What triage and referral may say (contract values, not imports: services share events, not code).
CARE_LEVELS = ("urgent", "specialist", "self_care")
PRIORITIES = ("urgent", "routine")
DECISION_MADE = "clinic.triage.decided"
TRIAGE_SOURCE = "/clinic/triage"
REFERRAL_SOURCE = "/clinic/referral"
REFERRAL_EVENT_TYPES = ("referral.booked", "referral.waitlisted", "referral.rescheduled", "referral.cancelled",
                        "referral.completed", "referral.linked", "referral.priority_raised")
# A rule id as the triage rule file writes one (URG-SEVERE, SELF-CARE): its form only, since
# which ids exist is the rule file's business, which intake cannot read.
RULE_ID_PATTERN = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$"
# The stable id of a patient text (an advice line, a reason): triage's to choose, so only its length.
_TEXT_ID_MAX = 128
_ONE_PER_ADVICE_LINE = safe_message("Must have one entry per advice line.")
_ONE_PER_FIRED_RULE = safe_message("Must have one entry per fired rule.")
_ADVICE_IDS_ONLY = safe_message("Must list only ids of advice_ids.")


# -- out: submitted reports --------------------------------------------------------------
def clinical_sections(body: dict) -> dict:
    """The clinical answers of a report body: what intake stores apart and sends on."""
    return {section: body[section] for section in CLINICAL_SECTIONS}


def report_language(body: dict) -> str:
    """The language the report was filled in (ReportSchema loads English when none was sent)."""
    return body.get("language", DEFAULT_LANGUAGE)


def display_name(patient: dict) -> str:
    return f"{patient['given_name']} {patient['family_name']}"


def report_event(report_id: str, patient: dict, clinical: dict, submitted_at: str | None,
                 language: str = DEFAULT_LANGUAGE) -> dict:
    # Downstream needs the clinical answers, and (for referrals) who the patient is: the
    # MRN as typed, the name, and the birth date, without which the referral service cannot
    # tell two patients with one MRN apart (patient matching, contract). Phone and email
    # stay in intake. `submitted_at` None: the database sets it to the row's as it stores
    # the event with the report (store.accept_report). `language`: triage writes the
    # patient's texts (advice, reasons) in it (issue 18).
    data = {
        "report_id": report_id,
        "submitted_at": submitted_at,
        "language": language,
        "patient": {"mrn": patient["mrn"], "display_name": display_name(patient),
                    "birth_date": str(patient["birth_date"])},
        **clinical,
    }
    return envelope.new_event(type=REPORT_SUBMITTED, source=EVENT_SOURCE, subject=report_id, data=data)


# -- out: what a patient was told ----------------------------------------------------------
# docs/patient-messages.md: the data of clinic.patient.message, in this order.
PATIENT_MESSAGE_FIELDS = ("message_id", "referral_id", "report_id", "sequence", "change", "channel", "status",
                          "detail", "attempts", "revision", "at", "callback_phone")


def patient_message_event(*, message_id: str, referral_id: str, report_id: str | None, sequence: int, change: str,
                          channel: str, status: str, detail: str | None, attempts: int, revision: int, at: str,
                          callback_phone: str | None) -> dict:
    """One state of one message. The address and the words sent stay in intake; the patient's
    phone (`callback_phone`, chosen by the caller) goes out only with a state that needs a
    person to call: the caller passes None otherwise."""
    data = {"message_id": message_id, "referral_id": referral_id, "report_id": report_id, "sequence": sequence,
            "change": change, "channel": channel, "status": status, "detail": detail, "attempts": attempts,
            "revision": revision, "at": at, "callback_phone": callback_phone}
    return envelope.new_event(type=PATIENT_MESSAGE, source=EVENT_SOURCE, subject=message_id, data=data)


# -- in: decisions and referral snapshots ------------------------------------------------
class _Lenient(Schema):
    class Meta:
        unknown = INCLUDE  # producers may add fields; intake reads only what it shows


class FiredRuleSchema(_Lenient):
    id = fields.String(required=True, validate=[
        validate.Length(min=1, max=64),
        validate.Regexp(RULE_ID_PATTERN, error=safe_message("Must be a rule id such as URG-SEVERE."))])
    reason = fields.String(required=True)
    reason_id = fields.String(validate=validate.Length(min=1, max=_TEXT_ID_MAX))


class PatientTextSchema(_Lenient):
    """The outcome's texts in the report's language (issue 18), parallel to advice and fired."""
    advice = fields.List(fields.String(), required=True)
    reasons = fields.List(fields.String(), required=True)


class DecisionDataSchema(_Lenient):
    report_id = fields.UUID(required=True)
    care_level = fields.String(required=True, validate=validate.OneOf(CARE_LEVELS))
    advice = fields.List(fields.String(), required=True)
    decided_at = fields.AwareDateTime(required=True)
    fired = fields.List(fields.Nested(FiredRuleSchema))
    rules_version = fields.String(validate=validate.Length(min=1, max=64))
    # Issue 18, absent from decisions made before it: the stable id of each advice line, those
    # that are safety-netting, and the texts in the report's language.
    advice_ids = fields.List(fields.String(validate=validate.Length(min=1, max=_TEXT_ID_MAX)))
    safety_netting = fields.List(fields.String(validate=validate.Length(min=1, max=_TEXT_ID_MAX)))
    # Read leniently (decision_texts.shown), as triage and referral read it: a language we do
    # not know must not dead-letter the decision a patient waits for; it is shown in English.
    language = fields.Raw()
    patient_text = fields.Nested(PatientTextSchema, allow_none=True)   # None: English, the record's own texts

    @validates_schema
    def _texts_line_up(self, data: dict, **_kwargs) -> None:
        advice, fired = data.get("advice", []), data.get("fired")
        if "advice_ids" in data and len(data["advice_ids"]) != len(advice):
            raise ValidationError(_ONE_PER_ADVICE_LINE, "advice_ids")
        if "safety_netting" in data and not set(data["safety_netting"]) <= set(data.get("advice_ids", ())):
            raise ValidationError(_ADVICE_IDS_ONLY, "safety_netting")
        text = data.get("patient_text")
        if text is not None:
            if len(text["advice"]) != len(advice):
                raise ValidationError({"advice": [_ONE_PER_ADVICE_LINE]}, "patient_text")
            if fired is not None and len(text["reasons"]) != len(fired):
                raise ValidationError({"reasons": [_ONE_PER_FIRED_RULE]}, "patient_text")



class AppointmentDataSchema(_Lenient):
    slot_id = fields.UUID(required=True)
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    provider = fields.String(required=True)
    location = fields.String(required=True)


class ReferralDataSchema(_Lenient):
    referral_id = fields.UUID(required=True)
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    status = fields.String(required=True, validate=validate.OneOf(tuple(REFERRAL_STATUS_TO_REPORT_STATUS)))
    sequence = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    appointment = fields.Nested(AppointmentDataSchema, required=True, allow_none=True)
    # The referral's reports, in one of two forms (issue 15). Since then: the first report,
    # the one a change linked (referral.linked, or a raise a link caused) and how many there
    # are. Before: `report_ids`, every linked report, which events still in topics and DLQs
    # carry; read while they may be replayed.
    report_id = fields.UUID()
    linked_report_id = fields.UUID(allow_none=True)
    report_count = fields.Integer(strict=True, validate=validate.Range(min=1))
    report_ids = fields.List(fields.UUID(), validate=validate.Length(min=1))
    care_level = fields.String(validate=validate.OneOf(CARE_LEVELS))
    created_at = fields.AwareDateTime()
    window_ends_at = fields.AwareDateTime()

    @validates_schema
    def _first_report_is_named(self, data: dict, **_kwargs) -> None:
        if "report_ids" not in data:
            if "report_id" not in data:
                raise ValidationError(_FIRST_REPORT_REQUIRED, "report_id")
        elif "report_id" in data and data["report_id"] not in data["report_ids"]:
            raise ValidationError(_FIRST_REPORT_LISTED, "report_id")


_FIRST_REPORT_LISTED = safe_message("Must be one of report_ids.")
_FIRST_REPORT_REQUIRED = safe_message("Required when report_ids is absent.")


def reports_named(snapshot: dict) -> list[str]:
    """The reports a (valid) referral snapshot says belong to its referral: every one in the
    old form, the first and the one just linked in the new form."""
    if "report_ids" in snapshot:
        return [str(report_id) for report_id in snapshot["report_ids"]]
    named = [str(snapshot["report_id"])]
    if snapshot.get("linked_report_id"):
        named.append(str(snapshot["linked_report_id"]))
    return named


@functools.cache
def _schema(schema_class: type[Schema]) -> Schema:
    # One instance per schema: building one (copying its fields) costs more than a load.
    return schema_class()


def parse_decision(event: dict) -> dict:
    """A triage decision's data as sent, once it is known to be valid."""
    return _checked(_schema(DecisionDataSchema), event, (DECISION_MADE,), TRIAGE_SOURCE, "report_id")


def parse_referral_event(event: dict) -> dict:
    """A referral snapshot's data as sent (stored whole for the status view), once valid."""
    return _checked(_schema(ReferralDataSchema), event, REFERRAL_EVENT_TYPES, REFERRAL_SOURCE, "referral_id")


def _checked(schema: Schema, event: dict, types: tuple[str, ...], source: str, subject_field: str) -> dict:
    problems = envelope.contract_problems(event, types=types, source=source, subject_field=subject_field)
    if problems:
        raise PoisonEvent(f"{types[0]}: invalid event: {'; '.join(problems)}")
    # The data as sent, not as loaded: it is stored, and strings stay strings.
    data = event["data"]
    try:
        envelope.load(schema, data)
    except ValidationError as exc:
        raise PoisonEvent(f"{types[0]}: invalid data: {validation_reason(exc)}") from exc
    return data
