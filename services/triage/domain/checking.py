"""Small helpers for checking parsed rule-file data and naming what is wrong."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Problems:
    """Collects "path: message" lines; the loader refuses the file if any."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._missing: set[str] = set()

    def add(self, path: str, message: str) -> None:
        if path in self._missing:
            return   # "missing" already says it; "expected ..., got None" would only repeat it
        self.items.append(f"{path or 'rule file'}: {message}")

    def missing(self, path: str) -> None:
        self.add(path, "missing")
        self._missing.add(path)

    def __bool__(self) -> bool:
        return bool(self.items)


def join(path: str, key: object) -> str:
    """Path of a key below `path`; the top level has the empty path."""
    return f"{path}.{key}" if path else str(key)


def describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def mapping(problems: Problems, node: object, path: str,
            required: Iterable[str], optional: Iterable[str] = ()) -> Mapping | None:
    """The node if it is a mapping; reports unknown and missing keys."""
    if not isinstance(node, Mapping):
        problems.add(path, f"expected a mapping, got {describe(node)}")
        return None
    required = tuple(required)
    allowed = set(required) | set(optional)
    for key in node:
        if key not in allowed:
            problems.add(join(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in required:
        if key not in node:
            problems.missing(join(path, key))
    return node


def sequence(problems: Problems, node: object, path: str, *, allow_empty: bool = False) -> list | None:
    if not isinstance(node, list):
        problems.add(path, f"expected a list, got {describe(node)}")
        return None
    if not node and not allow_empty:
        problems.add(path, "must not be empty")
        return None
    return node


def text(problems: Problems, node: object, path: str) -> str | None:
    if not isinstance(node, str) or not node.strip():
        problems.add(path, f"expected non-empty text, got {describe(node)}")
        return None
    return node


def sources(problems: Problems, node: object, path: str) -> tuple[str, ...]:
    """A quoted source sentence, or a list of them."""
    if isinstance(node, list):
        if not node:
            problems.add(path, "must not be empty")
        return tuple(s for i, s in enumerate(node) if text(problems, s, f"{path}[{i}]") is not None)
    single = text(problems, node, path)
    return (single,) if single is not None else ()


def one_of(problems: Problems, node: object, path: str, allowed: Iterable[str], what: str) -> str | None:
    allowed = tuple(allowed)
    if isinstance(node, str) and node in allowed:
        return node
    hint = " (quote yes/no in YAML)" if isinstance(node, bool) else ""
    shown = repr(node) if isinstance(node, str) else describe(node)
    problems.add(path, f"unknown {what} {shown} (use one of {', '.join(allowed)}){hint}")
    return None
