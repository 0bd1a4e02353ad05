"""The rows the FHIR mapping reads, as the store loads them: plain immutable values."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReferralRecord:
    referral_id: str
    patient_mrn: str
    patient_name: str
    priority: str            # urgent | routine
    status: str              # booked | waitlisted | cancelled | completed
    created_at: datetime
    window_ends_at: datetime
    updated_at: datetime     # the newest history entry's time
    version: int             # how many history entries it has
    slot_id: str | None      # held while booked or completed
    pseudonymised_at: datetime | None
    # The patient's language (BCP 47: their newest linked report's), and how many times the
    # Patient changed before the identity purge and when it last did (None: never since made).
    patient_language: str = "en"  # the store always gives it: the default serves hand-made records
    patient_version: int = 1
    patient_changed_at: datetime | None = None


@dataclass(frozen=True)
class FiredRule:
    """A triage rule that fired in a decision, and the reason the rule file gives."""

    rule_id: str
    reason: str


@dataclass(frozen=True)
class ReportLink:
    """A report the referral stands for, and the care level its triage decision gave."""

    report_id: str
    care_level: str          # urgent | specialist
    linked_at: datetime
    position: int            # 0: the report that opened the referral
    # the rules the decision fired, in its order; None: not known (linked before migration 010)
    fired: tuple[FiredRule, ...] | None = None


@dataclass(frozen=True)
class HistoryRecord:
    sequence: int            # = the referral's version after this change
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    reason: str
    from_slot_id: str | None
    to_slot_id: str | None


@dataclass(frozen=True)
class ProviderRecord:
    provider_id: str
    name: str
    specialty: str
    location: str
    created_at: datetime


@dataclass(frozen=True)
class SlotRecord:
    slot_id: str
    provider_id: str
    start: datetime
    end: datetime
    booked: bool
    version: int
    created_at: datetime
    changed_at: datetime | None  # when it last turned busy or free (None: not since stored)


@dataclass(frozen=True)
class Booking:
    """A referral with the slot it holds or, cancelled, the slot it last held."""

    referral: ReferralRecord
    slot: SlotRecord
    provider: ProviderRecord
