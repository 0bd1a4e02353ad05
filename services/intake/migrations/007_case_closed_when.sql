-- reports_track_case_closed (migration 002) ran its PL/pgSQL function for every report
-- inserted, though a new report (no decision, no referral) is never closed and its
-- closed_at is NULL: the call changed nothing, and cost a PL/pgSQL frame per POST (issue 15).
-- The same trigger now fires only when the function would change closed_at, i.e. when
-- whether the case is closed and whether closed_at is set disagree (case_closed is never
-- NULL); the rule it keeps is the same: set once when the case closes, kept while it stays
-- closed, NULL otherwise. PostgreSQL plans the WHEN once per statement (case_closed, a SQL
-- function, inlined), not a function call per row.
DROP TRIGGER reports_track_case_closed ON intake.reports;
CREATE TRIGGER reports_track_case_closed BEFORE INSERT OR UPDATE OF care_level, referral ON intake.reports
    FOR EACH ROW
    WHEN (intake.case_closed(NEW.care_level, NEW.referral) <> (NEW.closed_at IS NOT NULL))
    EXECUTE FUNCTION intake.track_case_closed();
