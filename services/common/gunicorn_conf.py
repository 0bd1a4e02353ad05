"""Gunicorn settings for the three APIs: `gunicorn --config python:services.common.gunicorn_conf
'services.<svc>.app:create_app()'` with CLINIC_BIND and CLINIC_SERVICE set.

Gunicorn reads the module-level names below; nothing else runs at import.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from gunicorn.glogging import Logger
from pythonjsonlogger.json import JsonFormatter

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

accesslog = "-"  # stdout
errorlog = "-"  # stderr


class JsonLogger(Logger):
    """Gunicorn's logger with JSON lines in the services' format
    (services/common/logs.py): error log on stderr, access log on stdout.

    The access line has the path without the query string: query strings may
    carry search terms or cursors that do not belong in logs.
    """

    def setup(self, cfg):
        super().setup(cfg)
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": os.environ.get("CLINIC_SERVICE", "gunicorn")},
        )
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(formatter)

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        fields = _access_fields(resp, environ, request_time)
        self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)


def _access_fields(resp, environ, request_time) -> dict:
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    return {
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),  # PATH_INFO never holds the query string
        "status": int(status),
        "bytes": getattr(resp, "sent", None),
        "duration_ms": round(request_time.total_seconds() * 1000, 1),
        "remote": environ.get("REMOTE_ADDR"),
        "trace_id": _trace_id(environ.get("HTTP_TRACEPARENT", "")),
    }


def _trace_id(traceparent: str) -> str | None:
    """The trace id of a W3C traceparent header (version-traceid-spanid-flags)."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


logger_class = JsonLogger

# No post_fork hook: with preload_app off there is nothing to reset after the
# fork, and the worker builds its app (and pools) itself.


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
