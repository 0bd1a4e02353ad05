"""Booking windows: how long a referral may wait for its consult."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from .model import (
    ROUTINE,
    URGENT,
    WAITLISTED,
    CareLevel,
    Priority,
    Referral,
    Slot,
    require_aware,
)

_PRIORITY_BY_CARE_LEVEL: dict[str, Priority | None] = {
    "urgent": URGENT,
    "specialist": ROUTINE,
    "self_care": None,  # conservative care at home: no referral
}


@dataclass(frozen=True)
class Windows:
    """Window lengths per priority. They are settings of the triage rule file,
    so the caller builds this from it; the defaults are the documented ones."""

    urgent: timedelta = timedelta(days=2)
    routine: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        if self.urgent <= timedelta(0) or self.routine <= timedelta(0):
            raise ValueError("booking windows must be positive")

    @classmethod
    def from_days(cls, urgent_days: float, routine_days: float) -> "Windows":
        return cls(urgent=timedelta(days=urgent_days), routine=timedelta(days=routine_days))

    def length(self, priority: Priority) -> timedelta:
        if priority == URGENT:
            return self.urgent
        if priority == ROUTINE:
            return self.routine
        raise ValueError(f"unknown priority {priority!r}")


DEFAULT_WINDOWS = Windows()


def priority_for(care_level: CareLevel) -> Priority | None:
    """The referral priority a care level calls for; None means no referral."""
    try:
        return _PRIORITY_BY_CARE_LEVEL[care_level]
    except KeyError:
        raise ValueError(f"unknown care level {care_level!r}") from None


def window_end(priority: Priority, made_at: datetime, windows: Windows = DEFAULT_WINDOWS) -> datetime:
    """A window is counted from the moment the referral was made."""
    require_aware("made_at", made_at)
    return made_at + windows.length(priority)


def slot_in_window(slot: Slot, now: datetime, window_ends_at: datetime) -> bool:
    """Only the start counts, both ends inclusive; a slot that has already
    started is never eligible for automatic booking."""
    return now <= slot.start <= window_ends_at


def is_breached(referral: Referral, now: datetime) -> bool:
    """Still waiting after its window closed: a scheduler must book it by hand."""
    return referral.status == WAITLISTED and now > referral.window_ends_at
