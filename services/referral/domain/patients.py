"""Who is the same patient (contract, Referral service): the same MRN, compared as
Unicode NFKC, trimmed and case-folded, *and* the same birth date.

A report is linked to an open referral only when both match. A report whose MRN matches
an open referral while its birth date does not (or is unknown) is never linked: it opens
a referral of its own, flagged as a possible duplicate of the other one, for a scheduler
to review. Linking on the MRN alone would let a mistyped (or borrowed) MRN join another
patient's referral, raise or move it, and show that patient's appointment at the kiosk.
"""

import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Iterable

from .model import Referral


def mrn_key(mrn: str) -> str:
    """The MRN as compared: NFKC, trimmed, case-folded (then NFKC again, because case
    folding can leave a string that is not in NFKC; the key of a key is the key itself)."""
    folded = unicodedata.normalize("NFKC", mrn).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


@dataclass(frozen=True)
class PatientMatch:
    """`same_patient`: the open referral the report joins, or None.
    `possible_duplicate_of`: with no match, an open referral with the same MRN but another
    (or an unknown) birth date, which the new referral is flagged against; else None."""

    same_patient: Referral | None = None
    possible_duplicate_of: Referral | None = None


def is_same_patient(referral: Referral, birth_date: date | None) -> bool:
    """For a referral already known to have the report's MRN (key): is it the same person?
    An unknown birth date on either side (a decision from before birth dates were sent, a
    referral made before they were stored) can never prove it."""
    return birth_date is not None and referral.patient_birth_date == birth_date


def match_patient(open_with_same_mrn: Iterable[Referral], birth_date: date | None) -> PatientMatch:
    """Which open referral, among those whose MRN key equals the report's, the report joins.

    With several candidates the oldest one (then the lowest id) is named, so that repeated
    runs agree."""
    candidates = sorted((r for r in open_with_same_mrn if r.is_open),
                        key=lambda r: (r.created_at, str(r.referral_id)))
    for referral in candidates:
        if is_same_patient(referral, birth_date):
            return PatientMatch(same_patient=referral)
    return PatientMatch(possible_duplicate_of=candidates[0] if candidates else None)
