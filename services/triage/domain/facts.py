"""Reads the answers of a symptom report into facts the conditions test.

Every answer is either a readable value or UNKNOWN. "Not sure" (null), a
missing key, a wrong type or an out-of-range value all become UNKNOWN: the
conditions then count them as met, so an unknown can never lower the level.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime

from .vocabulary import FIELDS, Field, FieldKind


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()

# The contract lets kiosks send tomorrow's date (time zones); anything later is
# implausible and read as unknown rather than as "pain just started".
_FUTURE_DAYS_TOLERATED = 1

_EMPTY: Mapping = {}


def read_facts(report: Mapping, today: date) -> dict[str, object]:
    """One fact per field of the vocabulary; `patient` and unknown keys are ignored."""
    if not _is_mapping(report):
        raise TypeError(f"report must be a mapping, got {type(report).__name__}")
    if isinstance(today, datetime) or not isinstance(today, date):
        raise TypeError("today must be a date (today in UTC), not a datetime")
    sections = {}
    for name in _SECTIONS:
        section = report.get(name, _EMPTY)
        sections[name] = section if _is_mapping(section) else _EMPTY   # unreadable section: all unknown
    return {field.name: _read(field, sections[field.section].get(field.key, UNKNOWN), today)
            for field in _FIELDS}


_FIELDS = tuple(FIELDS.values())
_SECTIONS = tuple(dict.fromkeys(field.section for field in _FIELDS))


def _is_mapping(value: object) -> bool:
    return type(value) is dict or isinstance(value, Mapping)   # dict first: the ABC check is slow


def _read(field: Field, raw: object, today: date) -> object:
    if raw is UNKNOWN:
        return UNKNOWN
    if field.kind is FieldKind.YES_NO:
        # bool only: null means "not sure"; 1, "yes" etc. are unreadable
        return raw if isinstance(raw, bool) else UNKNOWN
    if field.kind is FieldKind.NUMBER:
        if field.days_since:
            return _days_since(raw, today)
        return _whole_number(raw, field.low, field.high)
    if field.kind is FieldKind.CHOICE:
        return raw if isinstance(raw, str) and raw in field.values else UNKNOWN
    if field.kind is FieldKind.TEXT:
        words = words_of(raw) if isinstance(raw, str) else ()
        return words or UNKNOWN   # no readable word: unknown, like any unreadable answer
    return _choices(raw, field)


_WORD = re.compile(r"[^\W_]+")


def words_of(text: str) -> tuple[str, ...]:
    """The words of free text, case- and accent-folded: "Trail-Running, Équipe" ->
    ("trail", "running", "equipe"). Words are runs of letters and digits of any script."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return tuple(_WORD.findall(plain))


def _whole_number(raw: object, low: int | None, high: int | None) -> object:
    if not isinstance(raw, int) or isinstance(raw, bool):
        return UNKNOWN
    if (low is not None and raw < low) or (high is not None and raw > high):
        return UNKNOWN
    return raw


def _days_since(raw: object, today: date) -> object:
    if isinstance(raw, str):
        try:
            started = date.fromisoformat(raw)
        except ValueError:
            return UNKNOWN
    elif isinstance(raw, date) and not isinstance(raw, datetime):
        started = raw
    else:
        return UNKNOWN
    days = (today - started).days
    if days < -_FUTURE_DAYS_TOLERATED:
        return UNKNOWN
    return max(days, 0)


def _choices(raw: object, field: Field) -> object:
    """(readable values, whether some items were unreadable), or UNKNOWN."""
    if not isinstance(raw, (list, tuple)) or len(raw) < field.min_items:
        return UNKNOWN
    # One pass (a tenth of read_facts' time went to two): an item is unreadable when it is
    # not kept, so some are exactly when fewer are kept than were given.
    values = field.values
    kept = [item for item in raw if isinstance(item, str) and item in values]
    return (frozenset(kept), len(kept) < len(raw))
