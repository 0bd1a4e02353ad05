"""ReportSchema: the body of POST /v1/reports, as contract.md describes it."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from services.common.validation import field_errors
from services.intake.schemas import (
    HOME_CARE_MEASURES,
    IMPROVING,
    ONSETS,
    PAIN_LOCATIONS,
    REPORT_EXAMPLE,
    SIDES,
    ReportSchema,
    utc_today,
)

TODAY = date(2026, 11, 26)
TOMORROW = "2026-11-27"
YES_NO_UNSURE = [
    ("pain", "direct_trauma"),
    ("function", "joint_locking"),
    ("function", "instability"),
    ("function", "persistent_dysfunction"),
]
SECTIONS = ["patient", "activity", "pain", "function", "home_care"]


def schema(today: date = TODAY) -> ReportSchema:
    return ReportSchema(today=lambda: today)


def body(**changes) -> dict:
    """The contract's example with `section__field=value` changes (`...` deletes the key)."""
    data = copy.deepcopy(REPORT_EXAMPLE)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        target, key_name = (data[section], name) if name else (data, section)
        if value is ...:
            del target[key_name]
        else:
            target[key_name] = value
    return data


def errors(data, today: date = TODAY) -> dict[str, list[str]]:
    """Field path -> messages, as the 422 body will name them."""
    with pytest.raises(ValidationError) as caught:
        schema(today).load(data)
    found: dict[str, list[str]] = {}
    for entry in field_errors(caught.value.messages):
        found.setdefault(entry["field"], []).append(entry["message"])
    return found


def assert_only(data, field: str, message: str | None = None, today: date = TODAY) -> None:
    found = errors(data, today)
    assert list(found) == [field], found
    if message is not None:
        assert found[field] == [message]


# --- the whole report -------------------------------------------------------------------


def test_contract_example_loads_to_python_values():
    loaded = schema().load(body())
    assert loaded["patient"]["birth_date"] == date(1991, 4, 2)
    assert loaded["pain"]["started_on"] == date(2026, 11, 20)
    assert loaded["pain"]["severity"] == 8
    assert loaded["function"] == {"joint_locking": False, "instability": False, "persistent_dysfunction": False}


def test_dump_of_a_loaded_report_gives_the_json_back():
    # with the language a report without one was filled in (issue 18)
    assert schema().dump(schema().load(body())) == {**REPORT_EXAMPLE, "language": "en"}


# --- the language it was filled in (issue 18) -------------------------------------------


@pytest.mark.parametrize("language", ["en", "es"])
def test_a_report_records_the_language_it_was_filled_in(language):
    assert schema().load(body(language=language))["language"] == language


def test_a_report_without_a_language_was_filled_in_english():
    assert schema().load(body())["language"] == "en"


@pytest.mark.parametrize("language", ["fr", "ES", "es-ES", "", 1, ["es"]])
def test_a_language_the_kiosk_does_not_speak_is_named(language):
    assert_only(body(language=language), "language", "Must be one of: en, es.")


def test_a_null_language_is_named():
    assert_only(body(language=None), "language", "This field cannot be null.")


@pytest.mark.parametrize("section", SECTIONS)
def test_every_section_is_required(section):
    assert_only(body(**{section: ...}), section, "This field is required.")


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("value", [None, [], "x", 3, True])
def test_a_section_must_be_an_object(section, value):
    assert_only(body(**{section: value}), section)


@pytest.mark.parametrize("value", [[], "report", 3, None])
def test_a_body_that_is_not_an_object_is_named_by_the_empty_path(value):
    assert errors(value) == {"": ["Must be a JSON object."]}


@pytest.mark.parametrize("section", [None, *SECTIONS])
def test_unknown_fields_are_refused_at_every_level(section):
    data = body()
    (data[section] if section else data)["colour"] = "red"
    path = f"{section}.colour" if section else "colour"
    assert_only(data, path, "This field is not allowed.")


def test_several_errors_are_all_named_at_once():
    data = body(
        patient__mrn="",
        patient__phone="call me",
        activity__high_impact="yes",
        pain__severity=11,
        pain__locations=["groin", "knee"],
        pain__colour="red",
        function__instability=...,
        home_care__improving="maybe",
        extra=1,
    )
    assert set(errors(data)) == {
        "patient.mrn",
        "patient.phone",
        "activity.high_impact",
        "pain.severity",
        "pain.locations.1",
        "pain.colour",
        "function.instability",
        "home_care.improving",
        "extra",
    }


def test_a_wrong_field_does_not_hide_the_home_care_rule():
    found = errors(body(pain__severity=-1, home_care__measures=[], home_care__days=5, home_care__improving="no"))
    assert set(found) == {"pain.severity", "home_care.days", "home_care.improving"}


# --- today ----------------------------------------------------------------------------


def test_today_defaults_to_utc_today():
    assert ReportSchema().today is utc_today
    assert isinstance(utc_today(), date)


def test_the_injected_today_reaches_the_nested_sections():
    found = errors(body(patient__birth_date="2020-01-03", pain__started_on="2020-01-03"), today=date(2020, 1, 1))
    assert set(found) == {"patient.birth_date", "pain.started_on"}


def test_the_clock_is_called_at_load_time_not_at_construction():
    days = iter([date(2026, 11, 1), date(2026, 11, 30)])
    current = {"day": next(days)}
    report_schema = ReportSchema(today=lambda: current["day"])
    with pytest.raises(ValidationError):
        report_schema.load(body(pain__started_on="2026-11-25"))
    current["day"] = next(days)
    assert report_schema.load(body(pain__started_on="2026-11-25"))["pain"]["started_on"] == date(2026, 11, 25)


# --- patient ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mrn", "given_name", "family_name"])
class TestPatientText:
    def test_required(self, name):
        assert_only(body(**{f"patient__{name}": ...}), f"patient.{name}", "This field is required.")

    @pytest.mark.parametrize("value", ["", "   ", "\t"])
    def test_blank_is_refused(self, name, value):
        assert_only(body(**{f"patient__{name}": value}), f"patient.{name}", "Must not be blank.")

    @pytest.mark.parametrize("value", [42, 4.2, True, ["Ana"], {"a": 1}])
    def test_only_strings(self, name, value):
        assert_only(body(**{f"patient__{name}": value}), f"patient.{name}", "Must be text.")

    def test_null_is_refused(self, name):
        assert_only(body(**{f"patient__{name}": None}), f"patient.{name}", "This field cannot be null.")

    @pytest.mark.parametrize("value", ["A\nB", "A\x00B", "A\x07", "A\ud800"])
    def test_control_characters_are_refused(self, name, value):
        assert_only(body(**{f"patient__{name}": value}), f"patient.{name}")

    def test_surrounding_spaces_are_trimmed(self, name):
        assert schema().load(body(**{f"patient__{name}": "  Zoë-Ann O'Neil "}))["patient"][name] == "Zoë-Ann O'Neil"

    def test_max_length(self, name):
        limit = 64 if name == "mrn" else 100
        assert schema().load(body(**{f"patient__{name}": "x" * limit}))["patient"][name] == "x" * limit
        found = errors(body(**{f"patient__{name}": "x" * (limit + 1)}))
        assert found == {f"patient.{name}": [f"Must be at most {limit} characters."]}


class TestBirthDate:
    @pytest.mark.parametrize("value", ["1991-04-02", "2026-11-26", TOMORROW, "1896-11-26"])
    def test_valid(self, value):
        loaded = schema().load(body(patient__birth_date=value, pain__started_on=TOMORROW))
        assert loaded["patient"]["birth_date"] == date.fromisoformat(value)

    def test_after_tomorrow_is_in_the_future(self):
        assert_only(
            body(patient__birth_date="2026-11-28"),
            "patient.birth_date",
            f"Cannot be in the future (latest: {TOMORROW}).",
        )

    def test_more_than_130_years_ago_is_refused(self):
        assert_only(body(patient__birth_date="1896-11-25"), "patient.birth_date", "Cannot be more than 130 years ago.")

    def test_age_limit_on_29_february(self):
        leap_day = date(2028, 2, 29)
        assert schema(leap_day).load(body(patient__birth_date="1898-02-28", pain__started_on="2028-02-01"))
        assert_only(
            body(patient__birth_date="1898-02-27", pain__started_on="2028-02-01"), "patient.birth_date", today=leap_day
        )

    @pytest.mark.parametrize(
        "value", ["1991-4-2", "19910402", "1991-W14-2", "1991-02-30", "02/04/1991", "1991-04-02T00:00:00", "", 19910402, True]
    )
    def test_not_a_calendar_date(self, value):
        assert_only(body(patient__birth_date=value), "patient.birth_date", "Must be a date in the form YYYY-MM-DD.")

    @pytest.mark.parametrize("value", [None, ...])
    def test_required(self, value):
        assert_only(body(patient__birth_date=value), "patient.birth_date")


class TestPhone:
    @pytest.mark.parametrize(
        ("value", "stored"),
        [
            ("+15550100", "+15550100"),
            ("+44 20 7946 0958", "+442079460958"),
            ("+1 (555) 010-0000", "+15550100000"),
            ("+351.912.345.678", "+351912345678"),
            ("+123456789012345", "+123456789012345"),
        ],
    )
    def test_valid_numbers_are_stored_compact(self, value, stored):
        assert schema().load(body(patient__phone=value))["patient"]["phone"] == stored

    @pytest.mark.parametrize("value", [..., None])
    def test_optional(self, value):
        data = body(patient__contact_consent=[])  # without a phone, no sms
        if value is ...:
            del data["patient"]["phone"]
        else:
            data["patient"]["phone"] = value
        assert schema().load(data)["patient"]["phone"] is None

    @pytest.mark.parametrize(
        "value",
        ["", " ", "5550100", "+0123456789", "+12345", "+1234567890123456", "+1555abc0100", "++15550100", 15550100, True],
    )
    def test_invalid(self, value):
        assert_only(
            body(patient__phone=value),
            "patient.phone",
            "Must be a phone number in international format, like +15550100.",
        )


# --- activity ---------------------------------------------------------------------------


class TestActivity:
    @pytest.mark.parametrize("value", ["running", "field hockey", "x" * 60])
    def test_sport_valid(self, value):
        assert schema().load(body(activity__sport=value))["activity"]["sport"] == value

    @pytest.mark.parametrize("value", [..., None, "", "  ", 7, True, "x" * 61])
    def test_sport_invalid(self, value):
        assert_only(body(activity__sport=value), "activity.sport")

    @pytest.mark.parametrize("value", [True, False])
    def test_high_impact_valid(self, value):
        assert schema().load(body(activity__high_impact=value))["activity"]["high_impact"] is value

    @pytest.mark.parametrize("value", [..., None, "true", "yes", 1, 0, "", []])
    def test_high_impact_only_true_or_false(self, value):
        assert_only(body(activity__high_impact=value), "activity.high_impact")

    def test_high_impact_message(self):
        assert errors(body(activity__high_impact=1)) == {"activity.high_impact": ["Must be true or false."]}


# --- pain -----------------------------------------------------------------------------


class TestLocations:
    @pytest.mark.parametrize("value", [[loc] for loc in PAIN_LOCATIONS] + [list(PAIN_LOCATIONS), ["buttock", "groin"]])
    def test_valid(self, value):
        assert schema().load(body(pain__locations=value))["pain"]["locations"] == value

    def test_empty_is_refused(self):
        assert_only(body(pain__locations=[]), "pain.locations", "Must list 1 to 5 locations.")

    def test_duplicates_are_refused(self):
        assert_only(body(pain__locations=["groin", "buttock", "groin"]), "pain.locations", "Each location may be listed only once.")

    def test_six_is_too_many(self):
        found = errors(body(pain__locations=[*PAIN_LOCATIONS, "groin"]))
        assert found == {"pain.locations": ["Must list 1 to 5 locations.", "Each location may be listed only once."]}

    def test_a_wrong_value_is_named_by_its_index(self):
        found = errors(body(pain__locations=["groin", "knee", "buttock", "Groin"]))
        message = "Must be one of: groin, inner_hip, outer_hip, upper_thigh, buttock."
        assert found == {"pain.locations.1": [message], "pain.locations.3": [message]}

    @pytest.mark.parametrize("value", [[1], [None], [["groin"]], [True]])
    def test_items_must_be_strings(self, value):
        assert_only(body(pain__locations=value), "pain.locations.0")

    @pytest.mark.parametrize("value", ["groin", {"groin": True}, 1, None, ...])
    def test_must_be_a_list(self, value):
        assert_only(body(pain__locations=value), "pain.locations")


@pytest.mark.parametrize(("name", "choices"), [("side", SIDES), ("onset", ONSETS)])
class TestPainChoices:
    def test_valid(self, name, choices):
        for choice in choices:
            assert schema().load(body(**{f"pain__{name}": choice}))["pain"][name] == choice

    @pytest.mark.parametrize("value", ["Left", "", "up", 1, True, None, ["left"], ...])
    def test_invalid(self, name, choices, value):
        assert_only(body(**{f"pain__{name}": value}), f"pain.{name}")

    def test_message_lists_the_choices(self, name, choices):
        assert errors(body(**{f"pain__{name}": 2})) == {f"pain.{name}": [f"Must be one of: {', '.join(choices)}."]}


class TestSeverity:
    @pytest.mark.parametrize("value", range(11))
    def test_valid(self, value):
        assert schema().load(body(pain__severity=value))["pain"]["severity"] == value

    @pytest.mark.parametrize("value", [True, False, 7.5, 7.0, "7", 11, -1, 10**100, [7], "", "seven"])
    def test_refused(self, value):
        assert_only(body(pain__severity=value), "pain.severity", "Must be a whole number from 0 to 10.")

    @pytest.mark.parametrize("value", [None, ...])
    def test_required(self, value):
        assert_only(body(pain__severity=value), "pain.severity")


class TestStartedOn:
    @pytest.mark.parametrize("value", ["2026-11-26", TOMORROW, "2026-01-01", "1991-04-02"])
    def test_up_to_tomorrow(self, value):
        assert schema().load(body(pain__started_on=value))["pain"]["started_on"] == date.fromisoformat(value)

    def test_after_tomorrow_is_refused(self):
        assert_only(
            body(pain__started_on="2026-11-28"), "pain.started_on", f"Cannot be in the future (latest: {TOMORROW})."
        )

    def test_tomorrow_follows_the_injected_today(self):
        today = date(2026, 12, 31)
        tomorrow = (today + timedelta(days=1)).isoformat()
        assert schema(today).load(body(pain__started_on=tomorrow))
        assert_only(body(pain__started_on="2027-01-02"), "pain.started_on", today=today)

    def test_before_birth_is_refused(self):
        assert_only(body(pain__started_on="1991-04-01"), "pain.started_on", "Cannot be before the birth date.")

    def test_long_ago_is_refused(self):
        # A date refused on its own is not compared with the birth date: one message is enough.
        found = errors(body(patient__birth_date="1896-11-26", pain__started_on="1896-11-25"))
        assert found == {"pain.started_on": ["Cannot be more than 130 years ago."]}

    @pytest.mark.parametrize("value", ["2026-11", "2026-11-20T10:00:00Z", "20261120", "2026-13-01", 20261120, None, ...])
    def test_invalid(self, value):
        assert_only(body(pain__started_on=value), "pain.started_on")


@pytest.mark.parametrize(("section", "name"), YES_NO_UNSURE)
class TestYesNoUnsure:
    @pytest.mark.parametrize("value", [True, False, None])
    def test_true_false_or_null(self, section, name, value):
        assert schema().load(body(**{f"{section}__{name}": value}))[section][name] is value

    def test_missing_key_is_refused(self, section, name):
        assert_only(
            body(**{f"{section}__{name}": ...}), f"{section}.{name}", "This field is required (send null for not sure)."
        )

    @pytest.mark.parametrize("value", ["yes", "true", "null", "not_sure", 1, 0, "", []])
    def test_other_values_are_refused(self, section, name, value):
        assert_only(body(**{f"{section}__{name}": value}), f"{section}.{name}", "Must be true, false or null (not sure).")


# --- home care ------------------------------------------------------------------------


def home_care(measures, days, improving) -> dict:
    return body(home_care={"measures": measures, "days": days, "improving": improving})


class TestHomeCare:
    @pytest.mark.parametrize(
        ("measures", "days", "improving"),
        [
            ([], 0, "not_tried"),
            (["rest"], 0, "yes"),
            (["rest", "ice"], 21, "no"),
            (list(HOME_CARE_MEASURES), 3650, "yes"),
            *[([measure], 3, "no") for measure in HOME_CARE_MEASURES],
        ],
    )
    def test_consistent(self, measures, days, improving):
        assert schema().load(home_care(measures, days, improving))["home_care"] == {
            "measures": measures,
            "days": days,
            "improving": improving,
        }

    def test_no_measures_but_days(self):
        assert_only(home_care([], 4, "not_tried"), "home_care.days", "Must be 0 when no home care measures were tried.")

    @pytest.mark.parametrize("improving", ["yes", "no"])
    def test_no_measures_but_an_answer(self, improving):
        assert_only(
            home_care([], 0, improving),
            "home_care.improving",
            "Must be not_tried when no home care measures were tried.",
        )

    def test_no_measures_both_wrong(self):
        assert set(errors(home_care([], 4, "yes"))) == {"home_care.days", "home_care.improving"}

    def test_measures_but_not_tried(self):
        assert_only(
            home_care(["ice"], 5, "not_tried"),
            "home_care.improving",
            "Must be yes or no when home care measures were tried.",
        )

    def test_rule_still_checked_when_days_is_invalid(self):
        assert set(errors(home_care(["ice"], -3, "not_tried"))) == {"home_care.days", "home_care.improving"}

    def test_rule_skipped_when_measures_are_invalid(self):
        assert errors(home_care("ice", 0, "yes")) == {"home_care.measures": ["Must be a list of measures."]}

    def test_duplicate_measures(self):
        assert_only(home_care(["ice", "ice"], 2, "no"), "home_care.measures", "Each measure may be listed only once.")

    @pytest.mark.parametrize("value", [["massage"], ["Ice"], [1], [None]])
    def test_unknown_measure_is_named_by_index(self, value):
        assert_only(home_care(value, 2, "no"), "home_care.measures.0")

    @pytest.mark.parametrize("value", [-1, 3651, 1.5, 2.0, "3", True, None])
    def test_days_refused(self, value):
        assert_only(home_care(["rest"], value, "no"), "home_care.days", None if value is None else "Must be a whole number from 0 to 3650.")

    @pytest.mark.parametrize("value", ["Yes", "", "maybe", True, None, 1])
    def test_improving_refused(self, value):
        assert_only(home_care(["rest"], 2, value), "home_care.improving")

    @pytest.mark.parametrize("key", ["measures", "days", "improving"])
    def test_every_key_required(self, key):
        data = home_care(["rest"], 2, "no")
        del data["home_care"][key]
        assert "home_care." + key in errors(data)


# --- properties -------------------------------------------------------------------------


def _valid_home_care():
    tried = st.lists(st.sampled_from(HOME_CARE_MEASURES), min_size=1, unique=True).flatmap(
        lambda measures: st.fixed_dictionaries(
            {
                "measures": st.just(measures),
                "days": st.integers(0, 3650),
                "improving": st.sampled_from(["yes", "no"]),
            }
        )
    )
    return st.one_of(st.just({"measures": [], "days": 0, "improving": "not_tried"}), tried)


_unsure = st.sampled_from([True, False, None])
_reports = st.fixed_dictionaries(
    {
        "patient": st.fixed_dictionaries(
            {
                "mrn": st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,20}", fullmatch=True),
                "given_name": st.text(st.characters(categories=["L"]), min_size=1, max_size=100),
                "family_name": st.text(st.characters(categories=["L"]), min_size=1, max_size=100),
                "birth_date": st.dates(date(1897, 1, 1), TODAY - timedelta(days=365 * 40)).map(date.isoformat),
            },
            optional={"phone": st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)},
        ),
        "activity": st.fixed_dictionaries(
            {"sport": st.sampled_from(["running", "football", "cycling"]), "high_impact": st.booleans()}
        ),
        "pain": st.fixed_dictionaries(
            {
                "locations": st.lists(st.sampled_from(PAIN_LOCATIONS), min_size=1, max_size=5, unique=True),
                "side": st.sampled_from(SIDES),
                "severity": st.integers(0, 10),
                "onset": st.sampled_from(ONSETS),
                "started_on": st.dates(TODAY - timedelta(days=365 * 40), TODAY + timedelta(days=1)).map(date.isoformat),
                "direct_trauma": _unsure,
            }
        ),
        "function": st.fixed_dictionaries(
            {"joint_locking": _unsure, "instability": _unsure, "persistent_dysfunction": _unsure}
        ),
        "home_care": _valid_home_care(),
    },
    optional={"language": st.sampled_from(["en", "es"])},
)


@given(_reports)
def test_any_valid_report_loads_and_dumps_back(report):
    loaded = schema().load(report)
    expected = copy.deepcopy(report)
    expected["patient"].setdefault("phone", None)
    expected["patient"].setdefault("email", None)
    expected["patient"].setdefault("contact_consent", [])
    expected.setdefault("language", "en")
    assert schema().dump(loaded) == expected


@given(st.integers().filter(lambda n: not 0 <= n <= 10))
def test_any_severity_outside_the_scale_is_refused(value):
    assert_only(body(pain__severity=value), "pain.severity")


@given(st.one_of(st.floats(), st.text(), st.booleans(), st.none(), st.lists(st.integers(0, 10))))
def test_any_non_integer_severity_is_refused(value):
    assert_only(body(pain__severity=value), "pain.severity")


# --- OpenAPI --------------------------------------------------------------------------


@pytest.mark.parametrize("openapi_version", ["3.0.3", "3.1.0"])
def test_openapi_document_describes_the_report(openapi_version):
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    spec = APISpec(title="intake", version="1", openapi_version=openapi_version, plugins=[MarshmallowPlugin()])
    spec.components.schema("Report", schema=ReportSchema)
    components = spec.to_dict()["components"]["schemas"]

    for name in ["Report", "Patient", "Activity", "Pain", "Function", "HomeCare"]:
        assert components[name]["additionalProperties"] is False, name
    assert sorted(components["Report"]["required"]) == sorted(SECTIONS)
    assert "allOf" in components["Report"]["properties"]["pain"] or "$ref" in components["Report"]["properties"]["pain"]
    pain = components["Pain"]["properties"]
    assert pain["severity"]["minimum"] == 0 and pain["severity"]["maximum"] == 10
    assert pain["locations"]["items"]["enum"] == list(PAIN_LOCATIONS)
    assert pain["locations"]["minItems"] == 1 and pain["locations"]["maxItems"] == 5
    assert pain["started_on"]["format"] == "date"
    assert "description" in pain["direct_trauma"] and pain["severity"]["example"] == 8
    assert "phone" not in components["Patient"]["required"]
    assert components["HomeCare"]["properties"]["improving"]["enum"] == list(IMPROVING)
