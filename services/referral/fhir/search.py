"""The search parameters each resource type supports, and parsing a query string into them.

One declaration per parameter (name, FHIR type, what it does, its parser): the searches
answer exactly these, and the CapabilityStatement (capability.py) lists exactly these.
Pure: no Flask, no SQL. A bad value is a SearchError naming the parameter (HTTP 400); an
unknown parameter too, unless the client asked for lenient handling (then it is ignored,
and left out of the self link).

Dates follow FHIR's search rules: a value is a range as precise as it is written (a day, a
minute...), in UTC when it has no time; eq/ge/gt/le/lt compare the field with that range.
Tokens take one value (no comma lists); `system|code` is checked against the code system.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .ids import (
    APPOINTMENT_STATUS_SYSTEM,
    MRN_SYSTEM,
    REQUEST_PRIORITY_SYSTEM,
    REQUEST_STATUS_SYSTEM,
    SLOT_STATUS_SYSTEM,
)

DEFAULT_COUNT = 50
MAX_COUNT = 200
COUNT = "_count"
CURSOR = "_cursor"    # only in the next links this server writes
FORMAT = "_format"
JSON_FORMATS = ("json", "application/json", "application/fhir+json", "application/json+fhir")


class SearchError(ValueError):
    """A parameter this server cannot take; `code` is the OperationOutcome issue code."""

    def __init__(self, parameter: str, message: str, code: str = "invalid"):
        super().__init__(message)
        self.parameter = parameter
        self.message = message
        self.code = code


class NoMatch:
    """A well-formed value that no resource here can have (another code system, an id that
    is not one of ours): the search answers an empty page."""

    def __repr__(self) -> str:
        return "NO_MATCH"


NO_MATCH = NoMatch()


# -- values ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DateBound:
    """`column op at`, op one of >=, <."""

    op: str
    at: datetime


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?"
                   r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_SUPPORTED_PREFIXES = ("eq", "gt", "lt", "ge", "le")


def _date_range(name: str, text: str) -> tuple[datetime, datetime]:
    """[start, end) of a FHIR date/dateTime as precise as written."""
    match = _DATE.match(text)
    if not match:
        raise SearchError(name, f"{name}: '{text}' is not a FHIR date or dateTime (e.g. 2026-12-01 or "
                                f"2026-12-01T09:00:00Z).")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if hour is not None and zone is None:
        raise SearchError(name, f"{name}: a time needs a time zone (Z or +hh:mm).")
    try:
        if hour is None:
            start = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
            if day is not None:
                return start, start + timedelta(days=1)
            if month is not None:
                return start, (start.replace(day=28) + timedelta(days=4)).replace(day=1)
            return start, start.replace(year=start.year + 1)
        start = datetime.fromisoformat(
            f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}{(fraction or '')[:7]}"
            f"{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        raise SearchError(name, f"{name}: '{text}' is not a valid date or time.") from None
    precision = (timedelta(microseconds=1) if fraction else timedelta(seconds=1) if second
                 else timedelta(minutes=1))
    return start, start + precision


def parse_date(name: str, value: str) -> tuple[DateBound, ...]:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    if prefix not in _SUPPORTED_PREFIXES:
        raise SearchError(name, f"{name}: the prefix '{prefix}' is not supported (eq, ge, gt, le, lt are).",
                          code="not-supported")
    start, end = _date_range(name, value[2:] if value[:2] in _PREFIXES else value)
    return {"eq": (DateBound(">=", start), DateBound("<", end)), "ge": (DateBound(">=", start),),
            "gt": (DateBound(">=", end),), "le": (DateBound("<", end),), "lt": (DateBound("<", start),)}[prefix]


def _one_value(name: str, value: str) -> str:
    if "," in value:
        raise SearchError(name, f"{name}: one value only (no comma-separated list).", code="not-supported")
    if not value:
        raise SearchError(name, f"{name}: a value is required.")
    return value


def token(system: str, codes: dict[str, object]) -> Callable[[str, str], object]:
    """A coded value: `code` or `system|code` of the one code system; codes -> what they mean."""

    def parse(name: str, value: str):
        given_system, bar, code = _one_value(name, value).rpartition("|")
        if bar and given_system and given_system != system:
            return NO_MATCH
        if code not in codes:
            raise SearchError(name, f"{name}: must be one of {', '.join(codes)}.")
        return codes[code]

    return parse


def identifier(system: str) -> Callable[[str, str], object]:
    """`value`, `system|value` (only this system matches) or `|value` (no system: none here)."""

    def parse(name: str, value: str):
        given_system, bar, code = _one_value(name, value).partition("|") if "|" in value else ("", "", value)
        if bar and given_system != system:
            return NO_MATCH
        if not code:
            raise SearchError(name, f"{name}: an identifier value is required.")
        return code

    return parse


def reference_to(resource_type: str) -> Callable[[str, str], object]:
    """`Type/id`, `id` or an absolute URL ending in `Type/id`; ids here are UUIDs."""

    def parse(name: str, value: str):
        value = _one_value(name, value)
        parts = value.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] != resource_type:
            raise SearchError(name, f"{name}: must reference a {resource_type} ({resource_type}/<id>).")
        try:
            return str(uuid.UUID(parts[-1]))
        except ValueError:
            return NO_MATCH

    return parse


def parse_count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
        raise SearchError(COUNT, f"_count: must be a whole number from 1 to {MAX_COUNT}.")
    return int(value)


# -- declarations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchParam:
    name: str                # as in the URL
    type: str                # FHIR search parameter type: token, date, reference
    documentation: str
    parse: Callable[[str, str], object] = field(repr=False)
    key: str = ""            # the criterion it sets (aliases share one); default: name
    repeats: bool = False    # may be given more than once (all must hold: dates' ranges)

    @property
    def criterion(self) -> str:
        return self.key or self.name


_SR_STATUS = token(REQUEST_STATUS_SYSTEM, {"active": frozenset({"booked", "waitlisted"}),
                                           "completed": frozenset({"completed"}),
                                           "revoked": frozenset({"cancelled"})})
_PATIENT_IDENTIFIER = identifier(MRN_SYSTEM)
_PATIENT_IDENTIFIER_DOC = (f"The patient's MRN ({MRN_SYSTEM}), compared as patient matching compares MRNs "
                           "(Unicode NFKC, trimmed, case-folded)")

SEARCHES: dict[str, tuple[SearchParam, ...]] = {
    "ServiceRequest": (
        SearchParam("status", "token", "active (booked or waitlisted), completed, revoked (cancelled)", _SR_STATUS),
        SearchParam("priority", "token", "routine or urgent",
                    token(REQUEST_PRIORITY_SYSTEM, {"routine": "routine", "urgent": "urgent"})),
        SearchParam("patient", "reference", "Patient/<id> (ids: docs/fhir.md)", reference_to("Patient")),
        SearchParam("subject", "reference", "Patient/<id>, as patient", reference_to("Patient"), key="patient"),
        SearchParam("patient.identifier", "token", _PATIENT_IDENTIFIER_DOC, _PATIENT_IDENTIFIER),
        SearchParam("subject:Patient.identifier", "token", _PATIENT_IDENTIFIER_DOC, _PATIENT_IDENTIFIER,
                    key="patient.identifier"),
        SearchParam("_lastUpdated", "date", "When the referral last changed; results then come oldest change "
                    "first (else urgent first, then oldest, as the queue)", parse_date, repeats=True),
    ),
    "Appointment": (
        SearchParam("date", "date", "The appointment's start", parse_date, repeats=True),
        SearchParam("status", "token", "booked or fulfilled (a cancelled booking is read by id, or found with "
                    "patient)", token(APPOINTMENT_STATUS_SYSTEM, {"booked": frozenset({"booked"}),
                                                                  "fulfilled": frozenset({"completed"})})),
        SearchParam("patient", "reference", "Patient/<id>: that referral's booking, cancelled ones included",
                    reference_to("Patient")),
    ),
    "Slot": (
        SearchParam("schedule", "reference", "Schedule/<provider id>", reference_to("Schedule")),
        SearchParam("start", "date", "The slot's start", parse_date, repeats=True),
        SearchParam("status", "token", "free or busy", token(SLOT_STATUS_SYSTEM, {"free": False, "busy": True})),
    ),
}


@dataclass(frozen=True)
class Search:
    resource_type: str
    criteria: dict[str, list]          # criterion -> parsed values (all must hold)
    count: int
    cursor: str | None
    applied: list[tuple[str, str]]     # the parameters used, as given: the self link's query

    def one(self, criterion: str):
        values = self.criteria.get(criterion)
        return values[0] if values else None

    @property
    def matches_nothing(self) -> bool:
        return any(value is NO_MATCH for values in self.criteria.values() for value in values)

    def bounds(self, criterion: str) -> list[DateBound]:
        return [bound for value in self.criteria.get(criterion, []) for bound in value]


def parse_search(resource_type: str, args: Iterable[tuple[str, str]], *, lenient: bool) -> Search:
    """The search the query string asks for; SearchError on the first parameter it cannot take."""
    declared = {p.name: p for p in SEARCHES[resource_type]}
    criteria: dict[str, list] = {}
    applied: list[tuple[str, str]] = []
    count, cursor, seen = DEFAULT_COUNT, None, set()
    for name, value in args:
        if name in (COUNT, CURSOR, FORMAT):
            if name in seen:
                raise SearchError(name, f"{name}: given more than once.")
            seen.add(name)
            if name == COUNT:
                count = parse_count(value)
            elif name == CURSOR:
                cursor = value
            elif value not in JSON_FORMATS:
                raise SearchError(name, "_format: this server answers JSON only (json, application/fhir+json).",
                                  code="not-supported")
            if name != CURSOR:
                applied.append((name, value))
            continue
        param = declared.get(name)
        if param is None:
            if lenient:
                continue
            raise SearchError(name, f"Unknown search parameter '{name}' for {resource_type}; supported: "
                                    f"{', '.join(declared)}, _count.", code="not-supported")
        if param.criterion in criteria and not param.repeats:
            raise SearchError(name, f"{name}: given more than once.", code="not-supported")
        criteria.setdefault(param.criterion, []).append(param.parse(name, value))
        applied.append((name, value))
    return Search(resource_type, criteria, count, cursor, applied)


def prefers_lenient(prefer: str | None) -> bool:
    """Prefer: handling=lenient (among other preferences, comma-separated)."""
    return any(part.strip().replace(" ", "").lower() == "handling=lenient" for part in (prefer or "").split(","))
