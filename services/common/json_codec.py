"""How Python values become JSON for PostgreSQL (psycopg's Jsonb parameters): orjson.

The standard library's encoder was a tenth of a draining triage worker's consumer thread
(issue 15: its decisions and events, ~2 KB each); orjson encodes them about ten times
faster. A value orjson refuses (an integer beyond 64 bits, an unsupported type) goes through
the standard library as before, so what can and cannot be stored stays the same, but for
two things the services never send, their schemas refuse them first: a NaN float (null
here, refused by PostgreSQL before) and a date or datetime value (ISO 8601 here, a
TypeError before). The JSON text differs only in spacing and in escaping non-ASCII
characters, which jsonb does not keep."""
from __future__ import annotations

import json

import orjson
from psycopg.types.json import set_json_dumps

# Keys that are not strings are written as the standard library writes them (1 -> "1").
_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: object) -> bytes | str:
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value)


def use_for_postgres() -> None:
    """Make `dumps` psycopg's JSON encoder in this process (called once at its start)."""
    set_json_dumps(dumps)
