"""Providers and their slots as FHIR resources: HealthcareService, Location, Schedule, Slot.

A provider here is a clinic's pain-management service (a name, a specialty, a room), not a
person: a HealthcareService, at a Location, with one Schedule of Slots. Providers never
change once added, so their resources stay at version 1. Pure: rows in, dicts out.
"""
from __future__ import annotations

from .ids import instant, meta, reference
from .records import ProviderRecord, SlotRecord

SPECIALTY = {"pain_management": "Pain management"}


def _specialty(provider: ProviderRecord) -> list[dict]:
    return [{"text": SPECIALTY.get(provider.specialty, provider.specialty)}]


def healthcare_service(provider: ProviderRecord) -> dict:
    return {
        "resourceType": "HealthcareService",
        "id": provider.provider_id,
        "meta": meta(1, provider.created_at),
        "active": True,
        "name": provider.name,
        "specialty": _specialty(provider),
        "location": [{**reference("Location", provider.provider_id), "display": provider.location}],
    }


def location(provider: ProviderRecord) -> dict:
    """Where the provider sees patients: its location as the provider names it (one Location
    per provider: the service keeps the place as the provider's text, not as a record)."""
    return {
        "resourceType": "Location",
        "id": provider.provider_id,
        "meta": meta(1, provider.created_at),
        "status": "active",
        "name": provider.location,
    }


def schedule(provider: ProviderRecord) -> dict:
    return {
        "resourceType": "Schedule",
        "id": provider.provider_id,
        "meta": meta(1, provider.created_at),
        "active": True,
        "specialty": _specialty(provider),
        "actor": [{**reference("HealthcareService", provider.provider_id), "display": provider.name},
                  {**reference("Location", provider.provider_id), "display": provider.location}],
    }


def slot(record: SlotRecord) -> dict:
    """Busy while a referral holds it (booked, or completed: kept as the record), else free."""
    return {
        "resourceType": "Slot",
        "id": record.slot_id,
        "meta": meta(record.version, record.changed_at or record.created_at),
        "schedule": reference("Schedule", record.provider_id),
        "status": "busy" if record.booked else "free",
        "start": instant(record.start),
        "end": instant(record.end),
    }
