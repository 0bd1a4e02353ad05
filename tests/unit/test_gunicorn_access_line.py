"""One access line per request (services/common/gunicorn_conf.py): what the app adds to it with
services/common/web.py's access_fields (ids only) is merged into gunicorn's own fields."""
from __future__ import annotations

import datetime
import json
import logging
from types import SimpleNamespace

from flask import Flask

from services.common import gunicorn_conf, web
from services.common.logs import ServiceJsonFormatter

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
