"""Slots: POST /v1/slots (one or a list), POST /v1/slots/bulk (a series), GET /v1/slots.

Adding slots is all or nothing, and each new slot goes at once (same transaction) to the
waitlisted referral whose window holds it.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from marshmallow import ValidationError

from services.common.auth import require_staff
from services.common.errors import ApiError
from services.common.validation import field_errors
from services.common.json_body import Blueprint, read_json, require_json

from .. import booking, slot_series, slot_store
from .common import decode_cursor, now, page, pool, run_command, traceparent
from .schemas import (
    MAX_BULK_SLOTS,
    MAX_SLOTS_PER_REQUEST,
    NewSlotSchema,
    SlotBulkSchema,
    SlotItemsSchema,
    SlotPageSchema,
    SlotQuerySchema,
    SlotSchema,
)

blp = Blueprint("slots", __name__, description="Providers' consult slots")

CURSOR_KIND = "slots"


def _invalid(fields: list[dict]) -> ApiError:
    return ApiError(422, "validation_failed", "Some fields are not valid.", fields)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _add(slots: list[booking.NewSlot], at: datetime) -> list[dict]:
    """Add the slots (offering each to the waitlist) and read them back, in start order."""
    def command(conn):
        slot_ids = booking.add_slots(conn, slots, now=at, traceparent=traceparent())
        return slot_store.slot_views(conn, slot_ids)

    return run_command(command)


def _clash(slot: dict) -> str:
    return f"{_when(slot['start_at'])} - {_when(slot['end_at'])} (slot_id {slot['slot_id']})"


def _overlaps_within(slots: list[booking.NewSlot]) -> list[dict]:
    """Slots of one request that overlap each other (the database would refuse them too)."""
    errors = []
    reach: tuple[str, int, datetime] | None = None  # (provider, index, end) of the slot ending last so far
    for i in sorted(range(len(slots)), key=lambda i: (slots[i][0], slots[i][1])):
        provider_id, start, end = slots[i]
        if reach and reach[0] == provider_id and start < reach[2]:
            errors.append({"field": f"{i}.start", "message": f"Overlaps slot {reach[1]} of this request."})
        if not reach or reach[0] != provider_id or end > reach[2]:
            reach = (provider_id, i, end)
    return sorted(errors, key=lambda e: int(e["field"].split(".")[0]))


ONE_OR_MANY = {"oneOf": [NewSlotSchema, {"type": "array", "items": NewSlotSchema, "minItems": 1,
                                         "maxItems": MAX_SLOTS_PER_REQUEST}]}


@blp.route("/v1/slots", methods=["POST"])
@require_staff("admin")
@require_json
@blp.doc(
    summary="Add one slot, or a list of them (all or nothing)",
    description="A slot may not start in the past, must end after it starts (at most 12 hours later) and "
                "may not overlap another slot of its provider. Errors name the field, by index for a list "
                "(`2.start`). Each new slot goes at once to the waitlisted referral whose window holds it.",
    requestBody={"required": True, "content": {"application/json": {"schema": ONE_OR_MANY}}},
    responses={"201": {"description": "The slot, or `{\"items\": [...]}` for a list, in start order.",
                       "content": {"application/json": {"schema": {"oneOf": [SlotSchema, SlotItemsSchema]}}}}},
)
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(403, description="Not an admin")
@blp.alt_response(422, description="Invalid fields, overlaps or an unknown provider, named in `error.fields`")
def add_slots():
    body = read_json()  # an object or a list: read here, not by @blp.arguments
    at = now()
    many = isinstance(body, list)
    if many and not 1 <= len(body) <= MAX_SLOTS_PER_REQUEST:
        raise _invalid([{"field": "", "message": f"Send 1 to {MAX_SLOTS_PER_REQUEST} slots."}])
    try:
        loaded = NewSlotSchema(many=many, now=lambda: at).load(body)
    except ValidationError as exc:
        raise _invalid(field_errors(exc.messages)) from None
    items = loaded if many else [loaded]
    slots = [(str(s["provider_id"]), s["start"], s["end"]) for s in items]
    if overlaps := _overlaps_within(slots):
        raise _invalid(overlaps)
    prefix = (lambda i: f"{i}.") if many else (lambda i: "")
    try:
        views = _add(slots, at)
    except booking.UnknownProvider as exc:
        raise _invalid([{"field": prefix(i) + "provider_id", "message": "No such provider."}
                        for i, (provider_id, *_times) in enumerate(slots) if provider_id == exc.args[0]]) from None
    except booking.SlotsOverlap as exc:
        raise _invalid([{"field": prefix(i) + "start", "message": f"Overlaps the provider's slot {_clash(slot)}."}
                        for i, slot in sorted(exc.clashes.items())]) from None
    body = {"items": SlotSchema(many=True).dump(views)} if many else SlotSchema().dump(views[0])
    return body, 201


@blp.route("/v1/slots/bulk", methods=["POST"])
@require_staff("admin")
@require_json
@blp.arguments(SlotBulkSchema, description=(
    "A series of equal slots: every `minutes` from `daily_start` until `daily_end` on the chosen ISO weekdays "
    "from `from` to `to` (inclusive), read in `time_zone`. For a week of 30-minute weekday slots: "
    '`{"provider_id": "...", "from": "2026-12-07", "to": "2026-12-13", "daily_start": "09:00", '
    '"daily_end": "17:00", "minutes": 30, "weekdays": [1, 2, 3, 4, 5]}`.'))
@blp.response(201, SlotItemsSchema, description="The slots made, in start order. Slots that would start in "
                                                "the past (a series from today) are left out.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(403, description="Not an admin")
@blp.alt_response(422, description="Invalid fields, an empty or too large series, an overlap with existing "
                                   "slots, or an unknown provider")
def add_slot_series(body):
    at = now()
    series = slot_series.Series(first_day=body["from_"], last_day=body["to"], daily_start=body["daily_start"],
                                daily_end=body["daily_end"], minutes=body["minutes"],
                                weekdays=tuple(body["weekdays"]), time_zone=body["time_zone"])
    if slot_series.count(series) > MAX_BULK_SLOTS:
        raise _invalid([{"field": "", "message": f"The series makes more than {MAX_BULK_SLOTS} slots; "
                                                 "split it into several calls."}])
    times = [(start, end) for start, end in slot_series.slot_times(series) if start >= at]
    if not times:
        raise _invalid([{"field": "", "message": "The series makes no slot in the future "
                                                 "(check the dates, weekdays and hours)."}])
    provider_id = str(body["provider_id"])
    try:
        views = _add([(provider_id, start, end) for start, end in times], at)
    except booking.UnknownProvider:
        raise _invalid([{"field": "provider_id", "message": "No such provider."}]) from None
    except booking.SlotsOverlap as exc:
        # One line for the whole series rather than one per overlapping slot.
        first = min(exc.clashes.values(), key=lambda slot: slot["start_at"])
        raise _invalid([{"field": "", "message": f"The series overlaps {len(exc.clashes)} existing slot(s) of "
                                                 f"the provider, first {_clash(first)}."}]) from None
    return {"items": views}


@blp.route("/v1/slots", methods=["GET"])
@require_staff()
@blp.arguments(SlotQuerySchema, location="query")
@blp.response(200, SlotPageSchema, description="Slots by start time, with `next_cursor` for the next page.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(422, description="Invalid query parameters")
def list_slots(query):
    after = decode_cursor(query["cursor"], CURSOR_KIND, (datetime, uuid.UUID))
    with pool().connection() as conn:
        items, next_key = slot_store.slots_page(
            conn, provider_id=str(query["provider_id"]) if query["provider_id"] else None, free=query["free"],
            start_from=query["from_"], start_to=query["to"], after=after, limit=query["limit"])
    return page(items, next_key, CURSOR_KIND)

