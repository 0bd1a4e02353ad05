"""Fixed-window counters in PostgreSQL, shared by every process of a service.

Flask-Limiter (and the `limits` library under it) keeps its counters in memory, Redis,
Memcached, MongoDB or etcd; we run none of those but PostgreSQL, so the counters are a
table in each service's own schema (services/common/migrations/000_rate_limits.sql):

    rate_limits(bucket text, window_start timestamptz, hits int, expires_at timestamptz,
                PRIMARY KEY (bucket, window_start))

A bucket is a name such as "auth-addr:192.0.2.7" or "kiosk-reports:<kiosk id>". One hit is
one UPSERT (one statement, one index probe, whatever the number of buckets) that returns
the new counts, so every process of every gunicorn worker sees the same numbers.

The database says when a bucket is over its limit; each process also remembers that answer
until the window ends (`Blocks`), so that once a bucket is limited the requests that fall in
it cost no database work at all. A process that has not yet seen the block learns it at its
next hit on that bucket, which the database answers over the limit: no request past the
limit is ever allowed through, only answered without a query once known.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass

import psycopg

log = logging.getLogger(__name__)

PURGE_EVERY_S = 60.0
MAX_REMEMBERED = 100_000  # blocks a process remembers; past it, expired ones are dropped first


@dataclass(frozen=True)
class Limit:
    """At most `max_hits` hits in each fixed window of `window_s` seconds."""

    max_hits: int
    window_s: int


def address_bucket(prefix: str, address: str | None) -> str:
    """The bucket of a client address: the address itself for IPv4, its /64 for IPv6 (one
    subscriber gets a whole /64, so single IPv6 addresses are free to an attacker)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return f"{prefix}:{address or 'unknown'}"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return f"{prefix}:{ip.ipv4_mapped}"
        return f"{prefix}:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"{prefix}:{ip}"


def secret_bucket(prefix: str, secret: str) -> str:
    """The bucket of a presented secret: a short prefix of its SHA-256 (64 bits), enough to
    tell credentials apart in a counter table, far too little to tell anything about them."""
    return f"{prefix}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


class Blocks:
    """Buckets this process knows to be over their limit, and until when (wall clock)."""

    def __init__(self):
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def retry_after(self, buckets: list[str]) -> int | None:
        """Seconds until the last of these buckets' blocks ends, or None when none is blocked."""
        if not self._until:
            return None
        now = time.time()
        ends = [until for b in buckets if (until := self._until.get(b)) and until > now]
        return max(1, round(max(ends) - now + 0.5)) if ends else None

    def remember(self, bucket: str, until: float) -> None:
        with self._lock:
            if len(self._until) >= MAX_REMEMBERED:
                now = time.time()
                self._until = {b: u for b, u in self._until.items() if u > now}
                if len(self._until) >= MAX_REMEMBERED:
                    self._until.clear()  # an attacker with that many addresses: forget, the database still counts
            self._until[bucket] = until


class RateLimiter:
    """Counters in `<schema>.rate_limits`, as outbox.py works on `<schema>.outbox`."""

    def __init__(self, schema: str):
        self.schema = schema
        self.blocks = Blocks()
        self._next_purge = 0.0

    def blocked(self, buckets: list[str]) -> int | None:
        """Retry-After seconds when this process already knows one of the buckets is over its
        limit; no database work."""
        return self.blocks.retry_after(buckets)

    def count_sql(self, hits: str) -> str:
        """The UPSERT counting one hit per row of `hits`, a FROM item with the columns
        (b: the bucket, w: its window in seconds), returning (bucket, hits, expires_at in epoch
        seconds): what `judge` reads. Callers may run it inside a larger statement (intake
        counts a kiosk's quota in the statement that looks its key up)."""
        return (
            f"INSERT INTO {self.schema}.rate_limits AS r (bucket, window_start, hits, expires_at)"
            " SELECT b, date_bin(make_interval(secs => w), now(), timestamptz 'epoch'), 1,"
            "        date_bin(make_interval(secs => w), now(), timestamptz 'epoch') + make_interval(secs => w)"
            f" FROM {hits}"
            " ON CONFLICT (bucket, window_start) DO UPDATE SET hits = r.hits + 1"
            " RETURNING bucket, hits, extract(epoch FROM r.expires_at)::float8 AS expires_at")

    def hit(self, conn: psycopg.Connection, limits: dict[str, Limit]) -> int | None:
        """Count one hit in each bucket (one statement); Retry-After seconds when one of them
        is now over its limit, else None. All buckets of one call share the window length
        of their limits only if equal: each bucket is counted in its own limit's window."""
        buckets = sorted(limits)  # one lock order for every caller: no deadlock between two hits
        rows = conn.execute(
            self.count_sql("unnest(%s::text[], %s::int[]) AS t (b, w)"),
            (buckets, [limits[b].window_s for b in buckets]),
        ).fetchall()
        return self.judge(conn, limits, rows)

    def judge(self, conn: psycopg.Connection, limits: dict[str, Limit],
              counted: list[tuple[str, int, float]]) -> int | None:
        """Retry-After seconds when one of the `counted` rows (count_sql's) is over its
        bucket's limit, else None; remembers the blocks, and purges ended windows now and then."""
        retry_after = None
        now = time.time()
        for bucket, hits, expires_at in counted:
            if hits > limits[bucket].max_hits:
                self.blocks.remember(bucket, expires_at)
                seconds = max(1, round(expires_at - now + 0.5))
                retry_after = max(retry_after or 0, seconds)
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_EVERY_S
            self.purge(conn)
        return retry_after

    def purge(self, conn: psycopg.Connection) -> int:
        """Delete the counters of windows that have ended."""
        return conn.execute(f"DELETE FROM {self.schema}.rate_limits WHERE expires_at < now()").rowcount
