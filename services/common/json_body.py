"""Request bodies read as strict JSON, within the size limit, for every service's API."""
from __future__ import annotations

import json
from functools import wraps

import flask_smorest
from flask import request
from flask.json.provider import DefaultJSONProvider
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError

# No request body of ours nests deeper than 3 levels (a report's sections, a slot list);
# 32 leaves room and keeps the parser (and marshmallow after it) far from Python's
# recursion limit. Without it a 64 KiB body of "[" nested 65,000 deep was a RecursionError: a 500.
MAX_JSON_DEPTH = 32

_OPEN, _CLOSE, _QUOTE, _BACKSLASH = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("\\")

NOT_JSON = "The request body is not valid JSON."
_TOO_LARGE = "clinic.body_too_large"  # in the WSGI environ: read_json found the chunked body over the limit
TOO_DEEP = f"The request body nests JSON deeper than {MAX_JSON_DEPTH} levels."


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def json_depth(data: bytes | str) -> int:
    """How deep arrays and objects nest in `data`, brackets inside strings not counted.

    A linear scan that never recurses, so it is safe on any input; it does not validate
    (json.loads does that next), it only tells whether parsing is safe to try.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
        elif byte in _CLOSE:
            depth -= 1
    return deepest


def loads_strict(data: bytes | str):
    """RFC 8259 JSON (no NaN/Infinity), at most MAX_JSON_DEPTH deep; else ApiError 400."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    # Counting brackets runs at C speed; only a body with that many is scanned byte by byte.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, "bad_request", TOO_DEEP)
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):  # JSONDecodeError is a ValueError
        raise ApiError(400, "bad_request", NOT_JSON) from None


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading with loads_strict: `request.get_json()` anywhere in a service
    (a page's form post, a view reading its body itself) has the same limits as the APIs."""

    def loads(self, s, **kwargs):
        return loads_strict(s)


class StrictJSONParser(FlaskParser):
    """Reads the body as RFC 8259 JSON.

    webargs would take an empty body as "no data" (a 422 listing every section as
    missing) and Python's json module accepts NaN and Infinity; for a kiosk both are
    an unreadable body: 400. Shared by the three services' JSON APIs.
    """

    def load_json(self, req, schema):
        return read_json(req)


def read_json(req=None):
    """The request's body as strict JSON (loads_strict), within MAX_CONTENT_LENGTH: for a
    view that reads its body itself (a body that may be an object or a list)."""
    req = req or request
    # A Content-Length over MAX_CONTENT_LENGTH is refused (413) before anything is read.
    data = req.get_data(cache=True)
    limit = req.max_content_length
    if req.content_length is None and limit is not None and len(data) >= limit:
        # A chunked body: werkzeug stops reading at the limit and hands over what it has,
        # so a longer body would look merely truncated (a 400, or worse, a valid prefix).
        # The server ends the chunked stream itself, so peeking past the limit is safe. The
        # answer is kept: the peek consumed the byte, so a second call (intake's POST reads its
        # body before and after the key's check) would not see it again.
        if req.environ.get(_TOO_LARGE) or req.environ["wsgi.input"].read(1):
            req.environ[_TOO_LARGE] = True
            raise RequestEntityTooLarge()
    return loads_strict(data)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading JSON bodies with StrictJSONParser."""

    ARGUMENTS_PARSER = StrictJSONParser()


def require_json(view):
    """415 before anything reads the body: only application/json is a JSON body here."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if request.mimetype != "application/json":
            raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
        return view(*args, **kwargs)

    return wrapper
