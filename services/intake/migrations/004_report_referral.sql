-- Which referral each report belongs to (issue 15). Referral events no longer list every
-- report of the referral (the list grew with each link): they name the first report and the
-- one a change linked, and intake keeps the rest here, so that a snapshot reaches every report
-- of its referral (status view) and the patient-message code finds them
-- (services/intake/store.py, record_referral).
ALTER TABLE intake.reports ADD COLUMN referral_id uuid;

-- Reports that already hold a snapshot belong to its referral (every report the old events
-- listed received the snapshot).
UPDATE intake.reports SET referral_id = (referral ->> 'referral_id')::uuid
    WHERE referral ->> 'referral_id' IS NOT NULL;

-- Every referral event updates and reads its referral's reports by this.
CREATE INDEX reports_referral ON intake.reports (referral_id) WHERE referral_id IS NOT NULL;
