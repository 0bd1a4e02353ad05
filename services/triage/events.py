"""Triage's event contract, both directions.

In: `clinic.report.submitted` on clinic.symptom-reports.v1, checked against the contract:
the envelope (type, source, UUID id, subject), the patient reference, and every answer that
is present in the clinical sections (types, the report vocabulary's enumerations, severity
0-10, whole days, dates, yes/no/not sure). An answer left out is the engine's to treat as
unknown (conservatively); a wrong one is a PoisonEvent, dead-lettered with a reason that
names the field and the rule, never a value (services/common/error_text.py).
Out: `clinic.triage.decided` on clinic.triage-decisions.v1, one per report.
"""
from __future__ import annotations

import functools
import logging
from datetime import date

from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, post_load, validate, validates

from services.common import envelope
from services.common.error_text import safe_message, validation_reason
from services.common.fields import StrictBoolean
from services.common.inbox import PoisonEvent
from services.common.languages import read_language
from services.common.report_vocabulary import (
    CLINICAL_SECTIONS,
    DEFAULT_LANGUAGE,
    HOME_CARE_MEASURES,
    IMPROVING,
    ONSETS,
    PAIN_LOCATIONS,
    PAIN_SCALE_MAX,
    PAIN_SCALE_MIN,
    SIDES,
)

log = logging.getLogger(__name__)

# The one event type intake publishes on clinic.symptom-reports.v1 (contract, not an import:
# services share events, not code).
REPORT_SUBMITTED = "clinic.report.submitted"
INTAKE_SOURCE = "/clinic/intake"
# Intake's limits (contract values, not imports): the MRN, a display name of two names of
# at most 100 characters, the sport, and days of home care.
MRN_MAX, DISPLAY_NAME_MAX, SPORT_MAX, HOME_CARE_DAYS_MAX = 64, 201, 60, 3650

EVENT_SOURCE = "/clinic/triage"
# The patient fields a decision carries on (data minimisation: nothing else of the report's).
PATIENT_PASSED_ON = ("mrn", "display_name", "birth_date")
DECISION_MADE = "clinic.triage.decided"
SELF_CARE = "self_care"  # the care level that needs no referral


# -- in: submitted reports ---------------------------------------------------------------
class PatientRefSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # a field intake adds later must not dead-letter every report

    mrn = fields.String(required=True, validate=validate.Length(min=1, max=MRN_MAX))
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=DISPLAY_NAME_MAX))
    # For the referral service's patient matching (MRN *and* birth date). Passed through,
    # never used here. Absent from reports sent before it was added; an unreadable one is
    # dropped rather than refusing the report: either way the referral service then cannot
    # match the patient, so it never links the report to an existing referral.
    birth_date = fields.Raw(load_default=None)

    @post_load
    def _pass_through(self, data: dict, **_kwargs) -> dict:
        born = data.pop("birth_date")
        if isinstance(born, str):
            try:
                data["birth_date"] = date.fromisoformat(born).isoformat()
            except ValueError:
                pass
        return data


# The clinical sections: each answer that is there must be one the contract allows; one left
# out is the engine's unknown (treated conservatively). Fields added later pass (INCLUDE).
def _yes_no_unsure() -> fields.Boolean:
    return StrictBoolean(allow_none=True)  # null: "not sure"


def _choice(choices: tuple[str, ...]) -> fields.String:
    return fields.String(validate=validate.OneOf(choices))


class _ActivitySchema(Schema):
    class Meta:
        unknown = INCLUDE

    sport = fields.String(validate=validate.Length(min=1, max=SPORT_MAX))
    high_impact = StrictBoolean()


_DISTINCT = safe_message("Each value may be listed only once.")


class _PainSchema(Schema):
    class Meta:
        unknown = INCLUDE

    locations = fields.List(_choice(PAIN_LOCATIONS), validate=validate.Length(min=1, max=len(PAIN_LOCATIONS)))
    side = _choice(SIDES)
    severity = fields.Integer(strict=True, validate=validate.Range(min=PAIN_SCALE_MIN, max=PAIN_SCALE_MAX))
    onset = _choice(ONSETS)
    started_on = fields.Date()
    direct_trauma = _yes_no_unsure()

    @validates("locations")
    def _distinct(self, value: list, **_kwargs) -> None:
        if len(set(value)) != len(value):
            raise ValidationError(_DISTINCT)


class _FunctionSchema(Schema):
    class Meta:
        unknown = INCLUDE

    joint_locking = _yes_no_unsure()
    instability = _yes_no_unsure()
    persistent_dysfunction = _yes_no_unsure()


class _HomeCareSchema(Schema):
    class Meta:
        unknown = INCLUDE

    measures = fields.List(_choice(HOME_CARE_MEASURES))
    days = fields.Integer(strict=True, validate=validate.Range(min=0, max=HOME_CARE_DAYS_MAX))
    improving = _choice(IMPROVING)

    @validates("measures")
    def _distinct(self, value: list, **_kwargs) -> None:
        if len(set(value)) != len(value):
            raise ValidationError(_DISTINCT)


class ReportEventDataSchema(Schema):
    class Meta:
        unknown = INCLUDE

    report_id = fields.UUID(required=True)
    submitted_at = fields.AwareDateTime(required=True)
    patient = fields.Nested(PatientRefSchema, required=True)
    activity = fields.Nested(_ActivitySchema, required=True)
    pain = fields.Nested(_PainSchema, required=True)
    function = fields.Nested(_FunctionSchema, required=True)
    home_care = fields.Nested(_HomeCareSchema, required=True)


@functools.cache
def _report_data_schema() -> ReportEventDataSchema:
    # Built once: a schema's construction (copying its nested fields) cost more than a load.
    return ReportEventDataSchema()


def parse_report_event(event: dict) -> dict:
    """The event's data, loaded; PoisonEvent when the event is not a submitted report. The
    clinical sections are the answers as sent (checked, not converted): the engine reads
    them, and the decision records them as its input."""
    # Only intake writes this topic; another type is a producer bug to look at, not to guess.
    problems = envelope.contract_problems(event, types=(REPORT_SUBMITTED,), source=INTAKE_SOURCE,
                                          subject_field="report_id")
    if problems:
        raise PoisonEvent(f"report event invalid: {'; '.join(problems)}")
    try:
        data = envelope.load(_report_data_schema(), event["data"])
    except ValidationError as exc:
        raise PoisonEvent(f"report event data invalid: {validation_reason(exc)}") from exc
    for section in CLINICAL_SECTIONS:
        data[section] = event["data"][section]
    # Not a clinical answer: one we do not speak is decided and told in English, never
    # dead-lettered (the decision itself does not depend on it).
    data["language"] = read_language(event["data"].get("language", DEFAULT_LANGUAGE), log=log, about="report",
                                     report_id=data["report_id"], then="its patient texts are in English")
    return data


def clinical_answers(data: dict) -> dict:
    """What the engine decides on (and the decision records as its input): no patient identity."""
    return {section: data[section] for section in CLINICAL_SECTIONS}


# -- out: decisions ----------------------------------------------------------------------
def decision_event(report_id: str, decision: dict, decided_at: str, patient: dict) -> dict:
    data = {"report_id": report_id, **decision, "decided_at": decided_at}
    if decision["care_level"] != SELF_CARE:
        # passed through for the referral service, which books for a person and matches
        # them to an open referral: mrn, display_name and (when the report had one)
        # birth_date, nothing more. A self-care decision needs no referral, so it carries no
        # patient identity at all (issue 13): only intake, which has it, knows whose it is.
        data["patient"] = {name: patient[name] for name in PATIENT_PASSED_ON if name in patient}
    return envelope.new_event(type=DECISION_MADE, source=EVENT_SOURCE, subject=report_id, data=data)
