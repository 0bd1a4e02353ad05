"""One access line per request (services/common/gunicorn_conf.py): what the app adds to it with
services/common/web.py's access_fields (ids only) is merged into gunicorn's own fields."""
from __future__ import annotations

import datetime
import io
import json
import logging
import os
import uuid
from types import SimpleNamespace

import pytest
from flask import Flask
from gunicorn.config import Config

from services.common import gunicorn_conf, web
from services.common import logs as logs_module
from services.common.logs import ServiceJsonFormatter, install_error_text_filter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_the_app_and_gunicorn_agree_on_the_key():
    assert web.ACCESS_FIELDS_KEY == gunicorn_conf.ACCESS_FIELDS_KEY


def test_the_apps_fields_join_the_access_line():
    app = Flask(__name__)
    with app.test_request_context("/v1/reports?q=secret", method="POST", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                                  headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) as ctx:
        web.access_fields(report="accepted", report_id="r-1", kiosk_id="k-1")
        web.access_fields(trace_id="0" * 32)
        environ = ctx.request.environ
    fields = gunicorn_conf._access_fields(SimpleNamespace(status="202 ACCEPTED", sent=61), environ,
                                          datetime.timedelta(milliseconds=12.34))
    assert fields == {"method": "POST", "path": "/v1/reports", "status": 202, "bytes": 61, "duration_ms": 12.3,
                      "remote": "127.0.0.1", "trace_id": "0" * 32, "report": "accepted", "report_id": "r-1",
                      "kiosk_id": "k-1"}


def test_without_the_apps_fields_the_line_is_gunicorns():
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_TRACEPARENT": f"00-{TRACE}-00f067aa0ba902b7-01"}
    fields = gunicorn_conf._access_fields(SimpleNamespace(status=200, sent=15), environ,
                                          datetime.timedelta(milliseconds=1))
    assert fields["trace_id"] == TRACE and "report_id" not in fields


def test_the_access_line_is_one_json_object():
    logger = logging.getLogger("gunicorn.access.test")
    fields = {"method": "POST", "path": "/v1/reports", "status": 202, "report_id": "r-1"}
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "%s %s %s",
                               ("POST", "/v1/reports", 202), None, extra=fields)
    line = json.loads(ServiceJsonFormatter("intake").format(record))
    assert line["message"] == "POST /v1/reports 202" and line["report_id"] == "r-1" and line["service"] == "intake"


FIELDS = {"method": "POST", "path": "/v1/reports", "status": 202, "bytes": 61, "duration_ms": 12.3,
          "remote": "127.0.0.1", "trace_id": TRACE, "report": "accepted", "report_id": "r-1", "kiosk_id": None,
          "replayed": False}


def test_the_plain_line_is_the_object_format_writes(monkeypatch):
    formatter = ServiceJsonFormatter("intake")
    monkeypatch.setattr(logs_module.time, "time", lambda: 1_790_000_000.25)
    line = formatter.plain_line("gunicorn.access", "INFO", "POST /v1/reports 202", FIELDS)
    record = logging.getLogger("gunicorn.access").makeRecord("gunicorn.access", logging.INFO, __file__, 1, "%s %s %s",
                                                             ("POST", "/v1/reports", 202), None, extra=FIELDS)
    record.created, record.msecs = 1_790_000_000.25, 250.0
    assert "\n" not in line and json.loads(line) == json.loads(formatter.format(record))


@pytest.mark.parametrize("extra", [{"report_id": uuid.UUID(int=1)}, {"error": ValueError("DETAIL: Key (mrn)=(123)")},
                                   {"name": "shadowing a record attribute"}, {"_private": "x"}])
def test_a_line_that_is_not_plain_is_left_to_the_generic_way(extra):
    assert ServiceJsonFormatter("intake").plain_line("gunicorn.access", "INFO", "m", {**FIELDS, **extra}) is None


def _json_logger(stream: io.StringIO, monkeypatch) -> gunicorn_conf.JsonLogger:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("errorlog", "-")
    log = gunicorn_conf.JsonLogger(cfg)
    # The access log's handlers as in a worker: gunicorn's own only (pytest's capture left out).
    (handler,) = [h for h in log.access_log.handlers if getattr(h, "_gunicorn", False)]
    monkeypatch.setattr(log.access_log, "handlers", [handler])
    handler.setStream(stream)
    install_error_text_filter(handler)  # as configure_logging does in the app
    return log


def _access(log: gunicorn_conf.JsonLogger, added: dict) -> None:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/reports", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_TRACEPARENT": f"00-{TRACE}-00f067aa0ba902b7-01", web.ACCESS_FIELDS_KEY: added}
    log.access(SimpleNamespace(status="202 ACCEPTED", sent=61), None, environ, datetime.timedelta(milliseconds=12.34))


@pytest.mark.parametrize("added, expected", [
    ({"report": "accepted", "report_id": "r-1"}, {"report": "accepted", "report_id": "r-1"}),  # the plain way
    ({"report_id": uuid.UUID(int=1)}, {"report_id": str(uuid.UUID(int=1))}),  # the generic way: the encoder's default
    ({"error": ValueError("DETAIL: Key (mrn)=(123)")}, {"error": "ValueError"}),  # the generic way: ErrorTextFilter
])
def test_gunicorns_access_writes_one_json_line_per_request(added, expected, monkeypatch):
    stream = io.StringIO()
    _access(_json_logger(stream, monkeypatch), added)
    (line,) = stream.getvalue().splitlines()
    fields = json.loads(line)
    assert {k: fields.pop(k) for k in ("time", "level", "logger", "message", "service")} == {
        "time": fields_time(line), "level": "INFO", "logger": "gunicorn.access", "message": "POST /v1/reports 202",
        "service": os.environ.get("CLINIC_SERVICE", "gunicorn")}
    assert fields == {"method": "POST", "path": "/v1/reports", "status": 202, "bytes": 61, "duration_ms": 12.3,
                      "remote": "127.0.0.1", "trace_id": TRACE, **expected}


def fields_time(line: str) -> str:
    time_text = json.loads(line)["time"]
    datetime.datetime.strptime(time_text, "%Y-%m-%d %H:%M:%S,%f")  # the formatter's form, or ValueError
    return time_text


def test_a_handler_filter_of_someone_elses_still_decides(monkeypatch):
    stream = io.StringIO()
    log = _json_logger(stream, monkeypatch)
    log.access_log.handlers[0].addFilter(lambda record: False)
    _access(log, {"report": "accepted"})
    assert stream.getvalue() == ""


def test_a_plain_line_is_written_without_a_log_record(monkeypatch):
    stream = io.StringIO()
    log = _json_logger(stream, monkeypatch)

    def no_record(*args, **kwargs):
        raise AssertionError("a LogRecord was made for a plain access line")

    monkeypatch.setattr(log.access_log, "makeRecord", no_record)
    _access(log, {"report": "accepted", "report_id": "r-1", "kiosk_id": "k-1"})
    assert json.loads(stream.getvalue())["kiosk_id"] == "k-1"
