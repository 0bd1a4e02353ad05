"""POST /v1/reports loads a report through envelope.fast_loader first and normalises it without
marshmallow's dump (services/intake/api/reports.py): the same result or the same errors as
marshmallow's load, and the same JSON, key order included, as REPORT_SCHEMA.dump."""
from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from services.common.envelope import UNSURE
from services.intake.api.reports import _FAST_LOAD, REPORT_SCHEMA, _body_hash, _json_ready
from services.intake.schemas import REPORT_EXAMPLE, ReportSchema

TODAY = date(2026, 11, 26)
SCHEMA = ReportSchema(today=lambda: TODAY)


def _variant(**changes) -> dict:
    body = copy.deepcopy(REPORT_EXAMPLE)
    for path, value in changes.items():
        section, name = path.split("__")
        if value is ...:
            del body[section][name]
        else:
            body[section][name] = value
    return body


VARIANTS = {
    "the example": _variant(),
    "no optional contact fields": _variant(patient__email=..., patient__contact_consent=..., patient__phone=...),
    "null answers (not sure)": _variant(function__joint_locking=None, pain__direct_trauma=None),
    "text trimmed, phone compacted": _variant(patient__given_name="  Ana  ", patient__phone="+1 555-0100",
                                              patient__email="  ana@example.org "),
    "no home care": _variant(home_care__measures=[], home_care__days=0, home_care__improving="not_tried"),
    "both channels": _variant(patient__contact_consent=["email", "sms"]),
    "several locations": _variant(pain__locations=["groin", "outer_hip", "buttock"]),
}


@pytest.mark.parametrize("body", VARIANTS.values(), ids=VARIANTS.keys())
def test_json_ready_is_the_schemas_dump(body):
    loaded = SCHEMA.load(body)
    expected = SCHEMA.dump(loaded)
    got = _json_ready(loaded)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # the same keys in the same order
    assert _body_hash(got) == _body_hash(expected)


def test_the_endpoint_schema_dumps_the_same():
    loaded = REPORT_SCHEMA.load(_variant(pain__started_on=date.today().isoformat()))
    assert _json_ready(loaded) == REPORT_SCHEMA.dump(loaded)


INVALID = {
    "wrong type": _variant(pain__severity="8"),
    "unknown field": _variant(patient__nickname="Ana"),
    "consent without address": _variant(patient__phone=..., patient__contact_consent=["sms"]),
    "future start": _variant(pain__started_on="2099-01-01"),
    "home care inconsistent": _variant(home_care__measures=[], home_care__days=3),
    "blank name": _variant(patient__given_name="   "),
}


@pytest.mark.parametrize("body", [*VARIANTS.values(), *INVALID.values()], ids=[*VARIANTS, *INVALID])
def test_the_endpoints_load_is_marshmallows(body):
    """REPORT_SCHEMA.load (fast_loader first) gives marshmallow's result, or its very errors."""
    from marshmallow import ValidationError

    plain = ReportSchema()
    try:
        expected = plain.load(copy.deepcopy(body))
    except ValidationError as exc:
        with pytest.raises(ValidationError) as got:
            REPORT_SCHEMA.load(copy.deepcopy(body))
        assert got.value.messages == exc.messages
    else:
        assert REPORT_SCHEMA.load(copy.deepcopy(body)) == expected
        assert _FAST_LOAD(copy.deepcopy(body)) is not UNSURE  # a valid report takes the fast path
