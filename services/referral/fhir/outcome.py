"""Errors as OperationOutcome resources. Pure.

The service's error shape ({"error": {"code", "message", "fields"}}, services/common/errors.py)
says everything an OperationOutcome needs: the issue code follows the error code (or, for
codes it does not know, the HTTP status), the message is the diagnostics, and each field
named (a search parameter here) is an issue of its own whose location is "http.<name>", as
FHIR writes an HTTP parameter's.
"""
from __future__ import annotations

# error code of the service's shape -> FHIR issue-type code
ISSUE_BY_CODE = {
    "unauthorized": "login",
    "forbidden": "forbidden",
    "not_found": "not-found",
    "not_supported": "not-supported",
    "unknown_parameter": "not-supported",
    "not_acceptable": "not-supported",
    "invalid_search": "invalid",
    "validation_failed": "invalid",
    "bad_request": "invalid",
    "too_many_failed_attempts": "throttled",
    "too_many_requests": "throttled",
    "audit_unavailable": "transient",
    "database_unavailable": "transient",
    "internal_error": "exception",
}
ISSUE_BY_STATUS = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                   406: "not-supported", 409: "conflict", 413: "too-long", 414: "too-long", 415: "not-supported",
                   422: "invalid", 429: "throttled", 500: "exception", 503: "transient"}


def issue_code(status: int, code: str | None) -> str:
    return ISSUE_BY_CODE.get(code or "") or ISSUE_BY_STATUS.get(status, "processing")


def operation_outcome(status: int, code: str | None, message: str, fields: list[dict] | None = None) -> dict:
    kind = issue_code(status, code)
    severity = "fatal" if status >= 500 and status != 503 else "error"
    issues = [{"severity": severity, "code": kind, "diagnostics": f["message"], "location": [f"http.{f['field']}"]}
              for f in fields or () if f.get("field")]
    if not issues:
        issues = [{"severity": severity, "code": kind, "diagnostics": message}]
    for entry in issues:
        if code:
            entry["details"] = {"coding": [{"system": "urn:clinic:error-code", "code": code}], "text": message}
    return {"resourceType": "OperationOutcome", "issue": issues}
