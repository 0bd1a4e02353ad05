"""Intake API: kiosks post reports and read their outcome."""
from __future__ import annotations

from flask import Flask

from services.common import settings as settings_module
from services.common.web import build_app

from .api.reports import blp as reports_blp
from .kiosk_page import kiosk_blp


def create_app(settings: settings_module.Settings | None = None) -> Flask:
    settings = settings or settings_module.load("intake")
    app = build_app(settings, title="Clinic intake API", migrations_package="services.intake",
                    import_name=__name__)
    app.extensions["clinic_api"].register_blueprint(reports_blp)
    app.register_blueprint(kiosk_blp)  # plain pages, kept out of the OpenAPI document
    return app
