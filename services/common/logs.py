"""JSON logs on stderr, one object per line.

Privacy: nothing here logs request bodies or event data; callers log ids only
(report_id, referral_id, event id), never names, birth dates, phones or MRNs.
And what an exception says is not left to its author: ErrorTextFilter, on every handler
configure_logging installs (and gunicorn's), rewrites each record that carries an exception
(a traceback, an argument or an extra field) through services/common/error_text.py, so a
database error's DETAIL, which quotes row values, never reaches a log line.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from .error_text import safe_error_text, safe_traceback


class ErrorTextFilter(logging.Filter):
    """Exceptions in a record become their safe text (error_text.py): the traceback keeps its
    frames but each exception's message is replaced; an exception given as an argument, as
    the message or as an extra field is replaced by its safe text. Always lets the record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = safe_traceback(record.exc_info[1])
            record.exc_info = None
        if isinstance(record.msg, BaseException):
            record.msg = safe_error_text(record.msg)
        if isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args):
            record.args = tuple(safe_error_text(a) if isinstance(a, BaseException) else a for a in record.args)
        elif isinstance(record.args, dict) and any(isinstance(a, BaseException) for a in record.args.values()):
            record.args = {k: safe_error_text(a) if isinstance(a, BaseException) else a
                           for k, a in record.args.items()}
        for name, value in list(vars(record).items()):
            if isinstance(value, BaseException):
                setattr(record, name, safe_error_text(value))
        return True


def install_error_text_filter(handler: logging.Handler) -> None:
    if not any(isinstance(f, ErrorTextFilter) for f in handler.filters):
        handler.addFilter(ErrorTextFilter())


_RECORD_ATTRS = frozenset(RESERVED_ATTRS) | {"taskName"}

# Values that JSON writes as they are and that ErrorTextFilter leaves alone: a line of only these
# needs neither the encoder's default nor the filter (ServiceJsonFormatter.plain_line).
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


class ServiceJsonFormatter(JsonFormatter):
    """One JSON object per record: time, level, logger, message, service, then the record's
    extra fields (and exc_info / stack_info when there are any), as python-json-logger's
    JsonFormatter writes them with the services' settings, for less work per line (one line
    per request at least, the access line): the extras are found with one set difference and
    the time's seconds are formatted once a second. Values JSON does not know (dates, UUIDs,
    exceptions) go through python-json-logger's encoder, as before."""

    def __init__(self, service: str):
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
        self.service = service
        self._second: tuple[int, str] = (-1, "")
        # What serialize_log_record does, built once; the same output for plain values.
        self._encode = self.json_encoder(ensure_ascii=self.json_ensure_ascii, indent=self.json_indent).encode

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        cached = self._second  # one read: another thread may replace it meanwhile
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return self.default_msec_format % (cached[1], msecs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self._time(record.created, record.msecs)

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.msg, dict):  # a dict as the message: python-json-logger's own way
            return super().format(record)
        record.message = message = record.getMessage()
        data = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": message, "service": self.service}
        attrs = record.__dict__
        for key in attrs.keys() - _RECORD_ATTRS:
            if not key.startswith("_"):
                data[key] = attrs[key]
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return self.serialize_log_record(data)

    def plain_line(self, logger: str, level: str, message: str, fields: dict[str, Any]) -> str | None:
        """The line format() writes for a record logged now with this message and these extra
        fields, without a LogRecord, the logger's handling or python-json-logger's per-call
        encoder: for the one line per request (the access line), where that machinery was most
        of its cost. None when a field's value is not plain (str, number, bool, None) or its name
        is one a record's extras may not take: that line goes the generic way."""
        for key, value in fields.items():
            if type(value) not in _PLAIN_TYPES or key[:1] == "_":
                return None
        if not fields.keys().isdisjoint(_RECORD_ATTRS):
            return None
        now = time.time()
        data = {"time": self._time(now, int((now - int(now)) * 1000)), "level": level, "logger": logger,
                "message": message, "service": self.service}
        data.update(fields)
        return self.prefix + self._encode(data)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ServiceJsonFormatter(service))
    install_error_text_filter(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Loggers that do not propagate to the root keep handlers of their own (gunicorn's error
    # and access logs, set up before the app): the filter goes on those too.
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            for own in logger.handlers:
                install_error_text_filter(own)
    root.setLevel(level)
    # What no line of ours shows (ServiceJsonFormatter writes time, level, logger, message,
    # service and the extras) is not gathered for every record: the caller's file, line and
    # function (a walk up the stack), the process's name. The logging HOWTO's "Optimization"
    # knobs; the access line alone made that 2% of an API worker's time. (No caller of ours
    # asks for stack_info, which would need the caller.)
    logging._srcfile = None
    logging.logMultiprocessing = False
    # kafka-python is chatty at INFO about every (re)connection.
    logging.getLogger("kafka").setLevel(logging.WARNING)
