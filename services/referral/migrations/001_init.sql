-- Referral owns providers, their slots, referrals, the reports linked to them and
-- every referral's history. The booking invariants live here, not only in code.

-- The slot exclusion constraint needs btree_gist, which only a superuser can create
-- (the bootstrap does). Say so plainly instead of failing on a missing operator class.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
        RAISE EXCEPTION 'extension btree_gist is missing: run the database bootstrap (clinic db bootstrap) as the admin role';
    END IF;
END
$$;

CREATE TABLE referral.providers (
    provider_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    specialty   text NOT NULL CHECK (specialty IN ('pain_management')),
    location    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- the queue page names a provider by these two; a second one alike would be ambiguous
    CONSTRAINT providers_name_location UNIQUE (name, location)
);

CREATE TABLE referral.slots (
    slot_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider_id uuid NOT NULL REFERENCES referral.providers (provider_id),
    start_at    timestamptz NOT NULL,
    end_at      timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT slots_start_before_end CHECK (start_at < end_at),
    -- one provider cannot be in two consults at once
    CONSTRAINT slots_no_overlap EXCLUDE USING gist (provider_id WITH =, tstzrange(start_at, end_at) WITH &&)
);
-- free-slot search: earliest first (slot_order of the policy)
CREATE INDEX slots_by_start ON referral.slots (start_at, slot_id);
CREATE INDEX slots_by_provider ON referral.slots (provider_id, start_at, slot_id);

CREATE TABLE referral.referrals (
    referral_id          uuid PRIMARY KEY,
    patient_mrn          text NOT NULL,
    patient_display_name text NOT NULL,
    priority             text NOT NULL CHECK (priority IN ('urgent', 'routine')),
    -- the queue's sort key: urgent first. Stored so one btree index serves ORDER BY + keyset.
    priority_rank        smallint NOT NULL GENERATED ALWAYS AS (CASE priority WHEN 'urgent' THEN 0 ELSE 1 END) STORED,
    status               text NOT NULL CHECK (status IN ('booked', 'waitlisted', 'cancelled', 'completed')),
    slot_id              uuid REFERENCES referral.slots (slot_id),
    created_at           timestamptz NOT NULL,
    window_ends_at       timestamptz NOT NULL,
    -- number of history entries; every change adds at least one, so events carry it as `sequence`
    version              integer NOT NULL CHECK (version > 0),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    -- booked and completed hold their slot (completed keeps it as a record); the others hold none
    CONSTRAINT referrals_slot_matches_status CHECK ((slot_id IS NOT NULL) = (status IN ('booked', 'completed'))),
    CONSTRAINT referrals_window_after_creation CHECK (window_ends_at >= created_at)
);
-- A slot is never booked twice, whatever the concurrency: the second insert/update fails.
CREATE UNIQUE INDEX referrals_slot_booked_once ON referral.referrals (slot_id) WHERE slot_id IS NOT NULL;
-- A patient has at most one open referral; a racing second one fails and is retried as a link.
CREATE UNIQUE INDEX referrals_one_open_per_patient ON referral.referrals (patient_mrn)
    WHERE status IN ('booked', 'waitlisted');
-- The queue: urgent first, then oldest, keyset-paginated. One index per filter shape.
CREATE INDEX referrals_queue ON referral.referrals (priority_rank, created_at, referral_id);
CREATE INDEX referrals_queue_by_status ON referral.referrals (status, priority_rank, created_at, referral_id);
CREATE INDEX referrals_queue_open ON referral.referrals (priority_rank, created_at, referral_id)
    WHERE status IN ('booked', 'waitlisted');

-- Every report a referral stands for; the first (position 0) opened it.
CREATE TABLE referral.referral_reports (
    report_id   uuid PRIMARY KEY,   -- a report belongs to one referral at most
    referral_id uuid NOT NULL REFERENCES referral.referrals (referral_id),
    position    integer NOT NULL CHECK (position >= 0),
    care_level  text NOT NULL CHECK (care_level IN ('urgent', 'specialist')),
    linked_at   timestamptz NOT NULL,
    CONSTRAINT referral_reports_order UNIQUE (referral_id, position)
);

-- Who did what, when and why: appended with every change, never updated.
CREATE TABLE referral.referral_history (
    referral_id  uuid NOT NULL REFERENCES referral.referrals (referral_id),
    sequence     integer NOT NULL CHECK (sequence > 0),
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    from_status  text,
    to_status    text NOT NULL,
    reason       text NOT NULL,
    from_slot_id uuid,
    to_slot_id   uuid,
    PRIMARY KEY (referral_id, sequence)
);

-- History is an audit trail: refuse to rewrite it, even by mistake in a later change.
CREATE FUNCTION referral.history_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'referral history is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER referral_history_append_only BEFORE UPDATE OR DELETE ON referral.referral_history
    FOR EACH ROW EXECUTE FUNCTION referral.history_is_append_only();
