"""Marshmallow fields the intake and referral APIs both accept, with one set of messages.

Both APIs answer people (a kiosk, a scheduler's page), so a value refused by one is
refused by the other in the same words.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from datetime import date

from marshmallow import fields

# `date.fromisoformat` also takes "20261120" and "2026-W47-5"; the contract means calendar dates.
CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# What str.strip() takes off both ends (str.isspace), and what may never be inside: control
# characters (Cc), invisible format characters (Cf: bidi overrides and isolates, zero-width
# spaces and joiners, the BOM, tag characters), lone surrogates (Cs). Cf characters can
# make a name display as another (U+202E turns "Silva" around) or two look-alike MRNs differ.
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs")


def _chars(test) -> list[int]:
    return [code for code in range(sys.maxunicode + 1) if test(chr(code))]


def _char_class(codes: list[int]) -> str:
    """The inside of a regex character class for these code points, as ranges.

    BMP code points are written \\uXXXX (read alike by ECMA-262, Python and Rust regexes);
    astral ones literally (a JSON document carries them as surrogate-pair escapes).
    """
    def one(code: int) -> str:
        return f"\\u{code:04X}" if code <= 0xFFFF else chr(code)

    parts, start = [], None
    for i, code in enumerate(codes):
        if start is None:
            start = code
        if i + 1 == len(codes) or codes[i + 1] != code + 1:
            parts.append(one(start) if start == code else f"{one(start)}-{one(code)}")
            start = None
    return "".join(parts)


def space_class() -> str:
    """What str.isspace takes, as a character class."""
    return _char_class(_chars(str.isspace))


def refused_class() -> str:
    """Control and format characters (Cc, Cf), as a character class. Lone surrogates (Cs)
    stay out: a JSON Schema regex engine working on code points (Rust's, which schemathesis
    validates with) cannot name them, and no UTF-8 text holds one; only a "\\ud800" escape
    in JSON can, and the field refuses it."""
    return _char_class(_chars(lambda char: unicodedata.category(char) in ("Cc", "Cf")))


# The two classes as space_class() and refused_class() compute them from Python 3.11's
# Unicode 14.0.0, written out: computing them scans all 1.1 million code points, over a
# second at every process start. tests/unit/test_text_field_classes.py recomputes them, so a
# Python with another Unicode version fails the test instead of drifting from it.
_SPACE = '\\u0009-\\u000D\\u001C-\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028-\\u2029\\u202F\\u205F\\u3000'
_REFUSED = ('\\u0000-\\u001F\\u007F-\\u009F\\u00AD\\u0600-\\u0605\\u061C\\u06DD\\u070F'
             '\\u0890-\\u0891\\u08E2\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2064'
             '\\u2066-\\u206F\\uFEFF\\uFFF9-\\uFFFB\U000110bd\U000110cd\U00013430-\U00013438'
             '\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f')


def text_pattern(max_length: int) -> str:
    """The JSON Schema `pattern` of a Text field: exactly the strings the field accepts.

    Surrounding whitespace (dropped), then 1 to `max_length` characters that start and end
    with a visible one, none of them a control or format character (nor a lone surrogate,
    which the pattern cannot name: see _REFUSED).
    """
    edge = f"[^{_SPACE}{_REFUSED}]"
    return f"^[{_SPACE}]*{edge}(?:[^{_REFUSED}]{{0,{max_length - 2}}}{edge})?[{_SPACE}]*$"


class Text(fields.String):
    """One line of text: surrounding spaces trimmed, blank refused, at most `max_length`
    characters counted after trimming.

    Control characters and lone surrogates are refused because they cannot be shown on
    a kiosk or a scheduler's page, and PostgreSQL rejects NUL in text outright; Unicode
    format characters (category Cf: bidi controls, zero-width characters) because they are
    invisible: a name or MRN with them looks like another. The OpenAPI document carries the
    same rule as `minLength` and `pattern` (text_pattern), so a client can check before sending.
    """

    default_error_messages = {
        "invalid": "Must be text.",
        "blank": "Must not be blank.",
        "control": "Must not contain line breaks or control characters.",
        "format": "Must not contain invisible formatting characters (Unicode category Cf, such as "
                  "bidi controls or zero-width spaces).",
        "too_long": "Must be at most {max_length} characters.",
    }

    def __init__(self, *, max_length: int = 1000, **kwargs):
        self.max_length = max_length
        metadata = dict(kwargs.pop("metadata", None) or {})
        description = metadata.get("description", "")
        metadata.update(
            minLength=1,
            pattern=text_pattern(max_length),
            description=(description + " " if description else "")
            + f"1 to {max_length} characters after surrounding spaces are trimmed; no line breaks, "
              "control characters or invisible formatting characters (Unicode Cf).",
        )
        # No maxLength in the schema: the limit counts characters after trimming, which the
        # pattern expresses and maxLength (counting the spaces too) would not.
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):  # String would also take bytes
            raise self.make_error("invalid")
        text = value.strip()
        if not text:
            raise self.make_error("blank")
        categories = {unicodedata.category(char) for char in text}
        if categories.intersection(("Cc", "Cs")):
            raise self.make_error("control")
        if "Cf" in categories:
            raise self.make_error("format")
        if len(text) > self.max_length:
            raise self.make_error("too_long", max_length=self.max_length)
        return text


def bounded_text(max_length: int, **kwargs) -> Text:
    """Text of at most `max_length` characters, counted after trimming."""
    return Text(max_length=max_length, **kwargs)


class CalendarDate(fields.Date):
    """A date written YYYY-MM-DD, and only so."""

    default_error_messages = {"invalid": "Must be a date in the form YYYY-MM-DD."}

    def _deserialize(self, value, attr, data, **kwargs) -> date:
        if not isinstance(value, str) or not CALENDAR_DATE.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON true/false: marshmallow's Boolean would also take "yes", 1, "off"..."""

    default_error_messages = {"invalid": "Must be true or false."}

    def _deserialize(self, value, attr, data, **kwargs) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid")
