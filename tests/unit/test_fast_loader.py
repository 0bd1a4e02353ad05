"""envelope.fast_loader (issue 15, throughput): a faster evaluator of the consumed events'
marshmallow schemas for the valid case. It may only ever accept what marshmallow accepts,
with the same result; whatever it doubts is loaded by marshmallow, whose error (and so the
PoisonEvent/InvalidEvent reason) is unchanged. Checked here against marshmallow itself on
valid events and on random corruptions of them."""
from __future__ import annotations

import copy
import uuid
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validate, validates, validates_schema

from services.common import envelope
from services.common.envelope import UNSURE, Unsupported, fast_loader
from services.intake import events as intake_events
from services.referral import events as referral_events
from services.triage import events as triage_events

NOW = "2026-11-26T09:00:00+00:00"


def _uuid() -> str:
    return str(uuid.uuid4())


def report_data() -> dict:
    report_id = _uuid()
    return {"report_id": report_id, "submitted_at": NOW,
            "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva", "birth_date": "1991-04-02"},
            "activity": {"sport": "running", "high_impact": True},
            "pain": {"locations": ["groin", "outer_hip"], "side": "left", "severity": 8, "onset": "sudden",
                     "started_on": "2026-11-20", "direct_trauma": None},
            "function": {"joint_locking": False, "instability": None, "persistent_dysfunction": True},
            "home_care": {"measures": ["rest", "ice"], "days": 21, "improving": "no"}}


def decision_data(care_level: str = "urgent") -> dict:
    terms = {"urgent": {"priority": "urgent", "within_days": 2},
             "specialist": {"priority": "routine", "within_days": 14}}.get(care_level)
    return {"report_id": _uuid(), "care_level": care_level, "rules_version": "2026-11-1",
            "fired": [{"id": "URG-SEVERE", "reason": "severe"}], "advice": ["rest"], "referral": terms,
            "likely_source": "joint", "decided_at": NOW,
            "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva", "birth_date": "1991-04-02"}}


def message_data() -> dict:
    return {"message_id": _uuid(), "referral_id": _uuid(), "report_id": _uuid(), "sequence": 3,
            "change": "booked", "channel": "email", "status": "sent", "detail": None, "attempts": 1,
            "revision": 2, "at": NOW, "callback_phone": None}


def snapshot_data() -> dict:
    report_id = _uuid()
    return {"referral_id": _uuid(), "report_id": report_id, "care_level": "urgent", "priority": "urgent",
            "status": "booked", "sequence": 1, "created_at": NOW, "window_ends_at": "2026-11-28T09:00:00+01:00",
            "appointment": {"slot_id": _uuid(), "start": "2026-11-27T09:00:00+00:00",
                            "end": "2026-11-27T09:30:00+00:00", "provider": "Dr. Costa", "location": "North"},
            "report_count": 2, "linked_report_id": _uuid()}


def old_snapshot_data() -> dict:
    data = snapshot_data()
    del data["report_count"], data["linked_report_id"]
    data["report_ids"] = [data["report_id"], _uuid()]
    return data


def cloud_event() -> dict:
    return envelope.new_event(type="clinic.report.submitted", source="/clinic/intake", subject="x",
                              data={"a": 1})


# (schema, a valid input) for every schema a worker loads consumed events with
SCHEMAS = {
    "cloud event": (envelope.cloud_event_schema, cloud_event),
    "triage report": (triage_events._report_data_schema, report_data),
    "referral decision": (lambda: referral_events._decision_data_schema(14), decision_data),
    "referral decision self care": (lambda: referral_events._decision_data_schema(14),
                                    lambda: decision_data("self_care")),
    "referral decision specialist": (lambda: referral_events._decision_data_schema(14),
                                     lambda: decision_data("specialist")),
    "referral patient message": (referral_events._patient_message_data_schema, message_data),
    "intake decision": (lambda: intake_events._schema(intake_events.DecisionDataSchema), decision_data),
    "intake referral snapshot": (lambda: intake_events._schema(intake_events.ReferralDataSchema), snapshot_data),
    "intake old referral snapshot": (lambda: intake_events._schema(intake_events.ReferralDataSchema),
                                     old_snapshot_data),
}


def marshmallow_load(schema: Schema, data: object) -> tuple[str, object]:
    try:
        return "ok", schema.load(data)
    except ValidationError as exc:
        return "error", exc.messages


def assert_agrees(schema: Schema, data: object) -> object:
    """fast_loader accepts only what marshmallow accepts, with an equal result; envelope.load
    answers exactly what schema.load answers."""
    before = copy.deepcopy(data)
    fast = fast_loader(schema, strict=True)(data)
    assert data == before, "the fast loader changed its input"
    outcome, result = marshmallow_load(schema, data)
    if fast is not UNSURE:
        assert outcome == "ok", f"fast loader accepted what marshmallow refuses: {result}"
        assert fast == result
        assert _types(fast) == _types(result)
    try:
        via_envelope = ("ok", envelope.load(schema, copy.deepcopy(data)))
    except ValidationError as exc:
        via_envelope = ("error", exc.messages)
    assert via_envelope == (outcome, result)
    return fast


def _types(value: object) -> object:
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_consumed_schema_is_evaluated_fast_and_a_valid_input_takes_the_fast_path(name):
    make_schema, make_data = SCHEMAS[name]
    assert assert_agrees(make_schema(), make_data()) is not UNSURE


def test_the_loaded_values_are_marshmallows_types():
    loaded = fast_loader(triage_events._report_data_schema())(report_data())
    assert isinstance(loaded["report_id"], uuid.UUID)
    assert isinstance(loaded["submitted_at"], datetime) and loaded["submitted_at"].tzinfo is not None
    decision = fast_loader(referral_events._decision_data_schema(14))(decision_data())
    assert decision["patient"]["birth_date"] == date(1991, 4, 2)


# -- random corruptions of valid inputs ---------------------------------------------------
ODD_VALUES = [
    None, True, False, 0, 1, -1, 2, 10, 11, 14, 15, 3650, 3651, 2**31 - 1, 2**31, 1.0, 0.5, float("nan"),
    "", " ", "x", "x" * 65, "x" * 202, "x" * 2001, "\n", "URG-SEVERE\n", "urg-severe", "URG-", "SELF-CARE",
    "1.0", "1.1", "application/json", "text/plain", "/clinic/intake",
    "2026-11-26T09:00:00", "2026-11-26T09:00:00Z", "2026-11-26T09:00:00+05:30", "2026-11-26", "20261126",
    "2026-W47-4", "2026-13-01", "not a time", "6a1f2b3c4d5e6f708192a3b4c5d6e7f8", "{6a1f2b3c-4d5e-6f70-8192-a3b4c5d6e7f8}",
    "urn:uuid:6a1f2b3c-4d5e-6f70-8192-a3b4c5d6e7f8", "6a1f2b3c-4d5e-6f70-8192-a3b4c5d6e7f", str(uuid.UUID(int=0)),
    "urgent", "routine", "specialist", "self_care", "booked", "waitlisted", "cancelled", "completed",
    "groin", "outer_hip", "left", "right", "sudden", "gradual", "rest", "ice", "yes", "no", "not_tried",
    "email", "sms", "phone", "sent", "queued", "moved",
    [], ["groin"], ["groin", "groin"], ["rest", "rest"], ["x"], [1], [None], ["rest", "ice", "heat"],
    [{"id": "URG-SEVERE", "reason": "r"}], [{"id": "bad id", "reason": "r"}], [{"id": "A"}], [{}],
    {}, {"mrn": "M", "display_name": "N"}, {"mrn": "M", "display_name": "N", "extra": 1},
    {"priority": "urgent", "within_days": 2}, {"priority": "routine", "within_days": 15},
    {"priority": "routine", "within_days": True}, ("a", "b"), b"bytes",
]
DELETE = object()


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*path, index)))
    return found


@st.composite
def corrupted(draw, make_data):
    data = make_data()
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        change = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if change == "replace":
            parent[key] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
        elif change == "delete" and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "mrn", "sport", "report_ids", "type"]))] = copy.deepcopy(
                draw(st.sampled_from(ODD_VALUES)))
    return data


@pytest.mark.parametrize("name", SCHEMAS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_corrupted_input_gets_marshmallows_answer(name, data):
    make_schema, make_data = SCHEMAS[name]
    assert_agrees(make_schema(), data.draw(corrupted(make_data)))


@pytest.mark.parametrize("value", [None, [], "x", 1, ["a"], ("a",)])
@pytest.mark.parametrize("name", SCHEMAS)
def test_not_a_mapping_is_marshmallows_to_refuse(name, value):
    make_schema, _ = SCHEMAS[name]
    assert fast_loader(make_schema())(value) is UNSURE


# -- what it does not know, it leaves to marshmallow ---------------------------------------
class _Odd(Schema):
    items = fields.Tuple((fields.String(),))


class _Methods(Schema):
    class Meta:
        unknown = INCLUDE

    n = fields.Integer(validate=[validate.Range(min=0), lambda value: value != 3])
    s = fields.String(load_default=lambda: "default")

    @validates("n")
    def _not_seven(self, value, **_kwargs):
        if value == 7:
            raise ValidationError("seven")

    @validates_schema
    def _not_both(self, data, **_kwargs):
        if data.get("n") == 5 and data.get("s") == "five":
            raise ValidationError("both")

    @post_load
    def _mark(self, data, **_kwargs):
        return {**data, "loaded": True}


def test_a_field_it_does_not_know_sends_every_load_to_marshmallow():
    with pytest.raises(Unsupported):
        fast_loader(_Odd(), strict=True)
    assert fast_loader(_Odd())({"items": ["a"]}) is UNSURE
    assert envelope.load(_Odd(), {"items": ["a"]}) == {"items": ("a",)}


@pytest.mark.parametrize("data", [
    {}, {"n": 1}, {"n": 3}, {"n": -1}, {"n": 7}, {"n": 5}, {"n": 5, "s": "five"}, {"s": "x", "other": [1]},
    {"n": True}, {"n": "1"}, {"s": None},
])
def test_validators_hooks_defaults_and_post_load_as_marshmallow_runs_them(data):
    assert_agrees(_Methods(), data)


def test_a_valid_event_is_not_loaded_by_marshmallow(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("marshmallow's load was called")

    event = triage_events.envelope.new_event(type="clinic.report.submitted", source="/clinic/intake",
                                             subject="", data=report_data())
    event["subject"] = event["data"]["report_id"]
    decoded = envelope.decode(envelope.encode(event))
    monkeypatch.setattr(Schema, "load", refuse)
    data = triage_events.parse_report_event(decoded)
    assert str(data["report_id"]) == event["subject"]


# -- the envelope is checked once: by decode, not again by contract_problems -----------------
def _counting_cloud_event_loads(monkeypatch) -> list:
    calls = []
    loader = envelope._loader_of(envelope.cloud_event_schema())

    def counting(schema, data):
        if schema is envelope.cloud_event_schema():
            calls.append(data)
            return loader(data) if loader(data) is not UNSURE else schema.load(data)
        return original(schema, data)

    original = envelope.load
    monkeypatch.setattr(envelope, "load", counting)
    return calls


def _contract_problems(event):
    return envelope.contract_problems(event, types=("clinic.report.submitted",), source="/clinic/intake",
                                      subject_field="a")


def test_a_decoded_event_is_not_checked_again(monkeypatch):
    calls = _counting_cloud_event_loads(monkeypatch)
    event = envelope.decode(envelope.encode({**cloud_event(), "data": {"a": "x"}}))
    assert len(calls) == 1
    assert _contract_problems(event) == []
    assert len(calls) == 1


@pytest.mark.parametrize("change", [
    lambda e: e.update(time="2026-11-26T09:00:00"),  # naive
    lambda e: e.update(specversion="0.3"),
    lambda e: e.update(data=[]),
    lambda e: e.update(id=""),
    lambda e: e.pop("datacontenttype"),
])
def test_a_decoded_event_changed_since_is_checked_again(monkeypatch, change):
    calls = _counting_cloud_event_loads(monkeypatch)
    event = envelope.decode(envelope.encode(cloud_event()))
    change(event)
    copy_of_it = copy.deepcopy(event)
    assert _contract_problems(event) == _contract_problems(copy_of_it)
    assert len(calls) == 3
    assert any(problem.split(":")[0] in ("time", "specversion", "data", "id", "datacontenttype")
               for problem in _contract_problems(event))


def test_an_equal_copy_of_a_decoded_event_is_checked(monkeypatch):
    calls = _counting_cloud_event_loads(monkeypatch)
    event = envelope.decode(envelope.encode({**cloud_event(), "data": {"a": "x"}}))
    assert _contract_problems(dict(event)) == []
    assert len(calls) == 2


def test_the_events_remembered_as_checked_are_bounded():
    for _ in range(envelope._CHECKED_MAX + 10):
        envelope.decode(envelope.encode(cloud_event()))
    assert len(envelope._checked) == envelope._CHECKED_MAX


class _OwnLoad(Schema):
    n = fields.Integer()

    def load(self, data, **kwargs):
        return {"own": True}


def test_a_schema_that_loads_in_its_own_way_is_left_to_marshmallow():
    with pytest.raises(Unsupported):
        fast_loader(_OwnLoad(), strict=True)
    assert envelope.load(_OwnLoad(), {"n": 1}) == {"own": True}
