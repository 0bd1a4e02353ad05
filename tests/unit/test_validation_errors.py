"""field_errors: marshmallow's error tree -> the flat `fields` list of a 422 answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import RAISE, Schema, ValidationError, fields, validates_schema

from services.common.validation import PLAIN_MESSAGES, field_errors


def test_nested_paths_are_dotted():
    messages = {"pain": {"severity": ["Must be a whole number from 0 to 10."]}}
    assert field_errors(messages) == [{"field": "pain.severity", "message": "Must be a whole number from 0 to 10."}]


def test_list_indices_become_path_parts_in_numeric_order():
    messages = {"pain": {"locations": {10: ["Bad."], 2: ["Bad."], 0: ["Bad."]}}}
    assert [e["field"] for e in field_errors(messages)] == ["pain.locations.0", "pain.locations.2", "pain.locations.10"]


def test_schema_level_errors_belong_to_the_parent_path():
    messages = {"home_care": {"_schema": ["Inconsistent."], "days": ["Too many."]}}
    assert field_errors(messages) == [
        {"field": "home_care", "message": "Inconsistent."},
        {"field": "home_care.days", "message": "Too many."},
    ]


def test_errors_about_the_whole_body_have_the_empty_path():
    assert field_errors({"_schema": ["Invalid input type."]}) == [{"field": "", "message": "Must be a JSON object."}]


def test_output_is_sorted_by_path_whatever_the_input_order():
    messages = {
        "pain": {"side": ["b"], "locations": {1: ["a"]}},
        "activity": {"sport": ["c"]},
        "home_care": ["d"],
        "function": {"instability": ["e"]},
    }
    assert [e["field"] for e in field_errors(messages)] == [
        "activity.sport",
        "function.instability",
        "home_care",
        "pain.locations.1",
        "pain.side",
    ]


def test_a_field_keeps_its_messages_in_order():
    messages = {"pain": {"locations": ["Must list 1 to 5 locations.", "Each location may be listed only once."]}}
    assert [e["message"] for e in field_errors(messages)] == [
        "Must list 1 to 5 locations.",
        "Each location may be listed only once.",
    ]


def test_the_same_message_twice_is_reported_once():
    assert field_errors({"a": ["Same.", "Same."], "_schema": []}) == [{"field": "a", "message": "Same."}]


@pytest.mark.parametrize(
    ("stock", "plain"),
    [
        ("Missing data for required field.", "This field is required."),
        ("Unknown field.", "This field is not allowed."),
        ("Field may not be null.", "This field cannot be null."),
        ("Not a valid integer.", "Must be a whole number."),
        ("Not a valid boolean.", "Must be true or false."),
        ("Not a valid date.", "Must be a date in the form YYYY-MM-DD."),
    ],
)
def test_marshmallow_stock_messages_are_reworded(stock, plain):
    assert field_errors({"x": [stock]}) == [{"field": "x", "message": plain}]
    assert PLAIN_MESSAGES[stock] == plain


def test_messages_of_our_own_pass_through():
    assert field_errors({"x": ["Cannot be before the birth date."]})[0]["message"] == "Cannot be before the birth date."


def test_odd_shapes_are_still_flattened():
    # A validator may raise a dict inside the list of a field, or a bare string.
    messages = {"items": [{1: ["Taken."]}, "Too short."], "note": "Required."}
    assert field_errors(messages) == [
        {"field": "items", "message": "Too short."},
        {"field": "items.1", "message": "Taken."},
        {"field": "note", "message": "Required."},
    ]


def test_a_bare_message_or_list_is_about_the_body():
    assert field_errors("Broken.") == [{"field": "", "message": "Broken."}]
    assert field_errors(["Broken."]) == [{"field": "", "message": "Broken."}]


def test_no_errors_gives_an_empty_list():
    assert field_errors({}) == []


class _Slot(Schema):
    class Meta:
        unknown = RAISE

    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)

    @validates_schema
    def _ordered(self, data, **_kwargs):
        if data["end"] <= data["start"]:
            raise ValidationError("Must end after it starts.")


class _Batch(Schema):
    items = fields.List(fields.Nested(_Slot), required=True)


def test_with_a_real_marshmallow_error_from_another_service():
    with pytest.raises(ValidationError) as caught:
        _Batch().load(
            {
                "items": [
                    {"start": "2026-11-20T10:00:00+00:00", "end": "2026-11-20T09:00:00+00:00"},
                    {"start": "soon", "colour": "red"},
                ],
                "x": 1,
            }
        )
    assert field_errors(caught.value.messages) == [
        {"field": "items.0", "message": "Must end after it starts."},
        {"field": "items.1.colour", "message": "This field is not allowed."},
        {"field": "items.1.end", "message": "This field is required."},
        {"field": "items.1.start", "message": "Must be a date and time like 2026-11-20T09:30:00+00:00."},
        {"field": "x", "message": "This field is not allowed."},
    ]


_names = st.text("abc_", min_size=1, max_size=4).filter(lambda name: name != "_schema")
_trees = st.recursive(
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3),
    lambda children: st.dictionaries(st.one_of(_names, st.integers(0, 20)), children, min_size=1, max_size=4),
    max_leaves=20,
)


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _leaves(child, (*path, key))
    else:
        for message in node:
            yield ".".join(map(str, path)), PLAIN_MESSAGES.get(message, message)


@given(_trees)
def test_every_message_is_reported_once_and_sorted(tree):
    result = field_errors(tree)
    assert {(e["field"], e["message"]) for e in result} == set(_leaves(tree))
    assert len(result) == len({(e["field"], e["message"]) for e in result})
    paths = [e["field"] for e in result]
    # Each path is a run: all its messages come together.
    assert all(paths.index(p) + paths.count(p) - 1 == max(i for i, q in enumerate(paths) if q == p) for p in paths)
