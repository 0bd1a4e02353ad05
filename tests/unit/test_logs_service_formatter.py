"""services/common/logs.py's ServiceJsonFormatter writes what python-json-logger's JsonFormatter
wrote with the services' settings (the same JSON object for each record), for less work."""
from __future__ import annotations

import datetime
import json
import logging
import sys
import uuid

import pytest
from pythonjsonlogger.json import JsonFormatter

from services.common.logs import ServiceJsonFormatter


def _reference(service: str) -> JsonFormatter:
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         static_fields={"service": service})


def _records() -> list[logging.LogRecord]:
    logger = logging.getLogger("services.test")
    records = [
        logger.makeRecord("services.test", logging.INFO, __file__, 1, "plain", (), None),
        logger.makeRecord("services.test", logging.WARNING, __file__, 2, "%s %s %d", ("POST", "/v1/reports", 202),
                          None, extra={"report_id": str(uuid.uuid4()), "duration_ms": 3.5, "bytes": None,
                                       "day": datetime.date(2026, 11, 26), "ids": [uuid.uuid4()],
                                       "nested": {"a": [1, 2]}}),
        logger.makeRecord("services.test", logging.INFO, __file__, 3, {"event": "a dict message"}, (), None),
    ]
    try:
        raise ValueError("boom")
    except ValueError:
        records.append(logger.makeRecord("services.test", logging.ERROR, __file__, 4, "failed", (), sys.exc_info()))
    with_text = logger.makeRecord("services.test", logging.ERROR, __file__, 5, "failed", (), None)
    with_text.exc_text = "Traceback: (safe text)"
    records.append(with_text)
    with_stack = logger.makeRecord("services.test", logging.INFO, __file__, 6, "here", (), None,
                                   sinfo="Stack (most recent call last): ...")
    records.append(with_stack)
    return records


@pytest.mark.parametrize("index", range(6))
def test_the_same_object_as_python_json_logger(index):
    record = _records()[index]
    assert json.loads(ServiceJsonFormatter("intake").format(record)) == json.loads(
        _reference("intake").format(record))


def test_the_time_is_formatted_per_record_though_cached_per_second():
    formatter = ServiceJsonFormatter("intake")
    reference = _reference("intake")
    record = _records()[0]
    for created in (1_790_000_000.001, 1_790_000_000.999, 1_790_000_001.5, 1_789_999_999.25):
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert json.loads(formatter.format(record))["time"] == json.loads(reference.format(record))["time"]
