"""When each report first reached its final status, stamped by the database itself.

A trigger on the chaos stack's intake.reports (installed by the suite, on its own stack
only) notes the moment a report's status view first becomes final (a referral linked, or a
self-care decision; as services/intake/status_view.derive_status has it), inside the intake
worker's transaction: so the stamp commits with the change, or not at all.

Why not intake.reports.updated_at: every event of a referral gives every report of it the
newest snapshot, so a repeat patient's first report has its updated_at moved on each later
link to the same referral. Measured with updated_at, reports final within 2 s read as 30-48 s
(the cluster hold-down's "p99 46.4 s", docs/kafka-cluster.md).
"""
from __future__ import annotations

import psycopg

from tests.final_status_sql import BECAME_FINAL

INSTALL_SQL = f"""
CREATE SCHEMA IF NOT EXISTS chaos_watch;
CREATE TABLE IF NOT EXISTS chaos_watch.first_final (report_id uuid PRIMARY KEY, at timestamptz NOT NULL);
-- SECURITY DEFINER: it runs in the intake worker's transaction, as its role, which has no
-- rights on this schema.
CREATE OR REPLACE FUNCTION chaos_watch.note_final() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF {BECAME_FINAL} THEN
        INSERT INTO chaos_watch.first_final VALUES (NEW.report_id, clock_timestamp()) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS chaos_first_final ON intake.reports;
CREATE TRIGGER chaos_first_final AFTER UPDATE ON intake.reports
    FOR EACH ROW EXECUTE FUNCTION chaos_watch.note_final();
"""

# (submitted, first final, report id) of the given reports that are final, in epoch seconds.
QUERY = ("SELECT extract(epoch FROM r.submitted_at), extract(epoch FROM f.at), r.report_id::text"
         " FROM intake.reports r JOIN chaos_watch.first_final f USING (report_id)"
         " WHERE r.report_id = ANY(%s::uuid[])")


def install(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(INSTALL_SQL)


def finals(conn: psycopg.Connection, report_ids: list[str]) -> list[tuple[float, float, str]]:
    return [(float(submitted), float(final), report_id)
            for submitted, final, report_id in conn.execute(QUERY, (report_ids,)).fetchall()]
