-- Outbox and inbox tables, the same in every service schema ({schema} is filled in).
CREATE TABLE {schema}.outbox (
    id          bigserial PRIMARY KEY,
    event_id    uuid NOT NULL UNIQUE,
    topic       text NOT NULL,
    key         text NOT NULL,
    payload     jsonb NOT NULL,
    traceparent text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX {schema}_outbox_unsent ON {schema}.outbox (id) WHERE sent_at IS NULL;

CREATE TABLE {schema}.inbox (
    event_id    text PRIMARY KEY,
    topic       text NOT NULL,
    event_type  text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
