"""Bearer credentials. Keys and tokens are random (256 bits) and stored only as SHA-256
hashes: with that much entropy a slow password hash adds nothing, and a fast one keeps
per-request checks cheap."""
from __future__ import annotations

import hashlib
import secrets
from functools import wraps

from flask import current_app, g, request, session

from .errors import ApiError
from .identity import STAFF_ROLES, StaffMember, find_staff


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_staff() -> StaffMember | None:
    """Staff from the bearer token, or from the signed session cookie of the queue page.

    The cookie holds the token's hash, which is checked against identity.staff on every
    request, so a revocation takes effect at once.
    """
    if "staff" in g:
        return g.staff
    token = bearer_token()
    token_hash = hash_secret(token) if token else session.get("staff_token_hash")
    staff = None
    if token_hash:
        with current_app.extensions["clinic"].pool.connection() as conn:
            staff = find_staff(conn, token_hash)
    g.staff = staff
    return staff


def require_staff(*roles: str):
    allowed = roles or STAFF_ROLES

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            staff = current_staff()
            if staff is None:
                raise ApiError(401, "unauthorized", "A valid staff token is required.")
            if staff.role not in allowed:
                raise ApiError(403, "forbidden", f"This action needs the role: {' or '.join(allowed)}.")
            return view(*args, **kwargs)

        return wrapper

    return decorator
