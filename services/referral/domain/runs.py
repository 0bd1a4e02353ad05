"""Which decisions of a run (a poll's, in order) may be booked together as new patients.

A new patient's decision creates a referral and claims the earliest free slot of its window,
and nothing it does depends on the run's other new patients except which slots they took
first. A decision that meets a patient met earlier in the run (its report, or an MRN that
compares equal) depends on what that earlier one did: it is applied on its own, after it.
Whether a first meeting is really a new patient (no referral has the report, no open
referral the MRN) only the database can say; this is the part the run alone decides.
"""

from typing import Hashable, Iterable

from .patients import mrn_key


def first_meetings(decisions: Iterable[tuple[Hashable, str]]) -> list[bool]:
    """For each (report id, patient MRN) in order: whether it is the first of the run with
    its report and the first with its MRN key (patients.mrn_key)."""
    reports: set = set()
    keys: set[str] = set()
    first = []
    for report_id, mrn in decisions:
        key = mrn_key(mrn)
        first.append(report_id not in reports and key not in keys)
        reports.add(report_id)
        keys.add(key)
    return first
