"""A provider with free slots from the next hour on, so that the first urgent and
specialist reports are booked and the later ones waitlisted (both paths are exercised)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests


def add_provider_with_slots(stack, count: int) -> None:
    if count <= 0:
        return
    referral = stack.base_url["referral"]
    headers = {"Authorization": f"Bearer {stack.staff_token('admin')}"}
    provider = requests.post(f"{referral}/v1/providers", headers=headers, timeout=60, json={
        "name": "Bench Pain Clinic", "specialty": "pain_management", "location": "Room 1"})
    provider.raise_for_status()
    provider_id = provider.json()["provider_id"]
    first = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    slots = [{"provider_id": provider_id, "start": (first + timedelta(minutes=20 * i)).isoformat(),
              "end": (first + timedelta(minutes=20 * i + 20)).isoformat()} for i in range(count)]
    for i in range(0, len(slots), 500):
        requests.post(f"{referral}/v1/slots", headers=headers, json=slots[i:i + 500], timeout=60).raise_for_status()
