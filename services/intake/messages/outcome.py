"""What became of one delivery attempt, as a transport reports it (pure)."""
from __future__ import annotations

from dataclasses import dataclass

SENT = "sent"
TEMPORARY = "temporary"  # refused or unreachable for now: try again later
FAILED = "failed"  # refused for good
UNCERTAIN = "uncertain"  # the server may have taken it: never send it again


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str | None = None  # never an address, a body or a server's reply text (they may quote both)


def by_smtp_code(code: int, stage: str) -> Outcome:
    """An SMTP refusal: 4xx is temporary, anything else final."""
    kind = TEMPORARY if 400 <= code < 500 else FAILED
    return Outcome(kind, f"SMTP {code} at {stage}")
