-- Issue 18: the language a report was filled in (the kiosk's language then), and the outcome's
-- patient texts with their stable ids, as triage wrote them in that language: each advice line
-- (id, text, whether it is safety-netting) and each reason (rule id, reason id, text).
-- `advice` keeps being the lines shown to the patient, now in the report's language.
-- Reports stored before this are English: the kiosk spoke nothing else.
ALTER TABLE intake.reports
    ADD COLUMN language text NOT NULL DEFAULT 'en' CHECK (language ~ '^[a-z]{2,3}$'),
    ADD COLUMN outcome jsonb;
