"""The patient's contact details and consent in ReportSchema (issue 19 part 1): `patient.email`,
`patient.contact_consent`, and the OpenAPI document saying the same as the server."""
from __future__ import annotations

import copy
import json
import functools
import itertools
import unicodedata
from datetime import date

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from services.common.validation import field_errors
from services.intake.schemas import EMAIL_MAX, EMAIL_PATTERN, REPORT_EXAMPLE, PatientSchema, ReportSchema

TODAY = date(2026, 11, 26)
NOT_AN_ADDRESS = "Must be an email address, like name@example.com."
NEEDS_PHONE = "sms needs a phone number: send patient.phone, or leave sms out."
# 254 characters: labels of at most 63, the longest a host name's may be.
LONGEST = "a@" + ("b" * 62 + ".") * 3 + "c" * 63
NEEDS_EMAIL = "email needs an email address: send patient.email, or leave email out."


def load(**patient_changes) -> dict:
    return ReportSchema(today=lambda: TODAY).load(body(**patient_changes))


def body(**patient_changes) -> dict:
    """The OpenAPI example with changes to `patient` (`...` deletes the key)."""
    data = copy.deepcopy(REPORT_EXAMPLE)
    for key, value in patient_changes.items():
        if value is ...:
            data["patient"].pop(key, None)
        else:
            data["patient"][key] = value
    return data


def errors(**patient_changes) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        load(**patient_changes)
    found: dict[str, list[str]] = {}
    for entry in field_errors(caught.value.messages):
        found.setdefault(entry["field"], []).append(entry["message"])
    return found


# --- email ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "stored"), [
    ("ana.silva@example.org", "ana.silva@example.org"),
    ("  Ana+kiosk@Mail.Example.co.uk\t", "Ana+kiosk@Mail.Example.co.uk"),
    ("o'neil_{x}@a-b.example", "o'neil_{x}@a-b.example"),
    ("x" * 64 + "@example.org", "x" * 64 + "@example.org"),
    (LONGEST, LONGEST),
])
def test_an_email_address_is_kept_trimmed(value, stored):
    assert len(stored) <= EMAIL_MAX
    assert load(email=value)["patient"]["email"] == stored


@pytest.mark.parametrize("value", [..., None])
def test_the_email_is_optional(value):
    assert load(email=value, contact_consent=...)["patient"]["email"] is None


@pytest.mark.parametrize("value", [
    "ana", "ana@", "@example.org", "ana@example", "ana@localhost", "ana@@example.org", "ana silva@example.org",
    "ana..silva@example.org", ".ana@example.org", "ana.@example.org", "ana@-example.org", "ana@example-.org",
    "ana@example.org.", "ana@example.c", "ana@example.123", "ana@[127.0.0.1]", '"ana silva"@example.org',
    "josé@example.org", "ana@bücher.example", "ana@exa_mple.org", "ana@" + "b" * 64 + ".org",
    "x" * 65 + "@example.org", "a@b.co,c@d.co",
])
def test_what_is_not_an_address_is_refused_with_one_message(value):
    assert errors(email=value, contact_consent=...) == {"patient.email": [NOT_AN_ADDRESS]}


def test_the_email_is_at_most_254_characters_after_trimming():
    too_long = "a" + LONGEST
    assert len(too_long) == EMAIL_MAX + 1
    assert load(email=f"  {LONGEST}  ")["patient"]["email"] == LONGEST
    assert errors(email=too_long, contact_consent=...) == {
        "patient.email": [f"Must be at most {EMAIL_MAX} characters."]}


@pytest.mark.parametrize(("value", "message"), [
    ("", "Must not be blank."),
    ("   ", "Must not be blank."),
    ("ana\u200b@example.org", "Must not contain invisible formatting characters (Unicode category Cf, such as "
                               "bidi controls or zero-width spaces)."),
    ("\u202eana@example.org", "Must not contain invisible formatting characters (Unicode category Cf, such as "
                              "bidi controls or zero-width spaces)."),
    ("ana@exam\nple.org", "Must not contain line breaks or control characters."),
    (42, "Must be text."),
    (["ana@example.org"], "Must be text."),
])
def test_email_is_refused_like_the_other_text_fields(value, message):
    assert errors(email=value, contact_consent=...) == {"patient.email": [message]}


# --- consent --------------------------------------------------------------------------


@pytest.mark.parametrize("consent", [[], ["sms"], ["email"], ["sms", "email"], ["email", "sms"]])
def test_any_distinct_channels_whose_addresses_are_sent(consent):
    assert load(contact_consent=consent)["patient"]["contact_consent"] == consent


def test_absent_consent_means_none():
    loaded = load(contact_consent=..., email=...)
    assert loaded["patient"]["contact_consent"] == []
    assert ReportSchema().dump(loaded)["patient"]["contact_consent"] == []


@pytest.mark.parametrize(("changes", "messages"), [
    ({"phone": ...}, [NEEDS_PHONE]),
    ({"phone": None}, [NEEDS_PHONE]),
    ({"contact_consent": ["email"], "email": ...}, [NEEDS_EMAIL]),
    ({"contact_consent": ["email"], "email": None}, [NEEDS_EMAIL]),
    ({"contact_consent": ["email", "sms"], "email": ..., "phone": ...}, [NEEDS_EMAIL, NEEDS_PHONE]),
    ({"contact_consent": ["sms", "email"], "email": ...}, [NEEDS_EMAIL]),
])
def test_a_consent_without_its_address_names_the_consent_and_the_missing_address(changes, messages):
    assert errors(**changes) == {"patient.contact_consent": messages}


def test_the_consent_message_holds_no_patient_value():
    found = errors(contact_consent=["sms", "email"], phone=..., email=...)
    assert not any(value in str(found) for value in ("MRN-0042", "Ana", "Silva", "1991"))


def test_an_address_that_was_refused_is_named_alone():
    # Its own error says what to fix; "needs a phone number" beside it would mislead.
    assert errors(phone="call me") == {"patient.phone": ["Must be a phone number in international format, "
                                                         "like +15550100."]}
    assert errors(contact_consent=["email"], email="ana") == {"patient.email": [NOT_AN_ADDRESS]}


def test_a_consent_error_is_named_with_the_reports_other_errors():
    data = body(phone=...)
    data["pain"]["severity"] = 11
    data["patient"]["given_name"] = ""
    with pytest.raises(ValidationError) as caught:
        ReportSchema(today=lambda: TODAY).load(data)
    assert {e["field"] for e in field_errors(caught.value.messages)} == {
        "patient.contact_consent", "patient.given_name", "pain.severity"}


@pytest.mark.parametrize("consent", [["sms", "sms"], ["email", "sms", "email"]])
def test_a_channel_listed_twice_is_refused(consent):
    assert errors(contact_consent=consent) == {"patient.contact_consent": ["Each channel may be listed only once."]}


@pytest.mark.parametrize(("consent", "field"), [
    (["fax"], "patient.contact_consent.0"), (["sms", "SMS"], "patient.contact_consent.1"),
    ([None], "patient.contact_consent.0"), ("sms", "patient.contact_consent"),
    (None, "patient.contact_consent"), ({"sms": True}, "patient.contact_consent"),
])
def test_only_a_list_of_known_channels(consent, field):
    assert list(errors(contact_consent=consent)) == [field]


# --- the OpenAPI document says the same ---------------------------------------------------


def _components() -> dict:
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    spec = APISpec(title="intake", version="1", openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Report", schema=ReportSchema)
    return spec.to_dict()["components"]["schemas"]


def test_the_document_describes_email_and_consent():
    components = _components()
    patient = components["Patient"]["properties"]
    assert patient["email"]["format"] == "email" and patient["email"]["maxLength"] == EMAIL_MAX
    assert patient["email"]["pattern"] == EMAIL_PATTERN and patient["email"]["nullable"] is True
    consent = patient["contact_consent"]
    assert consent["type"] == "array" and consent["uniqueItems"] is True and consent["default"] == []
    assert consent["items"]["enum"] == ["sms", "email"]
    assert not {"email", "contact_consent"} & set(components["Patient"].get("required", []))
    assert components["Report"]["properties"]["patient"]["anyOf"]


def _patient_validator():
    """The document's patient (its own schema and the report's rule on it), as schemathesis
    checks it: jsonschema-rs, formats asserted, nullable as OpenAPI 3.0 means it."""
    components = _components()
    patient = copy.deepcopy(components["Patient"])
    for prop in patient["properties"].values():
        if prop.pop("nullable", False):
            prop["type"] = [prop["type"], "null"]
    rule = {key: value for key, value in components["Report"]["properties"]["patient"].items() if key == "anyOf"}
    return jsonschema_rs.validator_for({"allOf": [patient, rule]}, validate_formats=True)


def _server_accepts(patient: dict) -> bool:
    try:
        PatientSchema(today=lambda: TODAY).load(patient)
    except ValidationError:
        return False
    return True


CONSENTS = [[], ["sms"], ["email"], ["sms", "email"], ["email", "sms"], ["sms", "sms"], ["fax"]]
ADDRESS_CASES = [..., None, "+15550100", "call me"]
EMAIL_CASES = [..., None, "ana@example.org", "ana"]


@pytest.mark.parametrize(("consent", "phone", "email"),
                         list(itertools.product([..., *CONSENTS], ADDRESS_CASES, EMAIL_CASES)))
def test_the_document_and_the_server_agree_on_consent_and_addresses(consent, phone, email):
    patient = copy.deepcopy(REPORT_EXAMPLE["patient"])
    for key, value in (("contact_consent", consent), ("phone", phone), ("email", email)):
        if value is ...:
            patient.pop(key)
        else:
            patient[key] = value
    assert _patient_validator().is_valid(patient) == _server_accepts(patient), patient


@functools.cache
def _email_in_document():
    prop = dict(_components()["Patient"]["properties"]["email"])
    prop.pop("nullable")
    return jsonschema_rs.validator_for(prop, validate_formats=True)


def _document_accepts_email(value: str) -> bool:
    return _email_in_document().is_valid(value)


def _field_accepts_email(value: str) -> bool:
    try:
        PatientSchema().fields["email"].deserialize(value)
    except ValidationError:
        return False
    return True


_ADDRESS_LIKE = st.from_regex(EMAIL_PATTERN, fullmatch=True) | st.text(
    alphabet=st.sampled_from("ab.-_+@\u00e9\u200b 9"), max_size=20)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ADDRESS_LIKE)
def test_every_address_the_document_admits_the_server_takes(value):
    # The other way round the server is kinder in two ways only: it trims surrounding spaces,
    # and it does not check host-name labels against IDNA 2008, as `format: email` does (a label
    # with "--" as its 3rd and 4th characters must be a valid "xn--" A-label there).
    if _document_accepts_email(value):
        assert _field_accepts_email(value), repr(value)
    elif _field_accepts_email(value):
        address = value.strip()
        idna_checked = any(label[2:4] == "--" for label in address.partition("@")[2].split("."))
        assert (address != value and _document_accepts_email(address)) or idna_checked, repr(value)


def test_no_format_character_is_a_valid_address():
    formats = [chr(c) for c in range(0x2000, 0x2070) if unicodedata.category(chr(c)) == "Cf"]
    assert formats and not any(_field_accepts_email(f"ana{char}@example.org") for char in formats)


# --- the report event ----------------------------------------------------------------------


def test_the_report_event_carries_no_email_nor_consent():
    from services.intake.events import clinical_sections, report_event

    report = ReportSchema().dump(load(email="ana.silva@example.org", contact_consent=["sms", "email"]))
    event = report_event("0b0c7e4e-3f5d-4a51-9f3c-2f7d2f0c9a11", report["patient"], clinical_sections(report),
                         "2026-11-26T10:00:00+00:00")
    assert set(event["data"]["patient"]) == {"mrn", "display_name", "birth_date"}
    flat = json.dumps(event)
    assert "ana.silva@example.org" not in flat and "consent" not in flat and "sms" not in flat


def test_a_report_without_contact_fields_hashes_as_before_they_existed():
    """A kiosk retrying across the upgrade sends the same report under the same key: its
    stored hash was taken before `email` and `contact_consent` existed, so a body that
    leaves them at their defaults must hash the same, and one that uses them must not."""
    import hashlib
    import json

    from services.intake.api.reports import _body_hash

    before = {"patient": {"mrn": "MRN-1", "given_name": "Ana", "phone": "+15550100"}, "pain": {"severity": 4}}
    old_hash = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    now = {**before, "patient": {**before["patient"], "email": None, "contact_consent": []}}
    assert _body_hash(now) == old_hash
    consenting = {**before, "patient": {**before["patient"], "email": None, "contact_consent": ["sms"]}}
    assert _body_hash(consenting) != old_hash
