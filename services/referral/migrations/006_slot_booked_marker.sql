-- Which slots are free, known to the database (issue 15). Before this, "free" was
-- NOT EXISTS (a referral holding the slot), and the earliest free slot was found by walking
-- every held slot in start order before it: 5 ms a claim at 760 held slots, 10 ms at 2,000.
-- Now each slot carries `booked` (true while a referral holds it: booked, or completed,
-- which keeps its slot as a record), and a partial index lists the free ones in the
-- booking's order, so a claim is one index seek however many slots are held.
--
-- The marker is kept by the database, not by the code: triggers on referral.referrals
-- recompute it for every slot a row takes or leaves (insert, update of slot_id, delete,
-- truncate), and a trigger on referral.slots recomputes it whenever a slot is inserted or
-- its marker is written, so neither a booking path nor a hand-written UPDATE can make it
-- lie. It is recomputed ("does a referral hold this slot?", one probe of the unique index
-- referrals_slot_booked_once) rather than toggled, so the order rows of one statement are
-- processed in does not matter. The unique index stays the guard against a double booking.

ALTER TABLE referral.slots ADD COLUMN booked boolean NOT NULL DEFAULT false;

CREATE FUNCTION referral.slot_is_held(slot uuid) RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
    RETURN EXISTS (SELECT 1 FROM referral.referrals r WHERE r.slot_id = slot);

-- A slot's marker is whatever the referrals say, whoever writes it.
CREATE FUNCTION referral.slot_booked_from_referrals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.booked := referral.slot_is_held(NEW.slot_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER slots_booked_from_referrals BEFORE INSERT OR UPDATE OF booked ON referral.slots
    FOR EACH ROW EXECUTE FUNCTION referral.slot_booked_from_referrals();

-- A referral took or left a slot: flip the slot's marker where it is wrong (the trigger
-- above then computes the value written). AFTER ... FOR EACH ROW: runs once the statement's
-- rows are all in place. A slot whose marker is right already is not written at all.
CREATE FUNCTION referral.referral_slot_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.slot_id IS NOT NULL THEN
        UPDATE referral.slots SET booked = NOT booked
        WHERE slot_id = OLD.slot_id AND booked IS DISTINCT FROM referral.slot_is_held(OLD.slot_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.slot_id IS NOT NULL THEN
        UPDATE referral.slots SET booked = NOT booked
        WHERE slot_id = NEW.slot_id AND booked IS DISTINCT FROM referral.slot_is_held(NEW.slot_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER referrals_slot_taken AFTER INSERT ON referral.referrals
    FOR EACH ROW WHEN (NEW.slot_id IS NOT NULL) EXECUTE FUNCTION referral.referral_slot_changed();
CREATE TRIGGER referrals_slot_moved AFTER UPDATE OF slot_id ON referral.referrals
    FOR EACH ROW WHEN (OLD.slot_id IS DISTINCT FROM NEW.slot_id) EXECUTE FUNCTION referral.referral_slot_changed();
CREATE TRIGGER referrals_slot_left AFTER DELETE ON referral.referrals
    FOR EACH ROW WHEN (OLD.slot_id IS NOT NULL) EXECUTE FUNCTION referral.referral_slot_changed();

CREATE FUNCTION referral.referrals_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE referral.slots SET booked = false WHERE booked;  -- recomputed: false, nothing holds them
    RETURN NULL;
END
$$;
CREATE TRIGGER referrals_truncated AFTER TRUNCATE ON referral.referrals
    FOR EACH STATEMENT EXECUTE FUNCTION referral.referrals_truncated();

-- Existing rows (the slots trigger computes the value).
UPDATE referral.slots SET booked = true WHERE referral.slot_is_held(slot_id);

-- The booking's order (slot_order of the policy: earliest, then slot id), free slots only:
-- claim_free_slot is a seek to the window's start and its first entry not locked.
CREATE INDEX slots_free_by_start ON referral.slots (start_at, slot_id) WHERE NOT booked;
-- One provider's free slots (count_free, the slot list filtered to a provider's free ones).
CREATE INDEX slots_free_by_provider ON referral.slots (provider_id, start_at, slot_id) WHERE NOT booked;
