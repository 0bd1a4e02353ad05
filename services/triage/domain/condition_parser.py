"""Turns a `when:` node of the rule file into a condition, or reports why not.

The vocabulary is deliberately small (see the header of care-rules.yaml); each
field kind accepts exactly one test so that a rule cannot, for instance, let
"not sure" count as no.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .checking import Problems, describe, one_of, sequence
from .conditions import (
    AllOf,
    AnyOf,
    CauseListed,
    Compare,
    Condition,
    IncludesAny,
    NoteListed,
    OneOf,
    OnList,
    TrueOrUnsure,
)
from .vocabulary import FIELDS, OPERATORS, TRUE_OR_UNSURE, FieldKind


@dataclass
class ConditionScope:
    """What a condition in one part of the file may refer to."""

    problems: Problems
    settings: Mapping[str, int | None]           # declared name -> value (None: the value was refused)
    cause_ids: frozenset[str] | None = None      # None: `cause:` not allowed here
    note_ids: frozenset[str] | None = None       # None: `note:` not allowed here
    word_lists: Mapping[str, tuple[tuple[str, ...], ...] | None] = field(default_factory=dict)
    fields_read: dict[str, str] = field(default_factory=dict)   # field -> first path reading it


_TEST_KEY = {
    FieldKind.NUMBER: "op",
    FieldKind.YES_NO: "is",
    FieldKind.CHOICE: "in",
    FieldKind.CHOICES: "includes_any",
    FieldKind.TEXT: "on_list",
}
_COMBINATORS = ("all", "any")


def parse_condition(node: object, path: str, scope: ConditionScope) -> Condition | None:
    problems = scope.problems
    if not isinstance(node, Mapping):
        problems.add(path, f"expected a condition (a mapping), got {describe(node)}")
        return None
    for combinator in _COMBINATORS:
        if combinator in node:
            return _combination(combinator, node, path, scope)
    if "cause" in node:
        return _cause(node, path, scope)
    if "note" in node:
        return _note(node, path, scope)
    if "field" in node:
        return _field_test(node, path, scope)
    problems.add(path, "expected a condition with one of: all, any, field, cause, note")
    return None


def _only_keys(node: Mapping, path: str, allowed: tuple[str, ...], problems: Problems) -> bool:
    extra = [key for key in node if key not in allowed]
    for key in extra:
        problems.add(f"{path}.{key}", f"unknown key here (this condition takes: {', '.join(allowed)})")
    missing = [key for key in allowed if key not in node]
    for key in missing:
        problems.missing(f"{path}.{key}")
    return not extra and not missing


def _combination(combinator: str, node: Mapping, path: str, scope: ConditionScope) -> Condition | None:
    if not _only_keys(node, path, (combinator,), scope.problems):
        return None
    parts_path = f"{path}.{combinator}"
    nodes = sequence(scope.problems, node[combinator], parts_path)
    if nodes is None:
        return None
    parts = [parse_condition(part, f"{parts_path}[{i}]", scope) for i, part in enumerate(nodes)]
    if any(part is None for part in parts):
        return None
    return AllOf(tuple(parts)) if combinator == "all" else AnyOf(tuple(parts))


def _cause(node: Mapping, path: str, scope: ConditionScope) -> Condition | None:
    problems = scope.problems
    if scope.cause_ids is None:
        problems.add(f"{path}.cause", "`cause:` may only be used in notes, advice and a rule's reasons_when")
        return None
    if not _only_keys(node, path, ("cause",), problems):
        return None
    cause_id = node["cause"]
    if not (isinstance(cause_id, str) and cause_id in scope.cause_ids):
        problems.add(f"{path}.cause", f"unknown possible cause {describe(cause_id)}")
        return None
    return CauseListed(cause_id)


def _note(node: Mapping, path: str, scope: ConditionScope) -> Condition | None:
    problems = scope.problems
    if scope.note_ids is None:
        problems.add(f"{path}.note", "`note:` may only be used in advice and in a rule's reasons_when")
        return None
    if not _only_keys(node, path, ("note",), problems):
        return None
    note_id = node["note"]
    if not (isinstance(note_id, str) and note_id in scope.note_ids):
        problems.add(f"{path}.note", f"unknown note {describe(note_id)}")
        return None
    return NoteListed(note_id)


def _field_test(node: Mapping, path: str, scope: ConditionScope) -> Condition | None:
    problems = scope.problems
    name = node["field"]
    known = FIELDS.get(name) if isinstance(name, str) else None
    if known is None:
        problems.add(f"{path}.field", f"unknown field {describe(name)} (use one of {', '.join(FIELDS)})")
        return None
    test_key = _TEST_KEY[known.kind]
    allowed = ("field", "op", "setting") if known.kind is FieldKind.NUMBER else ("field", test_key)
    if test_key not in node:
        problems.add(path, f"{name} is a {known.kind.value} field: test it with "
                           f"{' and '.join(key for key in allowed if key != 'field')}")
        return None
    if not _only_keys(node, path, allowed, problems):
        return None
    scope.fields_read.setdefault(name, path)

    if known.kind is FieldKind.NUMBER:
        return _comparison(node, path, scope)
    if known.kind is FieldKind.YES_NO:
        if node["is"] != TRUE_OR_UNSURE:
            problems.add(f"{path}.is", f"unknown test {describe(node['is'])} (use {TRUE_OR_UNSURE}: "
                                       "a not-sure answer must count as yes)")
            return None
        return TrueOrUnsure(name)
    if known.kind is FieldKind.TEXT:
        list_name = node["on_list"]
        if not (isinstance(list_name, str) and list_name in scope.word_lists):
            problems.add(f"{path}.on_list", f"unknown word list {describe(list_name)} "
                                            f"(use one of: {', '.join(scope.word_lists) or 'none in this file'})")
            return None
        phrases = scope.word_lists[list_name]
        if phrases is None:   # the list was refused already; say it once
            return None
        return OnList(name, list_name, phrases)
    values = _values(node[test_key], f"{path}.{test_key}", known.values, name, problems)
    if values is None:
        return None
    return OneOf(name, values) if known.kind is FieldKind.CHOICE else IncludesAny(name, values)


def _comparison(node: Mapping, path: str, scope: ConditionScope) -> Condition | None:
    problems = scope.problems
    op = node["op"]
    if not (isinstance(op, str) and op in OPERATORS):
        problems.add(f"{path}.op", f"unknown operator {op!r} (use one of {', '.join(OPERATORS)})")
        return None
    setting = node["setting"]
    if not (isinstance(setting, str) and setting in scope.settings):
        problems.add(f"{path}.setting", f"unknown setting {describe(setting)}")
        return None
    threshold = scope.settings[setting]
    if threshold is None:   # its value was refused already; say it once
        return None
    return Compare(node["field"], op, setting, threshold, OPERATORS[op])


def _values(node: object, path: str, allowed: tuple[str, ...], field_name: str,
            problems: Problems) -> frozenset[str] | None:
    items = sequence(problems, node, path)
    if items is None:
        return None
    values = [one_of(problems, item, f"{path}[{i}]", allowed, f"value for {field_name}")
              for i, item in enumerate(items)]
    if any(value is None for value in values):
        return None
    return frozenset(values)
