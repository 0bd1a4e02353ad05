"""POST /v1/referrals/<id>/contacted (scheduler or admin): a person reached the patient by
phone, so the referral is no longer "contact needed" until a newer message fails, is
uncertain or is not sent (docs/patient-messages.md).

Its body is optional ({"note": ...}, or nothing at all, as `complete` takes none): an empty
body is no body; any other body must be strict JSON, sent as application/json.
"""
from __future__ import annotations

from functools import wraps

from flask import request
from marshmallow.utils import missing

from services.common.auth import require_staff
from services.common.errors import ApiError
from services.common.json_body import Blueprint, StrictJSONParser

from .. import contact
from .referrals import run_referral_command
from .schemas import ContactedSchema, ReferralDetailSchema


class _OptionalBodyParser(StrictJSONParser):
    """An empty body reads as {} (every field optional); anything else as strict JSON."""

    def load_json(self, req, schema):
        if not req.get_data(cache=True):
            return missing
        return super().load_json(req, schema)


class _OptionalBodyBlueprint(Blueprint):
    ARGUMENTS_PARSER = _OptionalBodyParser()


blp = _OptionalBodyBlueprint("contact", __name__,
                             description="Patient contact: marking a patient reached after a message could not be "
                                         "delivered (docs/patient-messages.md)")


def json_if_any_body(view):
    """415 for a body that is not application/json; no body at all is fine."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if request.get_data(cache=True) and request.mimetype != "application/json":
            raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
        return view(*args, **kwargs)

    return wrapper


def _mark_contacted(note):
    def command(conn, referral_id, *, actor, now, traceparent):
        contact.mark_contacted(conn, referral_id, note, actor=actor, now=now)
    return command


@blp.route("/v1/referrals/<referral_id>/contacted", methods=["POST"])
@require_staff()
@json_if_any_body
@blp.arguments(ContactedSchema, required=False,
               description="Optional. `note`: what was agreed on the phone; kept with the contact.")
@blp.response(200, ReferralDetailSchema, description="Marked contacted: `contact.needed` is false until a newer "
                                                     "message fails, is uncertain or is not sent.")
@blp.alt_response(401, description="No valid staff token")
@blp.alt_response(403, description="`csrf_failed`: the queue page's session cookie without its X-CSRF-Token")
@blp.alt_response(404, description="No such referral")
@blp.alt_response(422, description="Invalid body (`note`)")
def contacted(body, referral_id):
    return run_referral_command(_mark_contacted(body.get("note")), "contacted", referral_id)
