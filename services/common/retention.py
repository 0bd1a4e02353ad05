"""Retention of patient identity: the pure part every service's purge shares.

Policy (README, "Data protection"): a case's identifying fields are kept while the case is
open and for `CLINIC_RETENTION_IDENTITY_DAYS` (30) days after it closed, then pseudonymised
in place: names, birth date and contact details are dropped, and the MRN is replaced by a
keyed pseudonym (HMAC-SHA-256 of the MRN as compared, under a key of the service's own), so
that someone who holds the key and a patient's MRN can still find that patient's old
records (an audit, a returning patient) while the database alone names no one. Clinical
answers, decisions and referral history stay: they are the clinic's record.

What "closed" means is each service's own (services/intake/retention.py,
services/referral/retention.py); the purge that applies it runs in batches in each worker
(services/common/worker.py) and on demand (`clinic purge`).

No I/O here: the stores select candidates with SQL that mirrors these rules, and the
rules themselves are tested on their own.
"""
from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

PSEUDONYM_PREFIX = "pseudonym:"
# What a pseudonymised referral shows schedulers in place of the name (the column is kept
# NOT NULL: the queue and the contract always have a display name).
PSEUDONYMISED_NAME = "(pseudonymised)"
_KEY_CONTEXT = b"clinic retention pseudonym v1:"


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a closed case keeps its patient's identity."""

    identity_days: float = 30.0

    def __post_init__(self):
        if self.identity_days < 0:
            raise ValueError("CLINIC_RETENTION_IDENTITY_DAYS must be 0 or more")

    @classmethod
    def from_settings(cls, settings) -> RetentionPolicy:
        return cls(identity_days=settings.retention_identity_days)

    def cutoff(self, now: datetime) -> datetime:
        """Cases closed at or before this moment are due."""
        return now - timedelta(days=self.identity_days)

    def is_due(self, closed_at: datetime | None, now: datetime) -> bool:
        return closed_at is not None and closed_at <= self.cutoff(now)


def compared_mrn(mrn: str) -> str:
    """The MRN as the referral service compares it (NFKC, trimmed, case-folded; the same as
    services.referral.domain.mrn_key, which services may not import from one another), so
    that `MRN-0042` and ` mrn-0042 ` get one pseudonym."""
    folded = unicodedata.normalize("NFKC", mrn).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


def pseudonym_key(secret: str | None, service: str) -> bytes | None:
    """The service's pseudonym key: derived (HMAC, with the service's name for separation)
    from CLINIC_PSEUDONYM_KEY, else from the service's secret key; None when it has neither,
    and then MRNs are dropped with no pseudonym at all."""
    if not secret:
        return None
    return hmac.new(secret.encode(), _KEY_CONTEXT + service.encode(), hashlib.sha256).digest()


def key_from_settings(settings) -> bytes | None:
    return pseudonym_key(settings.pseudonym_key or settings.secret_key, settings.service)


def mrn_pseudonym(key: bytes | None, mrn: str | None) -> str | None:
    """`pseudonym:` + 128 bits of HMAC-SHA-256(key, compared MRN), or None without a key or
    an MRN. An already pseudonymised value is returned as it is (idempotent)."""
    if key is None or mrn is None:
        return None
    if mrn.startswith(PSEUDONYM_PREFIX):
        return mrn
    digest = hmac.new(key, compared_mrn(mrn).encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


@dataclass(frozen=True)
class DueSummary:
    """What a purge would do in one table: how many rows are due, and since when the oldest
    of them has been closed (None when none is due)."""

    service: str
    table: str
    due: int
    oldest_closed_at: datetime | None


@dataclass(frozen=True)
class PurgeResult:
    service: str
    table: str
    pseudonymised: int
    batches: int


def purge_in_batches(batch, *, service: str, table: str, batch_size: int, max_batches: int | None = None,
                     should_stop=lambda: False) -> PurgeResult:
    """Call `batch(batch_size)` (one transaction each, returning the rows it pseudonymised)
    until a batch comes back short: every row due when the purge began is then done, by this
    purge or by another one running at the same time (they skip each other's locked rows)."""
    total = batches = 0
    while not should_stop() and (max_batches is None or batches < max_batches):
        done = batch(batch_size)
        total += done
        batches += 1
        if done < batch_size:
            break
    return PurgeResult(service=service, table=table, pseudonymised=total, batches=batches)
