"""GET /queue: the schedulers' page. Sign-in with a staff token, then the live queue,
which the page's script reads and changes through the JSON API with the session cookie.

Sessions are server-side (services/common/sessions.py, rows in referral.staff_sessions):
the cookie holds an opaque random id, the table only its hash. Sign-out deletes the row, a
revoked token ends every session of its member at once (joined at every request), and a
session ends after CLINIC_SESSION_IDLE_MINUTES without activity (the page's own periodic
refresh does not count) or CLINIC_SESSION_MAX_HOURS after sign-in.

Against cross-site requests, beyond SameSite=Strict: the sign-in form carries a token bound
to a pre-sign-in cookie (an HMAC of its random value under the service's key), the
sign-out form and every API write authenticated by the cookie carry the session's own CSRF
token (X-CSRF-Token for the API: a header no cross-site form can set, and no cross-site
script can without CORS). Failed sign-ins count towards the failed-authentication limits
(services/common/auth.py) as bearer tokens do.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for

from services.common import sessions
from services.common.auth import (bearer_token, blocked_for, count_failure, current_staff, hash_secret,
                                  identified, session_store)
from services.common.errors import ApiError
from services.common.identity import identify_staff

from .api.common import pool

bp = Blueprint("queue_page", __name__, template_folder="templates", static_folder="static",
               static_url_path="/queue/static")

CSRF_HEADER = "X-CSRF-Token"
SIGNIN_COOKIE = "clinic_signin"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The page loads only its own script and styles; nothing may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _same(sent: str | None, expected: str | None) -> bool:
    return bool(sent and expected) and hmac.compare_digest(sent, expected)


def _signin_token(nonce: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"queue-sign-in:" + nonce.encode(), hashlib.sha256).hexdigest()


def _signin_page(status: int = 200, error: str | None = None, retry_after: int | None = None):
    """The sign-in form, with a form token bound to the pre-sign-in cookie (set if missing)."""
    nonce = sessions.read_cookie(request, SIGNIN_COOKIE)
    fresh = nonce is None
    if fresh:
        nonce = secrets.token_urlsafe(32)
    response = current_app.make_response(
        (render_template("signin.html", csrf_token=_signin_token(nonce), error=error), status, PAGE_HEADERS))
    if fresh:
        sessions.set_cookie(response, request, nonce, max_age=None, base=SIGNIN_COOKIE)
    if sessions.read_cookie(request):  # an ended session's cookie: forget it
        sessions.clear_cookie(response, request)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.get("/queue")
def queue():
    staff = current_staff() if sessions.read_cookie(request) else None
    if staff is None:
        return _signin_page()
    return render_template("queue.html", staff=staff, csrf_token=g.staff_session.csrf_token), 200, PAGE_HEADERS


def _too_many(retry_after: int):
    minutes = max(1, round(retry_after / 60))
    return _signin_page(429, f"Too many failed sign-ins from here. Try again in {minutes} "
                             f"minute{'s' if minutes != 1 else ''}.", retry_after)


@bp.post("/queue/sign-in")
def sign_in():
    nonce = sessions.read_cookie(request, SIGNIN_COOKIE)
    if not (nonce and _same(request.form.get("csrf_token"), _signin_token(nonce))):
        return _signin_page(403, "The form had expired. Please sign in again.")
    token = (request.form.get("token") or "").strip()
    if not token:
        return _signin_page(401, "Enter your staff token.")
    if (retry_after := blocked_for(token)) is not None:
        return _too_many(retry_after)
    store = session_store()
    with pool().connection() as conn:
        found = identify_staff(conn, hash_secret(token))
        if found and found[1]:
            if old := sessions.read_cookie(request):
                store.end(conn, old)
            session_id, _session = store.start(conn, found[0])
    if not (found and found[1]):
        identified("staff_token" if found else "bearer", found[0].staff_id if found else None)
        if (retry_after := count_failure(token)) is not None:
            return _too_many(retry_after)
        return _signin_page(401, "That token is not valid, or it was revoked.")
    identified("staff_token", found[0].staff_id)
    response = redirect(url_for("queue_page.queue"), code=303)
    sessions.set_cookie(response, request, session_id, max_age=store.cookie_max_age)
    sessions.clear_cookie(response, request, SIGNIN_COOKIE)
    return response


@bp.post("/queue/sign-out")
def sign_out():
    response = redirect(url_for("queue_page.queue"), code=303)
    session_id = sessions.read_cookie(request)
    if session_id is None:
        return response
    current_staff()
    session = g.get("staff_session")
    if session is None or _same(request.form.get("csrf_token"), session.csrf_token):
        with pool().connection() as conn:
            session_store().end(conn, session_id)
        sessions.clear_cookie(response, request)
    return response


def protect_cookie_writes() -> None:
    """Refuse API writes that ride on the session cookie without the session's CSRF token."""
    if request.method in SAFE_METHODS or request.blueprint == bp.name:
        return
    if bearer_token() or not sessions.read_cookie(request):
        return  # a bearer client, or no cookie credential at all (require_staff answers 401)
    current_staff()
    session = g.get("staff_session")
    if session is not None and not _same(request.headers.get(CSRF_HEADER), session.csrf_token):
        raise ApiError(403, "csrf_failed", f"Send the page's {CSRF_HEADER} header with this request.")


def init_app(app: Flask) -> None:
    settings = app.extensions["clinic"].settings
    app.extensions["clinic_sessions"] = sessions.SessionStore(
        settings.service, idle=timedelta(minutes=settings.session_idle_minutes),
        max_age=timedelta(hours=settings.session_max_hours))
    app.register_blueprint(bp)
    app.before_request(protect_cookie_writes)
