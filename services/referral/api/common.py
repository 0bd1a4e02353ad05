"""What the referral API's views share: the pool, the clock, trace context, JSON-only
bodies, and turning use-case errors into the one error shape."""
from __future__ import annotations

import random
import time

import psycopg
from flask import current_app, request

from services.common import envelope
from services.common.auth import current_staff
from services.common.errors import ApiError

from .. import cursor
from ..domain import REASON_REQUIRED, InvalidCommand, ReferralError
from .schemas import utc_now

# A command that lost a deadlock (rare since the lock order in booking.py, but a worker
# and a scheduler can still both want one referral) is run again after a short random
# pause, so that the two do not meet again at once.
COMMAND_ATTEMPTS = 4
RETRY_PAUSE_S = (0.02, 0.1)  # the first pause's range; each next one doubles it


def pool():
    return current_app.extensions["clinic"].pool


def now():
    return utc_now()


def traceparent() -> str:
    return envelope.child_traceparent(request.headers.get("traceparent"))


def actor() -> str:
    return current_staff().name


def run_command(command, *args, **kwargs):
    """Run a use case with a pooled connection (committed on success), retrying deadlocks."""
    for attempt in range(1, COMMAND_ATTEMPTS + 1):
        try:
            with pool().connection() as conn:
                return command(conn, *args, **kwargs)
        except psycopg.errors.DeadlockDetected:
            if attempt == COMMAND_ATTEMPTS:
                raise ApiError(503, "busy", "The booking is busy; retry shortly.") from None
            low, high = RETRY_PAUSE_S
            time.sleep(random.uniform(low, high) * 2 ** (attempt - 1))


def referral_error(exc: ReferralError) -> ApiError:
    if isinstance(exc, InvalidCommand):
        field = "reason" if exc.code == REASON_REQUIRED else ""
        return ApiError(422, "validation_failed", "Some fields are not valid.",
                        [{"field": field, "message": exc.reason[0].upper() + exc.reason[1:] + "."}])
    return ApiError(409, exc.code, exc.reason[0].upper() + exc.reason[1:] + ".")


def decode_cursor(token: str | None, kind: str, types: tuple) -> tuple | None:
    if token is None:
        return None
    try:
        return cursor.decode(token, kind, types)
    except cursor.InvalidCursor:
        raise ApiError(422, "validation_failed", "Some fields are not valid.",
                       [{"field": "cursor", "message": "Not a cursor from this list; start again without it."}]
                       ) from None


def page(items: list, next_key: tuple | None, kind: str) -> dict:
    return {"items": items, "next_cursor": cursor.encode(kind, *next_key) if next_key else None}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")
