"""Marshmallow schemas of the referral API (HTTP edge only): requests are strict (unknown
fields refused, no silent coercion), responses document the shapes the contract lists.

Checks that need "now" (a slot in the past) take it from the caller: `NewSlotSchema(now=...)`.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from services.common.fields import CALENDAR_DATE, CalendarDate, bounded_text
from services.common.report_vocabulary import REPORT_LANGUAGES

from ..domain.contact import CHANGES, CHANNELS, MESSAGE_STATUSES
from ..slot_series import WEEKDAYS

MAX_SLOT_HOURS = 12
MAX_SLOTS_PER_REQUEST = 500
MAX_BULK_SLOTS = 2000
MAX_BULK_DAYS = 92
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
STATUS_FILTERS = ("booked", "waitlisted", "cancelled", "completed", "open")
REVIEW_FILTERS = ("possible_duplicate",)

TIME_ZONES = sorted(zone for zone in available_timezones() if not zone.startswith(("posix/", "right/")))
_TIME_ZONE_SET = frozenset(TIME_ZONES)
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")
_CLOCK_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_SPACE_FOR_PLUS = re.compile(r" ([0-9]{2}:[0-9]{2})$")


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- fields (Text and CalendarDate: services/common/fields.py, shared with intake) -----
class ClockTime(fields.Field):
    """A wall-clock time "HH:MM" (24-hour), as a clinic's opening hours are written."""

    default_error_messages = {"invalid": "Must be a time of day in the form HH:MM, like 09:00."}

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.strftime("%H:%M")

    def _deserialize(self, value, attr, data, **kwargs) -> time:
        if not isinstance(value, str) or not _CLOCK_TIME.fullmatch(value):
            raise self.make_error("invalid")
        return time.fromisoformat(value)


class Instant(fields.Field):
    """A time with a zone offset, or a calendar date meaning that day's start in UTC."""

    default_error_messages = {"invalid": "Must be a date (YYYY-MM-DD) or a date and time with a zone "
                                         "offset, like 2026-11-20T09:00:00+00:00."}

    def __init__(self, **kwargs):
        metadata = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
                    **(kwargs.pop("metadata", None) or {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        # An unencoded "+" in a query string arrives as a space: "...T09:00:00 00:00".
        value = _SPACE_FOR_PLUS.sub(r"+\1", value)
        try:
            if CALENDAR_DATE.fullmatch(value):
                return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
            # RFC 3339 only, as the OpenAPI document says (fromisoformat alone also takes
            # "20261120T0900+0100", a comma for the decimal point, no seconds...).
            if not _RFC3339.fullmatch(value):
                raise ValueError(value)
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            raise self.make_error("invalid") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise self.make_error("invalid")
        return parsed


class StrictBoolean(fields.Boolean):
    """true/false only (query strings: "true"/"false"); marshmallow would also take "on", 1..."""

    truthy = {True, "true"}
    falsy = {False, "false"}
    default_error_messages = {"invalid": "Must be true or false."}


def _limit() -> fields.Integer:
    message = f"Must be a whole number from 1 to {MAX_LIMIT}."
    return fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT, error=message),
                          error_messages={"invalid": message},
                          metadata={"description": f"Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})."})


def _cursor() -> fields.String:
    return fields.String(load_default=None, validate=validate.Length(max=500),
                         metadata={"description": "The `next_cursor` of the previous page, unchanged."})


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _Query(Schema):
    class Meta:
        unknown = EXCLUDE  # cache busters and the like are not errors


# -- providers ------------------------------------------------------------------------
class NewProviderSchema(_Strict):
    name = bounded_text(200, required=True, metadata={"example": "Riverside Pain Clinic"})
    specialty = fields.String(required=True, validate=validate.OneOf(["pain_management"],
                              error="Must be pain_management."), metadata={"example": "pain_management"})
    location = bounded_text(200, required=True, metadata={"example": "12 River Street, Room 4"})


class ProviderSchema(Schema):
    provider_id = fields.UUID()
    name = fields.String()
    specialty = fields.String()
    location = fields.String()
    created_at = fields.AwareDateTime()


class ProviderListSchema(Schema):
    items = fields.List(fields.Nested(ProviderSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "Always null: one page."})


# -- slots ----------------------------------------------------------------------------
class _WithClock(_Strict):
    def __init__(self, *args, now=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now or utc_now


class NewSlotSchema(_WithClock):
    provider_id = fields.UUID(required=True)
    start = fields.AwareDateTime(required=True, metadata={"example": "2026-12-01T09:00:00+00:00"})
    end = fields.AwareDateTime(required=True, metadata={"example": "2026-12-01T09:30:00+00:00"})

    @validates_schema(skip_on_field_errors=True)
    def _sensible(self, data: dict, **_kwargs) -> None:
        errors = {}
        if data["start"] < self.now():
            errors["start"] = ["Must not be in the past."]
        if data["end"] <= data["start"]:
            errors["end"] = ["Must be after start."]
        elif data["end"] - data["start"] > timedelta(hours=MAX_SLOT_HOURS):
            errors["end"] = [f"A slot may last at most {MAX_SLOT_HOURS} hours."]
        if errors:
            raise ValidationError(errors)


class SlotBulkSchema(_WithClock):
    provider_id = fields.UUID(required=True)
    from_ = CalendarDate(required=True, data_key="from", metadata={"example": "2026-12-07",
                         "description": "First day."})
    to = CalendarDate(required=True, metadata={"example": "2026-12-11", "description": "Last day (inclusive)."})
    daily_start = ClockTime(required=True, metadata={"example": "09:00", "description": "First slot starts at (HH:MM)."})
    daily_end = ClockTime(required=True, metadata={"example": "17:00",
                          "description": "Last slot ends at or before (HH:MM)."})
    minutes = fields.Integer(load_default=30, strict=True, validate=validate.Range(
        min=5, max=MAX_SLOT_HOURS * 60, error=f"Must be a whole number from 5 to {MAX_SLOT_HOURS * 60}."),
        metadata={"example": 30, "description": "Length of each slot (default 30)."})
    weekdays = fields.List(fields.Integer(strict=True, validate=validate.Range(
        min=1, max=7, error="Must be an ISO weekday number, 1 (Monday) to 7 (Sunday).")),
        load_default=list(WEEKDAYS), validate=validate.Length(min=1, error="Must list at least one weekday."),
        metadata={"example": [1, 2, 3, 4, 5], "description": "ISO weekday numbers, 1 = Monday (default 1-5)."})
    time_zone = fields.String(load_default="UTC", metadata={
        "example": "UTC", "description": "IANA time zone the days and hours are read in (default UTC).",
        "enum": TIME_ZONES})  # the same list the server checks, so the document says what it takes

    @validates("time_zone")
    def _known_zone(self, value: str, **_kwargs) -> None:
        # The tz database's names only: ZoneInfo alone would also open "posix/..." or "right/..." files.
        if value not in _TIME_ZONE_SET:
            raise ValidationError("Must be an IANA time zone name, like Europe/Lisbon or UTC.")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Must be an IANA time zone name, like Europe/Lisbon or UTC.") from None

    @validates_schema(skip_on_field_errors=True)
    def _sensible(self, data: dict, **_kwargs) -> None:
        errors = {}
        if data["to"] < data["from_"]:
            errors["to"] = ["Must not be before from."]
        elif (data["to"] - data["from_"]).days >= MAX_BULK_DAYS:
            errors["to"] = [f"A series may span at most {MAX_BULK_DAYS} days."]
        if data["to"] < self.now().date() - timedelta(days=1):
            errors.setdefault("to", ["Must not be in the past."])
        if data["daily_end"] <= data["daily_start"]:
            errors["daily_end"] = ["Must be after daily_start."]
        if errors:
            raise ValidationError(errors)


class SlotSchema(Schema):
    slot_id = fields.UUID()
    provider_id = fields.UUID()
    provider = fields.String(metadata={"description": "Provider name."})
    location = fields.String()
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    free = fields.Boolean()
    referral_id = fields.UUID(allow_none=True, metadata={"description": "The referral holding it, if any."})


class SlotItemsSchema(Schema):
    items = fields.List(fields.Nested(SlotSchema))


class SlotPageSchema(SlotItemsSchema):
    next_cursor = fields.String(allow_none=True)


class SlotQuerySchema(_Query):
    provider_id = fields.UUID(load_default=None)
    free = StrictBoolean(load_default=None, metadata={"description": "true: free slots only; false: booked only."})
    from_ = Instant(load_default=None, data_key="from", metadata={
        "description": "Slots starting at or after this time (a date: its start, UTC)."})
    to = Instant(load_default=None, metadata={
        "description": "Slots starting before this time (a date: its start, UTC; so to is exclusive)."})
    limit = _limit()
    cursor = _cursor()


# -- referrals ------------------------------------------------------------------------
class ReferralQuerySchema(_Query):
    status = fields.String(load_default=None, validate=validate.OneOf(
        STATUS_FILTERS, error="Must be one of: " + ", ".join(STATUS_FILTERS) + "."),
        metadata={"description": "booked, waitlisted, cancelled, completed; or open (booked or waitlisted)."})
    priority = fields.String(load_default=None, validate=validate.OneOf(
        ["urgent", "routine"], error="Must be urgent or routine."))
    report_id = fields.UUID(load_default=None, metadata={"description": "Any report linked to the referral."})
    review = fields.String(load_default=None, validate=validate.OneOf(
        REVIEW_FILTERS, error="Must be one of: " + ", ".join(REVIEW_FILTERS) + "."), metadata={
        "description": "Extension to the contract. possible_duplicate: only referrals flagged for review as a "
                       "possible duplicate (same MRN as another open referral, another birth date)."})
    contact_needed = StrictBoolean(load_default=None, metadata={
        "description": "true: only referrals whose patient a person must phone (`contact.needed`); "
                       "false: only the others."})
    limit = _limit()
    cursor = _cursor()


class PatientSchema(Schema):
    mrn = fields.String()
    display_name = fields.String()
    language = fields.String(metadata={
        "enum": list(REPORT_LANGUAGES), "example": "es",
        "description": "Extension to the contract (issue 18): the language (BCP 47) the patient filled in their "
                       "newest linked report, to phone them in; en for referrals made before reports "
                       "recorded one."})


class AppointmentSchema(Schema):
    slot_id = fields.UUID()
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    provider = fields.String()
    location = fields.String()


class PossibleDuplicateSchema(Schema):
    referral_id = fields.UUID(metadata={"description": "The other open referral."})
    mrn = fields.String(metadata={"description": "The other referral's MRN, as its report gave it "
                                                 "(never the other patient's name)."})


class PatientMessageSchema(Schema):
    message_id = fields.UUID()
    change = fields.String(metadata={"enum": list(CHANGES), "description": "What the message told."})
    channel = fields.String(metadata={"enum": list(CHANNELS),
                                      "description": "phone: no consented channel, a person must call."})
    status = fields.String(metadata={"enum": list(MESSAGE_STATUSES)})
    detail = fields.String(allow_none=True, metadata={"description": "Why, for failed, uncertain or not_sent."})
    attempts = fields.Integer()
    at = fields.AwareDateTime(metadata={"description": "When the message reached this status."})


class ContactSchema(Schema):
    needed = fields.Boolean(metadata={
        "description": "A message failed, is uncertain or was not sent after the patient was last marked "
                       "contacted: a person must phone the patient."})
    callback_phone = fields.String(allow_none=True, metadata={
        "description": "The patient's phone, from the newest message that gave one (a person must call)."})
    contacted_at = fields.AwareDateTime(allow_none=True, metadata={
        "description": "When a scheduler last marked the patient contacted."})
    messages = fields.List(fields.Nested(PatientMessageSchema), metadata={
        "description": "Every message sent about this referral, in its newest state, oldest first."})


class ContactRecordSchema(Schema):
    at = fields.AwareDateTime()
    actor = fields.String(metadata={"description": "Staff member's name."})
    note = fields.String(allow_none=True)


class ContactDetailSchema(ContactSchema):
    contacts = fields.List(fields.Nested(ContactRecordSchema), metadata={
        "description": "Every time the patient was marked contacted, oldest first."})


class ReferralSchema(Schema):
    referral_id = fields.UUID()
    report_id = fields.UUID(metadata={"description": "The report that opened the referral."})
    report_ids = fields.List(fields.UUID(), metadata={"description": "Every report linked, first one first."})
    patient = fields.Nested(PatientSchema)
    care_level = fields.String(metadata={"enum": ["urgent", "specialist"]})
    priority = fields.String(metadata={"enum": ["urgent", "routine"]})
    status = fields.String(metadata={"enum": ["booked", "waitlisted", "cancelled", "completed"]})
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    window_ends_at = fields.AwareDateTime(metadata={"description": "Automatic booking looks up to this time."})
    breached = fields.Boolean(metadata={"description": "Still waitlisted after its window ended."})
    appointment = fields.Nested(AppointmentSchema, allow_none=True)
    sequence = fields.Integer(metadata={"description": "Grows with every change (the number of history entries)."})
    possible_duplicate_of = fields.Nested(PossibleDuplicateSchema, allow_none=True, metadata={
        "description": "Extension to the contract. Set when, as this referral was made, another open referral "
                       "had the same MRN (NFKC, trimmed, case-folded) but another or an unknown birth date: "
                       "the report was not linked to it, and a scheduler should review the two. Null otherwise."})
    contact = fields.Nested(ContactSchema, metadata={
        "description": "Who was told what, and when (docs/patient-messages.md), and whether a person must "
                       "phone the patient."})


class HistoryEntrySchema(Schema):
    sequence = fields.Integer()
    at = fields.AwareDateTime()
    actor = fields.String(metadata={"description": "Staff member's name, or system."})
    action = fields.String(metadata={"enum": ["created", "report_linked", "raised_to_urgent", "booked", "moved",
                                              "cancelled", "completed"]})
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    reason = fields.String()
    from_slot_id = fields.UUID(allow_none=True)
    to_slot_id = fields.UUID(allow_none=True)


class ReferralDetailSchema(ReferralSchema):
    history = fields.List(fields.Nested(HistoryEntrySchema))
    contact = fields.Nested(ContactDetailSchema)


class ReferralPageSchema(Schema):
    items = fields.List(fields.Nested(ReferralSchema))
    next_cursor = fields.String(allow_none=True)


class RescheduleSchema(_Strict):
    slot_id = fields.UUID(required=True)


class CancelSchema(_Strict):
    reason = bounded_text(500, required=True, metadata={"example": "Patient asked to cancel."})


class ContactedSchema(_Strict):
    note = bounded_text(500, load_default=None, metadata={"example": "Phoned; the patient knows the new time."})
