"""One error shape for all three services:

    {"error": {"code": "validation_failed", "message": "...", "fields": [{"field", "message"}]}}
"""
from __future__ import annotations

import logging

import psycopg
from flask import Flask, jsonify
from marshmallow import Schema, fields
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

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
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    503: "unavailable",
}


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
    message = data.get("message") or exc.description or exc.name
    return error_response(status, CODES_BY_STATUS.get(status, "error"), message)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, e.message, e.fields))
    app.register_error_handler(HTTPException, _http_exception)

    def database_unavailable(exc):
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return error_response(503, "database_unavailable", "The database is unavailable; retry shortly.")

    app.register_error_handler(PoolTimeout, database_unavailable)
    app.register_error_handler(psycopg.OperationalError, database_unavailable)

    def internal_error(exc):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "An internal error occurred.")

    app.register_error_handler(Exception, internal_error)
