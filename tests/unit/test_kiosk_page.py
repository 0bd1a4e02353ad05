"""The kiosk pages as HTML: served, labelled, and in step with the API's report schema.

A bare Flask app with only the kiosk blueprint: the pages need no database.
"""
from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import pytest
from flask import Flask
from marshmallow import fields

from services.intake import schemas
from services.intake import kiosk_language
from services.intake.kiosk_page import kiosk_blp

# Inputs a person never fills in, which need no label.
UNLABELLED_TYPES = {"hidden", "submit", "button", "reset"}


class Page(HTMLParser):
    """What the tests look at: inputs (with the fieldsets around them), labels, legends, ids."""

    def __init__(self, html: str):
        super().__init__()
        self.inputs: list[dict] = []
        self.label_for: set[str] = set()
        self.ids: list[str] = []
        self.fields: list[str] = []
        self.links: list[dict] = []
        self.scripts: list[str] = []
        self.data_blocks: list[str] = []
        self._fieldsets: list[dict] = []
        self._labels = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if "data-field" in attrs:
            self.fields.append(attrs["data-field"])
        if tag == "fieldset":
            self._fieldsets.append({"legend": False})
        elif tag == "legend" and self._fieldsets:
            self._fieldsets[-1]["legend"] = True
        elif tag == "label":
            self._labels += 1
            if "for" in attrs:
                self.label_for.add(attrs["for"])
        elif tag == "input":
            self.inputs.append({**attrs, "_in_label": self._labels > 0,
                                "_fieldset_legends": [f["legend"] for f in self._fieldsets]})
        elif tag == "link":
            self.links.append(attrs)
        elif tag == "script" and attrs.get("type") == "application/json":
            self.data_blocks.append(attrs.get("id"))  # data for kiosk.js, never run
        elif tag == "script":
            self.scripts.append(attrs.get("src", ""))

    def handle_endtag(self, tag):
        if tag == "fieldset":
            self._fieldsets.pop()
        elif tag == "label":
            self._labels -= 1


@pytest.fixture
def client():
    app = Flask(__name__)
    app.register_blueprint(kiosk_blp)
    kiosk_language.install(app)
    return app.test_client()


def get_page(client, path: str) -> Page:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return Page(response.get_data(as_text=True))


def schema_field(path: str) -> fields.Field:
    """ReportSchema's field at a dotted path such as "pain.severity"."""
    schema = schemas.ReportSchema()
    *sections, name = path.split(".")
    for section in sections:
        schema = schema.fields[section].schema
    return schema.fields[name]


def schema_paths() -> set[str]:
    """The questions: every field of the report's sections (the top-level `language` is the
    page's own, chosen before the questions)."""
    report = schemas.ReportSchema()
    return {f"{section}.{name}" for section, nested in report.fields.items() if isinstance(nested, fields.Nested)
            for name in nested.schema.fields}


@pytest.mark.parametrize("path", ["/kiosk", "/kiosk/setup"])
def test_every_input_has_a_label_and_a_unique_id(client, path):
    page = get_page(client, path)
    assert page.inputs
    for attrs in page.inputs:
        if attrs.get("type") in UNLABELLED_TYPES:
            continue
        assert attrs.get("id"), attrs
        assert attrs["id"] in page.label_for, f"no <label for> for {attrs['id']}"
    duplicates = [name for name, count in Counter(page.ids).items() if count > 1]
    assert duplicates == []


def test_radio_and_checkbox_groups_are_fieldsets_with_legends(client):
    page = get_page(client, "/kiosk")
    for attrs in page.inputs:
        if attrs.get("type") in ("radio", "checkbox"):
            assert attrs["_fieldset_legends"] and all(attrs["_fieldset_legends"]), attrs["id"]
            assert attrs["_in_label"], f"{attrs['id']}: the whole tile should be the touch target"


def test_the_form_asks_every_question_of_the_report_schema(client):
    page = get_page(client, "/kiosk")
    assert set(page.fields) == schema_paths()


def test_the_choices_are_the_schemas_values(client):
    page = get_page(client, "/kiosk")
    values: dict[str, list[str]] = {}
    for attrs in page.inputs:
        if attrs.get("type") in ("radio", "checkbox"):
            values.setdefault(attrs["name"], []).append(attrs["value"])
    assert values["pain.locations"] == list(schemas.PAIN_LOCATIONS)
    assert values["pain.side"] == list(schemas.SIDES)
    assert values["pain.onset"] == list(schemas.ONSETS)
    assert values["home_care.measures"] == list(schemas.HOME_CARE_MEASURES)
    assert values["pain.severity"] == [str(n) for n in range(11)]
    # "not tried" is what an empty list of measures means, never a separate answer.
    assert values["home_care.improving"] == ["yes", "no"]
    for path in ("pain.direct_trauma", "function.joint_locking", "function.instability",
                 "function.persistent_dysfunction"):
        assert schema_field(path).allow_none  # "not sure" is sent as null
        assert values[path] == ["yes", "no", "unsure"]
    assert values["activity.high_impact"] == ["yes", "no"]
    assert values["patient.contact_consent"] == list(schemas.CONTACT_CHANNELS)


def test_text_inputs_respect_the_schemas_length_limits(client):
    page = get_page(client, "/kiosk")
    by_name = {attrs.get("name"): attrs for attrs in page.inputs}
    assert by_name["patient.mrn"]["maxlength"] == str(schemas.MRN_MAX)
    assert by_name["patient.given_name"]["maxlength"] == str(schemas.NAME_MAX)
    assert by_name["activity.sport"]["maxlength"] == str(schemas.SPORT_MAX)
    assert by_name["patient.email"]["maxlength"] == str(schemas.EMAIL_MAX)


def test_patient_data_is_not_remembered_by_the_browser(client):
    page = get_page(client, "/kiosk")
    # On a shared kiosk a remembered value could only ever be another patient's.
    typed = [a for a in page.inputs if a.get("type", "text") in ("text", "tel", "email", "password")]
    assert "patient.email" in {a.get("name") for a in typed}
    assert typed and all(a.get("autocomplete") == "off" for a in typed)


def test_the_setup_page_takes_the_key_as_a_password(client):
    page = get_page(client, "/kiosk/setup")
    (key,) = [a for a in page.inputs if a.get("name") == "kiosk_key"]
    assert key["type"] == "password"


@pytest.mark.parametrize("path", ["/kiosk", "/kiosk/setup"])
def test_pages_load_only_their_own_files(client, path):
    response = client.get(path)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "form-action 'none'" in policy  # a native form submit would put patient data in a URL
    page = Page(response.get_data(as_text=True))
    assert page.scripts == ["/kiosk/static/kiosk.js"]
    assert page.data_blocks == (["kiosk-texts"] if path == "/kiosk" else [])
    assert [link["href"] for link in page.links if link.get("rel") == "stylesheet"] == ["/kiosk/static/kiosk.css"]


@pytest.mark.parametrize(("name", "mimetype", "marker"), [
    ("kiosk.css", "text/css", ":focus-visible"),
    ("kiosk.js", "javascript", "/v1/reports"),
])
def test_static_files_are_served(client, name, mimetype, marker):
    with client.get(f"/kiosk/static/{name}") as response:
        assert response.status_code == 200
        assert mimetype in response.mimetype  # text/ or application/javascript, by platform
        assert marker in response.get_data(as_text=True)
