"""GET /queue: the schedulers' page. Sign-in with a staff token, then the live queue,
which the page's script reads and changes through the JSON API with the session cookie.

The cookie (signed, HttpOnly, SameSite=Strict) holds only the token's hash, checked against
identity.staff on every request, so a revoked token stops working at once. Against
cross-site requests, beyond SameSite: the sign-in and sign-out forms carry a per-session
token, and any API write authenticated by the cookie must echo it in X-CSRF-Token (a
header no cross-site form can set, and no cross-site script can without CORS).
"""
from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, Flask, redirect, render_template, request, session, url_for

from services.common.auth import bearer_token, current_staff, hash_secret
from services.common.errors import ApiError
from services.common.identity import find_staff

from .api.common import pool

bp = Blueprint("queue_page", __name__, template_folder="templates", static_folder="static",
               static_url_path="/queue/static")

CSRF_HEADER = "X-CSRF-Token"
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


def csrf_token() -> str:
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def _csrf_ok(sent: str | None) -> bool:
    expected = session.get("csrf_token")
    return bool(expected and sent) and hmac.compare_digest(sent, expected)


def _page(template: str, status: int = 200, **context):
    return render_template(template, csrf_token=csrf_token(), **context), status, PAGE_HEADERS


@bp.get("/queue")
def queue():
    staff = current_staff() if "staff_token_hash" in session else None
    if staff is None:
        session.pop("staff_token_hash", None)  # revoked meanwhile: back to the sign-in form
        return _page("signin.html")
    return _page("queue.html", staff=staff)


@bp.post("/queue/sign-in")
def sign_in():
    if not _csrf_ok(request.form.get("csrf_token")):
        return _page("signin.html", 403, error="The form had expired. Please sign in again.")
    token = (request.form.get("token") or "").strip()
    staff = None
    if token:
        with pool().connection() as conn:
            staff = find_staff(conn, hash_secret(token))
    if staff is None:
        return _page("signin.html", 401, error="That token is not valid, or it was revoked.")
    session.clear()  # a fresh session (and CSRF token) for the signed-in staff member
    session["staff_token_hash"] = hash_secret(token)
    csrf_token()
    return redirect(url_for("queue_page.queue"), code=303)


@bp.post("/queue/sign-out")
def sign_out():
    if _csrf_ok(request.form.get("csrf_token")):
        session.clear()
    return redirect(url_for("queue_page.queue"), code=303)


def protect_cookie_writes() -> None:
    """Refuse API writes that ride on the session cookie without the page's CSRF token."""
    if request.method in SAFE_METHODS or request.blueprint == bp.name:
        return
    if bearer_token() or "staff_token_hash" not in session:
        return  # a bearer client, or no cookie credential at all (require_staff answers 401)
    if not _csrf_ok(request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf_failed", f"Send the page's {CSRF_HEADER} header with this request.")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(protect_cookie_writes)
