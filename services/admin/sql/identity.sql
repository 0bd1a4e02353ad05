-- Staff identity: the one thing all three services read. Owned by clinic_admin,
-- which only the `clinic` command uses, so services can check a token (and see
-- a revocation at once) but never mint or revoke one. Run after bootstrap.sql.
-- Every database the services use holds a copy ({service_roles}: its services' roles);
-- the command writes all copies alike (services/admin/identity_copies.py).

CREATE SCHEMA IF NOT EXISTS identity AUTHORIZATION clinic_admin;
ALTER SCHEMA identity OWNER TO clinic_admin;
REVOKE ALL ON SCHEMA identity FROM PUBLIC;

CREATE TABLE IF NOT EXISTS identity.staff (
    staff_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('scheduler', 'admin')),
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

GRANT USAGE ON SCHEMA identity TO {service_roles};
GRANT SELECT ON ALL TABLES IN SCHEMA identity TO {service_roles};
-- So a table added here later is readable by the services without a new grant.
ALTER DEFAULT PRIVILEGES FOR ROLE clinic_admin IN SCHEMA identity
    GRANT SELECT ON TABLES TO {service_roles};
