"""Sent outbox rows are deleted after a week; unsent ones never are."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.common.db import apply_migrations
from services.common.outbox import purge_sent

pytestmark = pytest.mark.integration


def test_only_rows_sent_over_a_week_ago_are_purged(settings_for):
    settings = settings_for("intake")
    with psycopg.connect(settings.database_url) as conn:
        apply_migrations(conn, "intake", "services.intake")
        conn.commit()
        ids = {}
        for label, sent_at in (("old", "now() - interval '8 days'"), ("recent", "now() - interval '1 day'"),
                               ("unsent", "NULL")):
            ids[label] = str(uuid.uuid4())
            conn.execute(
                "INSERT INTO intake.outbox (event_id, topic, key, payload, created_at, sent_at)"
                f" VALUES (%s, 't', 'k', %s, now() - interval '30 days', {sent_at})",
                (ids[label], Jsonb({})))
        # All in one transaction, rolled back: a relay of another test must never see
        # these rows (their topic does not exist).
        purge_sent(conn, "intake")
        left = {r[0] for r in conn.execute("SELECT event_id::text FROM intake.outbox WHERE event_id = ANY(%s::uuid[])",
                                           (list(ids.values()),))}
        conn.rollback()
    assert left == {ids["recent"], ids["unsent"]}
