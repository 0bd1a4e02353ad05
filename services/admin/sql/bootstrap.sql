-- Per-database part of the bootstrap, run as clinic_admin inside the clinic
-- database, in one transaction, after the login roles exist (see services/admin/database.py).
-- Every statement converges rather than creates, so running it again is harmless.
-- {service_roles}: the roles of the services this database holds (all three on one server,
-- one when a service has its own; docs/database-per-service.md); service_schema.sql follows
-- for each of them.

-- Only the service roles (and the superuser) may connect; by default PUBLIC may.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO {service_roles}', current_database());
END
$$;

-- PostgreSQL 15 already drops CREATE on public for PUBLIC; say it anyway, so a
-- database restored from an older dump ends up the same.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Referral's "no two overlapping slots for one provider" is an exclusion constraint
-- mixing uuid equality with range overlap, which needs btree_gist. Extensions need a
-- superuser, so the bootstrap creates it for the service.
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
