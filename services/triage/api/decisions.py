"""GET /v1/decisions/<report_id> and GET /v1/rules (staff)."""
from __future__ import annotations

import uuid

from flask import current_app
from marshmallow import Schema, fields

from services.common import audit
from services.common.auth import require_staff
from services.common.errors import ApiError
from services.common.json_body import Blueprint

from .. import store

blp = Blueprint("decisions", __name__, description="Triage decisions and the rules in force")


class FiredSchema(Schema):
    id = fields.String(metadata={"example": "URG-SEVERE"})
    reason = fields.String()


class DecisionSchema(Schema):
    """The contract's fields, plus `report_id`. The stored input snapshot and `assessed_on`
    stay out: they serve replay and rule previews, and a decision reads without them."""

    report_id = fields.UUID(metadata={"description": "extension: the report decided"})
    care_level = fields.String(metadata={"example": "urgent"})
    rules_version = fields.String(metadata={"example": "2026-12-2"})
    fired = fields.List(fields.Nested(FiredSchema))
    likely_source = fields.String(metadata={"example": "joint"})
    possible_causes = fields.List(fields.String())
    notes = fields.List(fields.String())
    advice = fields.List(fields.String())
    decided_at = fields.DateTime()


@blp.route("/v1/decisions/<report_id>", methods=["GET"])
@require_staff()
@blp.response(200, DecisionSchema)
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(404, description="No decision for this report (yet)")
def get_decision(report_id):
    try:
        uuid.UUID(report_id)
    except ValueError:
        raise ApiError(404, "not_found", "No decision for this report.") from None
    with current_app.extensions["clinic"].pool.connection() as conn:
        decision = store.get_decision(conn, report_id)
        if decision is not None:
            # Triage keeps no patient identity: the row names the report, no MRN
            # (`clinic audit --patient` finds it through the patient's report ids).
            audit.record(conn, audit.READ, "decision", [decision["report_id"]])
    if decision is None:
        raise ApiError(404, "not_found", "No decision for this report.")
    return decision


@blp.route("/v1/rules", methods=["GET"])
@require_staff()
@blp.response(200, description="The rule file in force, as loaded (its `rules_version` is the one"
                               " new decisions record)")
@blp.alt_response(401, description="No valid staff token")
def get_rules():
    return current_app.extensions["triage_rules"].as_dict()
