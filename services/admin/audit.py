"""`clinic audit --patient MRN` / `--staff NAME`: who read or changed what, newest first,
from the access audit (services/common/audit.py writes it; services/admin/sql/audit.sql
makes it append-only for the services). Read as the admin, in a read-only transaction,
from every database the services use: each holds the accesses of its own services (one
database on the local stack; docs/database-per-service.md), merged newest first.

`--patient` matches the MRN as compared (NFKC, trimmed, case-folded), so `mrn-0042` finds
reads of `MRN-0042`. Rows that name the patient's MRN are found through an index; triage
keeps no patient identity, so its decision reads are found through the patient's report
ids (intake's reports with that MRN, referral's reports of referrals with that MRN key,
each read from its own service's database first).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from services.common.audit import mrn_key
from services.common.db import connect
from services.common.settings import Settings

from .errors import CommandError

DEFAULT_LIMIT = 50
_COLUMNS = ("a.at, a.staff_name, a.staff_role, a.action, a.record_type, a.record_ids::text[], a.patient_mrns,"
            " a.channel, a.background, host(a.client_addr), a.traceparent, a.endpoint")

# The patient's report ids, for decision reads (which carry no MRN), each from the database
# of the service that has them. Intake keeps the MRN as typed: it is compared here as
# lower(NFKC(trim)), SQL's nearest to case folding.
_PATIENT_REPORTS = {
    "intake": "SELECT r.report_id FROM intake.reports r"
              " WHERE lower(normalize(btrim(r.patient->>'mrn'), NFKC)) = lower(normalize(%(key)s, NFKC))",
    "referral": "SELECT rr.report_id FROM referral.referral_reports rr JOIN referral.referrals f USING (referral_id)"
                " WHERE f.patient_mrn_key = %(key)s",
}


@dataclass(frozen=True)
class Entry:
    at: datetime
    staff_name: str
    staff_role: str
    action: str
    record_type: str
    record_ids: list[str]
    patient_mrns: list[str]
    channel: str
    background: bool
    client: str | None
    traceparent: str | None
    endpoint: str


def by_patient(settings: Settings, mrn: str, limit: int = DEFAULT_LIMIT) -> list[Entry]:
    key = mrn_key(mrn)
    if not key:
        raise CommandError("give an MRN")
    _check_limit(limit)
    report_ids = [row[0] for service, query in _PATIENT_REPORTS.items()
                  for row in _read(settings.admin_url(service), query, {"key": key})]
    return _everywhere(settings, f"""
        SELECT {_COLUMNS} FROM audit.access a
         WHERE a.patient_keys @> ARRAY[%(key)s]
            OR (a.record_type = 'decision' AND a.record_ids && %(reports)s::uuid[])
         ORDER BY a.audit_id DESC LIMIT %(limit)s""", {"key": key, "reports": report_ids, "limit": limit})


def by_staff(settings: Settings, name: str, limit: int = DEFAULT_LIMIT) -> list[Entry]:
    _check_limit(limit)
    return _everywhere(settings, f"SELECT {_COLUMNS} FROM audit.access a WHERE a.staff_name = %(name)s"
                                 " ORDER BY a.audit_id DESC LIMIT %(limit)s", {"name": name, "limit": limit})


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise CommandError("--limit must be at least 1")


def _everywhere(settings: Settings, query: str, params: dict) -> list[Entry]:
    """The query's rows from every database, newest first, at most params["limit"]."""
    found = [[Entry(*row) for row in _read(database.admin_url, query, params)] for database in settings.databases()]
    if len(found) == 1:
        return found[0]
    return sorted((entry for entries in found for entry in entries), key=lambda entry: entry.at,
                  reverse=True)[:params["limit"]]


def _read(admin_url: str, query: str, params: dict) -> list[tuple]:
    with connect(admin_url) as conn:
        conn.read_only = True
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.errors.UndefinedTable:
            raise CommandError("no access audit in this database yet: run `clinic db bootstrap`") from None


def _records(entry: Entry) -> str:
    if entry.action == "list":
        n = len(entry.record_ids)
        return f"{n} {entry.record_type}{'' if n == 1 else 's'}"
    return f"{entry.record_type} {', '.join(entry.record_ids)}"


def _patients(entry: Entry, shown: int = 3) -> str:
    mrns = entry.patient_mrns
    text = ", ".join(mrns[:shown]) + (f" +{len(mrns) - shown}" if len(mrns) > shown else "")
    return text or "-"


def _origin(entry: Entry) -> str:
    how = "page refresh" if entry.background else entry.channel
    return f"{entry.client or '?'} ({how})"


def _trace_id(traceparent: str | None) -> str:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else "-"


def render(entries: list[Entry], *, limit: int) -> str:
    """A plain table, newest first, and a line on what was left out."""
    if not entries:
        return "no audited access"
    header = ("at (UTC)", "staff", "action", "record", "patient MRN", "from", "trace id")
    rows = [(e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), f"{e.staff_name} ({e.staff_role})", e.action,
             _records(e), _patients(e), _origin(e), _trace_id(e.traceparent)) for e in entries]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    if len(entries) == limit:
        lines.append(f"(the newest {limit}; --limit N for more)")
    return "\n".join(lines)
