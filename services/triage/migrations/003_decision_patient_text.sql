-- Issue 18: what a decision tells the patient, in the patient's language, beside the English
-- clinical record: the language of the report, the texts in it (advice and reasons, parallel
-- to `advice` and `fired`), each advice line's stable id and those that are safety-netting
-- (each fired rule's `reason_id` is in `fired`). Kept so that `clinic rules replay` checks
-- them too. Decisions made before have none (NULL; their language was English).
ALTER TABLE triage.decisions
    ADD COLUMN language text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    ADD COLUMN advice_ids jsonb,
    ADD COLUMN safety_netting jsonb,
    ADD COLUMN patient_text jsonb;
-- As migration 002 does for the other JSON columns.
DO $$
BEGIN
    ALTER TABLE triage.decisions
        ALTER COLUMN advice_ids SET COMPRESSION lz4,
        ALTER COLUMN safety_netting SET COMPRESSION lz4,
        ALTER COLUMN patient_text SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not supported by this server: pglz kept';
END
$$;
