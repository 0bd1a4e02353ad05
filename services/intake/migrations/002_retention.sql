-- Retention of patient identity (services/intake/retention.py, README "Data protection").
-- closed_at: when intake learnt that the report's case was closed, i.e. when its kiosk
-- status became `closed` (a self-care decision with no referral, or a referral cancelled or
-- completed). pseudonymised_at: when the purge replaced the patient's identity by the MRN's
-- pseudonym, N days after closed_at.
ALTER TABLE intake.reports
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN pseudonymised_at timestamptz;

-- The kiosk's "closed", as status_view.derive_status says it: the referral decides once
-- there is one; without one, a self-care decision is final.
CREATE FUNCTION intake.case_closed(care_level text, referral jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN coalesce(referral ->> 'status', '') <> ''
                THEN referral ->> 'status' IN ('cancelled', 'completed')
                ELSE coalesce(care_level = 'self_care', false) END;

-- Reports closed before this migration: since their last change, the latest moment they
-- can have closed (so none is purged earlier than the policy says).
UPDATE intake.reports SET closed_at = updated_at WHERE intake.case_closed(care_level, referral);

-- Every write path (the worker's decision and referral updates, anything later) keeps
-- closed_at true to the rule: set once when the case closes, kept while it stays closed.
CREATE FUNCTION intake.track_case_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF intake.case_closed(NEW.care_level, NEW.referral) THEN
        NEW.closed_at := coalesce(NEW.closed_at, now());
    ELSE
        NEW.closed_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER reports_track_case_closed BEFORE INSERT OR UPDATE OF care_level, referral ON intake.reports
    FOR EACH ROW EXECUTE FUNCTION intake.track_case_closed();

-- The purge's candidates: closed, not yet pseudonymised, oldest closed first.
CREATE INDEX reports_identity_due ON intake.reports (closed_at)
    WHERE closed_at IS NOT NULL AND pseudonymised_at IS NULL;
