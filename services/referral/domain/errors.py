"""Errors the booking policy raises when a command cannot be carried out."""


class ReferralError(Exception):
    """A refused command: `code` is machine-readable, `reason` a plain sentence."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class TransitionError(ReferralError):
    """The referral's or slot's current state forbids the action (HTTP 409)."""


class InvalidCommand(ReferralError):
    """The command itself is malformed, e.g. a blank reason (HTTP 422)."""


# Codes, so that callers can match on them without parsing the reason.
INVALID_TRANSITION = "invalid_transition"
SLOT_TAKEN = "slot_taken"
REASON_REQUIRED = "reason_required"
