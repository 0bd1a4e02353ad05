-- Patient matching (contract, Referral service): the same patient is the same MRN
-- (Unicode NFKC, trimmed, case-folded) *and* the same birth date. Before this, one open
-- referral per patient was keyed on the MRN as typed, so a report with someone else's
-- MRN joined their referral, and look-alike MRNs ("mrn-0042", "MRN-0042 ") dodged it.
--
-- patient_mrn stays as the report gave it (what schedulers see); patient_mrn_key is the
-- compared form, computed by the service (domain.patients.mrn_key); patient_birth_date
-- comes with the triage decision, NULL when it did not (older decisions) and for every
-- referral made before this migration: referral never received birth dates, and cannot
-- read intake's schema. A NULL birth date never matches anything, so such a referral is
-- never joined by a new report; a new report with its MRN opens its own referral, flagged.

-- The compared form in SQL, for the backfill below and for rows inserted without one (by
-- hand, or by tools that predate the column). An approximation of the service's key: the
-- database has no Unicode case folding (and runs without a locale, so lower() folds ASCII
-- only); for the ASCII MRNs clinics print, the two agree.
CREATE FUNCTION referral.mrn_key(mrn text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lower(btrim(normalize(mrn, NFKC), E' \t\n\r\f\v'));

ALTER TABLE referral.referrals
    ADD COLUMN patient_mrn_key text,
    ADD COLUMN patient_birth_date date,
    -- Flagged for scheduler review: when this referral was made, another open referral had
    -- the same MRN but another (or an unknown) birth date; it names that referral.
    ADD COLUMN possible_duplicate_of uuid REFERENCES referral.referrals (referral_id),
    ADD CONSTRAINT referrals_not_a_duplicate_of_itself CHECK (possible_duplicate_of <> referral_id);

UPDATE referral.referrals SET patient_mrn_key = referral.mrn_key(patient_mrn);
ALTER TABLE referral.referrals ALTER COLUMN patient_mrn_key SET NOT NULL;

CREATE FUNCTION referral.fill_mrn_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.patient_mrn_key IS NULL THEN
        NEW.patient_mrn_key := referral.mrn_key(NEW.patient_mrn);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER referrals_fill_mrn_key BEFORE INSERT ON referral.referrals
    FOR EACH ROW EXECUTE FUNCTION referral.fill_mrn_key();

-- Open referrals whose MRNs differ as typed but not as compared (the old index let them
-- through): all but the oldest are flagged against the oldest, for a scheduler to review.
UPDATE referral.referrals r SET possible_duplicate_of = oldest.referral_id
FROM (SELECT DISTINCT ON (patient_mrn_key) patient_mrn_key, referral_id FROM referral.referrals
      WHERE status IN ('booked', 'waitlisted') ORDER BY patient_mrn_key, created_at, referral_id) oldest
WHERE r.patient_mrn_key = oldest.patient_mrn_key AND r.status IN ('booked', 'waitlisted')
  AND r.referral_id <> oldest.referral_id;

-- One open referral per patient: (compared MRN, birth date). Created first, so that two
-- first reports of one patient racing fail on this index (the retry then links).
-- NULL birth dates are distinct: a referral whose patient cannot be matched is never a
-- "same patient" for another.
DROP INDEX referral.referrals_one_open_per_patient;
CREATE UNIQUE INDEX referrals_one_open_per_patient ON referral.referrals (patient_mrn_key, patient_birth_date)
    WHERE status IN ('booked', 'waitlisted');
-- At most one *unflagged* open referral per compared MRN: a second open referral for an
-- MRN must carry the possible-duplicate flag. Two first reports of different people with
-- one MRN racing (neither sees the other) cannot both go unflagged: the loser fails here
-- and its retry finds the winner's referral and flags its own.
CREATE UNIQUE INDEX referrals_one_unflagged_open_per_mrn ON referral.referrals (patient_mrn_key)
    WHERE status IN ('booked', 'waitlisted') AND possible_duplicate_of IS NULL;
-- The queue filtered to referrals flagged for review (few), keyset order as the others.
CREATE INDEX referrals_queue_possible_duplicate ON referral.referrals (priority_rank, created_at, referral_id)
    WHERE possible_duplicate_of IS NOT NULL;
