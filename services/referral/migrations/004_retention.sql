-- Retention of patient identity (services/referral/retention.py, README "Data protection").
-- A cancelled or completed referral is final, so its updated_at is when it closed; N days
-- after, the purge replaces its patient's identity by pseudonyms and stamps this column.
ALTER TABLE referral.referrals ADD COLUMN pseudonymised_at timestamptz;

-- The purge's candidates: closed, not yet pseudonymised, oldest closed first.
CREATE INDEX referrals_identity_due ON referral.referrals (updated_at)
    WHERE status IN ('cancelled', 'completed') AND pseudonymised_at IS NULL;
