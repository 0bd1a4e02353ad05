"""Request bodies read as strict JSON, within the size limit, for every service's API."""
from __future__ import annotations

import json
from functools import wraps

import flask_smorest
from flask import request
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class StrictJSONParser(FlaskParser):
    """Reads the body as RFC 8259 JSON.

    webargs would take an empty body as "no data" (a 422 listing every section as
    missing) and Python's json module accepts NaN and Infinity; for a kiosk both are
    an unreadable body: 400. Shared by the three services' JSON APIs.
    """

    def load_json(self, req, schema):
        # A Content-Length over MAX_CONTENT_LENGTH is refused (413) before anything is read.
        data = req.get_data(cache=True)
        limit = req.max_content_length
        if req.content_length is None and limit is not None and len(data) >= limit:
            # A chunked body: werkzeug stops reading at the limit and hands over what it has,
            # so a longer body would look merely truncated (a 400, or worse, a valid prefix).
            # The server ends the chunked stream itself, so peeking past the limit is safe.
            if req.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
        try:
            return json.loads(data, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
            raise ApiError(400, "bad_request", "The request body is not valid JSON.") from None


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
