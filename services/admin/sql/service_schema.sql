-- One service's schema, run after bootstrap.sql for each service the database holds.
-- The service owns its schema. A new schema grants nothing to anyone but its owner, so no
-- role can see into another's; the REVOKE undoes any hand-made grant ({others}: PUBLIC and
-- the other service roles of this database).
CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {schema};
ALTER SCHEMA {schema} OWNER TO {schema};
REVOKE ALL ON SCHEMA {schema} FROM {others};
