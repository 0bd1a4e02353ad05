-- The relay deletes rows sent over a week ago; this keeps that DELETE off a full scan.
CREATE INDEX {schema}_outbox_sent_at ON {schema}.outbox (sent_at) WHERE sent_at IS NOT NULL;
