"""One place decides what an error may say in a log line or a dead-letter header
(services/common/error_text.py), and the logging filter applies it to every record."""
from __future__ import annotations

import io
import json
import logging

import psycopg
import pytest
from kafka.errors import KafkaTimeoutError
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from services.common import envelope
from services.common.error_text import (
    carries_database_error,
    safe_error_text,
    safe_message,
    safe_traceback,
    validation_reason,
)
from services.common.inbox import DeadLetterFailed, PoisonEvent, describe_error
from services.common.logs import ErrorTextFilter, configure_logging

SECRET = "MRN-SECRET-4711"
DETAIL = (f'duplicate key value violates unique constraint "referrals_one_open"\n'
          f"DETAIL:  Key (patient_mrn_key)=({SECRET}) already exists.")


def database_error() -> psycopg.Error:
    return psycopg.errors.UniqueViolation(DETAIL)


def test_a_database_error_is_its_class_and_sqlstate_never_its_message():
    error = database_error()
    assert SECRET in str(error)  # what the raw error would have put in a log
    text = safe_error_text(error)
    assert SECRET not in text and "DETAIL" not in text
    assert text.startswith("UniqueViolation (SQLSTATE 23505")
    assert describe_error(error) == text  # the inbox's name for it is the same function


def test_other_exceptions_show_their_class_only_unless_their_text_is_known_safe():
    assert safe_error_text(ValueError(f"invalid literal for int() with base 10: '{SECRET}'")) == "ValueError"
    assert safe_error_text(KeyError(SECRET)) == "KeyError"
    # ours, written to carry no values; Kafka's; the errno of an OSError, not its file name
    assert safe_error_text(PoisonEvent("data.report_id: Not a valid UUID.")) == "data.report_id: Not a valid UUID."
    assert safe_error_text(KafkaTimeoutError("no broker")) == "KafkaTimeoutError: no broker"
    assert safe_error_text(FileNotFoundError(2, "No such file or directory", f"/tmp/{SECRET}")) == (
        "FileNotFoundError: [Errno 2] No such file or directory")


class _Patient(Schema):
    class Meta:
        unknown = RAISE

    mrn = fields.String(required=True, validate=validate.Length(min=1, max=64))


class _Data(Schema):
    class Meta:
        unknown = RAISE

    severity = fields.Integer(strict=True, validate=validate.Range(min=0, max=10))
    care_level = fields.String(validate=validate.OneOf(["urgent", "specialist"]))
    report_ids = fields.List(fields.UUID())
    decided_at = fields.AwareDateTime()
    patient = fields.Nested(_Patient)
    mine = fields.String(validate=validate.Regexp("^[A-Z]+$", error=f"{{input}} is not {SECRET}"))
    free = fields.Dict(keys=fields.String(validate=validate.Length(max=2)), values=fields.Integer())
    ruled = fields.String(validate=validate.Equal("x", error=safe_message("must be the letter x")))


def test_a_validation_error_names_each_field_path_and_rule_and_no_value():
    bad = {"severity": 99, "care_level": f"urgent {SECRET}", "report_ids": ["ok", SECRET],
           "decided_at": "2026-11-26T09:00:00", "patient": {"mrn": "", SECRET: 1}, SECRET: "x",
           "mine": SECRET.lower(), "free": {SECRET: "x"}, "ruled": "y"}
    with pytest.raises(ValidationError) as caught:
        _Data().load(bad)
    assert SECRET in json.dumps(caught.value.messages, default=str)  # marshmallow does quote input here
    reason = validation_reason(caught.value)
    assert SECRET not in reason and SECRET.lower() not in reason
    parts = dict(part.split(": ", 1) for part in reason.split("; ") if not part.endswith("unknown field"))
    assert parts["severity"] == "Must be greater than or equal to 0 and less than or equal to 10."
    assert parts["care_level"] == "Must be one of: urgent, specialist."
    assert parts["report_ids.0"] == parts["report_ids.1"] == "Not a valid UUID."
    assert parts["decided_at"] == "Not a valid aware datetime."
    assert parts["patient.mrn"] == "Length must be between 1 and 64."
    assert parts["mine"] == "invalid"  # a message that is not known safe is not repeated
    assert parts["free.*.value"] == "Not a valid integer."  # a key of a free mapping is input
    assert parts["ruled"] == "must be the letter x"
    assert "patient: unknown field" in reason and "(whole): unknown field" in reason
    assert safe_error_text(caught.value) == f"ValidationError: {reason}"


def test_a_missing_field_and_a_wrong_type_are_named():
    with pytest.raises(ValidationError) as caught:
        _Data().load({"severity": "7", "patient": {}})
    assert validation_reason(caught.value) == ("severity: Not a valid integer.; "
                                               "patient.mrn: Missing data for required field.")


@pytest.mark.parametrize("value, start", [
    (b"\xff{", "not JSON: not UTF-8"),
    (b'{"mrn": "' + SECRET.encode(), "not JSON: Unterminated string"),
    (json.dumps({"specversion": SECRET, "id": SECRET * 30}).encode(), "not a CloudEvent: "),
])
def test_an_envelope_error_quotes_nothing_of_the_message(value, start):
    with pytest.raises(envelope.InvalidEvent) as caught:
        envelope.decode(value)
    text = safe_error_text(caught.value)
    assert text.startswith(start) and SECRET not in text


def test_a_dead_letter_failure_says_what_failed_without_values():
    error = DeadLetterFailed(safe_error_text(KafkaTimeoutError("timed out")))
    assert safe_error_text(error) == "KafkaTimeoutError: timed out"


def _raise_chained():
    try:
        raise database_error()
    except psycopg.Error as exc:
        raise RuntimeError(f"while booking {SECRET}") from exc


def test_a_traceback_keeps_its_frames_and_loses_every_text_of_the_chain():
    with pytest.raises(RuntimeError) as caught:
        _raise_chained()
    assert isinstance(carries_database_error(caught.value), psycopg.errors.UniqueViolation)
    text = safe_traceback(caught.value)
    assert SECRET not in text
    assert "_raise_chained" in text and "UniqueViolation (SQLSTATE 23505" in text and "RuntimeError" in text


def _log_lines(emit) -> list[dict]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("test")
        root.handlers[0].stream = stream
        emit(logging.getLogger("tests.error_text"))
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_logging_filter_rewrites_every_record_that_carries_an_exception():
    def emit(log):
        try:
            _raise_chained()
        except RuntimeError:
            log.exception("handler failed")
        log.warning("failed: %s", database_error())
        log.warning(database_error())
        log.warning("failed", extra={"error": database_error(), "event_id": "e-1"})
        try:
            int(SECRET)
        except ValueError:
            log.warning("bug", exc_info=True)

    lines = _log_lines(emit)
    assert len(lines) == 5
    assert SECRET not in json.dumps(lines)
    assert "_raise_chained" in lines[0]["exc_info"] and "UniqueViolation (SQLSTATE 23505" in lines[0]["exc_info"]
    assert lines[1]["message"].startswith("failed: UniqueViolation (SQLSTATE 23505")
    assert lines[2]["message"].startswith("UniqueViolation")
    assert lines[3]["error"].startswith("UniqueViolation") and lines[3]["event_id"] == "e-1"
    assert lines[4]["exc_info"].endswith("ValueError")


def test_the_filter_is_on_handlers_of_loggers_that_do_not_propagate():
    own = logging.StreamHandler(io.StringIO())
    logger = logging.getLogger("tests.error_text.gunicorn_like")
    logger.addHandler(own)
    logger.propagate = False
    try:
        _log_lines(lambda log: None)
        assert any(isinstance(f, ErrorTextFilter) for f in own.filters)
    finally:
        logger.removeHandler(own)
