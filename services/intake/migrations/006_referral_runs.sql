-- A run of referral events in one statement (issue 15, throughput): the worker's three steps per
-- event (store.claim_reports, the read of messages.store.referral_known, store.record_referral)
-- as functions, and intake.apply_referral_snapshots, which runs them for each event of a run in
-- its order, so that every event sees what the ones before it did, exactly as one by one. The
-- patient messages are then written from what each event saw (messages.store.tell_changes).

-- Give every report of the referral its newest snapshot: this one, or a newer one another of its
-- reports already holds (an older event arriving late changes nothing). PL/pgSQL, not SQL, for
-- both functions: a SQL function that is not inlined plans its statement at every call, while
-- PL/pgSQL keeps the plan for the session.
CREATE FUNCTION intake.record_referral(claimant uuid, snapshot jsonb, seq integer) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    WITH newest AS (SELECT known.referral, known.referral_sequence FROM (
        SELECT snapshot, seq
        UNION ALL SELECT k.referral, k.referral_sequence FROM intake.reports k
         WHERE k.referral_id = claimant AND k.referral_sequence IS NOT NULL
    ) AS known (referral, referral_sequence) ORDER BY known.referral_sequence DESC LIMIT 1)
    UPDATE intake.reports r SET referral = newest.referral, referral_sequence = newest.referral_sequence,
        updated_at = now() FROM newest
     WHERE r.referral_id = claimant
       AND (r.referral_sequence IS NULL OR r.referral_sequence < newest.referral_sequence);
END
$$;

-- What intake knows of a referral before its next snapshot is recorded: the newest snapshot on
-- any of its reports, and its newest report with that report's patient (contact details).
CREATE FUNCTION intake.referral_known(claimant uuid, OUT previous jsonb, OUT newest_report_id text,
                                      OUT newest_patient jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT r.referral INTO previous FROM intake.reports r
     WHERE r.referral_id = claimant AND r.referral_sequence IS NOT NULL
     ORDER BY r.referral_sequence DESC LIMIT 1;
    SELECT r.report_id::text, r.patient INTO newest_report_id, newest_patient FROM intake.reports r
     WHERE r.referral_id = claimant ORDER BY r.submitted_at DESC, r.report_id LIMIT 1;
END
$$;

-- Event i of a run: claimants[i] (its referral), the reports it names (named[k] where
-- named_by[k] = i), its snapshot and sequence. Every report concerned is locked first, in
-- report_id order (two runs never deadlock on them); then, event by event: claim, read what is
-- known (one row out, `ordinal` = i), record.
CREATE FUNCTION intake.apply_referral_snapshots(claimants uuid[], named uuid[], named_by integer[],
                                                snapshots jsonb[], sequences integer[])
RETURNS TABLE (ordinal integer, previous jsonb, newest_report_id text, newest_patient jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i integer;
BEGIN
    PERFORM 1 FROM intake.reports r WHERE r.referral_id = ANY(claimants) OR r.report_id = ANY(named)
        ORDER BY r.report_id FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(claimants, 1), 0) LOOP
        PERFORM intake.claim_reports(claimants[i],
                                     ARRAY(SELECT u.n FROM unnest(named, named_by) AS u (n, b) WHERE u.b = i));
        ordinal := i;
        SELECT k.previous, k.newest_report_id, k.newest_patient INTO previous, newest_report_id, newest_patient
          FROM intake.referral_known(claimants[i]) AS k;
        RETURN NEXT;
        PERFORM intake.record_referral(claimants[i], snapshots[i], sequences[i]);
    END LOOP;
END
$$;
