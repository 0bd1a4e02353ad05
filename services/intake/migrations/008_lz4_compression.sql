-- Issue 15: as triage's 002. A report row (patient, answers, advice, the referral snapshot)
-- and a decision or referral event cross TOAST's threshold, so each insert and each update of
-- the status view tried pglz on them again; lz4 does the same work in a fraction of the time.
-- Only new values are written with it (no rewrite now). A server without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE intake.outbox ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE intake.reports
        ALTER COLUMN patient SET COMPRESSION lz4,
        ALTER COLUMN clinical SET COMPRESSION lz4,
        ALTER COLUMN advice SET COMPRESSION lz4,
        ALTER COLUMN referral SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not supported by this server: pglz kept';
END
$$;
