"""services/common/json_codec: orjson for jsonb parameters, the standard library for what
orjson refuses, and the same JSON value either way."""
from __future__ import annotations

import json

import pytest

from services.common import json_codec

VALUES = [
    {"report_id": "6f1c", "fired": [{"rule": "SEVERE", "reason": "Dolor intenso — 8/10"}], "ok": True,
     "none": None, "n": 3, "x": 1.5},
    ["a", 1, [2, {"b": False}]],
    "plain",
    {1: "int key", "s": "str key"},
]


@pytest.mark.parametrize("value", VALUES)
def test_the_json_value_is_the_standard_librarys(value):
    assert json.loads(json_codec.dumps(value)) == json.loads(json.dumps(value))


def test_what_orjson_refuses_goes_through_the_standard_library():
    huge = {"n": 2 ** 70}  # beyond 64 bits: orjson refuses it, the standard library writes it
    assert json_codec.dumps(huge) == json.dumps(huge)


def test_what_neither_can_write_still_fails():
    with pytest.raises(TypeError):
        json_codec.dumps({"s": {1, 2}})
