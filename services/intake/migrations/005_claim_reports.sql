-- store.claim_reports in one statement (issue 15, throughput): a referral event first locks its
-- referral's reports (those known and those it names, in report_id order, so that two events
-- of one referral take their turns and never deadlock), then notes that the named ones belong
-- to it. Two statements in a function rather than one: PL/pgSQL runs them in this order, each
-- to its end, which a single statement's CTEs do not promise; the caller waits for one answer.
CREATE FUNCTION intake.claim_reports(claimant uuid, named uuid[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM intake.reports WHERE referral_id = claimant OR report_id = ANY(named)
        ORDER BY report_id FOR UPDATE;
    UPDATE intake.reports SET referral_id = claimant
        WHERE report_id = ANY(named) AND referral_id IS DISTINCT FROM claimant;
END
$$;
