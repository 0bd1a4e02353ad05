-- Rate-limit counters of this service (services/common/rate_limit.py): failed
-- authentication per client address and per credential, kiosk submissions per hour.
-- One row per bucket and fixed window; the API deletes ended windows now and then.
CREATE TABLE {schema}.rate_limits (
    bucket       text        NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX {schema}_rate_limits_expires_at ON {schema}.rate_limits (expires_at);
