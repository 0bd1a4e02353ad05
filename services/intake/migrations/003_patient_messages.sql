-- Patient messages (issue 19, docs/patient-messages.md): one row per referral change told
-- and channel, written by the worker in the referral event's inbox transaction, delivered by
-- its sender thread (services/intake/messages/sender.py). The unique key makes a change told
-- once per channel whatever is delivered twice.
CREATE TABLE intake.patient_messages (
    message_id      uuid PRIMARY KEY,
    referral_id     uuid NOT NULL,
    report_id       uuid REFERENCES intake.reports (report_id),  -- whose contact details were used
    sequence        integer NOT NULL,   -- the referral snapshot that told the change
    change          text NOT NULL CHECK (change IN ('booked', 'moved', 'cancelled', 'waitlisted')),
    channel         text NOT NULL CHECK (channel IN ('email', 'sms', 'phone')),
    recipient       text,               -- address or number; NULL when unknown or purged
    appointment     jsonb,              -- what is told: start, provider, location (none when waitlisted)
    content         jsonb,              -- as sent: {subject, text, html} or {text}; NULL once purged
    status          text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'uncertain',
                                                    'not_sent')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sender          bigint,             -- while `sending`: the sender's liveness lock (sender.py)
    detail          text,               -- why failed/uncertain/not_sent; never an address or a body
    revision        integer NOT NULL DEFAULT 1,  -- the state's number, as published
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    pseudonymised_at timestamptz,
    CONSTRAINT patient_messages_once UNIQUE (referral_id, sequence, channel)
);

-- The sender's claim: due queued rows, oldest first.
CREATE INDEX patient_messages_due ON intake.patient_messages (next_attempt_at) WHERE status = 'queued';
-- Rows in flight, looked at for senders that are gone.
CREATE INDEX patient_messages_sending ON intake.patient_messages (sender) WHERE status = 'sending';
-- The retention purge blanks a report's messages with its identity.
CREATE INDEX patient_messages_report ON intake.patient_messages (report_id);
