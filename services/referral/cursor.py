"""Opaque keyset cursors: the sort key of the last item of a page, as base64url JSON.

Clients pass the cursor back unchanged; they must not build or parse it, so its
content may change between versions (a stale cursor is a 422, never a wrong page).
"""
from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

VERSION = 1


class InvalidCursor(ValueError):
    """Not a cursor this service issued for this list."""


def encode(kind: str, *key) -> str:
    parts = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps([VERSION, kind, *parts], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, kind: str, types: tuple[type, ...]) -> tuple:
    """The key encoded by `encode(kind, ...)`, each part converted to its type."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, found_kind, *parts = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidCursor("not a cursor") from None
    if version != VERSION or found_kind != kind or len(parts) != len(types):
        raise InvalidCursor("a cursor from another list or version")
    try:
        return tuple(_convert(part, to) for part, to in zip(parts, types))
    except (ValueError, TypeError, AttributeError):
        raise InvalidCursor("a damaged cursor") from None


def _convert(value, to: type):
    if to is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive time in cursor")
        return parsed
    if to is uuid.UUID:
        return str(uuid.UUID(value))
    if to is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError("not an integer")
    return to(value)
