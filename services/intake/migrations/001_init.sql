-- Intake owns kiosk keys, the reports kiosks sent, and the status view kiosks read.
CREATE TABLE intake.kiosks (
    kiosk_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE,
    key_hash   text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE intake.reports (
    report_id        uuid PRIMARY KEY,
    kiosk_id         uuid NOT NULL REFERENCES intake.kiosks (kiosk_id),
    idempotency_key  text,
    body_hash        text NOT NULL,
    patient          jsonb NOT NULL,   -- identifying data stays in this schema
    clinical         jsonb NOT NULL,   -- activity, pain, function, home_care
    submitted_at     timestamptz NOT NULL DEFAULT now(),
    -- status view, kept current from triage and referral events
    care_level       text,
    advice           jsonb NOT NULL DEFAULT '[]',
    decided_at       timestamptz,
    referral         jsonb,
    referral_sequence integer,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- a kiosk retrying with the same key gets the same report, even when two requests race
    CONSTRAINT reports_idempotency UNIQUE (kiosk_id, idempotency_key)
);
