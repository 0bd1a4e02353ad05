-- Patient messages (issue 19, docs/patient-messages.md): what intake told each referral's
-- patient, one row per message in its newest state (highest revision), and when a person
-- last reached the patient. The queue's "contact needed" flag is kept on the referral, so a
-- filtered queue page stays one walk of a referrals_queue* index.

CREATE TABLE referral.patient_messages (
    message_id     uuid PRIMARY KEY,
    -- No foreign key: the message comes on another topic than the decisions that make the
    -- referral. Intake only tells of referral events, so the referral is here first, but a
    -- message that came before its referral is kept, and counted when the referral is made.
    referral_id    uuid NOT NULL,
    report_id      uuid,  -- whose contact details intake used (its own column allows none)
    sequence       integer NOT NULL CHECK (sequence >= 0),
    change         text NOT NULL CHECK (change IN ('booked', 'moved', 'cancelled', 'waitlisted')),
    channel        text NOT NULL CHECK (channel IN ('email', 'sms', 'phone')),
    status         text NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'uncertain', 'not_sent')),
    detail         text,
    attempts       integer NOT NULL CHECK (attempts >= 0),
    revision       integer NOT NULL CHECK (revision >= 0),
    at             timestamptz NOT NULL,
    -- patient identity: the identity purge blanks it with the referral's (retention.py)
    callback_phone text,
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX patient_messages_by_referral ON referral.patient_messages (referral_id, at, message_id);

-- Every time a scheduler marked the patient reached (POST /v1/referrals/<id>/contacted).
-- The note is free text about a patient: the identity purge blanks it.
CREATE TABLE referral.patient_contacts (
    contact_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id uuid NOT NULL REFERENCES referral.referrals (referral_id),
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    note        text
);
CREATE INDEX patient_contacts_by_referral ON referral.patient_contacts (referral_id, at);

ALTER TABLE referral.referrals
    ADD COLUMN contacted_at timestamptz,
    -- domain.contact.contact_needed of its messages and contacted_at, kept by contact_store.py
    ADD COLUMN contact_needed boolean NOT NULL DEFAULT false;

-- The queue filtered to "contact needed" (few), in the keyset order of the others.
CREATE INDEX referrals_queue_contact_needed ON referral.referrals (priority_rank, created_at, referral_id)
    WHERE contact_needed;
