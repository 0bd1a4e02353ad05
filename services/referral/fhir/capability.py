"""The CapabilityStatement: what this server does, built from the same declarations the
routes and searches use (search.SEARCHES, READS below), so it cannot list more or less. Pure."""
from __future__ import annotations

from .ids import FHIR_VERSION, MEDIA_TYPE
from .search import COUNT, MAX_COUNT, SEARCHES

# Resource types read by id (api.py routes each), and which have _history.
READS = ("ServiceRequest", "Appointment", "Patient", "Slot", "Schedule", "HealthcareService", "Location")
HISTORY = ("ServiceRequest",)
# When what this statement says last changed: move it with the declarations.
DATE = "2026-12-01"


def capability_statement(base: str) -> dict:
    resources = []
    for resource_type in READS:
        interactions = [{"code": "read"}]
        if resource_type in SEARCHES:
            interactions.append({"code": "search-type"})
        if resource_type in HISTORY:
            interactions.append({"code": "history-instance"})
        entry = {"type": resource_type, "interaction": interactions, "versioning": "versioned",
                 "readHistory": False, "updateCreate": False}
        if resource_type in SEARCHES:
            entry["searchParam"] = [{"name": p.name, "type": p.type, "documentation": p.documentation}
                                    for p in SEARCHES[resource_type]]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": DATE,
        "kind": "instance",
        "software": {"name": "Clinic referral service"},
        "implementation": {"description": "Read-only FHIR R4 interface of the referral service", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": [MEDIA_TYPE, "json"],
        "rest": [{
            "mode": "server",
            "documentation": (f"Read-only. Searches page by `{COUNT}` (1 to {MAX_COUNT}) and follow the next "
                              "link; unknown parameters are refused with an OperationOutcome (400) unless the "
                              "request says Prefer: handling=lenient."),
            "security": {"description": "A staff token (scheduler or admin) as Authorization: Bearer; every "
                                        "read of patient data is in the access audit."},
            "resource": resources,
        }],
    }
