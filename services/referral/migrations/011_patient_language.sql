-- The patient's language (issue 18): the language their newest linked report was filled in
-- (BCP 47, services/common/report_vocabulary.py REPORT_LANGUAGES), so that schedulers phone
-- them in it (GET /v1/referrals `patient.language`, the queue page, the FHIR Patient's
-- `communication`). Referrals made before: English, as the decisions behind them were.
-- No CHECK of the list: adding a language would then need a migration; the worker reads an
-- unknown one as English (events.decision_language) and the domain refuses any other on load.
-- A constant default adds the columns without rewriting the table (the queue's 1M rows).
ALTER TABLE referral.referrals
    ADD COLUMN patient_language text NOT NULL DEFAULT 'en',
    -- The FHIR Patient's version before the identity purge (which adds one) and when it last
    -- changed (NULL: not since the referral was made): a link in another language changes it.
    ADD COLUMN patient_version integer NOT NULL DEFAULT 1,
    ADD COLUMN patient_changed_at timestamptz;
