"""The shape triage expects of a report event's data. The engine copes with missing
answers (conservatively); this only refuses what cannot be a report at all."""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields

from services.common.inbox import PoisonEvent


class PatientRefSchema(Schema):
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
    try:
        return ReportEventDataSchema().load(event.get("data") or {})
    except ValidationError as exc:
        raise PoisonEvent(f"report event data invalid: {exc.messages}") from exc
