"""Errors of the triage domain."""

from __future__ import annotations


class RuleFileError(ValueError):
    """The rule file was refused; nothing of it was loaded.

    `problems` lists every "path: message" found, e.g.
    "rules[3].when.op: unknown operator '=>'".
    """

    def __init__(self, problems: list[str], origin: str = "rule file") -> None:
        self.problems = list(problems)
        self.origin = origin
        if len(self.problems) == 1:
            message = f"{origin} refused: {self.problems[0]}"
        else:
            listed = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"{origin} refused ({len(self.problems)} problems):\n{listed}"
        super().__init__(message)
