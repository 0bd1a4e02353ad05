"""Request schemas of the intake API: the symptom report a kiosk sends to `POST /v1/reports`.

Validation is strict on purpose: kiosks are third-party clients, and a value that
marshmallow would quietly coerce ("7" -> 7, 1 -> True, 7.5 -> 7) could change a
triage decision. Every schema refuses unknown keys.

"Today" (UTC) bounds two dates. It comes from a callable so tests can pin it:
`ReportSchema(today=lambda: date(2026, 11, 26))`; the default is `utc_today`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from services.common.fields import CalendarDate, StrictBoolean, Text, bounded_text
from services.common.report_vocabulary import (
    DEFAULT_LANGUAGE,
    HOME_CARE_MEASURES,
    IMPROVING,
    ONSETS,
    PAIN_LOCATIONS,
    PAIN_SCALE_MAX,
    PAIN_SCALE_MIN,
    REPORT_LANGUAGES,
    SIDES,
)

MRN_MAX = 64
NAME_MAX = 100
SPORT_MAX = 60
MAX_AGE_YEARS = 130
HOME_CARE_DAYS_MAX = 3650

# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_PHONE_SEPARATORS = str.maketrans("", "", " -.()")
# The same rule for OpenAPI clients: E.164 once the separators are dropped.
PHONE_PATTERN = r"^[ .()-]*\+[ .()-]*[1-9](?:[ .()-]*[0-9]){6,14}[ .()-]*$"

# RFC 5321's limit on a forward path, what an SMTP server takes.
EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64  # before the "@"
# An address an SMTP server without SMTPUTF8 takes, and the OpenAPI `pattern` of patient.email:
# an ASCII dot-atom, "@", a host name of two or more labels ending in letters. Narrower than
# marshmallow's Email (no quoted local parts, IP literals, "localhost" or Unicode) and than
# `format: email` alone, so the document and the server agree on every address.
_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@(?:{_EMAIL_LABEL}\.)+[A-Za-z]{{2,63}}$"

# Channels a patient may agree to be told about their appointment on, and the address each needs.
CONTACT_CHANNELS = ("sms", "email")
CHANNEL_ADDRESS = {"sms": "phone", "email": "email"}

REPORT_EXAMPLE = {
    "patient": {
        "mrn": "MRN-0042",
        "given_name": "Ana",
        "family_name": "Silva",
        "birth_date": "1991-04-02",
        "phone": "+15550100",
        "email": "ana.silva@example.org",
        "contact_consent": ["sms"],
    },
    "activity": {"sport": "running", "high_impact": True},
    "pain": {
        "locations": ["groin"],
        "side": "left",
        "severity": 8,
        "onset": "sudden",
        "started_on": "2026-11-20",
        "direct_trauma": True,
    },
    "function": {"joint_locking": False, "instability": False, "persistent_dysfunction": False},
    "home_care": {"measures": ["rest", "ice"], "days": 21, "improving": "no"},
}


def utc_today() -> date:
    """Today's calendar date in UTC, the contract's meaning of "today"."""
    return datetime.now(UTC).date()


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def _check_past_date(value: date, today: date) -> None:
    """A date that has happened: not later than tomorrow in UTC, not beyond a lifetime ago."""
    # Tomorrow, because a kiosk east of UTC may already be a day ahead (contract: started_on).
    latest = today + timedelta(days=1)
    if value > latest:
        raise ValidationError(f"Cannot be in the future (latest: {latest.isoformat()}).")
    if value < _years_before(today, MAX_AGE_YEARS):
        raise ValidationError(f"Cannot be more than {MAX_AGE_YEARS} years ago.")


# --- fields (Text and CalendarDate: services/common/fields.py, shared with referral) --


class _Choice(fields.String):
    """A string from a fixed list; a wrong type gets the same helpful message as a wrong value."""

    def __init__(self, choices: tuple[str, ...], **kwargs):
        message = "Must be one of: " + ", ".join(choices) + "."
        error_messages = {"invalid": message, **kwargs.pop("error_messages", {})}
        super().__init__(validate=validate.OneOf(choices, error=message), error_messages=error_messages, **kwargs)


_NOT_AN_ADDRESS = "Must be an email address, like name@example.com."
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_marshmallow_email = validate.Email(error=_NOT_AN_ADDRESS)


def _check_address(value: str) -> None:
    # One message, whichever check refuses it. The local part's limit (RFC 5321) is one that
    # `format: email` checks and a lookahead-free pattern cannot say.
    if not _EMAIL_RE.fullmatch(value) or len(value.partition("@")[0]) > EMAIL_LOCAL_MAX:
        raise ValidationError(_NOT_AN_ADDRESS)
    _marshmallow_email(value)


class _Email(Text):
    """An email address, trimmed; refused with Text's messages first (blank, control or
    invisible formatting characters, too long), then unless it is an address (EMAIL_PATTERN
    and marshmallow's Email)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=EMAIL_MAX, validate=_check_address, **kwargs)
        # Text's own pattern and description say "any text"; this one is an address. maxLength
        # counts surrounding spaces too, which only makes it stricter than the server.
        self.metadata.update(
            format="email",
            maxLength=EMAIL_MAX,
            pattern=EMAIL_PATTERN,
            description=f"Optional email address: ASCII, at most {EMAIL_MAX} characters, at most "
            f"{EMAIL_LOCAL_MAX} before the @; surrounding spaces are trimmed. Used only to tell the "
            "patient about their appointment, when contact_consent lists email.",
        )


class _Phone(fields.String):
    """An international (E.164) number; spaces, dashes, dots and brackets are dropped."""

    default_error_messages = {
        "invalid": "Must be a phone number in international format, like +15550100.",
    }

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        number = value.translate(_PHONE_SEPARATORS)
        if not _E164.fullmatch(number):
            raise self.make_error("invalid")
        return number


def _yes_no_unsure(description: str) -> StrictBoolean:
    # null means "not sure", but the question must have been asked, so the key is required.
    return StrictBoolean(
        required=True,
        allow_none=True,
        error_messages={
            "invalid": "Must be true, false or null (not sure).",
            "required": "This field is required (send null for not sure).",
        },
        metadata={"description": description + " null means not sure.", "example": False},
    )


def _whole_number(low: int, high: int, **kwargs) -> fields.Integer:
    message = f"Must be a whole number from {low} to {high}."
    # strict: "7" and 7.5 are refused; marshmallow's Number already refuses true/false.
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=low, max=high, error=message),
        error_messages={"invalid": message},
        **kwargs,
    )


def _distinct(message: str) -> Callable[[list], None]:
    def check(values: list) -> None:
        if len(set(values)) != len(values):
            raise ValidationError(message)

    return check


# --- schemas --------------------------------------------------------------------------


class _StrictSchema(Schema):
    """Refuses unknown keys and carries the injectable clock."""

    # No Meta.title/description on these schemas: apispec then omits `additionalProperties: false`.
    # Sections are described on the Nested fields instead.
    class Meta:
        unknown = RAISE

    def __init__(self, *args, today: Callable[[], date] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._use_clock(today or utc_today)

    def _use_clock(self, today: Callable[[], date]) -> None:
        # marshmallow builds nested schemas itself, so hand them the same clock.
        self.today = today
        for field in self.fields.values():
            if isinstance(field, fields.Nested) and isinstance(field.schema, _StrictSchema):
                field.schema._use_clock(today)


class PatientSchema(_StrictSchema):
    mrn = bounded_text(
        MRN_MAX,
        required=True,
        metadata={"description": "Medical record number, as printed on the patient's card.", "example": "MRN-0042"},
    )
    given_name = bounded_text(
        NAME_MAX,
        required=True,
        metadata={"description": "Given (first) name.", "example": "Ana"},
    )
    family_name = bounded_text(
        NAME_MAX,
        required=True,
        metadata={"description": "Family name.", "example": "Silva"},
    )
    birth_date = CalendarDate(
        required=True,
        metadata={
            "description": f"Date of birth. Not later than tomorrow in UTC, not more than {MAX_AGE_YEARS} years ago.",
            "example": "1991-04-02",
        },
    )
    phone = _Phone(
        load_default=None,
        metadata={
            "description": "Optional phone number in international (E.164) format; spaces and dashes are dropped.",
            "example": "+15550100",
            "pattern": PHONE_PATTERN,
        },
    )

    email = _Email(load_default=None, metadata={"example": "ana.silva@example.org"})
    contact_consent = fields.List(
        _Choice(CONTACT_CHANNELS),
        load_default=list,
        validate=_distinct("Each channel may be listed only once."),
        error_messages={"invalid": "Must be a list of channels."},
        metadata={
            "description": "The channels the patient agreed to be told about their appointment on: "
            "sms needs phone, email needs email. Absent means none.",
            "example": ["sms"],
            "uniqueItems": True,
            "default": [],
        },
    )

    @validates("birth_date")
    def _plausible_birth_date(self, value: date, **_kwargs) -> None:
        _check_past_date(value, self.today())

    # Not skipped on field errors, so a consent without its address is named together with the
    # patient's other mistakes. An address that was sent but refused has its own error already.
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _consent_has_its_address(self, data: dict, original, **_kwargs) -> None:
        sent = original if isinstance(original, dict) else {}
        missing = [CHANNEL_ADDRESS[channel] for channel in data.get("contact_consent", [])
                   if data.get(CHANNEL_ADDRESS[channel]) is None
                   and sent.get(CHANNEL_ADDRESS[channel]) is None]
        if missing:
            raise ValidationError({"contact_consent": [_CONSENT_WITHOUT_ADDRESS[field] for field in missing]})


_CONSENT_WITHOUT_ADDRESS = {
    "phone": "sms needs a phone number: send patient.phone, or leave sms out.",
    "email": "email needs an email address: send patient.email, or leave email out.",
}


def _consent_needs_address() -> list[dict]:
    """PatientSchema._consent_has_its_address for OpenAPI clients (and fuzzers): one case per
    set of channels whose addresses are all sent (JSON Schema 3.0 has no `contains`)."""
    def case(channels: tuple[str, ...]) -> dict:
        addresses = [CHANNEL_ADDRESS[channel] for channel in channels]
        consent = {"items": {"enum": list(channels)}} if channels else {"maxItems": 0}
        return {"properties": {"contact_consent": consent, **{a: {"type": "string"} for a in addresses}},
                **({"required": addresses} if addresses else {})}

    return [case(()), *(case((channel,)) for channel in CONTACT_CHANNELS), case(CONTACT_CHANNELS)]


class ActivitySchema(_StrictSchema):
    sport = bounded_text(
        SPORT_MAX,
        required=True,
        metadata={"description": "Main sport or activity, in the patient's words.", "example": "running"},
    )
    high_impact = StrictBoolean(
        required=True,
        metadata={"description": "Whether it is high-impact (running, jumping, field sports).", "example": True},
    )


class PainSchema(_StrictSchema):
    locations = fields.List(
        _Choice(PAIN_LOCATIONS),
        required=True,
        validate=[
            validate.Length(min=1, max=5, error="Must list 1 to 5 locations."),
            _distinct("Each location may be listed only once."),
        ],
        error_messages={"invalid": "Must be a list of locations."},
        metadata={
            "description": "Where it hurts: 1 to 5 different locations.",
            "example": ["groin"],
            "uniqueItems": True,
        },
    )
    side = _Choice(SIDES, required=True, metadata={"description": "Which hip.", "example": "left"})
    severity = _whole_number(
        PAIN_SCALE_MIN, PAIN_SCALE_MAX, required=True,
        metadata={
            # Not the severe threshold: that is a setting of triage's rule file, which clinicians may change.
            "description": f"Pain on the {PAIN_SCALE_MIN}-{PAIN_SCALE_MAX} numeric rating scale, "
            f"{PAIN_SCALE_MIN} for no pain, {PAIN_SCALE_MAX} for the worst imaginable. "
            "Which ratings count as severe is decided by the triage service's care rules "
            "(GET /v1/rules on the triage service).",
            "example": 8,
        },
    )
    onset = _Choice(
        ONSETS, required=True,
        metadata={"description": "Whether the pain came on suddenly or gradually.", "example": "sudden"},
    )
    started_on = CalendarDate(
        required=True,
        metadata={
            "description": "When the pain started. Not later than tomorrow in UTC (kiosks sit in many time zones).",
            "example": "2026-11-20",
        },
    )
    direct_trauma = _yes_no_unsure("Whether a fall, collision or blow to the hip came first.")

    @validates("started_on")
    def _plausible_start(self, value: date, **_kwargs) -> None:
        _check_past_date(value, self.today())


class FunctionSchema(_StrictSchema):
    joint_locking = _yes_no_unsure("Whether the hip locks or catches.")
    instability = _yes_no_unsure('Whether the hip "gives way".')
    persistent_dysfunction = _yes_no_unsure("Whether running, walking or climbing stairs has been hard for weeks.")


class HomeCareSchema(_StrictSchema):
    measures = fields.List(
        _Choice(HOME_CARE_MEASURES),
        required=True,
        validate=_distinct("Each measure may be listed only once."),
        error_messages={"invalid": "Must be a list of measures."},
        metadata={
            "description": "Measures tried at home, each at most once; may be empty.",
            "example": ["rest", "ice"],
            "uniqueItems": True,
        },
    )
    days = _whole_number(
        0, HOME_CARE_DAYS_MAX, required=True,
        metadata={"description": "For how many days the measures have been tried.", "example": 21},
    )
    improving = _Choice(
        IMPROVING, required=True,
        metadata={"description": "Whether the pain improves with the measures.", "example": "no"},
    )

    # Not skipped on field errors, so that a wrong `days` does not hide a wrong `improving`;
    # each check looks only at values that passed their own validation.
    @validates_schema(skip_on_field_errors=False)
    def _consistent(self, data: dict, **_kwargs) -> None:
        if "measures" not in data:
            return
        errors = {}
        if not data["measures"]:
            if data.get("days", 0) != 0:
                errors["days"] = ["Must be 0 when no home care measures were tried."]
            if data.get("improving", "not_tried") != "not_tried":
                errors["improving"] = ["Must be not_tried when no home care measures were tried."]
        elif data.get("improving") == "not_tried":
            errors["improving"] = ["Must be yes or no when home care measures were tried."]
        if errors:
            raise ValidationError(errors)


class ReportSchema(_StrictSchema):
    """The body of `POST /v1/reports`. Load it to get plain dicts with `datetime.date` values."""

    patient = fields.Nested(
        PatientSchema,
        required=True,
        metadata={
            "description": "Who the report is about. Each channel in contact_consent needs its address: "
            "sms needs phone, email needs email.",
            # The same rule as PatientSchema._consent_has_its_address, as home_care's below.
            "anyOf": _consent_needs_address(),
        },
    )
    activity = fields.Nested(ActivitySchema, required=True, metadata={"description": "The patient's sport."})
    pain = fields.Nested(PainSchema, required=True, metadata={"description": "Where and how it hurts."})
    function = fields.Nested(
        FunctionSchema,
        required=True,
        metadata={"description": "How the hip works: true, false, or null for not sure; every key is required."},
    )
    home_care = fields.Nested(
        HomeCareSchema,
        required=True,
        metadata={
            "description": "What was tried at home. With no measures, days is 0 and improving is not_tried; "
            "with some, improving is yes or no.",
            # The same rule as HomeCareSchema._consistent, for OpenAPI clients (and fuzzers).
            "anyOf": [
                {"properties": {"measures": {"maxItems": 0}, "days": {"enum": [0]},
                                "improving": {"enum": ["not_tried"]}}},
                {"properties": {"measures": {"minItems": 1},
                                "improving": {"enum": [v for v in IMPROVING if v != "not_tried"]}}},
            ],
        },
    )

    # Issue 18: the language the patient filled the report in; triage writes the outcome's
    # advice and reasons in it. Optional, so that kiosks written before it still send English.
    language = _Choice(REPORT_LANGUAGES, load_default=DEFAULT_LANGUAGE, metadata={
        "description": "The language the report was filled in (BCP 47 primary tag); the outcome's advice "
        "and reasons come in it. Default en.", "example": "es"})

    @validates_schema(skip_on_field_errors=False)
    def _pain_after_birth(self, data: dict, **_kwargs) -> None:
        # Only valid values reach here; a section with errors may be partial or absent.
        born = (data.get("patient") or {}).get("birth_date")
        started = (data.get("pain") or {}).get("started_on")
        if born and started and started < born:
            raise ValidationError({"pain": {"started_on": ["Cannot be before the birth date."]}})
