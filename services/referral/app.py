"""Referral API: providers and slots (admin), the schedulers' queue and its page."""
from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import UnprocessableEntity

from services.common import settings as settings_module
from services.common.errors import error_response
from services.common.validation import field_errors
from services.common.web import build_app

from . import page
from .api.contact import blp as contact_blp
from .api.providers import blp as providers_blp
from .api.referrals import blp as referrals_blp
from .api.slots import blp as slots_blp
from .fhir import api as fhir_api


def _argument_errors(exc: UnprocessableEntity):
    """webargs nests errors by location ({"query": {"limit": [...]}}); clients name the parameter."""
    messages = (getattr(exc, "data", None) or {}).get("messages") or {}
    if isinstance(messages, dict) and len(messages) == 1 and next(iter(messages)) in ("json", "query"):
        messages = next(iter(messages.values()))
    return error_response(422, "validation_failed", "Some fields are not valid.", field_errors(messages))


def create_app(settings: settings_module.Settings | None = None) -> Flask:
    settings = settings or settings_module.load("referral")
    app = build_app(settings, title="Clinic referral API", migrations_package="services.referral",
                    import_name=__name__)
    api = app.extensions["clinic_api"]
    for blueprint in (providers_blp, slots_blp, referrals_blp, contact_blp):
        api.register_blueprint(blueprint)
    app.register_error_handler(UnprocessableEntity, _argument_errors)
    page.init_app(app)
    fhir_api.init_app(app)  # /fhir/R4: read-only FHIR (docs/fhir.md)
    return app
