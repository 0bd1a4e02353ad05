"""Ids, references, code systems and times as the FHIR interface writes them.

Resource ids are the service's own UUIDs: ServiceRequest, Appointment and Patient take the
referral's id (an Appointment is a referral's booking; a Patient is the person as one
referral names them, so no MRN ever appears in a URL or an access log line); Slot the
slot's; Schedule, HealthcareService and Location the provider's.
"""
from __future__ import annotations

from datetime import UTC, datetime

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"

# Identifier and code systems of this clinic (URNs: stable names, nothing to resolve).
MRN_SYSTEM = "urn:clinic:mrn"
REFERRAL_SYSTEM = "urn:clinic:referral"
TRIAGE_DECISION_SYSTEM = "urn:clinic:triage-decision"  # value: the report id the decision is about
CARE_LEVEL_SYSTEM = "urn:clinic:care-level"
TRIAGE_RULE_SYSTEM = "urn:clinic:triage-rule"  # code: a rule id of triage's rule file (e.g. URG-SEVERE)
# FHIR's own code systems for the codes this interface writes
REQUEST_PRIORITY_SYSTEM = "http://hl7.org/fhir/request-priority"
REQUEST_STATUS_SYSTEM = "http://hl7.org/fhir/request-status"
APPOINTMENT_STATUS_SYSTEM = "http://hl7.org/fhir/appointmentstatus"
SLOT_STATUS_SYSTEM = "http://hl7.org/fhir/slotstatus"
# Patient.communication's language: a BCP 47 tag (FHIR R4's binding for languages)
BCP47_SYSTEM = "urn:ietf:bcp:47"


def reference(resource_type: str, resource_id: str) -> dict:
    return {"reference": f"{resource_type}/{resource_id}"}


def instant(value: datetime) -> str:
    """An aware time as a FHIR instant, in UTC."""
    if value.tzinfo is None:
        raise ValueError("a FHIR instant needs a time zone")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def meta(version: int, last_updated: datetime) -> dict:
    return {"versionId": str(version), "lastUpdated": instant(last_updated)}
