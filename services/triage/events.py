"""Triage's event contract, both directions.

In: `clinic.report.submitted` on clinic.symptom-reports.v1. The engine copes with missing
or odd answers (conservatively); parsing only refuses what cannot be a report at all,
which the consumer then dead-letters instead of retrying.
Out: `clinic.triage.decided` on clinic.triage-decisions.v1, one per report.
"""
from __future__ import annotations

from datetime import date

from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, post_load

from services.common import envelope
from services.common.inbox import PoisonEvent
from services.common.report_vocabulary import CLINICAL_SECTIONS

# The one event type intake publishes on clinic.symptom-reports.v1 (contract, not an import:
# services share events, not code).
REPORT_SUBMITTED = "clinic.report.submitted"

EVENT_SOURCE = "/clinic/triage"
# The patient fields a decision carries on (data minimisation: nothing else of the report's).
PATIENT_PASSED_ON = ("mrn", "display_name", "birth_date")
DECISION_MADE = "clinic.triage.decided"
SELF_CARE = "self_care"  # the care level that needs no referral


# -- in: submitted reports ---------------------------------------------------------------
class PatientRefSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # a field intake adds later must not dead-letter every report

    mrn = fields.String(required=True)
    display_name = fields.String(required=True)
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


class ReportEventDataSchema(Schema):
    class Meta:
        unknown = INCLUDE

    report_id = fields.UUID(required=True)
    submitted_at = fields.AwareDateTime(required=True)
    patient = fields.Nested(PatientRefSchema, required=True)
    activity = fields.Dict(required=True)
    pain = fields.Dict(required=True)
    function = fields.Dict(required=True)
    home_care = fields.Dict(required=True)


def parse_report_event(event: dict) -> dict:
    """The event's data, loaded; PoisonEvent when the event is not a submitted report."""
    if event.get("type") != REPORT_SUBMITTED:
        # Only intake writes this topic; another type is a producer bug to look at, not to guess.
        raise PoisonEvent(f"unexpected event type {event.get('type')!r} (expected {REPORT_SUBMITTED})")
    try:
        return ReportEventDataSchema().load(event.get("data") or {})
    except ValidationError as exc:
        raise PoisonEvent(f"report event data invalid: {exc.messages}") from exc


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
