"""Intake worker: relays reports to Kafka and keeps the kiosk status view current.

Each handler runs inside the inbox transaction (services/common/inbox.py), so an event
delivered twice is applied once. Events may also come out of order, across topics (a
referral event before the decision that caused it) and within one (an older referral
snapshot after a newer one): the handlers only record facts, each guarded so that an
older fact never replaces a newer one, and status_view derives the status from them.

An event whose data cannot be what the contract says is a PoisonEvent: dead-lettered
at once, not retried.
"""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from services.common import settings as settings_module
from services.common.inbox import Delivery, PoisonEvent
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS
from services.common.worker import run_worker

from . import store
from .status_view import REFERRAL_STATUS_TO_REPORT_STATUS

CARE_LEVELS = ("urgent", "specialist", "self_care")
PRIORITIES = ("urgent", "routine")


class _Lenient(Schema):
    class Meta:
        unknown = INCLUDE  # producers may add fields; intake reads only what it shows


class DecisionDataSchema(_Lenient):
    report_id = fields.UUID(required=True)
    care_level = fields.String(required=True, validate=validate.OneOf(CARE_LEVELS))
    advice = fields.List(fields.String(), required=True)
    decided_at = fields.AwareDateTime(required=True)


class AppointmentDataSchema(_Lenient):
    slot_id = fields.UUID(required=True)
    start = fields.AwareDateTime(required=True)
    end = fields.AwareDateTime(required=True)
    provider = fields.String(required=True)
    location = fields.String(required=True)


class ReferralDataSchema(_Lenient):
    referral_id = fields.UUID(required=True)
    report_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1))
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    status = fields.String(required=True, validate=validate.OneOf(tuple(REFERRAL_STATUS_TO_REPORT_STATUS)))
    sequence = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    appointment = fields.Nested(AppointmentDataSchema, required=True, allow_none=True)


def _checked(schema: Schema, event: dict) -> dict:
    """The event's data as sent (for storage), once it is known to be valid."""
    data = event.get("data")
    try:
        schema.load(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise PoisonEvent(f"{event.get('type')}: invalid data: {exc.messages}") from exc
    return data


def on_decision(conn, event: dict, delivery: Delivery) -> None:
    data = _checked(DecisionDataSchema(), event)
    store.record_decision(conn, data["report_id"], data["care_level"], data["advice"], data["decided_at"])


def on_referral_event(conn, event: dict, delivery: Delivery) -> None:
    data = _checked(ReferralDataSchema(), event)
    store.record_referral(conn, data["report_ids"], data, data["sequence"])


HANDLERS = {TOPIC_DECISIONS: on_decision, TOPIC_REFERRAL_EVENTS: on_referral_event}


def main() -> None:
    run_worker(settings_module.load("intake"), migrations_package="services.intake", handlers=HANDLERS)
