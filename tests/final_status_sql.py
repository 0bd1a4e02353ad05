"""The one SQL test of "this update made the report's status final", for the triggers the
benchmark and the fault suite install on their own stacks' intake.reports (tests/bench/pipeline/
final_status.py, tests/chaos/first_final.py): final as services/intake/status_view.derive_status
has it, a referral decides once there is one; without one, a self-care decision is final."""

# IS NOT DISTINCT FROM: a NULL care level must read as "not self care", not as NULL.
BECAME_FINAL = ("(NEW.referral IS NOT NULL OR NEW.care_level IS NOT DISTINCT FROM 'self_care')"
                " AND NOT (OLD.referral IS NOT NULL OR OLD.care_level IS NOT DISTINCT FROM 'self_care')")
