"""Gunicorn settings for the three APIs: `gunicorn --config python:services.common.gunicorn_conf
'services.<svc>.app:create_app()'` with CLINIC_BIND and CLINIC_SERVICE set.

Gunicorn reads the module-level names below; nothing else runs at import.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile

from gunicorn import util as gunicorn_util
from gunicorn.glogging import Logger

bind = [os.environ.get("CLINIC_BIND", "127.0.0.1:8000")]

# gthread rather than sync: the kiosk page and the schedulers' browsers hold
# keep-alive connections, which a sync worker would drop after every request
# (and a slow client would block a whole process); the handlers spend their
# time waiting on PostgreSQL, so a few threads per process serve concurrent
# requests at little memory. Two processes keep the API up while one is being
# replaced. `threads` matches the pool's max_size (services/common/db.py), so
# a request thread never waits for a connection another thread holds.
worker_class = "gthread"
workers = 2
threads = 4

# The app (its pools, producers, threads) is built in each worker after the
# fork, never in the arbiter: sockets and threads do not survive fork().
preload_app = False

timeout = 30
graceful_timeout = 10
keepalive = 5

# Three arbiters on one machine would fight over the default control socket
# ($HOME/.gunicorn/gunicorn.ctl); nothing here uses it.
control_socket_disable = True

# Forwarded headers are Werkzeug's ProxyFix's to believe, when CLINIC_TRUSTED_PROXY_HOPS says
# a proxy is in front (services/common/web.py), never gunicorn's: by default it would take
# X-Forwarded-Proto (HTTPS, Secure cookies) and SCRIPT_NAME from any client on 127.0.0.1.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}

accesslog = "-"  # stdout
errorlog = "-"  # stderr


# What the app adds to a request's access line (ids, never patient data): a dict the app puts
# in the WSGI environ under this key (services/common/web.py, access_fields), merged into the
# line, so that a request is one log line, not an app line and an access line.
ACCESS_FIELDS_KEY = "clinic.access_fields"


class JsonLogger(Logger):
    """Gunicorn's logger with JSON lines in the services' format
    (services/common/logs.py): error log on stderr, access log on stdout.

    The access line has the path without the query string: query strings may
    carry search terms or cursors that do not belong in logs.
    """

    def setup(self, cfg):
        super().setup(cfg)
        from services.common.logs import ErrorTextFilter, ServiceJsonFormatter  # here: nothing app-side at import

        self._formatter = formatter = ServiceJsonFormatter(os.environ.get("CLINIC_SERVICE", "gunicorn"))
        self._no_op_filter = ErrorTextFilter
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(formatter)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        fields = _access_fields(resp, environ, request_time)
        message = f"{fields['method']} {fields['path']} {fields['status']}"
        handlers = self._plain_access_handlers()
        if handlers:
            line = self._formatter.plain_line(self.access_log.name, "INFO", message, fields)
            if line is not None:
                _write(handlers, line, lambda: self._record(message, fields))
                return
        self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)

    def _plain_access_handlers(self) -> list[logging.Handler]:
        """The access log's handlers when its line can be written without logging's per-record
        machinery (a LogRecord, filters, handle()), which was most of the line's cost and
        does nothing for it: INFO enabled, plain stream handlers with the formatter setup gave them
        and no filter but ErrorTextFilter (a no-op for plain values). Else [], the generic way.
        Looked at per line: configure_logging adds filters after setup, a reload replaces handlers."""
        log = self.access_log
        if log.disabled or log.filters or not log.isEnabledFor(logging.INFO):
            return []
        for handler in log.handlers:
            if (type(handler) is not logging.StreamHandler or handler.formatter is not self._formatter
                    or handler.level > logging.INFO):
                return []
            for f in handler.filters:
                if type(f) is not self._no_op_filter:
                    return []
        return log.handlers

    def _record(self, message: str, fields: dict) -> logging.LogRecord:
        return self.access_log.makeRecord(self.access_log.name, logging.INFO, "(access)", 0, "%s", (message,),
                                          None, extra=fields)


def _access_fields(resp, environ, request_time) -> dict:
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    fields = {
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),  # PATH_INFO never holds the query string
        "status": int(status),
        "bytes": getattr(resp, "sent", None),
        "duration_ms": round(request_time.total_seconds() * 1000, 1),
        "remote": environ.get("REMOTE_ADDR"),
        "trace_id": _trace_id(environ.get("HTTP_TRACEPARENT", "")),
    }
    added = environ.get(ACCESS_FIELDS_KEY)
    if added:
        fields.update(added)
    return fields


def _write(handlers, line: str, record) -> None:
    """What StreamHandler.emit does with a formatted line, under the handler's lock as handle() takes it."""
    for handler in handlers:
        handler.acquire()
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(record())  # as emit does: logging.raiseExceptions says whether to print
        finally:
            handler.release()


def _trace_id(traceparent: str) -> str | None:
    """The trace id of a W3C traceparent header (version-traceid-spanid-flags)."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


logger_class = JsonLogger

# Request line and header limits. Gunicorn refuses what passes them before the app sees
# the request (414 for the line, 431 for a header or too many of them, 400 for a line or
# header it cannot parse); post_fork below makes those answers the services' one JSON error
# shape instead of gunicorn's HTML page. The OpenAPI documents list them (services/common/errors.py).
limit_request_line = 4094  # bytes: method, path, query and version
limit_request_fields = 100
limit_request_field_size = 8190  # bytes: one header, name and value

# Gunicorn's words for these answers are its own; ours say what the limit is.
_GUNICORN_ERRORS = {
    400: ("bad_request", "The request line or a header could not be parsed."),
    403: ("forbidden", "The request was refused."),
    414: ("uri_too_long", f"The request line is over {limit_request_line} bytes."),
    417: ("expectation_failed", "Only Expect: 100-continue is understood."),
    431: ("header_fields_too_large", f"A request header is over {limit_request_field_size} bytes, "
                                     f"or there are more than {limit_request_fields} headers."),
    500: ("internal_error", "An internal error occurred."),
    501: ("not_implemented", "That transfer coding is not supported."),
}
_SECURITY_HEADERS = (  # as services/common/web.py SECURITY_HEADERS (no app import here)
    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n")


def json_error(status: int, reason: str) -> bytes:
    """A whole HTTP/1.1 answer in the services' one error shape, for gunicorn to send."""
    code, message = _GUNICORN_ERRORS.get(status, ("bad_request" if status < 500 else "internal_error",
                                                  reason))
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"{_SECURITY_HEADERS}Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def _write_json_error(sock, status_int, reason, mesg):
    # mesg (gunicorn's detail, which may echo the request line) is left out on purpose.
    gunicorn_util.write_nonblock(sock, json_error(int(status_int), reason))


def post_fork(server, worker):
    # In the worker only (the arbiter never answers requests): gunicorn's base worker sends
    # every error it answers itself (Worker.handle_error) through util.write_error.
    gunicorn_util.write_error = _write_json_error


# Prometheus multiprocess mode (services/common/metrics.py): the workers write
# their counters to files in one directory and /metrics adds them up, so that a
# scrape counts every worker's requests, not just those of the one answering.
# The directory is made (or emptied) before the first fork: files of an earlier
# run would be counted again.
_made_metrics_dir: list[str] = []


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
    else:
        path = tempfile.mkdtemp(prefix=f"clinic-{os.environ.get('CLINIC_SERVICE', 'api')}-metrics-")
        _made_metrics_dir.append(path)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path  # inherited by the workers forked next


def child_exit(server, worker):
    from prometheus_client import multiprocess  # here, after PROMETHEUS_MULTIPROC_DIR is set

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    for path in _made_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)
