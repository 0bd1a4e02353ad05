"""Referrals as FHIR resources: ServiceRequest, its Appointment (the booking) and Patient.

Pure: rows in (records.py), dicts out, no I/O. docs/fhir.md has the mapping as a table.
"""
from __future__ import annotations

from collections.abc import Sequence

from .ids import (
    BCP47_SYSTEM,
    CARE_LEVEL_SYSTEM,
    MRN_SYSTEM,
    REFERRAL_SYSTEM,
    TRIAGE_DECISION_SYSTEM,
    TRIAGE_RULE_SYSTEM,
    instant,
    meta,
    reference,
)
from .records import Booking, HistoryRecord, ReferralRecord, ReportLink

# A referral's status as a request's (FHIR request-status): open is active whether booked or
# waitlisted (the Appointment tells which), a cancellation revokes it.
SERVICE_REQUEST_STATUS = {"waitlisted": "active", "booked": "active", "completed": "completed",
                          "cancelled": "revoked"}
# ... and as its booking's (FHIR appointmentstatus); a waitlisted referral has no booking.
APPOINTMENT_STATUS = {"booked": "booked", "completed": "fulfilled", "cancelled": "cancelled"}
CARE_LEVEL_DISPLAY = {"urgent": "Urgent: prompt assessment", "specialist": "Specialist assessment"}
CONSULT = {"text": "Pain management consultation"}
RAISED_TO_URGENT = "raised_to_urgent"


def patient_id(referral: ReferralRecord) -> str:
    """A Patient is the person as this referral names them (ids.py): no MRN in ids."""
    return referral.referral_id


def service_request(referral: ReferralRecord, reports: Sequence[ReportLink],
                    history: Sequence[HistoryRecord]) -> dict:
    """The referral as it stands now: `reports` in link order, `history` oldest first."""
    return _service_request(referral, reports, history, status=referral.status, priority=referral.priority,
                            version=referral.version, last_updated=referral.updated_at, window=True)


def service_request_versions(referral: ReferralRecord, reports: Sequence[ReportLink],
                             history: Sequence[HistoryRecord]) -> list[dict]:
    """The request as it stood after each history entry, oldest first (its _history).

    The history keeps each change's status, time, actor and reason, not every field: the
    priority before a raise to urgent was routine, and the window it had then is not kept,
    so such a version has no occurrencePeriod; reports count from their link time."""
    raised_at = next((e.sequence for e in history if e.action == RAISED_TO_URGENT), None)
    versions = []
    for entry in history:
        before_raise = raised_at is not None and entry.sequence < raised_at
        linked = [r for r in reports if r.position == 0 or r.linked_at <= entry.at]
        versions.append(_service_request(
            referral, linked, [e for e in history if e.sequence <= entry.sequence], status=entry.to_status,
            priority="routine" if before_raise else referral.priority, version=entry.sequence,
            last_updated=entry.at, window=not before_raise))
    return versions


def _service_request(referral: ReferralRecord, reports: Sequence[ReportLink], history: Sequence[HistoryRecord],
                     *, status: str, priority: str, version: int, last_updated, window: bool) -> dict:
    resource = {
        "resourceType": "ServiceRequest",
        "id": referral.referral_id,
        "meta": meta(version, last_updated),
        "identifier": [{"system": REFERRAL_SYSTEM, "value": referral.referral_id}],
        "status": SERVICE_REQUEST_STATUS[status],
        "intent": "order",
        "priority": priority,
        "code": CONSULT,
        "subject": reference("Patient", patient_id(referral)),
        "authoredOn": instant(referral.created_at),
    }
    if window:
        # The booking window: the consult is due between the referral and its window's end.
        resource["occurrencePeriod"] = {"start": instant(referral.created_at),
                                        "end": instant(referral.window_ends_at)}
    if reports:
        resource["reasonCode"] = reason_codes(reports)
        # The triage decisions behind it, by the report each decided (readable in full, with the
        # rules that fired and why, from the triage service's /v1/decisions/<report_id>).
        resource["supportingInfo"] = [{
            "identifier": {"system": TRIAGE_DECISION_SYSTEM, "value": r.report_id},
            "display": f"Triage decision ({r.care_level}) on report {r.report_id}"} for r in reports]
    if history:
        resource["note"] = [{"time": instant(e.at), "authorString": e.actor, "text": e.reason} for e in history]
    return resource


def reason_codes(reports: Sequence[ReportLink]) -> list[dict]:
    """Why the consult is asked for: the care levels the reports' decisions gave, then the triage
    rules they fired (a coding per rule id, its reason as display and text), each once, in link
    order. A report linked before the rules were kept (fired None) adds its care level only."""
    levels = list(dict.fromkeys(r.care_level for r in reports))
    codes = [{"coding": [{"system": CARE_LEVEL_SYSTEM, "code": level, "display": CARE_LEVEL_DISPLAY.get(level, level)}],
              "text": CARE_LEVEL_DISPLAY.get(level, level)} for level in levels]
    rules = {}
    for report in reports:
        for rule in report.fired or ():
            rules.setdefault(rule.rule_id, rule.reason)
    codes += [{"coding": [{"system": TRIAGE_RULE_SYSTEM, "code": rule_id, "display": reason}], "text": reason}
              for rule_id, reason in rules.items()]
    return codes


def appointment(booking: Booking) -> dict:
    """The referral's booking: the slot it holds (booked, completed) or last held (cancelled)."""
    referral, slot, provider = booking.referral, booking.slot, booking.provider
    return {
        "resourceType": "Appointment",
        "id": referral.referral_id,
        "meta": meta(referral.version, referral.updated_at),
        "status": APPOINTMENT_STATUS[referral.status],
        "serviceType": [CONSULT],
        "start": instant(slot.start),
        "end": instant(slot.end),
        "slot": [reference("Slot", slot.slot_id)],
        "basedOn": [reference("ServiceRequest", referral.referral_id)],
        "participant": [
            {"actor": reference("Patient", patient_id(referral)), "required": "required", "status": "accepted"},
            {"actor": {**reference("HealthcareService", provider.provider_id), "display": provider.name},
             "required": "required", "status": "accepted"},
            {"actor": {**reference("Location", provider.provider_id), "display": provider.location},
             "required": "required", "status": "accepted"},
        ],
    }


def patient(referral: ReferralRecord) -> dict:
    """The person as the referral names them: MRN, name and the language to speak to them in
    (once pseudonymised, the pseudonyms the retention purge left: the Patient changes then,
    its version with it; a report linked in another language changes it too)."""
    purged = referral.pseudonymised_at is not None
    version = referral.patient_version + (1 if purged else 0)
    # the purge closes a referral's story: nothing changes the Patient after it
    last_updated = referral.pseudonymised_at if purged else referral.patient_changed_at or referral.created_at
    return {
        "resourceType": "Patient",
        "id": patient_id(referral),
        "meta": meta(version, last_updated),
        "identifier": [{"use": "usual", "system": MRN_SYSTEM, "value": referral.patient_mrn}],
        "name": [{"text": referral.patient_name}],
        "communication": [{"language": {"coding": [{"system": BCP47_SYSTEM, "code": referral.patient_language}]},
                           "preferred": True}],
    }
