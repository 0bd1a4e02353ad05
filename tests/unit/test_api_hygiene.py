"""The pure parts of the API hygiene rules: JSON depth, the Text field's pattern (exactly
what the field accepts), the standard error answers in OpenAPI, gunicorn's JSON errors."""
from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from services.common.errors import ApiError, document_standard_errors
from services.common.fields import Text, text_pattern
from services.common.gunicorn_conf import json_error
from services.common.json_body import MAX_JSON_DEPTH, json_depth, loads_strict
from services.intake.schemas import PHONE_PATTERN, PatientSchema


@pytest.mark.parametrize("text, depth", [
    (b"1", 0), (b"[]", 1), (b'{"a": [1, {"b": []}]}', 4), (b'["[[[[", "\\\\", "\\"[["]', 1),
    (b"[" * 100_000, 100_000), (b'"' + b"[" * 50 + b'"', 0),
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert json_depth(text) == depth


def test_deep_json_is_a_400_not_a_recursion_error():
    for body in (b"[" * 70_000 + b"]" * 70_000, b'{"a":' * 5_000 + b"1" + b"}" * 5_000):
        with pytest.raises(ApiError) as refused:
            loads_strict(body)
        assert refused.value.status == 400 and str(MAX_JSON_DEPTH) in refused.value.message


def test_json_at_the_depth_limit_is_read():
    body = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert json_depth(body) == MAX_JSON_DEPTH
    assert loads_strict(body)


@pytest.mark.parametrize("value", ["Ana\u200b", "\u202eavliS", "A\u2066B\u2069", "\ufeffMRN-1", "X\U000e0041",
                                   "Jo\u00adao"])
def test_format_characters_are_refused_with_their_rule_named(value):
    with pytest.raises(ValidationError) as refused:
        Text(max_length=100).deserialize(value)
    assert "Cf" in refused.value.messages[0]


FIELD = Text(max_length=8)
PATTERN = re.compile(text_pattern(8))


def accepts(value: str) -> bool:
    try:
        FIELD.deserialize(value)
        return True
    except ValidationError:
        return False


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(" \t\n\u00a0\u2028ab\u00e9\u200b\u202e\x00\x7f\u0600\U000e0020\u3000"),
               max_size=12) | st.text(max_size=12))
def test_the_openapi_pattern_is_exactly_the_fields_rule(value):
    # Lone surrogates are left out of the pattern on purpose (services/common/fields.py).
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return
    assert bool(PATTERN.search(value)) == accepts(value), repr(value)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.sampled_from("+0123456789 -.()x"), max_size=22))
def test_the_phone_pattern_is_exactly_the_fields_rule(value):
    field = PatientSchema().fields["phone"]
    try:
        field.deserialize(value)
        ok = True
    except ValidationError:
        ok = False
    assert bool(re.search(PHONE_PATTERN, value)) == ok, repr(value)


def test_every_operation_gets_the_standard_errors_and_no_default():
    operations = {
        "post": {"responses": {201: {"description": "made"}, "default": {"description": "anything"},
                               "403": {"description": "Not an admin"}},
                 "requestBody": {"content": {}}},
        "get": {"responses": {"200": {"description": "ok"}}},
    }
    document_standard_errors("/v1/things/{thing_id}", operations)
    post, get = operations["post"]["responses"], operations["get"]["responses"]
    assert "default" not in post and set(post) >= {"201", "400", "401", "403", "404", "413", "414", "415", "422",
                                                   "429", "431", "500", "503"}
    assert post["403"]["description"] == "Not an admin"  # the view's own words stay
    assert {"413", "415", "422"}.isdisjoint(get)  # no body, no body errors
    assert all(post[s]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
               for s in post if s[0] in "45")


@pytest.mark.parametrize("status, code", [(414, "uri_too_long"), (431, "header_fields_too_large"),
                                          (400, "bad_request")])
def test_gunicorns_own_errors_are_the_one_error_shape(status, code):
    answer = json_error(status, "Reason")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Content-Type: application/json" in head and b"X-Content-Type-Options: nosniff" in head
    assert f"Content-Length: {len(body)}".encode() in head
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"} and error["code"] == code
