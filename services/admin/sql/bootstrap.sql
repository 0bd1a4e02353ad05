-- Per-database part of the bootstrap, run as clinic_admin inside the clinic
-- database, in one transaction, after the login roles exist (see services/admin/database.py).
-- Every statement converges rather than creates, so running it again is harmless.

-- Only the service roles (and the superuser) may connect; by default PUBLIC may.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO intake, triage, referral',
                   current_database());
END
$$;

-- PostgreSQL 15 already drops CREATE on public for PUBLIC; say it anyway, so a
-- database restored from an older dump ends up the same.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Each service owns its schema. A new schema grants nothing to anyone but its
-- owner, so no role can see into another's; the REVOKEs undo any hand-made grant.
CREATE SCHEMA IF NOT EXISTS intake AUTHORIZATION intake;
CREATE SCHEMA IF NOT EXISTS triage AUTHORIZATION triage;
CREATE SCHEMA IF NOT EXISTS referral AUTHORIZATION referral;
ALTER SCHEMA intake OWNER TO intake;
ALTER SCHEMA triage OWNER TO triage;
ALTER SCHEMA referral OWNER TO referral;
REVOKE ALL ON SCHEMA intake FROM PUBLIC, triage, referral;
REVOKE ALL ON SCHEMA triage FROM PUBLIC, intake, referral;
REVOKE ALL ON SCHEMA referral FROM PUBLIC, intake, triage;

-- Referral's "no two overlapping slots for one provider" is an exclusion constraint
-- mixing uuid equality with range overlap, which needs btree_gist. Extensions need a
-- superuser, so the bootstrap creates it for the service.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
