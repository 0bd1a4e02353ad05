"""Over which channels a patient is told (pure): those they consented to and gave an address
for; none, and a person must call them (channel `phone`, with their number if known).

The report's `patient` is read defensively: reports stored before contact consent existed
have no `email` nor `contact_consent`, and a pseudonymised one has no contact details at all.
"""
from __future__ import annotations

from dataclasses import dataclass

EMAIL = "email"
SMS = "sms"
PHONE = "phone"  # no consented channel: a person must call
CHANNELS = (EMAIL, SMS, PHONE)


@dataclass(frozen=True)
class Recipient:
    channel: str
    address: str | None  # the email address or phone number; None: unknown


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def recipients(patient: dict | None) -> list[Recipient]:
    patient = patient if isinstance(patient, dict) else {}
    consent = patient.get("contact_consent")
    consent = {c for c in consent if isinstance(c, str)} if isinstance(consent, list) else set()
    phone, email = _text(patient.get("phone")), _text(patient.get("email"))
    found = []
    if EMAIL in consent and email:
        found.append(Recipient(EMAIL, email))
    if SMS in consent and phone:
        found.append(Recipient(SMS, phone))
    return found or [Recipient(PHONE, phone)]
