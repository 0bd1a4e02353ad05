"""`clinic purge`: the retention purge on demand, for every service that keeps patient
identity (intake's reports, referral's referrals; triage keeps none). `--dry-run` says what
is due (how many rows, since when the oldest has been closed) and changes nothing.

The same code as the workers' purge thread (services/common/purge.py), with each service's
own database role and pseudonym key, so a row is pseudonymised the same whoever does it;
running it while the workers purge is safe (FOR UPDATE SKIP LOCKED, see the stores).
"""
from __future__ import annotations

import importlib
from datetime import datetime

from services.common import settings as settings_module
from services.common.db import connect
from services.common.purge import purge_now
from services.common.retention import DueSummary, RetentionPolicy, key_from_settings

from .errors import CommandError

# service -> its table with patient identity (the store module has identity_due and
# pseudonymise_batch)
PURGED = {"intake": "intake.reports", "referral": "referral.referrals"}


def _store(service: str):
    return importlib.import_module(f"services.{service}.store")


def _oldest(summary: DueSummary, now: datetime) -> str:
    if summary.oldest_closed_at is None:
        return "-"
    days = (now - summary.oldest_closed_at).total_seconds() / 86400
    return f"{summary.oldest_closed_at.isoformat(timespec='seconds')} ({days:.0f} days ago)"


def run(services: tuple[str, ...] = tuple(PURGED), *, dry_run: bool, env=None) -> str:
    """The report, one line per service: due rows and the oldest (dry run), or what was done."""
    lines = []
    for service in services:
        settings = settings_module.load(service, env=env)
        policy = RetentionPolicy.from_settings(settings)
        store = _store(service)
        with connect(settings.database_url) as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            summary = store.identity_due(conn, policy)
            conn.rollback()
            head = (f"{service}: {PURGED[service]}: closed over {policy.identity_days:g} days ago, identity"
                    f" not yet pseudonymised: {summary.due}; oldest closed {_oldest(summary, now)}")
            if dry_run:
                key_note = "" if key_from_settings(settings) else " (no pseudonym key: MRNs would be dropped)"
                lines.append(f"{head}; would pseudonymise {summary.due}{key_note}")
                continue
            if key_from_settings(settings) is None:
                # The workers drop MRNs they cannot pseudonymise (and log it); an operator run
                # from a container without the service's key (compose's migrate) must not.
                raise CommandError(f"{service}: no pseudonym key (CLINIC_PSEUDONYM_KEY, or the service's"
                                   f" {settings_module.secret_key_setting(service)}): refusing to drop MRNs"
                                   " that the service's own purge would pseudonymise")
            result = purge_now(conn, settings, store.pseudonymise_batch, table=PURGED[service])
            lines.append(f"{head}; pseudonymised {result.pseudonymised} in {result.batches}"
                         f" batch{'es' if result.batches != 1 else ''}")
    return "\n".join(lines)
