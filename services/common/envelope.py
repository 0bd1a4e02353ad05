"""CloudEvents 1.0 envelope (structured JSON mode) and W3C trace context."""
from __future__ import annotations

import functools
import json
import random
import re
import uuid
from datetime import datetime, timezone

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

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


def contract_problems(event: dict, *, types: tuple[str, ...], source: str, subject_field: str) -> list[str]:
    """What makes `event` not one of `types` as the contract has its producer write it: a
    CloudEvent (again: handlers are called without the inbox too) from `source`, with a UUID
    id, an object as data and the subject equal to data[subject_field]. Each problem names
    the attribute and the rule, never a value (they become dead-letter headers and logs)."""
    problems = []
    try:
        cloud_event_schema().load(event if isinstance(event, dict) else {})
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
        cloud_event_schema().load(raw)
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvent: {validation_reason(exc)}") from exc
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
