"""The values the booking policy works on: slots and referrals.

Both are immutable; every change returns a new value. Their constructors
refuse impossible states so that a bad row from the database, or a bug in
the policy, fails loudly instead of booking the wrong thing.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Hashable, Literal

from services.common.report_vocabulary import DEFAULT_LANGUAGE, REPORT_LANGUAGES

Priority = Literal["urgent", "routine"]
Status = Literal["booked", "waitlisted", "cancelled", "completed"]
CareLevel = Literal["urgent", "specialist", "self_care"]

URGENT: Priority = "urgent"
ROUTINE: Priority = "routine"
PRIORITIES = frozenset({URGENT, ROUTINE})

BOOKED: Status = "booked"
WAITLISTED: Status = "waitlisted"
CANCELLED: Status = "cancelled"
COMPLETED: Status = "completed"
STATUSES = frozenset({BOOKED, WAITLISTED, CANCELLED, COMPLETED})
# A patient has at most one open referral; new reports are linked to it.
OPEN_STATUSES = frozenset({BOOKED, WAITLISTED})
# Completed keeps its slot (the appointment took place); cancelled gives it back.
STATUSES_HOLDING_A_SLOT = frozenset({BOOKED, COMPLETED})

# Ids are UUIDs in the database; the policy only compares and orders them.
Id = Hashable


def require_aware(name: str, value: datetime) -> None:
    """Naive datetimes cannot be compared with the zoned times of the contract."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


@dataclass(frozen=True)
class Slot:
    slot_id: Id
    provider_id: Id
    start: datetime
    end: datetime
    booked_by: Id | None = None  # referral_id holding the slot

    def __post_init__(self) -> None:
        require_aware("start", self.start)
        require_aware("end", self.end)
        if not self.start < self.end:
            raise ValueError(f"slot {self.slot_id} must start before it ends")

    @property
    def is_free(self) -> bool:
        return self.booked_by is None


@dataclass(frozen=True)
class Referral:
    referral_id: Id
    patient_mrn: str
    priority: Priority
    status: Status
    created_at: datetime
    window_ends_at: datetime
    slot_id: Id | None
    report_ids: tuple[Id, ...]  # first one is the report that opened it
    # Identity beyond the MRN (see patients.py): None when not known (older decisions and
    # referrals made before birth dates reached this service).
    patient_birth_date: date | None = None
    # Flagged for review: an open referral with the same MRN but another birth date (its id,
    # and its MRN as its report gave it).
    possible_duplicate_of: Id | None = None
    possible_duplicate_mrn: str | None = None
    # The language the patient filled in their newest linked report (issue 18; BCP 47,
    # REPORT_LANGUAGES): schedulers phone them in it. Referrals made before: English.
    patient_language: str = DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise ValueError(f"unknown priority {self.priority!r}")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        require_aware("created_at", self.created_at)
        require_aware("window_ends_at", self.window_ends_at)
        if self.window_ends_at < self.created_at:
            raise ValueError("window_ends_at must not be before created_at")
        # A list would make the "frozen" value mutable behind our back.
        if not isinstance(self.report_ids, tuple) or not self.report_ids:
            raise ValueError("report_ids must be a non-empty tuple")
        if self.possible_duplicate_of is not None and self.possible_duplicate_of == self.referral_id:
            raise ValueError("a referral cannot be a possible duplicate of itself")
        if self.patient_language not in REPORT_LANGUAGES:
            raise ValueError(f"unknown patient language {self.patient_language!r}")
        if (self.possible_duplicate_of is None) != (self.possible_duplicate_mrn is None):
            raise ValueError("a possible-duplicate flag names both the other referral and its MRN")
        holds_slot = self.slot_id is not None
        if holds_slot != (self.status in STATUSES_HOLDING_A_SLOT):
            raise ValueError(
                f"a {self.status} referral "
                + ("must have a slot" if not holds_slot else "must not have a slot")
            )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES
