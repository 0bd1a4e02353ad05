-- The read-only FHIR interface (issue 17, docs/fhir.md): each of its searches is one walk of
-- an index in the order it pages by (keyset cursors, as the queue), at any depth.

-- ServiceRequest?patient.identifier=MRN: the patient's referrals (compared MRN, as patient
-- matching compares it), in the queue's order.
CREATE INDEX referrals_by_mrn_key ON referral.referrals (patient_mrn_key, priority_rank, created_at, referral_id);
-- ServiceRequest?_lastUpdated=gt...: what changed since, oldest change first.
CREATE INDEX referrals_by_update ON referral.referrals (updated_at, referral_id);
-- Appointment?date=... (the slots that booked and completed referrals hold), and
-- Slot?status=busy, in start order; the free ones have slots_free_by_start (migration 006).
CREATE INDEX slots_booked_by_start ON referral.slots (start_at, slot_id) WHERE booked;

-- A Slot's meta.versionId and meta.lastUpdated: a slot changes when it turns busy or free.
-- Counted by a trigger of its own, which runs after slots_booked_from_referrals (BEFORE
-- triggers fire in name order) and so sees the marker that trigger computed; only a slot
-- whose marker flips is counted (the referrals' triggers write no other). Slots stored
-- before this migration start at version 1, changed_at NULL (then lastUpdated is created_at).
ALTER TABLE referral.slots
    ADD COLUMN version integer NOT NULL DEFAULT 1,
    ADD COLUMN changed_at timestamptz;

CREATE FUNCTION referral.slot_version_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.changed_at := statement_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER slots_version_counted BEFORE UPDATE OF booked ON referral.slots
    FOR EACH ROW WHEN (OLD.booked IS DISTINCT FROM NEW.booked) EXECUTE FUNCTION referral.slot_version_count();
