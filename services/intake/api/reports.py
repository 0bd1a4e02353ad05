"""POST /v1/reports and GET /v1/reports/<id>."""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from functools import wraps

from flask import current_app, request, url_for
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from services.common import envelope
from services.common.auth import current_staff
from services.common.errors import ApiError

from .. import store
from ..schemas import REPORT_EXAMPLE, ReportSchema
from ..status_view import derive_status, referral_view
from .auth import current_kiosk, require_kiosk

blp = Blueprint("reports", __name__, description="Symptom reports sent by clinic kiosks")

IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,127}$")


class AcceptedSchema(Schema):
    report_id = fields.UUID(required=True)
    status = fields.String(required=True, metadata={"example": "received"})


class AppointmentSchema(Schema):
    slot_id = fields.UUID()
    start = fields.String()
    end = fields.String()
    provider = fields.String()
    location = fields.String()


class ReferralSummarySchema(Schema):
    referral_id = fields.UUID()
    priority = fields.String(metadata={"example": "urgent"})
    status = fields.String(metadata={"example": "booked"})
    appointment = fields.Nested(AppointmentSchema, allow_none=True)


class ReportStatusSchema(Schema):
    report_id = fields.UUID()
    status = fields.String(metadata={"example": "referred",
                                     "enum": ["received", "triaged", "referred", "waitlisted", "closed"]})
    care_level = fields.String(allow_none=True, metadata={"example": "urgent"})
    advice = fields.List(fields.String())
    referral = fields.Nested(ReferralSummarySchema, allow_none=True)


def _pool():
    return current_app.extensions["clinic"].pool


def require_json(view):
    """415 before anything reads the body as JSON."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not request.is_json:
            raise ApiError(415, "unsupported_media_type", "Send the report as application/json.")
        return view(*args, **kwargs)

    return wrapper


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_RE.match(key):
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1-128 printable characters.")
    return key


def _body_hash(body: dict) -> str:
    # Hash the normalised report, canonicalised, so a retry that re-serialises the same
    # report with other whitespace or key order still counts as the same body.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@blp.route("/v1/reports", methods=["POST"])
@require_kiosk
@require_json
@blp.arguments(ReportSchema, example=REPORT_EXAMPLE,
               description="A symptom report, as the kiosk form collects it.")
@blp.response(202, AcceptedSchema, description="Stored durably; triage follows asynchronously.")
@blp.alt_response(400, description="Unreadable JSON or a bad Idempotency-Key")
@blp.alt_response(401, description="Missing, bad or revoked kiosk key")
@blp.alt_response(409, description="Idempotency-Key reused with another body")
@blp.alt_response(413, description="Body over 64 KiB")
@blp.alt_response(415, description="Not application/json")
@blp.alt_response(503, description="Database unavailable; retry with the same Idempotency-Key")
def submit_report(report):
    key = _idempotency_key()
    body = ReportSchema().dump(report)  # normalised (trimmed text, compact phone), JSON types
    traceparent = envelope.child_traceparent(request.headers.get("traceparent"))
    with _pool().connection() as conn:
        accepted = store.accept_report(conn, kiosk=current_kiosk(), body=body,
                                       body_hash=_body_hash(body),
                                       idempotency_key=key, traceparent=traceparent)
    if accepted.conflict:
        raise ApiError(409, "idempotency_conflict",
                       "This Idempotency-Key was already used with a different report.")
    location = url_for("reports.get_report", report_id=accepted.report_id)
    return {"report_id": accepted.report_id, "status": "received"}, 202, {"Location": location}


@blp.route("/v1/reports/<report_id>", methods=["GET"])
@blp.response(200, ReportStatusSchema)
@blp.alt_response(401, description="No valid kiosk key or staff token")
@blp.alt_response(404, description="No such report, or sent by another kiosk")
def get_report(report_id):
    kiosk = current_kiosk()
    staff = None if kiosk else current_staff()
    if kiosk is None and staff is None:
        raise ApiError(401, "unauthorized", "A kiosk key or staff token is required.")
    not_found = ApiError(404, "not_found", "No such report.")
    try:
        uuid.UUID(report_id)
    except ValueError:
        raise not_found from None
    with _pool().connection() as conn:
        view = store.get_report(conn, report_id)
    # Another kiosk's report is "not found", so report ids cannot be probed.
    if view is None or (kiosk is not None and view.kiosk_id != kiosk.kiosk_id):
        raise not_found
    referral = referral_view(view.referral)
    return {
        "report_id": view.report_id,
        "status": derive_status(view.care_level, referral["status"] if referral else None),
        "care_level": view.care_level,
        "advice": view.advice,
        "referral": referral,
    }
