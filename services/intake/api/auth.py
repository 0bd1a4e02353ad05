"""Kiosk credentials: kiosk keys belong to intake alone."""
from __future__ import annotations

from functools import wraps

from flask import current_app, g

from services.common.auth import bearer_token
from services.common.errors import ApiError

from .. import store


def current_kiosk() -> store.Kiosk | None:
    if "kiosk" not in g:
        token = bearer_token()
        g.kiosk = None
        if token:
            with current_app.extensions["clinic"].pool.connection() as conn:
                g.kiosk = store.find_kiosk(conn, token)
    return g.kiosk


def require_kiosk(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_kiosk() is None:
            raise ApiError(401, "unauthorized", "A valid kiosk key is required.")
        return view(*args, **kwargs)

    return wrapper
