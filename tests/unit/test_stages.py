"""Stages and the Greulich-Pyle (Brush) comparison, checked against the table by hand."""

from __future__ import annotations

import pytest

from core.greulich_pyle import compare_with_chronological_age
from core.stages import format_years_months, normalise_sex, stage_for


@pytest.mark.parametrize("months, stage", [(0, "Child"), (143.9, "Child"), (144, "Adolescent"),
                                           (215.9, "Adolescent"), (216, "Adult"), (240, "Adult")])
def test_stage_limits_of_the_seed_report(months, stage):
    assert stage_for(months) == stage


def test_comparison_at_a_table_row():
    # Brush table, boys at 120 months: mean skeletal age 125.68, SD 9.79
    result = compare_with_chronological_age(135.47, 120, "M")
    assert result.expected_bone_age_months == pytest.approx(125.68)
    assert result.sd_months == pytest.approx(9.79)
    assert result.z_score == pytest.approx(1.0)
    assert result.reading == "normal"


def test_comparison_interpolates_between_rows():
    # girls, halfway between 108 (113.86, SD 10.74) and 120 months (125.66, SD 11.73)
    result = compare_with_chronological_age(100.0, 114, "F")
    mean, sd = (113.86 + 125.66) / 2, (10.74 + 11.73) / 2
    assert result.expected_bone_age_months == pytest.approx(mean)
    assert result.z_score == pytest.approx((100.0 - mean) / sd)


@pytest.mark.parametrize("bone_age, reading", [(125.68 - 2.01 * 9.79, "delayed"), (125.68 - 1.99 * 9.79, "normal"),
                                               (125.68 + 2.01 * 9.79, "advanced")])
def test_readings_at_two_sd(bone_age, reading):
    assert compare_with_chronological_age(bone_age, 120, "male").reading == reading


@pytest.mark.parametrize("age", [1, 300])
def test_outside_the_table_is_indeterminate(age):
    result = compare_with_chronological_age(100, age, "F")
    assert result.reading == "indeterminate" and result.z_score is None


def test_sex_spellings_and_formatting():
    assert [normalise_sex(v) for v in ("M", "f", "TRUE", "False", True, "female")] == ["M", "F", "M", "F", "M", "F"]
    with pytest.raises(ValueError, match="sex must be M or F"):
        normalise_sex("x")
    assert format_years_months(169.1) == "14 y 1 m"


@pytest.mark.parametrize("z, reading", [(-2.0, "normal"), (2.0, "normal"), (-2.0001, "delayed"), (2.0001, "advanced")])
def test_exactly_two_sd_is_still_normal(z, reading):
    # boys at 108 months: mean 113.90, SD 9.00 (a row of the table, no interpolation)
    assert compare_with_chronological_age(113.90 + z * 9.00, 108, "M").reading == reading


@pytest.mark.parametrize("sex, age, mean, sd", [("M", 3, 3.01, 0.69), ("F", 192, 189.44, 7.31)])
def test_the_first_and_last_rows_are_inside_the_table(sex, age, mean, sd):
    result = compare_with_chronological_age(mean + sd, age, sex)
    assert (result.chronological_age_months, result.expected_bone_age_months, result.sd_months) == (age, mean, sd)
    assert result.z_score == pytest.approx(1.0) and result.reading == "normal"


def test_just_outside_the_first_and_last_rows_is_indeterminate():
    below, above = compare_with_chronological_age(3, 2.9, "M"), compare_with_chronological_age(190, 192.1, "F")
    assert below.reading == above.reading == "indeterminate"
    assert below.chronological_age_months == 2.9 and below.expected_bone_age_months is None


@pytest.mark.parametrize("value, sex", [("boy", "M"), ("1", "M"), (" Male ", "M"), ("girl", "F"), ("0", "F"),
                                        (False, "F"), ("F", "F")])
def test_every_sex_spelling(value, sex):
    assert normalise_sex(value) == sex


# --- with the bone age's prediction interval (issue 11). Boys at 120 months: mean 125.68, SD 9.79.
@pytest.mark.parametrize("bone_age, interval, reading", [
    (125.68, (125.68 - 10, 125.68 + 10), "normal"),                      # z -1.02..+1.02: settled
    (125.68 - 1.5 * 9.79, (125.68 - 2.5 * 9.79, 125.68 - 0.5 * 9.79), "indeterminate"),  # crosses -2
    (125.68 + 1.5 * 9.79, (125.68 + 0.5 * 9.79, 125.68 + 2.5 * 9.79), "indeterminate"),  # crosses +2
    (125.68 - 3 * 9.79, (125.68 - 4 * 9.79, 125.68 - 2.5 * 9.79), "delayed"),   # wholly below -2
    (125.68 + 3 * 9.79, (125.68 + 2.5 * 9.79, 125.68 + 4 * 9.79), "advanced"),  # wholly above +2
    (125.68, (125.68 - 2 * 9.79, 125.68 + 2 * 9.79), "normal"),        # ends exactly at ±2 SD: still normal
    (125.68, (125.68 - 3 * 9.79, 125.68 + 3 * 9.79), "indeterminate"), # crosses both
])
def test_an_interval_across_a_two_sd_limit_is_indeterminate(bone_age, interval, reading):
    result = compare_with_chronological_age(bone_age, 120, "M", interval=interval)
    assert result.reading == reading
    assert result.z_score == pytest.approx((bone_age - 125.68) / 9.79)
    assert result.z_low == pytest.approx((interval[0] - 125.68) / 9.79)
    assert result.indeterminate_reason == ("interval_straddles_limit" if reading == "indeterminate" else None)


def test_without_an_interval_the_reading_is_the_point_estimates():
    result = compare_with_chronological_age(125.68 - 1.5 * 9.79, 120, "M")
    assert result.reading == "normal" and result.z_low is None and result.indeterminate_reason is None
    assert compare_with_chronological_age(100, 1, "F", interval=(90, 110)).indeterminate_reason == "outside_table"
