"""The shape triage expects of a report event. The engine copes with missing or odd
answers (conservatively); this only refuses what cannot be a report at all, which the
consumer then dead-letters instead of retrying."""
from __future__ import annotations

from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields

from services.common.inbox import PoisonEvent

# The one event type intake publishes on clinic.symptom-reports.v1 (contract, not an import:
# services share events, not code).
REPORT_SUBMITTED = "clinic.report.submitted"


class PatientRefSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # a field intake adds later must not dead-letter every report

    mrn = fields.String(required=True)
    display_name = fields.String(required=True)


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
