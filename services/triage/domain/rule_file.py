"""Reading the rule file: from a path or from YAML text, all or nothing."""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from .errors import RuleFileError
from .rule_set_builder import build_rule_set
from .ruleset import RuleSet

RULES_PACKAGE = "services.triage.rules"
RULES_FILE_NAME = "care-rules.yaml"


def default_rules_path() -> Traversable:
    """The rule file shipped with the service (a Path for a normal install)."""
    return resources.files(RULES_PACKAGE).joinpath(RULES_FILE_NAME)


def load_rules(source: str | os.PathLike | Traversable) -> RuleSet:
    """Load and check a rule file; raise RuleFileError naming every bad entry.

    `source` is a path (Path, Traversable, or a one-line str) or the YAML text
    itself (a str with a line break).
    """
    text, origin = _read(source)
    try:
        data = yaml.load(text, Loader=_StrictLoader)   # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise RuleFileError([_describe_yaml_error(error)], origin) from None
    return build_rule_set(data, origin)


def _read(source: object) -> tuple[str, str]:
    if isinstance(source, str) and "\n" in source:
        return source, "rule text"
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
    if not hasattr(source, "read_text"):
        raise TypeError(f"expected a path or YAML text, got {type(source).__name__}")
    origin = f"rule file {source}"
    try:
        return source.read_text(encoding="utf-8"), origin
    except (OSError, UnicodeDecodeError) as error:
        raise RuleFileError([f"cannot read it: {error}"], origin) from None


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):   # libyaml when available
    """SafeLoader that refuses a key given twice (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue   # unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)
