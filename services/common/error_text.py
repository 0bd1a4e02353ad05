"""What an error may say in a log line or a dead-letter header: the one place that decides.

Logs and `dlq.*` headers hold no patient data (issue 13), yet the errors we meet quote it:
a PostgreSQL error's message and DETAIL quote the row (`Key (patient_mrn_key, ...)=(mrn-0042,
...) already exists`), a marshmallow message may quote the input, and any other exception's
text is whatever its author wrote. `safe_error_text(exc)` keeps only what cannot be a value:

- psycopg errors: the class, SQLSTATE and the names the server reports (schema, table,
  column, constraint, data type): never the message, DETAIL, HINT or CONTEXT;
- marshmallow's ValidationError: each failing field's path with the rule it broke, the
  message only when it is one of marshmallow's fixed texts or a rule of ours
  (`safe_message`), else "invalid"; the name of an unknown field is never repeated;
- SafeMessageError (PoisonEvent, InvalidEvent: messages written to name fields and rules,
  never values), Kafka client errors and OSError (errno and its text): the class and text;
- anything else: the class name only.

The logging filter that applies this to every record carrying a psycopg error is
services/common/logs.py's; the inbox's dead-letter headers and every `error` field logged by
the common plumbing come from here.
"""
from __future__ import annotations

import re
import traceback
from collections.abc import Iterator

import psycopg
from marshmallow import ValidationError, fields

MAX_TEXT = 2000

# A path component worth naming: a contract field name (snake_case) or a list index. Anything
# else (a key of a free-form mapping, a field name that is not ours) is shown as "*".
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")


class SafeMessageError(Exception):
    """An exception whose message is written, by us, to carry no data values (field names,
    rule names, bounds): it may be logged and put in headers as it is."""


# -- the one function ------------------------------------------------------------------
def safe_error_text(exc: BaseException) -> str:
    """The exception as a log line or header may show it (see module docstring)."""
    if isinstance(exc, psycopg.Error):
        text = _database_error(exc)
    elif isinstance(exc, ValidationError):
        text = f"ValidationError: {validation_reason(exc)}"
    elif isinstance(exc, SafeMessageError):
        text = str(exc) or type(exc).__name__
    elif isinstance(exc, OSError):
        text = type(exc).__name__ + (f": [Errno {exc.errno}] {exc.strerror}" if exc.errno else "")
    elif _is_kafka_error(exc):
        text = str(exc) or type(exc).__name__  # kafka-python's text starts with the class name
        if not text.startswith(type(exc).__name__):
            text = f"{type(exc).__name__}: {text}"
    else:
        text = type(exc).__name__
    return text[:MAX_TEXT]


def carries_database_error(exc: BaseException | None) -> psycopg.Error | None:
    """The psycopg error in `exc`'s chain (itself, its cause or context), if any: a traceback
    of that chain would print its DETAIL."""
    for link in _chain(exc):
        if isinstance(link, psycopg.Error):
            return link
    return None


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _database_error(exc: psycopg.Error) -> str:
    diag = exc.diag
    names = [f"SQLSTATE {exc.sqlstate or '-'}"]
    for label, value in (("constraint", diag.constraint_name), ("schema", diag.schema_name), ("table", diag.table_name),
                         ("column", diag.column_name), ("type", diag.datatype_name)):
        if value:
            names.append(f"{label} {value}")
    return f"{type(exc).__name__} ({', '.join(names)})"


def _is_kafka_error(exc: BaseException) -> bool:
    try:
        from kafka.errors import KafkaError
    except ImportError:  # pragma: no cover - kafka-python is a dependency of every service
        return False
    return isinstance(exc, KafkaError)


# -- marshmallow -------------------------------------------------------------------------
_SAFE_MESSAGES: set[str] = set()


def safe_message(text: str) -> str:
    """Declare a validation message of ours as safe to show (it names a rule, never a value);
    returns it, for `error=` arguments."""
    _SAFE_MESSAGES.add(text)
    return text


def _marshmallow_fixed_messages() -> set[str]:
    """Marshmallow's own messages that are fixed texts (no placeholder at all)."""
    found: set[str] = {"Unknown field.", "Invalid input type.", "Invalid value."}
    classes = [fields.Field]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        for text in getattr(cls, "default_error_messages", {}).values():
            if isinstance(text, str) and "{" not in text:
                found.add(text)
    return found


# Marshmallow's validator texts, whose placeholders hold the schema's bounds and choices,
# never the input (we never give a validator an `error=` with `{input}` in it: ours go
# through safe_message).
_VALIDATOR_TEXT = re.compile("|".join((
    r"Must be (greater|less) than( or equal to)? [-+0-9.eE:T ]+( and (greater|less) than( or equal to)? [-+0-9.eE:T ]+)?\.",
    r"(Shorter than minimum|Longer than maximum) length \d+\.",
    r"Length must be (between \d+ and \d+|\d+)\.",
    r"Must be one of: [a-z0-9_., -]+\.",
    r"Must be equal to [A-Za-z0-9_./-]+\.",
    r"String does not match expected pattern\.",
    r"Not a valid [A-Za-z ]+\.",  # "Not a valid {obj_type}.", "Not a valid {awareness} datetime."
)))
_FIXED = _marshmallow_fixed_messages()


def _rule(message: object) -> str:
    if not isinstance(message, str):
        return "invalid"
    if message not in _FIXED and message not in _SAFE_MESSAGES:
        _FIXED.update(_marshmallow_fixed_messages())  # field classes defined since
    if message in _FIXED or message in _SAFE_MESSAGES or _VALIDATOR_TEXT.fullmatch(message):
        return message
    return "invalid"


def validation_reason(error: ValidationError | dict | list | str) -> str:
    """`path: rule; path: rule` for a marshmallow error (or its `messages`), without values."""
    messages = error.messages if isinstance(error, ValidationError) else error
    parts = [f"{path or '(whole)'}: {rule}" for path, rule in _walk(messages, ())]
    return "; ".join(dict.fromkeys(parts)) or "invalid"


def _walk(node: object, path: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if value == ["Unknown field."] or value == "Unknown field.":
                yield ".".join(path), "unknown field"  # its name is input: not repeated
                continue
            if key == "_schema":
                yield from _walk(value, path)
                continue
            yield from _walk(value, (*path, _component(key)))
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item, path)
    else:
        yield ".".join(path), _rule(node)


def _component(key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    if isinstance(key, str) and _FIELD_NAME.fullmatch(key):
        return key
    return "*"



def safe_traceback(exc: BaseException) -> str:
    """A traceback of `exc` and its chain with every frame (file, line, code) but, in place of
    each exception's own text, its safe_error_text."""
    links = list(_chain(exc))
    blocks = []
    for link in reversed(links):  # the first cause first, as Python prints it
        frames = traceback.format_list(traceback.extract_tb(link.__traceback__))
        blocks.append("Traceback (most recent call last):\n" + "".join(frames) + safe_error_text(link))
    return "\n\nDuring the handling of the above, another exception occurred:\n\n".join(blocks)
