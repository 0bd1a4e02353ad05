-- The access audit: one row for every staff read or change of a referral, a report or a
-- decision (services/common/audit.py writes them; `clinic audit` reads them). Run as
-- clinic_admin after bootstrap.sql, in the bootstrap's transaction; converges, so running
-- it again is harmless. Each database holds the accesses of its own services ({service_roles}):
-- a row is written in the transaction of what it records; `clinic audit` reads every database.
--
-- Append-only for the services: the schema is the admin's, and each service role may only
-- INSERT, and only the columns that describe the access. It may not SELECT, UPDATE, DELETE
-- or TRUNCATE, and cannot set the row's id, its time or the database role that wrote it
-- (defaults it has no INSERT privilege on), so even a compromised service can add rows but
-- never read, rewrite or remove what is there, nor backdate what it adds. The triggers
-- below refuse UPDATE, DELETE and TRUNCATE to everyone else too (the admin included), until
-- someone who owns the table deliberately drops them.

CREATE SCHEMA IF NOT EXISTS audit AUTHORIZATION clinic_admin;
ALTER SCHEMA audit OWNER TO clinic_admin;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;

CREATE TABLE IF NOT EXISTS audit.access (
    audit_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_role      text NOT NULL DEFAULT current_user,      -- the service that wrote the row
    staff_id     uuid NOT NULL,
    staff_name   text NOT NULL,
    staff_role   text NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('api', 'page')),  -- bearer token / queue page session
    background   boolean NOT NULL DEFAULT false,           -- the queue page's own periodic refresh
    action       text NOT NULL CONSTRAINT access_action_check
                 CHECK (action IN ('read', 'list', 'reschedule', 'cancel', 'complete', 'contacted')),
    record_type  text NOT NULL CHECK (record_type IN ('referral', 'report', 'decision')),
    record_ids   uuid[] NOT NULL,                          -- a list request: every record it returned
    patient_mrns text[] NOT NULL DEFAULT '{{}}',             -- as typed, where the service knows them
    patient_keys text[] NOT NULL DEFAULT '{{}}',             -- the same, as compared (NFKC, trimmed, case-folded)
    endpoint     text NOT NULL,                            -- e.g. 'GET /v1/referrals/<referral_id>'
    traceparent  text,
    client_addr  inet
);

-- A database made before an action was added (contacted: issue 19) gets the new list. Its rows
-- all hold earlier actions, still allowed: NOT VALID spares the scan of the whole table.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'audit.access'::regclass
                   AND conname = 'access_action_check' AND pg_get_constraintdef(oid) LIKE '%''contacted''%') THEN
        ALTER TABLE audit.access DROP CONSTRAINT IF EXISTS access_action_check;
        ALTER TABLE audit.access ADD CONSTRAINT access_action_check
            CHECK (action IN ('read', 'list', 'reschedule', 'cancel', 'complete', 'contacted')) NOT VALID;
    END IF;
END
$$;

-- `clinic audit --staff NAME` and `--patient MRN`, newest first.
CREATE INDEX IF NOT EXISTS access_staff_idx ON audit.access (staff_name, audit_id DESC);
CREATE INDEX IF NOT EXISTS access_patient_idx ON audit.access USING gin (patient_keys);
CREATE INDEX IF NOT EXISTS access_record_idx ON audit.access USING gin (record_ids);

CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.access is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE ALL ON FUNCTION audit.refuse_change() FROM PUBLIC;

CREATE OR REPLACE TRIGGER access_append_only BEFORE UPDATE OR DELETE ON audit.access
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE OR REPLACE TRIGGER access_no_truncate BEFORE TRUNCATE ON audit.access
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

GRANT USAGE ON SCHEMA audit TO {service_roles};
REVOKE ALL ON audit.access FROM PUBLIC, {service_roles};
GRANT INSERT (staff_id, staff_name, staff_role, channel, background, action, record_type, record_ids,
              patient_mrns, patient_keys, endpoint, traceparent, client_addr)
    ON audit.access TO {service_roles};
