"""The words of a symptom report, as the contract fixes them.

Intake checks a report against them and triage's rule file may name them, so they are
written once, here. Constants only: no I/O, no imports, so the triage domain can use
them and stay pure. What counts as severe pain is not here: that is a setting of the
triage rule file, which clinicians may change.
"""

# The clinical sections of a report, in the order of the contract's example. Intake
# stores them and sends them on; triage decides on them; the patient's identity is not one.
CLINICAL_SECTIONS: tuple[str, ...] = ("activity", "pain", "function", "home_care")

# pain.severity: the 0-10 numeric rating scale (NRS), whole numbers only.
PAIN_SCALE_MIN = 0
PAIN_SCALE_MAX = 10

# Enumerations (contract: "those of clinical/care-rules.md").
PAIN_LOCATIONS: tuple[str, ...] = ("groin", "inner_hip", "outer_hip", "upper_thigh", "buttock")
SIDES: tuple[str, ...] = ("left", "right", "both")
ONSETS: tuple[str, ...] = ("sudden", "gradual")
HOME_CARE_MEASURES: tuple[str, ...] = ("rest", "activity_reduction", "ice", "stretching", "strengthening")
IMPROVING: tuple[str, ...] = ("yes", "no", "not_tried")  # home_care.improving

# The languages a report may be filled in (issue 18), as BCP 47 primary language tags: the
# kiosk's screens, triage's patient texts and the report's own record of its language.
REPORT_LANGUAGES: tuple[str, ...] = ("en", "es")
DEFAULT_LANGUAGE = "en"
