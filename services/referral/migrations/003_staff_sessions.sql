-- The queue page's server-side sessions (services/common/sessions.py). The cookie holds a
-- random 256-bit id; only its SHA-256 is stored. A session counts only while its staff
-- member's token is active (a join on identity.staff at every request), while it has been
-- used within the idle timeout and for at most the absolute lifetime after sign-in.
-- No foreign key to identity.staff: this role may only read that schema.
CREATE TABLE referral.staff_sessions (
    session_hash  text        PRIMARY KEY,
    staff_id      uuid        NOT NULL,
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staff_sessions_staff_id ON referral.staff_sessions (staff_id);
