"""Every error answer under /fhir/ as an OperationOutcome, whoever made it.

Errors come from many places: a view (404, a bad search parameter), the staff check (401,
403), Flask's routing (404, 405), the failed-authentication limiter's after-request hook
(429), the service's error handlers (500, 503). All of them answer the service's one error
shape (services/common/errors.py); this WSGI wrapper, outermost, rewrites such an answer on
a /fhir/ path into the OperationOutcome that says the same (outcome.py), with the same
status and headers. Answers that are not errors pass through untouched, unread.
"""
from __future__ import annotations

import json

from .ids import MEDIA_TYPE
from .outcome import operation_outcome

PREFIX = "/fhir/"


class OperationOutcomeErrors:
    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(PREFIX):
            return self.wsgi_app(environ, start_response)
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            if int(status.split(" ", 1)[0]) < 400:
                return start_response(status, headers, exc_info)
            captured.update(status=status, headers=headers, exc_info=exc_info)
            return captured.setdefault("chunks", []).append

        body = self.wsgi_app(environ, capture)
        if not captured:
            return body
        try:
            data = b"".join([*captured.get("chunks", []), *body])
        finally:
            if hasattr(body, "close"):
                body.close()
        status, headers = captured["status"], captured["headers"]
        rewritten = as_outcome(int(status.split(" ", 1)[0]), data)
        if rewritten is not None:
            data = rewritten
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length")]
            headers += [("Content-Type", MEDIA_TYPE), ("Content-Length", str(len(data)))]
        start_response(status, headers, captured["exc_info"])
        return [data]


def as_outcome(status: int, body: bytes) -> bytes | None:
    """The OperationOutcome for an error answer's body; None when it is one already."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("resourceType") == "OperationOutcome":
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        outcome = operation_outcome(status, error.get("code"), str(error.get("message", "")), error.get("fields"))
    else:  # not the service's shape (none of ours should be): say what the status says
        outcome = operation_outcome(status, None, f"HTTP {status}")
    return json.dumps(outcome, separators=(",", ":")).encode()
