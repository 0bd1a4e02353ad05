"""Triage API: staff read decisions and the rules in force."""
from __future__ import annotations

from flask import Flask

from services.common import settings as settings_module
from services.common.web import build_app

from .api.decisions import blp as decisions_blp
from .domain import default_rules_path, load_rules


def create_app(settings: settings_module.Settings | None = None, rules=None) -> Flask:
    settings = settings or settings_module.load("triage")
    rules = rules or load_rules(default_rules_path())  # refuse to start on a bad rule file
    app = build_app(settings, title="Clinic triage API", migrations_package="services.triage",
                    import_name=__name__)
    app.extensions["triage_rules"] = rules
    app.extensions["clinic_api"].register_blueprint(decisions_blp)
    return app
