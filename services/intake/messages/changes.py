"""What to tell a patient when a referral snapshot arrives (pure).

The referral service publishes a full snapshot on every change, with a `sequence` that
grows per referral; intake compares the newest snapshot it knew with the new one. Only the
appointment's time, provider and place are carried on: the snapshot's care level and
priority never reach a message, because `Change` has no field for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

BOOKED = "booked"
MOVED = "moved"
CANCELLED = "cancelled"
WAITLISTED = "waitlisted"
CHANGES = (BOOKED, MOVED, CANCELLED, WAITLISTED)


@dataclass(frozen=True)
class Appointment:
    start: datetime  # aware
    provider: str
    location: str

    @classmethod
    def from_snapshot(cls, appointment: dict | None) -> Appointment | None:
        if not appointment:
            return None
        start = appointment["start"]
        start = start if isinstance(start, datetime) else datetime.fromisoformat(start)
        return cls(start=start, provider=str(appointment["provider"]), location=str(appointment["location"]))

    def as_json(self) -> dict:
        return {"start": self.start.isoformat(), "provider": self.provider, "location": self.location}


@dataclass(frozen=True)
class Change:
    kind: str  # one of CHANGES
    sequence: int  # the snapshot that told it
    appointment: Appointment | None  # booked/moved: the new one; cancelled: the lost one, if known


def _slot(snapshot: dict) -> tuple | None:
    appointment = snapshot.get("appointment")
    if not appointment:
        return None
    return (str(appointment.get("slot_id")), str(appointment.get("start")), appointment.get("provider"),
            appointment.get("location"))


def change_to_tell(previous: dict | None, new: dict) -> Change | None:
    """The change the patient is told of, or None (docs/patient-messages.md, "What is told").

    `previous` is the newest snapshot intake knew of this referral (None: the first); a
    snapshot that is not newer than it tells nothing (a late or repeated event)."""
    if previous is not None and new["sequence"] <= previous["sequence"]:
        return None
    status = new["status"]
    before = previous["status"] if previous is not None else None
    if status == "booked":
        appointment = Appointment.from_snapshot(new.get("appointment"))
        if appointment is None:  # a booking must have a slot; without one there is nothing to say
            return None
        if before != "booked":
            return Change(BOOKED, new["sequence"], appointment)
        if _slot(previous) != _slot(new):
            return Change(MOVED, new["sequence"], appointment)
        return None
    if status == "waitlisted" and before != "waitlisted":
        return Change(WAITLISTED, new["sequence"], None)
    if status == "cancelled" and before != "cancelled":
        lost = new.get("appointment") or (previous or {}).get("appointment")
        return Change(CANCELLED, new["sequence"], Appointment.from_snapshot(lost))
    return None
