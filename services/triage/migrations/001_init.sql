-- One decision per report (the primary key), with the input it was made from and the
-- rules version, so that any decision can be replayed and audited.
CREATE TABLE triage.decisions (
    report_id       uuid PRIMARY KEY,
    care_level      text NOT NULL CHECK (care_level IN ('urgent', 'specialist', 'self_care')),
    rules_version   text NOT NULL,
    fired           jsonb NOT NULL,
    likely_source   text NOT NULL,
    possible_causes jsonb NOT NULL,
    notes           jsonb NOT NULL,
    advice          jsonb NOT NULL,
    input_snapshot  jsonb NOT NULL,   -- clinical answers only, no patient identity
    assessed_on     date NOT NULL,    -- the "today" the pain duration was counted to
    decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_care_level ON triage.decisions (care_level);
