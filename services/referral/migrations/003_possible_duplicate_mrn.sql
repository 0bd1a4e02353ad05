-- The possible-duplicate flag names the other referral's id *and* MRN (contract). The MRN
-- is kept with the flag (a referral's MRN never changes) rather than joined at read time,
-- so that a queue page stays one walk of a referrals_queue* index, with no lookup per row.
ALTER TABLE referral.referrals ADD COLUMN possible_duplicate_mrn text;
UPDATE referral.referrals r SET possible_duplicate_mrn = d.patient_mrn
FROM referral.referrals d WHERE d.referral_id = r.possible_duplicate_of;
ALTER TABLE referral.referrals ADD CONSTRAINT referrals_duplicate_flag_whole
    CHECK ((possible_duplicate_of IS NULL) = (possible_duplicate_mrn IS NULL));
