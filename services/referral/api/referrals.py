"""The schedulers' queue: GET /v1/referrals, GET /v1/referrals/<id>, and the actions
reschedule, cancel and complete (scheduler or admin; contacted: api/contact.py)."""
from __future__ import annotations

import uuid
from datetime import datetime


from services.common import audit
from services.common.auth import require_staff
from services.common.errors import ApiError
from services.common.json_body import Blueprint, require_json

from .. import booking, contact_store, store
from ..domain import ReferralError
from .common import (
    actor,
    decode_cursor,
    not_found,
    now,
    page,
    pool,
    referral_error,
    run_command,
    traceparent,
)
from .schemas import (
    CancelSchema,
    ReferralDetailSchema,
    ReferralPageSchema,
    ReferralQuerySchema,
    RescheduleSchema,
)

blp = Blueprint("referrals", __name__, description="Referrals: the schedulers' queue and its actions")

CURSOR_KIND = "referrals"


def _referral_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise not_found("referral") from None


def _view(conn, referral_id: str, at: datetime) -> dict | None:
    view = store.referral_view(conn, referral_id, at)
    if view is not None:
        view["history"] = store.history(conn, referral_id)
        contact_store.add_messages(conn, [view])
        view["contact"]["contacts"] = contact_store.contacts_of(conn, referral_id)
    return view


def _mrns(view: dict) -> list[str]:
    """The MRNs a referral's view shows: its patient's, and a possible duplicate's."""
    duplicate = view["possible_duplicate_of"]
    return [view["patient"]["mrn"], *([duplicate["mrn"]] if duplicate else [])]


def _detail(referral_id: str) -> dict:
    with pool().connection() as conn:
        view = _view(conn, referral_id, now())
        if view is None:
            raise not_found("referral")
        # Written (and committed, leaving the block) before the answer is sent.
        audit.record(conn, audit.READ, "referral", [referral_id], _mrns(view))
    return view


def run_referral_command(command, action: str, referral_id: str, **kwargs) -> dict:
    """Run a scheduler's command and answer with the referral as it now stands, read and
    audited in the command's own transaction: the change, its audit row and the answer
    commit together or not at all."""
    referral_id = _referral_id(referral_id)
    at, trace = now(), traceparent()

    def audited(conn):
        with conn.transaction():
            command(conn, referral_id, actor=actor(), now=at, traceparent=trace, **kwargs)
            view = _view(conn, referral_id, at)
            audit.record(conn, action, "referral", [referral_id], _mrns(view), traceparent=trace)
        return view

    try:
        return run_command(audited)
    except booking.UnknownReferral:
        raise not_found("referral") from None
    except ReferralError as exc:
        raise referral_error(exc) from None


@blp.route("/v1/referrals", methods=["GET"])
@require_staff()
@blp.arguments(ReferralQuerySchema, location="query")
@blp.response(200, ReferralPageSchema, description="Urgent first, then oldest first; `next_cursor` for more.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(422, description="Invalid query parameters or cursor")
def list_referrals(query):
    after = decode_cursor(query["cursor"], CURSOR_KIND, (int, datetime, uuid.UUID))
    filters = store.QueueFilter(status=query["status"], priority=query["priority"],
                                report_id=str(query["report_id"]) if query["report_id"] else None,
                                review=query["review"], contact_needed=query["contact_needed"])
    with pool().connection() as conn:
        items, next_key = store.queue_page(conn, filters, after=after, limit=query["limit"], now=now())
        contact_store.add_messages(conn, items)
        # One row per list request, naming every referral it returns (and their patients).
        audit.record(conn, audit.LIST, "referral", [item["referral_id"] for item in items],
                     [mrn for item in items for mrn in _mrns(item)])
    return page(items, next_key, CURSOR_KIND)


@blp.route("/v1/referrals/<referral_id>", methods=["GET"])
@require_staff()
@blp.response(200, ReferralDetailSchema, description="The referral with its history, oldest entry first.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(404, description="No such referral")
def get_referral(referral_id):
    return _detail(_referral_id(referral_id))


@blp.route("/v1/referrals/<referral_id>/reschedule", methods=["POST"])
@require_staff()
@require_json
@blp.arguments(RescheduleSchema, description="A free slot; a scheduler's choice is not held to the window.")
@blp.response(200, ReferralDetailSchema, description="Booked (from the waitlist) or moved into the slot.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(404, description="No such referral")
@blp.alt_response(409, description="`invalid_transition` (cancelled or completed), `slot_taken` (booked, or "
                                   "already this referral's), `slot_in_past`")
@blp.alt_response(422, description="Invalid body, or no such slot (`slot_id`)")
def reschedule(body, referral_id):
    try:
        return run_referral_command(booking.reschedule, "reschedule", referral_id, slot_id=str(body["slot_id"]))
    except booking.UnknownSlot:
        raise ApiError(422, "validation_failed", "Some fields are not valid.",
                       [{"field": "slot_id", "message": "No such slot."}]) from None


@blp.route("/v1/referrals/<referral_id>/cancel", methods=["POST"])
@require_staff()
@require_json
@blp.arguments(CancelSchema, description="Why (required); kept in the referral's history.")
@blp.response(200, ReferralDetailSchema, description="Cancelled; a slot it held goes to the waitlist.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(404, description="No such referral")
@blp.alt_response(409, description="`invalid_transition`: already cancelled or completed")
@blp.alt_response(422, description="Missing or blank reason")
def cancel(body, referral_id):
    return run_referral_command(booking.cancel, "cancel", referral_id, reason=body["reason"])


@blp.route("/v1/referrals/<referral_id>/complete", methods=["POST"])
@require_staff()
@blp.response(200, ReferralDetailSchema, description="Completed; the slot stays with it as a record.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(404, description="No such referral")
@blp.alt_response(409, description="`invalid_transition`: only a booked referral can be completed")
def complete(referral_id):
    return run_referral_command(booking.complete, "complete", referral_id)
