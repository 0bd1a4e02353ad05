"""SMS text in the GSM 03.38 default alphabet (pure): one message of at most 160 septets.

Characters of the extension table (€ [ ] { } ~ ^ | and \\) take two septets each (an escape
and the character). Anything outside both tables is replaced: by a GSM look-alike where
one is obvious (curly quotes, dashes, accented letters without their accent), else by '?'.
A text that is still too long is cut at a word where possible and ends with '...'.
"""
from __future__ import annotations

import unicodedata

SMS_SEPTETS = 160

BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENDED = set("^{}\\[~]|€")  # the form feed of the table is left out: it has no place in an SMS

_LOOK_ALIKES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "`": "'", "´": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "«": '"', "»": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\t": " ", "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " ",
    "œ": "oe", "Œ": "OE", "ð": "d", "þ": "th", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
}


def septets(text: str) -> int:
    """How many septets `text` takes (it must be GSM-7 already)."""
    return sum(2 if char in EXTENDED else 1 for char in text)


def is_gsm7(text: str) -> bool:
    return all(char in BASIC or char in EXTENDED for char in text)


def _replace(char: str) -> str:
    if char in BASIC or char in EXTENDED:
        return char
    if char in _LOOK_ALIKES:
        return _LOOK_ALIKES[char]
    # The letter without its accent (ê -> e), when that is GSM.
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if base and all(c in BASIC for c in base):
        return base
    if unicodedata.category(char).startswith("Z"):
        return " "
    return "?"


def to_gsm7(text: str) -> str:
    """`text` with every character outside GSM-7 replaced."""
    return "".join(_replace(char) for char in text)


def fit(text: str, limit: int = SMS_SEPTETS) -> str:
    """`text` in GSM-7, at most `limit` septets: cut at the last word that fits, with '...'."""
    text = to_gsm7(text)
    if septets(text) <= limit:
        return text
    room = limit - 3
    cut, used = 0, 0
    for index, char in enumerate(text):
        used += septets(char)
        if used > room:
            break
        cut = index + 1
    head = text[:cut]
    word_end = head.rfind(" ")
    if word_end > room // 2:  # a word boundary not too far back
        head = head[:word_end]
    return head.rstrip() + "..."
