"""Marshmallow fields the intake and referral APIs both accept, with one set of messages.

Both APIs answer people (a kiosk, a scheduler's page), so a value refused by one is
refused by the other in the same words.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date

from marshmallow import fields, validate

# `date.fromisoformat` also takes "20261120" and "2026-W47-5"; the contract means calendar dates.
CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Text(fields.String):
    """One line of text: surrounding spaces trimmed, blank refused.

    Control characters and lone surrogates are refused because they cannot be shown on
    a kiosk or a scheduler's page, and PostgreSQL rejects NUL in text outright.
    """

    default_error_messages = {
        "invalid": "Must be text.",
        "blank": "Must not be blank.",
        "control": "Must not contain line breaks or control characters.",
    }

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):  # String would also take bytes
            raise self.make_error("invalid")
        text = value.strip()
        if not text:
            raise self.make_error("blank")
        if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
            raise self.make_error("control")
        return text


def bounded_text(max_length: int, **kwargs) -> Text:
    """Text of at most `max_length` characters, counted after trimming."""
    return Text(validate=validate.Length(max=max_length, error=f"Must be at most {max_length} characters."),
                **kwargs)


class CalendarDate(fields.Date):
    """A date written YYYY-MM-DD, and only so."""

    default_error_messages = {"invalid": "Must be a date in the form YYYY-MM-DD."}

    def _deserialize(self, value, attr, data, **kwargs) -> date:
        if not isinstance(value, str) or not CALENDAR_DATE.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)
