-- Issue 18: a patient message is written in the language of the report whose contact details it
-- uses (the referral's newest report, as intake.referral_known finds it). The language is fixed
-- on the row when the change is told, so the sender composes the message in it whatever happens
-- to the reports later. Rows from before are English: the kiosk spoke nothing else.
ALTER TABLE intake.patient_messages
    ADD COLUMN language text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$');

-- intake.referral_known and intake.apply_referral_snapshots (migrations 006 and 009) now also give
-- that report's language, read by the same statement, from the same row, as its patient. A
-- function's OUT columns cannot change under CREATE OR REPLACE, so both are dropped and created
-- again in this migration's transaction (no caller can see them missing). Their bodies are
-- 006's and 009's, with the language added; the new column comes last, so that a caller
-- selecting the other columns by name reads on unchanged.
DROP FUNCTION intake.apply_referral_snapshots(uuid[], uuid[], integer[], jsonb[], integer[]);
DROP FUNCTION intake.referral_known(uuid);

-- What intake knows of a referral before its next snapshot is recorded: the newest snapshot on
-- any of its reports, and its newest report with that report's patient (contact details) and
-- language.
CREATE FUNCTION intake.referral_known(claimant uuid, OUT previous jsonb, OUT newest_report_id text,
                                      OUT newest_patient jsonb, OUT newest_language text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT r.referral INTO previous FROM intake.reports r
     WHERE r.referral_id = claimant AND r.referral_sequence IS NOT NULL
     ORDER BY r.referral_sequence DESC LIMIT 1;
    SELECT r.report_id::text, r.patient, r.language INTO newest_report_id, newest_patient, newest_language
      FROM intake.reports r
     WHERE r.referral_id = claimant ORDER BY r.submitted_at DESC, r.report_id LIMIT 1;
END
$$;

-- As migration 009 wrote it (each event takes its slice of the named reports), with the language.
CREATE FUNCTION intake.apply_referral_snapshots(claimants uuid[], named uuid[], named_by integer[],
                                                snapshots jsonb[], sequences integer[])
RETURNS TABLE (ordinal integer, previous jsonb, newest_report_id text, newest_patient jsonb, newest_language text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i integer;
    by_event uuid[];      -- the named reports, sorted by the event naming them (then as given)
    event_of integer[];   -- the event of each of them
    first integer := 1;   -- the first of by_event not yet given to an event
    past integer;
BEGIN
    PERFORM 1 FROM intake.reports r WHERE r.referral_id = ANY(claimants) OR r.report_id = ANY(named)
        ORDER BY r.report_id FOR UPDATE;
    SELECT coalesce(array_agg(u.n ORDER BY u.b, u.k), '{}'), coalesce(array_agg(u.b ORDER BY u.b, u.k), '{}')
      INTO by_event, event_of
      FROM unnest(named, named_by) WITH ORDINALITY AS u (n, b, k);
    FOR i IN 1 .. coalesce(array_length(claimants, 1), 0) LOOP
        WHILE first <= cardinality(event_of) AND event_of[first] < i LOOP  -- named by no event
            first := first + 1;
        END LOOP;
        past := first;
        WHILE past <= cardinality(event_of) AND event_of[past] = i LOOP
            past := past + 1;
        END LOOP;
        PERFORM intake.claim_reports(claimants[i], by_event[first:past - 1]);
        first := past;
        ordinal := i;
        SELECT k.previous, k.newest_report_id, k.newest_patient, k.newest_language
          INTO previous, newest_report_id, newest_patient, newest_language
          FROM intake.referral_known(claimants[i]) AS k;
        RETURN NEXT;
        PERFORM intake.record_referral(claimants[i], snapshots[i], sequences[i]);
    END LOOP;
END
$$;
