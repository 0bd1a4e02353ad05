-- Issue 15: apply_referral_snapshots (migration 006) found each event's named reports with
-- ARRAY(SELECT ... FROM unnest(named, named_by) WHERE b = i): the whole run's list unnested
-- again for every event, so a poll's run of n events cost n x n (38 of the 50 us of each
-- claim in the drain's profile). The pairs are now sorted by event once, and each event takes
-- its slice. The same claims, in the same order, with the same answers.
CREATE OR REPLACE FUNCTION intake.apply_referral_snapshots(claimants uuid[], named uuid[], named_by integer[],
                                                           snapshots jsonb[], sequences integer[])
RETURNS TABLE (ordinal integer, previous jsonb, newest_report_id text, newest_patient jsonb)
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
        SELECT k.previous, k.newest_report_id, k.newest_patient INTO previous, newest_report_id, newest_patient
          FROM intake.referral_known(claimants[i]) AS k;
        RETURN NEXT;
        PERFORM intake.record_referral(claimants[i], snapshots[i], sequences[i]);
    END LOOP;
END
$$;
