"""POST /v1/reports and GET /v1/reports/<id>.

The order of the checks on POST is the order of what each costs: the key (one indexed
lookup), the media type (a header), then the body, which is read at most 64 KiB far
(MAX_CONTENT_LENGTH: a larger Content-Length is refused before any of it is read, a
chunked body as soon as it passes the limit), parsed as strict JSON and validated.
Only then is anything written, in one transaction (store.accept_report), on the connection
the key's lookup took (services/common/db.request_connection): one checkout per POST.
A POST whose body and headers can only be accepted (_plain_report: the usual case) has its
key looked up, its quota counted and its report stored in one statement (accept.py), its
body read and validated before that (the answers' precedence is the same: 401 first).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from datetime import date
from functools import wraps

from flask import current_app, g, request
from werkzeug.exceptions import HTTPException
from marshmallow import Schema, fields

from services.common import audit, envelope
from services.common.envelope import UNSURE, fast_loader
from services.common.auth import current_staff
from services.common.db import request_connection
from services.common.errors import ApiError
from services.common.report_vocabulary import DEFAULT_LANGUAGE, REPORT_LANGUAGES
from services.common.json_body import Blueprint, read_json, require_json
from services.common.web import access_fields

from .. import store
from ..events import CARE_LEVELS, PRIORITIES
from ..schemas import REPORT_EXAMPLE, ReportSchema
from ..status_view import REFERRAL_STATUS_TO_REPORT_STATUS, REPORT_STATUSES, derive_status, referral_view
from . import accept
from .auth import current_kiosk, deferred, require_kiosk

log = logging.getLogger(__name__)

# 1-128 printable ASCII characters (contract); a leading space would be lost in transit.
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,127}")


blp = Blueprint("reports", __name__, description="Symptom reports sent by clinic kiosks")

# One instance for every request (marshmallow schemas keep no state between loads and dumps):
# given the class, webargs built one, with its nested schemas, per request (6% of a worker's time).
REPORT_SCHEMA = ReportSchema()


def _load_report(data, *, many=None, partial=None, unknown=None):
    """REPORT_SCHEMA.load as webargs calls it: a valid report through envelope.fast_loader (the
    same schema's fields, validators and hooks without marshmallow's machinery: 80 instead of
    330 us here), anything it is not sure of through marshmallow, whose errors name the field."""
    if many is None and partial is None and unknown is None:
        loaded = _FAST_LOAD(data)
        if loaded is not UNSURE:
            return loaded
    return ReportSchema.load(REPORT_SCHEMA, data, many=many, partial=partial, unknown=unknown)


# Compiled from an instance of its own (fast_loader leaves a schema whose load is replaced to
# marshmallow), with the same clock (utc_today). An instance attribute, not a subclass: the
# OpenAPI document names the body's schema after its class.
_FAST_LOAD = fast_loader(ReportSchema())
REPORT_SCHEMA.load = _load_report


# -- response schemas and examples (OpenAPI) --------------------------------------------
class AcceptedSchema(Schema):
    report_id = fields.UUID(required=True)
    status = fields.String(required=True, metadata={"example": "received", "enum": ["received"]})


class AppointmentSchema(Schema):
    slot_id = fields.UUID()
    start = fields.String(metadata={"format": "date-time", "example": "2026-11-27T09:00:00+00:00"})
    end = fields.String(metadata={"format": "date-time", "example": "2026-11-27T09:30:00+00:00"})
    provider = fields.String(metadata={"example": "Dr. Rui Costa"})
    location = fields.String(metadata={"example": "Clinic North, room 2"})


class ReferralSummarySchema(Schema):
    referral_id = fields.UUID()
    priority = fields.String(metadata={"example": "urgent", "enum": list(PRIORITIES)})
    status = fields.String(metadata={"example": "booked", "enum": list(REFERRAL_STATUS_TO_REPORT_STATUS)})
    appointment = fields.Nested(AppointmentSchema, allow_none=True)


class AdviceItemSchema(Schema):
    id = fields.String(allow_none=True, metadata={
        "example": "ice", "description": "Stable id of the line in triage's rule file (null for decisions made "
        "before ids existed)."})
    text = fields.String(metadata={"example": "Ice the sore area for 10-15 minutes several times a day."})
    safety_netting = fields.Boolean(metadata={"description": "Says when to seek care sooner."})


class ReasonSchema(Schema):
    rule = fields.String(metadata={"example": "URG-SEVERE"})
    reason_id = fields.String(allow_none=True, metadata={"example": "URG-SEVERE"})
    text = fields.String()


class ReportStatusSchema(Schema):
    report_id = fields.UUID()
    status = fields.String(metadata={"example": "referred", "enum": list(REPORT_STATUSES)})
    care_level = fields.String(allow_none=True, metadata={
        "example": "urgent", "enum": [*CARE_LEVELS, None],
        "description": "null until triage has decided."})
    advice = fields.List(fields.String(), metadata={
        "description": "Empty until triage has decided. In the report's language (issue 18)."})
    referral = fields.Nested(ReferralSummarySchema, allow_none=True, metadata={
        "description": "null until the referral service has acted (and for self care)."})
    language = fields.String(metadata={"example": "es", "enum": list(REPORT_LANGUAGES),
                                       "description": "The language the report was filled in."})
    advice_items = fields.List(fields.Nested(AdviceItemSchema), metadata={
        "description": "The advice lines again, each with its stable id and whether it is safety-netting "
        "(when to seek care sooner). Empty until triage has decided."})
    reasons = fields.List(fields.Nested(ReasonSchema), metadata={
        "description": "Why: one reason per rule that fired, in the report's language. Empty until triage has decided."})


ACCEPTED_EXAMPLE = {"report_id": "0b0c7e4e-3f5d-4a51-9f3c-2f7d2f0c9a11", "status": "received"}
STATUS_EXAMPLE = {
    "report_id": "0b0c7e4e-3f5d-4a51-9f3c-2f7d2f0c9a11",
    "status": "referred",
    "care_level": "urgent",
    "advice": ["Rest the hip and avoid running until you are seen."],
    "referral": {
        "referral_id": "5a3f1a9e-8c1d-4a7e-b0a4-6f1e2d3c4b5a",
        "priority": "urgent",
        "status": "booked",
        "appointment": {"slot_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                        "start": "2026-11-27T09:00:00+00:00", "end": "2026-11-27T09:30:00+00:00",
                        "provider": "Dr. Rui Costa", "location": "Clinic North, room 2"},
    },
    "language": "en",
    "advice_items": [{"id": "rest-until-seen", "text": "Rest the hip and avoid running until you are seen.",
                      "safety_netting": False}],
    "reasons": [{"rule": "URG-SEVERE", "reason_id": "URG-SEVERE",
                 "text": "Pain rated 7 or more out of 10 is severe, and severe pain calls for a prompt "
                         "medical assessment."}],
}


def _error_example(code: str, message: str, fields_: list[dict] | None = None) -> dict:
    error = {"code": code, "message": message}
    if fields_ is not None:
        error["fields"] = fields_
    return {"error": error}


def _errors(*statuses: tuple[int, str, dict]):
    """Document error answers with the one error shape and an example each.

    flask-smorest's alt_response wraps the view once per status, in a wrapper that only
    calls it (the documentation is the wrapper's `_apidoc`): the view itself is returned,
    carrying the documentation they built, so a request does not pass through one call per
    documented error."""
    def decorator(view):
        documented = view
        for status, description, example in reversed(statuses):
            documented = blp.alt_response(status, schema="Error", description=description,
                                          example=example)(documented)
        view._apidoc = documented._apidoc
        return view

    return decorator


UNAUTHORIZED = _error_example("unauthorized", "A valid kiosk key is required.")
UNAVAILABLE = (503, "The database is unavailable; retry shortly (with the same Idempotency-Key).",
               _error_example("database_unavailable", "The database is unavailable; retry shortly."))

IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "1-128 printable characters chosen by the kiosk, one per report. A retry with the "
                   "same key and the same body gets the same report_id and creates nothing; the same key "
                   "with another body is a 409. Keys are per kiosk.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[\\x21-\\x7e][\\x20-\\x7e]*$"},
    "example": "kiosk-7-20261126-0001",
}
TRACEPARENT_PARAMETER = {
    "in": "header",
    "name": "traceparent",
    "required": False,
    "description": "W3C trace context; the report's events carry the same trace id.",
    "schema": {"type": "string"},
}


# -- helpers ---------------------------------------------------------------------------
def _pool():
    return current_app.extensions["clinic"].pool


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ApiError(400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1-128 printable characters.")
    return key


def _json_ready(value):
    """What REPORT_SCHEMA.dump gives for a report REPORT_SCHEMA.load returned: the same dicts,
    lists, strings, numbers, booleans and nulls, with each date as YYYY-MM-DD (CalendarDate's
    dump). Without a second pass of marshmallow over every field (5% of a worker's time);
    tests/unit/test_intake_api_json_ready.py checks it against the schema's own dump."""
    # Scalars are kept without a call each (most of a report's values): the exact types only,
    # anything else (a date, a subclass) goes through the checks below.
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _SCALARS else _json_ready(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _SCALARS else _json_ready(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})


# Contact fields added in 2026-12, with the value the schema gives them when absent.
_ADDED_WITH_DEFAULTS = {"email": None, "contact_consent": []}
# Top-level fields added since, likewise (issue 18).
_ADDED_TOP_LEVEL_DEFAULTS = {"language": DEFAULT_LANGUAGE}


def _body_hash(body: dict) -> str:
    # Hash the normalised report, canonicalised, so a retry that re-serialises the same
    # report with other whitespace or key order still counts as the same body. Added
    # fields left at their defaults are not hashed: a report that uses none of them hashes
    # as before they existed, so a kiosk retrying across the upgrade is not refused 409.
    patient = {k: v for k, v in body["patient"].items() if _ADDED_WITH_DEFAULTS.get(k, ...) != v}
    top = {k: v for k, v in body.items() if _ADDED_TOP_LEVEL_DEFAULTS.get(k, ...) != v}
    canonical = json.dumps({**top, "patient": patient}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _report_argument(**doc):
    """blp.arguments(REPORT_SCHEMA, **doc), documented and parsing as before, with a shortcut
    for a report the fast loader is sure of: the body read as webargs reads it (read_json:
    strict JSON, the size limit) and handed to the view as webargs would (the last positional
    argument), without webargs' per-request machinery (~3% of a worker's time). Anything else
    (unreadable JSON raises its 400 here, as through webargs) takes webargs' path, whose
    validation errors name the field."""
    def decorator(view):
        parsed = blp.arguments(REPORT_SCHEMA, **doc)(view)
        loaded_view = parsed.__wrapped__  # what webargs calls with the loaded body

        @wraps(parsed)  # with its _apidoc: the OpenAPI document is unchanged
        def wrapper(*args, **kwargs):
            loaded = g.pop("plain_report", None) or _FAST_LOAD(read_json())
            if loaded is UNSURE:
                return parsed(*args, **kwargs)
            return loaded_view(*args, loaded, **kwargs)

        return wrapper

    return decorator


def _plain_report() -> bool:
    """Whether this POST can only end in 202, 401, 409 or 429 (a JSON body the fast loader is
    sure of, a well-formed Idempotency-Key or none): then its key's check is left to the
    statement that stores it (require_kiosk's defer_when; accept.accept), one round trip for
    both. Anything else is checked in the order the module docstring gives, key first, so the
    precedence of the answers (401 before 415, 400 or 422) is the same either way."""
    if request.mimetype != "application/json":
        return False
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
        return False
    try:
        loaded = _FAST_LOAD(read_json())
    except (ApiError, HTTPException):  # unreadable or too large: answered after the key's check
        return False
    if loaded is UNSURE:
        return False
    g.plain_report = loaded  # for _report_argument: loaded once
    return True


# -- endpoints -------------------------------------------------------------------------
@blp.route("/v1/reports", methods=["POST"])
@require_kiosk(defer_when=_plain_report)
@require_json
@_report_argument(example=REPORT_EXAMPLE,
                  description="A symptom report, as the kiosk form collects it. Unknown fields are refused.")
@blp.response(202, AcceptedSchema, example=ACCEPTED_EXAMPLE,
              description="Stored durably, with the event announcing it; triage follows asynchronously.",
              headers={"Location": {"description": "Where to follow the report: /v1/reports/<report_id>",
                                    "schema": {"type": "string"}}})
@blp.doc(parameters=[IDEMPOTENCY_KEY_PARAMETER, TRACEPARENT_PARAMETER])
@_errors(
    (400, "Unreadable JSON (empty, malformed, not UTF-8) or a bad Idempotency-Key",
     _error_example("bad_request", "The request body is not valid JSON.")),
    (401, "Missing, bad or revoked kiosk key (a staff token is not a kiosk key)", UNAUTHORIZED),
    (409, "The Idempotency-Key was already used by this kiosk with another body",
     _error_example("idempotency_conflict",
                    "This Idempotency-Key was already used with a different report.")),
    (413, "Body over 64 KiB (refused before it is read)",
     _error_example("payload_too_large", "The request body is over 64 KiB.")),
    (415, "Content-Type is not application/json",
     _error_example("unsupported_media_type", "Send the report as application/json.")),
    (422, "Validation failed: every failing field is named by its path",
     _error_example("validation_failed", "Some fields are not valid.", [
         {"field": "pain.severity", "message": "Must be a whole number from 0 to 10."},
         {"field": "patient.nickname", "message": "This field is not allowed."}])),
    UNAVAILABLE,
)
def submit_report(report):
    """Send a symptom report (kiosk key)

    The report and the event announcing it are stored in one database transaction before
    the 202 is sent: once a kiosk has its 202, the report is never lost.
    """
    key = _idempotency_key()
    body = _json_ready(report)  # normalised (trimmed text, compact phone), JSON types
    traceparent = envelope.child_traceparent(request.headers.get("traceparent"))
    conn = request_connection(_pool())
    if deferred():  # the key's check and quota in the report's statement (_plain_report)
        kiosk, accepted = accept.accept(conn, body=body, body_hash=_body_hash(body), idempotency_key=key,
                                        traceparent=traceparent)
    else:
        kiosk = current_kiosk()
        accepted = store.accept_report(conn, kiosk=kiosk, body=body, body_hash=_body_hash(body),
                                       idempotency_key=key, traceparent=traceparent)
    if accepted.conflict:
        raise ApiError(409, "idempotency_conflict",
                       "This Idempotency-Key was already used with a different report.")
    # Ids only: patient data never goes to the logs. On the request's one access line
    # (services/common/gunicorn_conf.py), not a line of its own.
    access_fields(report="accepted" if accepted.created else "replayed", report_id=accepted.report_id,
                  kiosk_id=kiosk.kiosk_id, trace_id=envelope.trace_id(traceparent))
    # The answer built here, as flask-smorest and jsonify would (AcceptedSchema's two strings,
    # compact, sorted keys, a newline), without a schema dump and a JSON encoder per request.
    return current_app.response_class(
        f'{{"report_id":"{accepted.report_id}","status":"received"}}\n', 202,
        {"Location": f"{request.script_root}/v1/reports/{accepted.report_id}"}, mimetype="application/json")


@blp.route("/v1/reports/<report_id>", methods=["GET"])
@blp.response(200, ReportStatusSchema, example=STATUS_EXAMPLE)
@_errors(
    (401, "No valid kiosk key or staff token",
     _error_example("unauthorized", "A kiosk key or staff token is required.")),
    (404, "No such report, or one sent by another kiosk",
     _error_example("not_found", "No such report.")),
    UNAVAILABLE,
)
def get_report(report_id):
    """Follow a report (the kiosk that sent it, or staff)

    The status is kept current from the triage and referral services' events.
    """
    kiosk = current_kiosk()
    staff = None if kiosk else current_staff()
    if kiosk is None and staff is None:
        raise ApiError(401, "unauthorized", "A kiosk key or staff token is required.")
    not_found = ApiError(404, "not_found", "No such report.")
    try:
        # Canonical form: Python also takes "urn:uuid:..." forms that PostgreSQL does not.
        report_id = str(uuid.UUID(report_id))
    except ValueError:
        raise not_found from None
    with _pool().connection() as conn:
        view = store.get_report(conn, report_id)
        if view is not None and staff is not None:
            # A staff read is audited before it is answered; a kiosk reading the status of a
            # report it sent itself is not a staff read (services/common/audit.py).
            audit.record(conn, audit.READ, "report", [view.report_id], [_patient_mrn(conn, view.report_id)])
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
        "language": view.language,
        "advice_items": view.outcome["advice"] if view.outcome else [],
        "reasons": view.outcome["reasons"] if view.outcome else [],
    }


def _patient_mrn(conn, report_id: str) -> str | None:
    """The report's MRN as the kiosk sent it, for the access audit (None once purged)."""
    row = conn.execute("SELECT patient->>'mrn' FROM intake.reports WHERE report_id = %s", (report_id,)).fetchone()
    return row[0] if row else None
