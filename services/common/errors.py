"""One error shape for all three services:

    {"error": {"code": "validation_failed", "message": "...", "fields": [{"field", "message"}]}}
"""
from __future__ import annotations

import logging

import psycopg
from flask import Flask, current_app, jsonify, request
from marshmallow import Schema, fields
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from .error_text import safe_error_text
from .validation import field_errors

log = logging.getLogger(__name__)

CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    431: "header_fields_too_large",
    500: "internal_error",
    503: "unavailable",
}

# Headers of werkzeug's HTTP exceptions that belong on our answer too: 405's Allow (RFC 9110
# says a 405 MUST carry it), 429/503's Retry-After, 401's WWW-Authenticate.
_KEPT_EXCEPTION_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class FieldErrorSchema(Schema):
    field = fields.String(required=True, metadata={
        "description": 'Path of the failing field, e.g. "pain.severity" or "pain.locations.1"; '
                       '"" for the body as a whole.',
        "example": "pain.severity"})
    message = fields.String(required=True, metadata={"example": "Must be a whole number from 0 to 10."})


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Machine-readable error code.",
                                                  "example": "validation_failed"})
    message = fields.String(required=True, metadata={"description": "What went wrong, for people.",
                                                     "example": "Some fields are not valid."})
    field_errors = fields.List(fields.Nested(FieldErrorSchema), data_key="fields", metadata={
        "description": "With 422 only: every failing field, by path."})


class ErrorSchema(Schema):
    """The body of every error answer (documents what error_response() writes)."""

    error = fields.Nested(ErrorDetailSchema, required=True)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields


def error_response(status: int, code: str, message: str, fields: list[dict] | None = None):
    body = {"error": {"code": code, "message": message}}
    if fields is not None:
        body["error"]["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="clinic"'
    if status == 503:
        response.headers["Retry-After"] = "2"
    return response


def _http_exception(exc: HTTPException):
    response = _http_exception_body(exc)
    for name, value in exc.get_headers():
        if name in _KEPT_EXCEPTION_HEADERS:
            response.headers[name] = value
    return response


def _http_exception_body(exc: HTTPException):
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if status == 422 and messages:
        # webargs/flask-smorest nest errors by location ({"json": {...}}); a body is what clients send.
        nested = messages.get("json", messages) if isinstance(messages, dict) else messages
        fields = field_errors(nested)
        return error_response(422, "validation_failed", "Some fields are not valid.", fields)
    if status == 400 and messages:
        return error_response(400, "bad_request", "The request body is not valid JSON.")
    if status == 405:
        allowed = ", ".join(getattr(exc, "valid_methods", None) or ())
        return error_response(405, "method_not_allowed",
                              f"This address does not take {request.method}; it takes {allowed}.")
    if status == 413:
        # werkzeug's own words ("exceeds the capacity limit") do not say what the limit is.
        return error_response(413, "payload_too_large",
                              f"The request body is over {(current_app.config['MAX_CONTENT_LENGTH'] or 0) // 1024} KiB.")
    message = data.get("message") or exc.description or exc.name
    return error_response(status, CODES_BY_STATUS.get(status, "error"), message)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, e.message, e.fields))
    app.register_error_handler(HTTPException, _http_exception)

    def database_unavailable(exc):
        log.warning("database unavailable", extra={"error": safe_error_text(exc)})
        return error_response(503, "database_unavailable", "The database is unavailable; retry shortly.")

    app.register_error_handler(PoolTimeout, database_unavailable)
    app.register_error_handler(psycopg.OperationalError, database_unavailable)

    def internal_error(exc):
        # Its frames and safe_error_text, never its message (a database error's DETAIL quotes
        # row values): the logging filter (logs.py) rewrites the traceback.
        log.exception("unhandled error", extra={"error": safe_error_text(exc)})
        return error_response(500, "internal_error", "An internal error occurred.")

    app.register_error_handler(Exception, internal_error)


# -- the error answers every operation documents (OpenAPI) ----------------------------------
ERROR_REF = {"$ref": "#/components/schemas/Error"}

# (status, description, applies to the operation?) - what the server answers before or
# around a view, so no view can forget to document it. Views document their own 403/404/409/422
# with words of their own; these fill in what they left out.
def _always(_operation, _path):
    return True


def _has_body(operation, _path):
    return "requestBody" in operation


def _has_path_parameter(_operation, path):
    return "{" in path


def _authenticated(operation, _path):
    return operation.get("security", True) != []


STANDARD_ERRORS = (
    (400, "A malformed request: unreadable JSON (empty, malformed, not UTF-8, NaN, nested deeper than 32 "
          "levels) in a body, or a request line or header the server cannot parse", _always),
    (401, "Missing, bad or revoked credential", _authenticated),
    (404, "No such resource (or one this credential may not see)", _has_path_parameter),
    (413, "Body over 64 KiB (refused before it is read)", _has_body),
    (414, "Request line (method, path and query) over 4094 bytes; answered by the HTTP server", _always),
    (415, "Content-Type is not application/json", _has_body),
    (422, "Validation failed: every failing field is named by its path in `error.fields`", _has_body),
    (429, "Too many failed authentications from this address or for this credential, or over a quota; "
          "retry after `Retry-After` seconds", _authenticated),
    (431, "A request header over 8190 bytes, or more than 100 headers; answered by the HTTP server", _always),
    (500, "An internal error (logged with its trace; the answer says nothing more)", _always),
    (503, "The database is unavailable; retry shortly (`Retry-After`)", _always),
)


def document_standard_errors(path: str, operations: dict) -> None:
    """Give every operation each error answer it can get, in the one error shape, and no
    catch-all `default`: an OpenAPI client (or fuzzer) then knows every status to expect."""
    for operation in operations.values():
        if not isinstance(operation, dict) or "responses" not in operation:
            continue
        responses = operation["responses"]
        responses.pop("default", None)
        for key in list(responses):
            if str(key) != key:
                responses[str(key)] = responses.pop(key)
        for status, description, applies in STANDARD_ERRORS:
            if str(status) not in responses and applies(operation, path):
                responses[str(status)] = {"description": description}
        for status, response in responses.items():
            if status[0] in "45" and isinstance(response, dict) and "$ref" not in response:
                response.setdefault("content", {"application/json": {"schema": ERROR_REF}})
