"""Turning marshmallow's nested error messages into the `fields` list of a 422 answer.

marshmallow reports errors as a tree: `{"pain": {"locations": {1: ["..."]}, "_schema": ["..."]}}`.
Clients want one entry per problem, named by a dotted path (`pain.locations.1`), in a
stable order, in words a person at a kiosk can read.
"""

from __future__ import annotations

from collections.abc import Mapping

# marshmallow's schema-level key: such errors belong to the object that holds them.
_SCHEMA_KEY = "_schema"

# marshmallow's stock messages, reworded. Messages our own schemas chose pass through.
PLAIN_MESSAGES = {
    "Missing data for required field.": "This field is required.",
    "Field may not be null.": "This field cannot be null.",
    "Unknown field.": "This field is not allowed.",
    "Invalid input type.": "Must be a JSON object.",
    "Not a valid mapping type.": "Must be a JSON object.",
    "Invalid value.": "This value is not allowed.",
    "Not a valid string.": "Must be text.",
    "Not a valid integer.": "Must be a whole number.",
    "Not a valid number.": "Must be a number.",
    "Not a valid boolean.": "Must be true or false.",
    "Not a valid list.": "Must be a list.",
    "Not a valid tuple.": "Must be a list.",
    "Not a valid date.": "Must be a date in the form YYYY-MM-DD.",
    "Not a valid datetime.": "Must be a date and time like 2026-11-20T09:30:00+00:00.",
    "Not a valid aware datetime.": "Must include a time zone offset, like +00:00.",
    "Not a valid UUID.": "Must be a UUID.",
    "Not a valid email address.": "Must be an email address.",
    "Not a valid URL.": "Must be a web address (URL).",
}


def field_errors(messages: Mapping | list | str) -> list[dict[str, str]]:
    """Flatten `ValidationError.messages` into `[{"field": "pain.severity", "message": "..."}]`.

    Sorted by path (list indices in numeric order), each field's messages in marshmallow's
    order, duplicates dropped. Errors about the whole body have the field "".
    """
    found: list[tuple[tuple, str]] = []
    _collect(messages, (), found)
    found.sort(key=lambda item: _sort_key(item[0]))  # stable: keeps each field's own order
    result, seen = [], set()
    for path, message in found:
        entry = (".".join(str(part) for part in path), message)
        if entry not in seen:
            seen.add(entry)
            result.append({"field": entry[0], "message": entry[1]})
    return result


def _collect(node, path: tuple, found: list) -> None:
    if isinstance(node, Mapping):
        for key, child in node.items():
            _collect(child, path if key == _SCHEMA_KEY else (*path, key), found)
    elif isinstance(node, (list, tuple)):
        # A list holds messages; a dict inside it (from a validator) is more of the tree.
        for item in node:
            _collect(item, path, found)
    else:
        text = str(node)
        found.append((path, PLAIN_MESSAGES.get(text, text)))


def _sort_key(path: tuple) -> tuple:
    # Indices are ints in marshmallow's tree; compare them as numbers, never with names.
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in path)
