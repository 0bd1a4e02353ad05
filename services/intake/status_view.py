"""What a kiosk sees of a report: derived from the latest decision and referral snapshot.

Pure: events may arrive twice or out of order (a referral event before the decision), so
the status is always recomputed from the stored facts rather than stepped like a machine.
"""
from __future__ import annotations

REPORT_STATUSES = ("received", "triaged", "referred", "waitlisted", "closed")

# contract.md: "booked is referred, waitlisted is waitlisted, cancelled or completed is closed".
REFERRAL_STATUS_TO_REPORT_STATUS = {
    "booked": "referred",
    "waitlisted": "waitlisted",
    "cancelled": "closed",
    "completed": "closed",
}


def derive_status(care_level: str | None, referral_status: str | None) -> str:
    """The report's status from what is known so far, whatever order it was learnt in.

    The referral, once there is one, decides (even before the decision that led to it has
    arrived); a decision without a referral is final only for self care.
    """
    if referral_status:
        return REFERRAL_STATUS_TO_REPORT_STATUS.get(referral_status, "referred")
    if care_level == "self_care":
        return "closed"
    if care_level:
        return "triaged"
    return "received"


def referral_view(snapshot: dict | None) -> dict | None:
    """The referral part of GET /v1/reports/<id>, from the referral service's event data."""
    if not snapshot:
        return None
    return {
        "referral_id": snapshot["referral_id"],
        "priority": snapshot["priority"],
        "status": snapshot["status"],
        "appointment": snapshot.get("appointment"),
    }
