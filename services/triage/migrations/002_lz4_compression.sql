-- Issue 15: a decision's event (about 2 KB of JSON) and a decision row cross TOAST's
-- threshold, so each insert tried to compress them; with pglz, the default, that cost the
-- database 8-12 us per event, mostly in vain (the event saved less than pglz's 25% and was
-- stored as it came). lz4 compresses them in a fraction of that, and smaller. Only new
-- values are written with it (no rewrite now). A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE triage.outbox ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE triage.decisions
        ALTER COLUMN fired SET COMPRESSION lz4,
        ALTER COLUMN possible_causes SET COMPRESSION lz4,
        ALTER COLUMN notes SET COMPRESSION lz4,
        ALTER COLUMN advice SET COMPRESSION lz4,
        ALTER COLUMN input_snapshot SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not supported by this server: pglz kept';
END
$$;
