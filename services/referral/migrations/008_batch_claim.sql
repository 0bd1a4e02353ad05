-- Slots for a run of decisions in one statement (issue 15: the referral worker books a
-- poll's new patients together, services/referral/decision_batch.py).
--
-- referral.claim_slots(from, untils[], reports[], mrn_keys[]) claims, for each window
-- [from, untils[i]] in order, the earliest free slot (store.CLAIM_FREE_SLOT's order and
-- locking: start, then id; FOR UPDATE SKIP LOCKED), passing over the slots it claimed for
-- the earlier windows. That is what one claim per decision gives, each after the one before
-- had booked its slot: the claims of one call are always the first free slots in booking
-- order, so the next one is the first free slot after the last claimed (a seek of
-- slots_free_by_start), and a window that holds no slot claims nothing. No slot is locked
-- that is not given: a locked slot left free would be passed over by another worker about
-- to waitlist a referral (booking.py's concurrency notes).
--
-- With `reports` and `mrn_keys`, window i is claimed only for a new patient: the report is
-- linked to no referral and no open referral has the MRN key (decision_context's
-- condition). The first decision that is not new ends the call (its row says so, with no
-- slot): it is applied on its own, and the windows after it are claimed after it.
--
-- `referrals`: the ids the new patients' referrals will have; whether a patient message
-- names one already comes back with it (decision_context's has_messages).
--
-- One row per window: its ordinal (from 1), whether the patient is new (NULL when not
-- asked), whether a message names its referral id (NULL when not asked), the slot claimed
-- (NULL columns: none) and its provider's name and location.
CREATE FUNCTION referral.claim_slots(p_from timestamptz, p_until timestamptz[],
                                     p_report uuid[] DEFAULT NULL, p_mrn_key text[] DEFAULT NULL,
                                     p_referral uuid[] DEFAULT NULL)
RETURNS TABLE (ordinal integer, new_patient boolean, has_messages boolean, claimed_slot_id uuid,
               claimed_provider_id uuid, claimed_start timestamptz, claimed_end timestamptz,
               provider_name text, provider_location text)
LANGUAGE plpgsql AS $$
DECLARE
    v_start timestamptz := '-infinity';
    v_id uuid := '00000000-0000-0000-0000-000000000000';
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_until, 1), 0) LOOP
        ordinal := i;
        new_patient := NULL;
        has_messages := NULL;
        claimed_slot_id := NULL; claimed_provider_id := NULL; claimed_start := NULL; claimed_end := NULL;
        provider_name := NULL; provider_location := NULL;
        IF p_report IS NOT NULL THEN
            new_patient := NOT EXISTS (SELECT 1 FROM referral.referral_reports rr WHERE rr.report_id = p_report[i])
                AND NOT EXISTS (SELECT 1 FROM referral.referrals r WHERE r.patient_mrn_key = p_mrn_key[i]
                                AND r.status IN ('booked', 'waitlisted'));
            IF NOT new_patient THEN
                RETURN NEXT;
                RETURN;
            END IF;
        END IF;
        IF p_referral IS NOT NULL THEN
            has_messages := EXISTS (SELECT 1 FROM referral.patient_messages m WHERE m.referral_id = p_referral[i]);
        END IF;
        SELECT s.slot_id, s.provider_id, s.start_at, s.end_at
            INTO claimed_slot_id, claimed_provider_id, claimed_start, claimed_end
            FROM referral.slots s
            WHERE s.start_at >= p_from AND s.start_at <= p_until[i] AND NOT s.booked
              AND (s.start_at, s.slot_id) > (v_start, v_id)
            ORDER BY s.start_at, s.slot_id LIMIT 1 FOR UPDATE OF s SKIP LOCKED;
        IF claimed_slot_id IS NOT NULL THEN
            v_start := claimed_start;
            v_id := claimed_slot_id;
            SELECT p.name, p.location INTO provider_name, provider_location
                FROM referral.providers p WHERE p.provider_id = claimed_provider_id;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
