"""CloudEvents 1.0 envelope (structured JSON mode) and W3C trace context."""
from __future__ import annotations

import functools
import json
import operator
import random
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, timezone

from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, ValidationError, fields, missing, validate
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA
from marshmallow.validate import Validator

from .error_text import SafeMessageError, validation_reason

TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class InvalidEvent(SafeMessageError):
    """A message that can never be processed: it goes to the dead-letter topic. Its message
    names what is wrong, never a value of the message (it becomes the `dlq.error` header)."""


class CloudEventSchema(Schema):
    class Meta:
        unknown = INCLUDE  # CloudEvents allows extension attributes

    specversion = fields.String(required=True, validate=validate.Equal("1.0"))
    id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    source = fields.String(required=True, validate=validate.Length(min=1))
    type = fields.String(required=True, validate=validate.Length(min=1))
    time = fields.AwareDateTime(required=True, format="iso")
    subject = fields.String(required=True)
    datacontenttype = fields.String(required=True, validate=validate.Equal("application/json"))
    data = fields.Dict(required=True)


# An event type of this platform's (clinic.report.submitted, referral.booked): a reason may
# name one it did not expect. Any other type is not repeated: it could be anything.
_OUR_TYPE = re.compile(r"(clinic|referral)(\.[a-z][a-z0-9_]*){1,4}")


@functools.cache
def cloud_event_schema() -> CloudEventSchema:
    """One schema instance for every event: building one costs more than a load (its fields
    are copied), and a load keeps no state in the instance."""
    return CloudEventSchema()


# -- loading a valid event faster ------------------------------------------------------
# Marshmallow spends ~15 Python calls on each field of each load (and builds a validator
# chain per field per call): most of a worker's cost per event. fast_loader(schema) walks the
# same schema (its fields, validators, @validates, @validates_schema and @post_load hooks, the
# fields' own _deserialize) without that machinery, for the case that matters: an event that
# is valid. It answers the load's result, or UNSURE at the first doubt (any error, any field
# or option it does not know), and then the caller loads with marshmallow, whose error names
# the field and the rule as before. So it may only ever accept what marshmallow accepts, with
# the same result: tests/unit/test_fast_loader.py checks that against marshmallow.
UNSURE = object()


class _Unsure(Exception):
    """Not certainly valid: let marshmallow decide (and say why)."""


class Unsupported(Exception):
    """A schema fast_loader cannot evaluate exactly (its loads always go to marshmallow)."""


# Fields whose Field.deserialize is plain: missing/None handling, _deserialize, validators.
# Containers (Nested, List) are compiled; any other field class is allowed only when it
# neither overrides deserialize nor is a container fast_loader cannot see into.
_CONTAINERS = (fields.Nested, fields.List, fields.Tuple, fields.Mapping, fields.Method, fields.Function)


def fast_loader(schema: Schema, *, strict: bool = False) -> Callable[[object], object]:
    """A function of the data to load: `schema.load(data)`'s result when the data is valid,
    else UNSURE. A schema it cannot evaluate exactly gets a loader that always answers
    UNSURE (or, with strict, raises Unsupported: for tests)."""
    try:
        load = _compile_schema(schema, unknown=None)
    except Unsupported:
        if strict:
            raise
        return lambda _data: UNSURE

    def fast_load(data: object) -> object:
        try:
            return load(data)
        except Exception:  # noqa: BLE001 - any doubt at all: marshmallow decides
            return UNSURE

    return fast_load


def _compile_schema(schema: Schema, unknown: str | None) -> Callable[[object], dict]:
    if schema.many or schema.partial or schema._hooks[PRE_LOAD]:
        raise Unsupported(f"{type(schema).__name__}: many, partial or @pre_load")
    overridden = [name for name in ("load", "_do_load", "_deserialize", "_invoke_field_validators",
                                    "_invoke_schema_validators", "_run_validator", "_invoke_load_processors",
                                    "_invoke_processors")
                  if getattr(type(schema), name) is not getattr(Schema, name)]
    if overridden or schema.dict_class is not dict:
        raise Unsupported(f"{type(schema).__name__}: loads in its own way ({', '.join(overridden)})")
    unknown = schema.unknown if unknown is None else unknown
    if unknown not in (EXCLUDE, INCLUDE, RAISE):
        raise Unsupported(f"{type(schema).__name__}: unknown={unknown!r}")
    steps = []  # (data key, attribute, field loader)
    for attr_name, field in schema.load_fields.items():
        key = field.data_key if field.data_key is not None else attr_name
        attribute = field.attribute or attr_name
        if "." in attribute:
            raise Unsupported(f"{attr_name}: dotted attribute")
        steps.append((key, attribute, _compile_field(field, key)))
    known = frozenset(key for key, _a, _l in steps)
    field_validators = []
    for attr_name, _many, kwargs in schema._hooks[VALIDATES]:
        for name in kwargs["field_names"]:
            if name not in schema.fields:
                raise Unsupported(f"@validates of {name}: not a loaded field")
            field = schema.fields[name]
            field_validators.append((getattr(schema, attr_name), field.attribute or name,
                                     field.data_key if field.data_key is not None else name))
    schema_validators = []
    for pass_collection in (True, False):  # marshmallow's order: pass_collection ones first
        for attr_name, hook_many, kwargs in schema._hooks[VALIDATES_SCHEMA]:
            if hook_many == pass_collection:
                schema_validators.append((getattr(schema, attr_name), kwargs.get("pass_original", False)))
    post_loads = []
    for pass_collection in (True, False):
        for attr_name, hook_many, kwargs in schema._hooks[POST_LOAD]:
            if hook_many == pass_collection:
                post_loads.append((getattr(schema, attr_name), kwargs.get("pass_original", False)))

    def load(data: object) -> dict:
        if not isinstance(data, dict):
            raise _Unsure
        result = {}
        for key, attribute, load_field in steps:
            value = load_field(data.get(key, missing), key, data)
            if value is not missing:
                result[attribute] = value
        if unknown == INCLUDE:
            for key in data.keys() - known:
                result[key] = data[key]
        elif unknown == RAISE and not known.issuperset(data):
            raise _Unsure
        for validator, attribute, data_key in field_validators:
            if attribute in result:
                if validator(result[attribute], data_key=data_key) is missing:
                    result.pop(attribute)
        for validator, pass_original in schema_validators:
            if pass_original:
                validator(result, data, partial=None, many=False, unknown=unknown)
            else:
                validator(result, partial=None, many=False, unknown=unknown)
        for processor, pass_original in post_loads:
            if pass_original:
                result = processor(result, data, many=False, partial=None, unknown=unknown)
            else:
                result = processor(result, many=False, partial=None, unknown=unknown)
        return result

    return load


def _compile_field(field: fields.Field, key: str) -> Callable[[object, str | None, object], object]:
    """A loader of one field's value (`missing` when absent), as Field.deserialize loads it."""
    base = fields.Field
    if (field.pre_load or type(field).deserialize is not base.deserialize
            or type(field)._validate is not base._validate or type(field)._validate_missing is not base._validate_missing
            or type(field)._validate_all is not base._validate_all):
        raise Unsupported(f"{key}: {type(field).__name__} loads in its own way")
    if isinstance(field, fields.Nested):
        if type(field) is not fields.Nested or field.many or field.schema.many:
            raise Unsupported(f"{key}: Pluck or many")
        convert = _nested(_compile_schema(field.schema, unknown=field.unknown))
    elif isinstance(field, fields.List):
        if type(field) is not fields.List:
            raise Unsupported(f"{key}: a List subclass")
        convert = _list(_compile_field(field.inner, key))
    elif isinstance(field, _CONTAINERS):
        if not (type(field) in (fields.Dict, fields.Mapping) and field.key_field is None
                and field.value_field is None):
            raise Unsupported(f"{key}: {type(field).__name__}")
        convert = field._deserialize  # only checks it is a mapping and copies it
    else:
        convert = _scalar(field)
    validators = tuple(field.validators)
    plain = tuple(v for v in validators if not isinstance(v, Validator))  # False means invalid
    post_load = tuple(field.post_load)
    required, allow_none, default = field.required, field.allow_none, field.load_default

    def load_field(value: object, attr: str | None, data: object) -> object:
        if value is missing:
            if required:
                raise _Unsure
            return default() if callable(default) else default
        if value is None:
            if allow_none:
                return None
            raise _Unsure
        output = convert(value, attr, data)
        if validators:
            for validator in validators:
                if validator(output) is False and validator in plain:
                    raise _Unsure
        if post_load:
            for func in post_load:
                output = func(output)
        return output

    return load_field


def _scalar(field: fields.Field) -> Callable[[object, str | None, object], object]:
    """The field's _deserialize, with the common JSON case of the commonest fields done inline
    with the same result (a str is its own text; an int its own int(); UUID(str) and
    datetime.fromisoformat are what their _deserialize calls); any other value: _deserialize."""
    general = field._deserialize
    kind = type(field)
    if kind in (fields.String, fields.Integer):
        same = str if kind is fields.String else int

        def convert(value, attr, data):
            return value if type(value) is same else general(value, attr, data)
    elif kind is fields.UUID:
        def convert(value, attr, data):
            return uuid.UUID(value) if type(value) is str else general(value, attr, data)
    elif (kind is fields.AwareDateTime and field.default_timezone is None
          and field.DESERIALIZATION_FUNCS.get(field.format or field.DEFAULT_FORMAT) == datetime.fromisoformat):
        def convert(value, attr, data):
            if type(value) is not str:
                return general(value, attr, data)
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
                raise _Unsure  # naive: marshmallow's invalid_awareness
            return moment
    elif (kind is fields.Date
          and field.DESERIALIZATION_FUNCS.get(field.format or field.DEFAULT_FORMAT) == date.fromisoformat):
        def convert(value, attr, data):
            return date.fromisoformat(value) if type(value) is str else general(value, attr, data)
    else:
        convert = general
    return convert


def _nested(load: Callable[[object], dict]) -> Callable[[object, str | None, object], dict]:
    return lambda value, _attr, _data: load(value)


def _list(load_item: Callable[[object, str | None, object], object]) -> Callable[[object, str | None, object], list]:
    def convert(value: object, _attr: str | None, _data: object) -> list:
        if type(value) is not list:  # marshmallow takes any collection: it decides the others
            raise _Unsure
        if missing in value:  # never in JSON; marshmallow would keep it as an item
            raise _Unsure
        return [load_item(item, None, None) for item in value]  # as List: no attr, no data
    return convert


# One loader per schema instance (the services keep one instance per schema).
_loader_of = functools.cache(fast_loader)


def load(schema: Schema, data: object) -> object:
    """`schema.load(data)`: the same result, or the same ValidationError, sooner when the
    data is valid (fast_loader); marshmallow itself loads whatever fast_loader doubts."""
    result = _loader_of(schema)(data)
    if result is UNSURE:
        return schema.load(data)
    return result


def check_cloud_event(event: object) -> None:
    """Raise the CloudEvent schema's ValidationError when `event` is not a CloudEvent (a
    non-dict is checked as {}, as ever)."""
    if _still_as_checked(event):
        return
    load(cloud_event_schema(), event if isinstance(event, dict) else {})


# The events decode checked lately, each with the values of the schema's attributes it had
# then: contract_problems (the handler's check, right after) need not check them again. Only
# the very object, with the very same attribute values (strings are immutable, `data` the
# same dict), counts as checked: a copy, or an event whose attribute was since replaced or
# removed, is checked in full. Bounded: at most one poll's worth of events is kept alive.
_CHECKED_MAX = 2048
_checked: OrderedDict[int, tuple[dict, tuple]] = OrderedDict()
_ATTRIBUTES = tuple(CloudEventSchema().load_fields)
_ABSENT = (missing,) * len(_ATTRIBUTES)


def _remember_checked(event: dict) -> None:
    _checked[id(event)] = (event, tuple(map(event.get, _ATTRIBUTES, _ABSENT)))
    while len(_checked) > _CHECKED_MAX:
        try:
            _checked.popitem(last=False)
        except KeyError:  # emptied by another thread meanwhile
            break


def _still_as_checked(event: object) -> bool:
    entry = _checked.get(id(event))
    if entry is None or entry[0] is not event:
        return False
    return all(map(operator.is_, map(event.get, _ATTRIBUTES, _ABSENT), entry[1]))


def contract_problems(event: dict, *, types: tuple[str, ...], source: str, subject_field: str) -> list[str]:
    """What makes `event` not one of `types` as the contract has its producer write it: a
    CloudEvent (again: handlers are called without the inbox too) from `source`, with a UUID
    id, an object as data and the subject equal to data[subject_field]. Each problem names
    the attribute and the rule, never a value (they become dead-letter headers and logs)."""
    problems = []
    try:
        check_cloud_event(event)
    except ValidationError as exc:
        problems.append(validation_reason(exc))
    if not isinstance(event, dict):
        return problems
    kind = event.get("type")
    if kind not in types:
        shown = repr(kind) if isinstance(kind, str) and _OUR_TYPE.fullmatch(kind) else "another type"
        problems.append(f"type: {shown} is not {' or '.join(types)}")
    if event.get("source") != source:
        problems.append(f"source: must be {source}")
    try:
        uuid.UUID(str(event.get("id")))
    except ValueError:
        problems.append("id: Not a valid UUID.")
    data = event.get("data")
    if isinstance(data, dict) and event.get("subject") != data.get(subject_field):
        problems.append(f"subject: must equal data.{subject_field}")
    return list(dict.fromkeys(problems))


def new_event(*, type: str, source: str, subject: str, data: dict, event_id: str | None = None) -> dict:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": datetime.now(timezone.utc).isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


def encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), default=str).encode()


def decode(value: bytes | None) -> dict:
    """Parse and validate a message value; raise InvalidEvent naming what is wrong."""
    if value is None:
        raise InvalidEvent("empty message value")
    try:
        raw = json.loads(value)
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"not JSON: not UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:  # its msg is the parser's fixed text; never the input
        raise InvalidEvent(f"not JSON: {exc.msg} (char {exc.pos})") from exc
    except ValueError as exc:
        raise InvalidEvent(f"not JSON: {type(exc).__name__}") from exc
    if not isinstance(raw, dict):
        raise InvalidEvent("event is not a JSON object")
    try:
        load(cloud_event_schema(), raw)
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvent: {validation_reason(exc)}") from exc
    _remember_checked(raw)
    return raw


# Trace and span ids need to be unique, not secret: the random module's generator (seeded
# from os.urandom, and again in each forked gunicorn worker) holds the GIL for the few
# microseconds they take, where secrets.token_hex's os.urandom system call gave the GIL up on
# every request (5% of an intake worker's samples under load). W3C forbids all-zero ids.
def _random_hex(bits: int) -> str:
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


def new_traceparent() -> str:
    return f"00-{_random_hex(128)}-{_random_hex(64)}-01"


def child_traceparent(parent: str | None) -> str:
    """Same trace id (one report across three services), a new span id for this hop."""
    match = TRACEPARENT_RE.match(parent or "")
    if not match:
        return new_traceparent()
    return f"00-{match.group(1)}-{_random_hex(64)}-{match.group(3)}"


def trace_id(traceparent: str | None) -> str | None:
    match = TRACEPARENT_RE.match(traceparent or "")
    return match.group(1) if match else None
