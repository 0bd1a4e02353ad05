"""Intake API: kiosks post reports and read their outcome."""
from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge

from services.common import settings as settings_module
from services.common.errors import error_response
from services.common.web import MAX_BODY_BYTES, build_app

from . import kiosk_language
from .api.reports import blp as reports_blp
from .kiosk_page import kiosk_blp


def _too_large(_exc: RequestEntityTooLarge):
    # werkzeug's own words ("exceeds the capacity limit") do not say what the limit is.
    return error_response(413, "payload_too_large", f"The request body is over {MAX_BODY_BYTES // 1024} KiB.")


def create_app(settings: settings_module.Settings | None = None) -> Flask:
    settings = settings or settings_module.load("intake")
    app = build_app(settings, title="Clinic intake API", migrations_package="services.intake",
                    import_name=__name__)
    app.extensions["clinic_api"].spec.options["info"] = {"description": (
        "Kiosks send hip-pain symptom reports (`POST /v1/reports`, kiosk key as a bearer token) and "
        "follow their outcome (`GET /v1/reports/{report_id}`). Every error answer has the same shape "
        "(`Error`); a 422 names every failing field by its path.")}
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.extensions["clinic_api"].register_blueprint(reports_blp)
    app.register_blueprint(kiosk_blp)  # plain pages, kept out of the OpenAPI document
    kiosk_language.install(app)
    return app
