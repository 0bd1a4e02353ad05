-- The rules that fired in the triage decision behind each linked report, as the decision
-- event states them (`fired`: [{"id", "reason"}], in the decision's order): the FHIR
-- ServiceRequest's reasonCode (docs/fhir.md). NULL when not known: links stored before this
-- migration, or by a path that was not handed them; '[]' when the decision fired none.
-- The reasons are the rule file's text, not the patient's words.
ALTER TABLE referral.referral_reports ADD COLUMN fired jsonb;
