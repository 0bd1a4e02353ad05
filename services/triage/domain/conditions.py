"""Compiled conditions of the rule file, evaluated with three-valued logic.

`evaluate(facts)` returns True, False, or a non-empty tuple naming the fields
whose unknown answers left the outcome open. A rule whose condition is open
fires ("an unknown never lowers the level") and its reason names those fields.
`all` is False as soon as one part is False even if others are unknown, so an
unknown never raises a level that a definite answer already rules out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .facts import UNKNOWN

# True / False / tuple of field names with unknown answers
Outcome = bool | tuple[str, ...]


def is_met(outcome: Outcome) -> bool:
    """Met, or open because of unknown answers (counted as met, to be safe)."""
    return outcome is not False


@dataclass(frozen=True)
class AllOf:
    parts: tuple

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        unknown: tuple[str, ...] = ()
        for part in self.parts:
            outcome = part.evaluate(facts)
            if outcome is False:
                return False
            if outcome is not True:
                unknown += outcome
        return unknown or True


@dataclass(frozen=True)
class AnyOf:
    parts: tuple

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        unknown: tuple[str, ...] = ()
        for part in self.parts:
            outcome = part.evaluate(facts)
            if outcome is True:
                return True
            if outcome is not False:
                unknown += outcome
        return unknown or False


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    setting: str
    threshold: int
    test: Callable[[int, int], bool]

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        value = facts[self.field]
        if value is UNKNOWN:
            return (self.field,)
        return self.test(value, self.threshold)


@dataclass(frozen=True)
class TrueOrUnsure:
    field: str

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        value = facts[self.field]
        if value is UNKNOWN:
            return (self.field,)
        return value


@dataclass(frozen=True)
class OneOf:
    field: str
    values: frozenset[str]

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        value = facts[self.field]
        if value is UNKNOWN:
            return (self.field,)
        return value in self.values


@dataclass(frozen=True)
class IncludesAny:
    field: str
    values: frozenset[str]

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        value = facts[self.field]
        if value is UNKNOWN:
            return (self.field,)
        readable, partly_unreadable = value
        if readable & self.values:
            return True
        # an unreadable item might have been one of ours
        return (self.field,) if partly_unreadable else False


@dataclass(frozen=True)
class OnList:
    """Free text that contains one of the list's entries as whole words, in order
    ("Trail running" contains "running"; "cross-country" matches "Cross country")."""

    field: str
    list_name: str
    phrases: tuple[tuple[str, ...], ...]   # each entry's words, folded like the text

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        value = facts[self.field]
        if value is UNKNOWN:
            return (self.field,)
        return self.match(value) is not None

    def match(self, words: tuple[str, ...]) -> tuple[str, ...] | None:
        """The first entry found in `words`, or None."""
        for phrase in self.phrases:
            size = len(phrase)
            if any(words[start:start + size] == phrase for start in range(len(words) - size + 1)):
                return phrase
        return None


def note_fact(note_id: str) -> str:
    """Key under which the engine records whether a note is listed."""
    return f"note:{note_id}"


@dataclass(frozen=True)
class NoteListed:
    note_id: str

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        return facts[note_fact(self.note_id)] is True


def cause_fact(cause_id: str) -> str:
    """Key under which the engine records whether a possible cause is listed."""
    return f"cause:{cause_id}"


@dataclass(frozen=True)
class CauseListed:
    cause_id: str

    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        return facts[cause_fact(self.cause_id)] is True


@dataclass(frozen=True)
class Always:
    def evaluate(self, facts: Mapping[str, object]) -> Outcome:
        return True


Condition = (AllOf | AnyOf | Compare | TrueOrUnsure | OneOf | IncludesAny | OnList | CauseListed | NoteListed
             | Always)


def parts_of(condition: Condition):
    """The condition and every condition inside it."""
    yield condition
    for part in getattr(condition, "parts", ()):
        yield from parts_of(part)
