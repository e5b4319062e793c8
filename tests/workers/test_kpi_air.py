"""Tests of the air-quality indices: the DOMAIN.md 1.5 test vectors, the table's rules, the
NowCast, the Kazakh limits, properties, and the real Almaty Kazhydromet data."""

from __future__ import annotations

import csv
import gzip
from collections import Counter, defaultdict
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.citypack import AirLimit, load_pack
from core.units import Pollutant, to_canonical
from feeds.air import parse_kgmt_csv
from tests.conftest import shared_path
from workers.kpi import air
from workers.kpi.air import (
    AQI_2024,
    AQI_2024_SPLIT_HAZARDOUS,
    AQI_PRE_2024,
    CATEGORIES,
    DEFAULT_AIR_LIMITS,
    Averaging,
    PollutionLevel,
    aqi,
    category,
    daily_mean,
    daily_pm25_aqi,
    exceedance_percent,
    exceedances,
    highest_repeatability,
    limit,
    limit_multiple,
    nowcast,
    nowcast_aqi,
    pollution_level,
    standard_index,
    sub_index,
)

PM25, PM10, O3, CO, SO2, NO2 = (Pollutant.PM25, Pollutant.PM10, Pollutant.O3, Pollutant.CO, Pollutant.SO2,
                                Pollutant.NO2)
H1, H8, H24 = Averaging.H1, Averaging.H8, Averaging.H24
TABLES = {"2024": AQI_2024, "2024-split": AQI_2024_SPLIT_HAZARDOUS, "pre-2024": AQI_PRE_2024}
KGMT_FILE = "almaty/air_kgmt_hourly_2024-12_2025-01.csv.gz"

# ---------------------------------------------------------------------------------------
# DOMAIN.md 1.5, the published vectors (numbers copied from the doc)

# chaunceygardiner/weewx-purple tests/test_purple.py, 2024 PM2.5 (23 vectors)
WEEWX_PM25 = [
    (0.0, 0), (6.0, 33), (9.0, 50), (9.099, 50), (9.1, 51), (21.8, 75), (35.4, 100), (35.499, 100), (35.5, 101),
    (45.4, 125), (55.4, 150), (55.5, 151), (90.5, 176), (125.4, 200), (125.5, 201), (175.4, 250), (225.4, 300),
    (225.5, 301), (275.4, 400), (325.4, 500), (375, 599), (425, 698), (1000, 1844),
]


@pytest.mark.parametrize(("concentration", "expected"), WEEWX_PM25)
def test_weewx_purple_pm25_2024(concentration, expected):
    assert sub_index(PM25, concentration, averaging=H24) == expected


# ThangLeQuoc/aqi-calculator AQICalculatorTest.java, plain sub-indices; O3 given in ppb there,
# here in ppm (ppb / 1000). 72.71875 ppb -> 105, not the library's 107: EPA truncates to 0.072.
THANGLEQUOC_PLAIN = [
    (PM10, H24, 135, 91), (PM10, H24, 175, 111), (PM10, H24, 357, 204),
    (NO2, H1, 145.12, 109), (NO2, H1, 43, 41),
    (SO2, H1, 42, 59),
    (O3, H8, 0.045, 42), (O3, H8, 0.089, 159), (O3, H8, 0.07271875, 105),
]


@pytest.mark.parametrize(("pollutant", "averaging", "concentration", "expected"), THANGLEQUOC_PLAIN)
def test_thanglequoc_sub_indices(pollutant, averaging, concentration, expected):
    assert sub_index(pollutant, concentration, averaging=averaging) == expected


# hrbonz/python-aqi test/test_epa.py (2012 PM2.5 and 2008 O3 tables): the old PM2.5 values
# reproduce with the pre-2024 table; the current-table values are the doc's oracle output.
HRBONZ_OLD_PM25 = [(9.3, 39), (15, 57), (49.5, 135), (235.4, 285), (35.9, 102)]
HRBONZ_CURRENT = [
    (PM25, H24, 9.3, 51), (PM25, H24, 15, 62), (PM25, H24, 235.4, 321),
    (PM25, H24, 49.5, 135), (PM25, H24, 35.9, 102),  # rows 35.5–55.4 unchanged in 2024
    (O3, H8, 0.08753333, 154), (O3, H1, 0.162, 147), (CO, H8, 8.4, 90),
]


@pytest.mark.parametrize(("concentration", "expected"), HRBONZ_OLD_PM25)
def test_hrbonz_pm25_with_the_pre_2024_table(concentration, expected):
    assert sub_index(PM25, concentration, averaging=H24, table=AQI_PRE_2024) == expected


@pytest.mark.parametrize(("pollutant", "averaging", "concentration", "expected"), HRBONZ_CURRENT)
def test_hrbonz_with_the_current_table(pollutant, averaging, concentration, expected):
    assert sub_index(pollutant, concentration, averaging=averaging) == expected


# "Boundary cases worth adding" (oracle output)
BOUNDARIES = [
    (PM25, H24, 12.0, 56), (PM25, H24, 55.45, 150), (PM10, H24, 425, 301), (PM10, H24, 504, 389),
    (PM10, H24, 604, 500), (CO, H8, 12.45, 150), (SO2, H24, 605, 301), (O3, H8, 0.0709, 100), (O3, H1, 0.405, 301),
]


@pytest.mark.parametrize(("pollutant", "averaging", "concentration", "expected"), BOUNDARIES)
def test_domain_boundary_cases(pollutant, averaging, concentration, expected):
    assert sub_index(pollutant, concentration, averaging=averaging) == expected


def test_pm25_12_was_50_before_2024():
    assert sub_index(PM25, 12.0, averaging=H24, table=AQI_PRE_2024) == 50


@pytest.mark.parametrize(("table", "expected"), [(AQI_2024, 389), (AQI_2024_SPLIT_HAZARDOUS, 400)])
def test_pm10_504_depends_on_the_hazardous_layout(table, expected):
    assert sub_index(PM10, 504, averaging=H24, table=table) == expected


# NowCast vectors. MazamaScience is given oldest -> newest in the doc; our API is newest first.
MAZAMA_OLDEST_FIRST = [34.9, 43, 50, 64.9, 69.2, 66.2, 53.7, 48.6, 49.2, 35, None, 21]
# ThangLeQuoc arrays are newest first; -1 there means a missing hour (None here).
NOWCAST_PM25 = [  # (hourly newest first, NowCast, AQI pre-2024, AQI 2024)
    (MAZAMA_OLDEST_FIRST[::-1], 28.4, 85, 87),
    ([30.5, 28.8, 29.5, 30, 32.4, 31.1, 28.2, 30.7, 32.8, 32.6, 33.1, 28.5], 30.3, 89, 90),
    ([165, 123, 45, 12, 45, 12, 56, 42, 12, 123, 154, 32], 122.0, 185, 198),
    ([30.5, 12.5, None, 30, 32.4, 31.1, 28.2, 30.7, 32.8, 32.6, 33.1, 28.5], 25.3, 79, 81),
]
NOWCAST_PM10 = [  # (hourly newest first, AQI); 66.4 truncates to 66 -> 56, not the library's 57
    ([64, 63, 72, 77, 65, 61, 70, 71, 64, 57, 58, 64], 56),
    ([64, None, 62, 77, 65, 61, 70, 71, 64, 57, 58, 64], 56),
    ([165, 123, 45, 12, None, None, None, None, None, 123, 154, None], 87),
]


@pytest.mark.parametrize(("hourly", "value", "old", "new"), NOWCAST_PM25)
def test_nowcast_pm25_vectors(hourly, value, old, new):
    assert nowcast(hourly, pollutant=PM25) == value
    assert nowcast_aqi(hourly, pollutant=PM25, table=AQI_PRE_2024) == old
    assert nowcast_aqi(hourly, pollutant=PM25) == new


@pytest.mark.parametrize(("hourly", "expected"), NOWCAST_PM10)
def test_nowcast_pm10_vectors(hourly, expected):
    assert nowcast_aqi(hourly, pollutant=PM10) == expected


def test_nowcast_pm10_is_truncated_to_whole_micrograms():
    assert nowcast([64, 63, 72, 77, 65, 61, 70, 71, 64, 57, 58, 64], pollutant=PM10) == 66.0


def test_nowcast_with_the_last_two_hours_missing_is_none():
    hourly = [34.9, 43, 50, 64.9, 69.2, 66.2, 53.7, 48.6, 49.2, 35, None, None][::-1]
    assert nowcast(hourly, pollutant=PM25) is None
    assert nowcast_aqi(hourly, pollutant=PM25) is None


# ThangLeQuoc's invalid cases (newest first): 2 or 3 of the 3 latest hours missing
@pytest.mark.parametrize(("pollutant", "hourly"), [
    (PM10, [None, None, None, 77, 65, 61, 70, 71, 64, 57, 58, 64]),
    (PM10, [64, None, None, 77, 65, 61, 70, 71, 64, 57, 58, 64]),
    (PM25, [30.5, None, None, 30, 32.4, 31.1, 28.2, 30.7, 32.8, 32.6, 33.1, 28.5]),
    (PM25, [None, None, None, 30, 32.4, 31.1, 28.2, 30.7, 32.8, 32.6, 33.1, 28.5]),
])
def test_nowcast_invalid_without_two_of_the_three_latest_hours(pollutant, hourly):
    assert nowcast_aqi(hourly, pollutant=pollutant) is None


# ---------------------------------------------------------------------------------------
# truncation, rounding, extrapolation, blank cells


def test_safecast_truncation_example():
    # Safecast's example is for the pre-2024 table: 4.2 * 50/12 = 17.5 -> 18.
    assert sub_index(PM25, 4.234632, averaging=H24, table=AQI_PRE_2024) == 18
    # DOMAIN 1.2 says the 2024 table agrees; it does not: 4.2 * 50/9 = 23.33 -> 23. Untruncated,
    # 4.234632 * 50/9 = 23.53 would round to 24, so here the truncation decides the index.
    assert sub_index(PM25, 4.234632, averaging=H24) == 23
    assert sub_index(PM25, 4.2, averaging=H24) == 23


def test_truncation_reads_floats_as_the_decimals_they_print_as():
    # the binary float 9.1 is 9.09999..., which a naive Decimal(float) would truncate to 9.0
    assert Decimal(9.1) < Decimal("9.1")
    assert sub_index(PM25, 9.1, averaging=H24) == 51
    assert sub_index(PM25, Decimal("9.1"), averaging=H24) == 51
    assert sub_index(PM25, 9.19999, averaging=H24) == 51  # truncated, not rounded to 9.2


def test_extrapolates_above_the_top_on_the_last_slope():
    assert sub_index(PM25, 1000, averaging=H24) == 1844
    assert sub_index(PM10, 1000, averaging=H24) == 940  # 199/179 * (1000 - 425) + 301 = 940.25
    assert sub_index(PM10, 1000, averaging=H24) > sub_index(PM10, 604, averaging=H24) == 500


def test_pm10_extrapolation_value():
    expected = Decimal(199) * (Decimal(1000) - 425) / (Decimal(604) - 425) + 301
    assert sub_index(PM10, 1000, averaging=H24) == int(expected.to_integral_value(rounding=ROUND_HALF_UP))


@pytest.mark.parametrize(("pollutant", "averaging", "concentration", "expected"), [
    (O3, H8, 0.200, 300), (O3, H8, 0.2009, 300), (O3, H8, 0.201, None), (O3, H8, 0.5, None),
    (O3, H1, 0.124, None), (O3, H1, 0.1249, None), (O3, H1, 0.125, 101), (O3, H1, 0.0, None),
    (SO2, H1, 304, 200), (SO2, H1, 304.9, 200), (SO2, H1, 305, None), (SO2, H1, 2000, None),
    (SO2, H24, 304, None), (SO2, H24, 305, 201), (SO2, H24, 1004, 500),
])
def test_blank_cells_are_none(pollutant, averaging, concentration, expected):
    assert sub_index(pollutant, concentration, averaging=averaging) == expected


@pytest.mark.parametrize(("pollutant", "averaging", "concentration", "exact"), [
    (O3, H8, 0.07271875, "104.5"),  # 49/0.014 * 0.001 + 101
    (CO, H8, 1.1, "12.5"),  # 50/4.4 * 1.1
])
def test_ties_round_half_up_where_half_even_would_not(pollutant, averaging, concentration, exact):
    half_up = int(Decimal(exact).to_integral_value(rounding=ROUND_HALF_UP))
    half_even = int(Decimal(exact).to_integral_value(rounding=ROUND_HALF_EVEN))
    assert half_even == half_up - 1
    assert sub_index(pollutant, concentration, averaging=averaging) == half_up


def test_the_callers_decimal_context_does_not_matter():
    from decimal import localcontext

    with localcontext(prec=3, rounding=ROUND_HALF_EVEN):
        assert sub_index(O3, 0.07271875, averaging=H8) == 105
        assert sub_index(PM25, 1000, averaging=H24) == 1844


@pytest.mark.parametrize("bad", [-0.1, -1, float("nan"), float("inf"), Decimal("NaN")])
def test_bad_concentrations_raise(bad):
    with pytest.raises(ValueError, match="concentration"):
        sub_index(PM25, bad, averaging=H24)


def test_unknown_pairs_raise():
    with pytest.raises(ValueError, match="pm25 over 1h"):
        sub_index(PM25, 10, averaging=H1)
    with pytest.raises(ValueError):
        sub_index(PM25, 10, averaging="3h")
    with pytest.raises(ValueError):
        sub_index("tsp", 10, averaging=H24)


def test_strings_name_pollutants_and_periods():
    assert sub_index("pm25", 9.1, averaging="24h") == 51


@pytest.mark.parametrize("name", list(TABLES))
def test_tables_are_contiguous_at_their_precision(name):
    for bp in TABLES[name]:
        assert bp.precision == air.PRECISION[bp.pollutant]
        for row in bp.rows:
            assert row.lo % bp.precision == 0 and row.hi % bp.precision == 0 and row.lo < row.hi
        for below, above in pairwise(bp.rows):
            assert above.lo == below.hi + bp.precision, (bp.pollutant, bp.averaging, above)
            assert above.index_lo == below.index_hi + 1


def test_table_layouts_differ_only_in_the_unverified_hazardous_rows():
    for merged, split in zip(AQI_2024, AQI_2024_SPLIT_HAZARDOUS, strict=True):
        top = 300 if merged.pollutant is not PM25 else 500
        assert [r for r in merged.rows if r.index_hi <= top] == [r for r in split.rows if r.index_hi <= top]
        assert merged.rows[-1].hi == split.rows[-1].hi


# ---------------------------------------------------------------------------------------
# categories and the multi-pollutant AQI


@pytest.mark.parametrize(("index", "key"), [
    (0, "good"), (50, "good"), (51, "moderate"), (100, "moderate"), (101, "usg"), (150, "usg"),
    (151, "unhealthy"), (200, "unhealthy"), (201, "very_unhealthy"), (300, "very_unhealthy"),
    (301, "hazardous"), (500, "hazardous"), (501, "hazardous"), (1844, "hazardous"),
])
def test_category_boundaries(index, key):
    assert category(index).key == key


@pytest.mark.parametrize(("concentration", "key"), [
    (9.0, "good"), (9.1, "moderate"), (35.4, "moderate"), (35.5, "usg"), (55.4, "usg"), (55.5, "unhealthy"),
    (125.4, "unhealthy"), (125.5, "very_unhealthy"), (225.4, "very_unhealthy"), (225.5, "hazardous"),
])
def test_pm25_concentration_boundaries_fall_in_the_right_category(concentration, key):
    result = aqi({(PM25, H24): concentration})
    assert result is not None and result.category.key == key


def test_category_colours_and_names():
    assert {c.key: c.rgb for c in CATEGORIES} == {
        "good": (0, 228, 0), "moderate": (255, 255, 0), "usg": (255, 126, 0), "unhealthy": (255, 0, 0),
        "very_unhealthy": (143, 63, 151), "hazardous": (126, 0, 35)}
    assert [c.name("en") for c in CATEGORIES] == ["Good", "Moderate", "Unhealthy for Sensitive Groups",
                                                  "Unhealthy", "Very Unhealthy", "Hazardous"]
    for language in ("en", "ru", "kk"):
        assert len({c.name(language) for c in CATEGORIES}) == len(CATEGORIES)
    with pytest.raises(KeyError):
        CATEGORIES[0].name("de")
    with pytest.raises(ValueError):
        category(-1)


def test_aqi_is_the_largest_sub_index_and_names_its_pollutant():
    result = aqi({(PM25, H24): 40.0, (NO2, H1): 300, (CO, H8): None, (PM10, "24h"): 50})
    assert result is not None
    assert dict(result.sub_indices) == {(PM25, H24): 112, (NO2, H1): 139, (PM10, H24): 46}
    assert (result.aqi, result.dominant, result.category.key, result.colour) == (139, NO2, "usg", (255, 126, 0))


def test_aqi_takes_the_more_precautionary_ozone_period():
    result = aqi({(O3, H8): 0.080, (O3, H1): 0.170})
    assert result is not None
    assert dict(result.sub_indices) == {(O3, H8): 133, (O3, H1): 157}
    assert (result.aqi, result.dominant) == (157, O3)


def test_aqi_uses_24h_so2_when_1h_so2_is_off_the_table():
    result = aqi({(SO2, H1): 400, (SO2, H24): 350, (PM25, H24): 5.0})
    assert result is not None
    assert dict(result.sub_indices) == {(SO2, H24): 216, (PM25, H24): 28}
    assert (result.aqi, result.dominant) == (216, SO2)


def test_aqi_without_a_defined_sub_index_is_none():
    assert aqi({}) is None
    assert aqi({(SO2, H1): 400, (PM25, H24): None, (O3, H1): 0.05}) is None


def test_aqi_tie_goes_to_the_first_reading():
    result = aqi({(NO2, H1): 53, (PM10, H24): 54})  # both 50
    assert result is not None and (result.aqi, result.dominant) == (50, NO2)


# ---------------------------------------------------------------------------------------
# NowCast rules and the daily mean


@pytest.mark.parametrize(("latest_three", "valid"), [
    ((1, 1, 1), True), ((1, None, 1), True), ((None, 1, 1), True), ((1, 1, None), True),
    ((1, None, None), False), ((None, None, 1), False), ((None, 1, None), False), ((None, None, None), False),
])
def test_nowcast_needs_two_of_the_three_latest_hours(latest_three, valid):
    hourly = [None if c is None else 20.0 for c in latest_three] + [20.0] * 9
    assert (nowcast(hourly, pollutant=PM25) is not None) is valid


def test_nowcast_edge_series():
    assert nowcast([20] * 12, pollutant=PM25) == 20.0  # MazamaScience: flat data
    assert nowcast([0] * 12, pollutant=PM25) == 0.0  # all zero
    assert nowcast([None] * 12, pollutant=PM25) is None  # all missing
    assert nowcast([20.12345] * 12, pollutant=PM25) == 20.1  # truncated to 0.1
    assert nowcast([20.19] * 12, pollutant=PM25) == 20.1  # truncated, not rounded
    assert nowcast([10, 30], pollutant=PM25) == nowcast([10, 30] + [None] * 10, pollutant=PM25)
    assert nowcast([10, 30] + [None] * 10 + [1000], pollutant=PM25) == nowcast([10, 30], pollutant=PM25)


def test_nowcast_weight_floor():
    # w = 10/30 is floored to 0.5: (10 + 30*0.5) / 1.5 = 16.666 -> 16.6; unfloored it would be 15.0
    assert nowcast([10, 30], pollutant=PM25) == 16.6
    # w = 20/30 stays: (20 + 30*2/3) / (5/3) = 24.0
    assert nowcast([20, 30], pollutant=PM25) == 24.0


def test_nowcast_is_only_for_particles():
    with pytest.raises(ValueError, match="PM2.5 and PM10"):
        nowcast([0.05] * 12, pollutant=O3)
    with pytest.raises(ValueError):
        nowcast([10, -1, 10], pollutant=PM25)  # missing hours are None, never -1


def test_daily_mean_needs_18_of_24_hours():
    assert daily_mean([10.0] * 18 + [None] * 6) == 10.0
    assert daily_mean([10.0] * 17 + [None] * 7) is None
    assert daily_mean([1.0] * 12 + [2.0] * 12) == 1.5
    assert daily_pm25_aqi([9.1] * 18 + [None] * 6) == 51
    assert daily_pm25_aqi([9.1] * 17 + [None] * 7) is None
    with pytest.raises(ValueError, match="24"):
        daily_mean([10.0] * 23)


def test_daily_pm25_aqi_truncates_the_exact_mean():
    hourly = [9.1] * 23 + [9.099999999999998]  # exact mean 9.1 - 8.3e-17: a float rounds it to 9.1
    assert daily_mean(hourly) == 9.1
    assert daily_pm25_aqi(hourly) == 50  # the exact mean truncates to 9.0


# ---------------------------------------------------------------------------------------
# Kazakh limits, СИ, НП, pollution level


def test_limits_in_canonical_units():
    assert limit(PM25) == pytest.approx(160.0) and limit(PM10, basis="daily") == pytest.approx(60.0)
    assert limit(NO2) == pytest.approx(0.2 * 1000 * 24.45 / 46.0055)  # ppb
    assert limit(SO2, basis="daily") == pytest.approx(0.05 * 1000 * 24.45 / 64.066)  # ppb
    assert limit(CO, basis="daily") == pytest.approx(3.0 * 24.45 / 28.010)  # ppm
    assert limit(O3) == pytest.approx(0.16 * 24.45 / 47.997)  # ppm
    with pytest.raises(ValueError, match="basis"):
        limit(PM10, basis="annual")  # type: ignore[arg-type]


def test_default_limits_are_the_demo_city_packs():
    pack = load_pack()
    assert pack.norms is not None
    assert dict(pack.norms.air_limits) == dict(DEFAULT_AIR_LIMITS)


def test_limits_come_from_the_caller():
    stricter = {NO2: AirLimit(0.1, 0.04)}  # e.g. a pack with another revision of the table
    assert limit_multiple(NO2, limit(NO2), limits=stricter) == pytest.approx(2.0)
    with pytest.raises(KeyError):
        limit(PM10, limits=stricter)


def test_exceedance_multiples_of_single_and_daily_limits():
    no2 = to_canonical(NO2, 0.5, "mg/m3")
    assert limit_multiple(NO2, no2) == pytest.approx(2.5)
    assert limit_multiple(NO2, no2, basis="daily") == pytest.approx(12.5)
    assert limit_multiple(PM25, 80.0, basis="daily") == pytest.approx(80 / 35)


@pytest.mark.parametrize("pollutant", [PM25, PM10, NO2, SO2, CO, O3])
def test_a_reading_at_exactly_the_limit_is_not_an_exceedance(pollutant):
    at = to_canonical(pollutant, DEFAULT_AIR_LIMITS[pollutant].single_mg_m3, "mg/m3")
    above = to_canonical(pollutant, DEFAULT_AIR_LIMITS[pollutant].single_mg_m3 * 1.0001, "mg/m3")
    assert exceedances(pollutant, [at, above, 0.0]) == 1
    assert limit_multiple(pollutant, at) == 1.0


def test_standard_index_and_repeatability():
    mg = [0.1, 0.25, 0.31, 0.6]  # PM10 mg/m³; ПДКм.р. 0.3
    values = [to_canonical(PM10, v, "mg/m3") for v in mg]
    assert standard_index(PM10, values) == pytest.approx(2.0)
    assert standard_index(PM10, []) is None
    assert exceedances(PM10, values) == 2
    assert exceedance_percent(PM10, values) == 50.0
    assert exceedance_percent(PM10, []) is None
    by_post = {"a": values, "b": values[:2], "c": []}
    assert highest_repeatability(PM10, by_post) == 50.0
    assert highest_repeatability(PM10, {"c": []}) is None


@pytest.mark.parametrize(("si", "np_percent", "level"), [
    (0, 0, PollutionLevel.LOW), (1, 0, PollutionLevel.LOW), (1.5, 0, PollutionLevel.ELEVATED),
    (2, 0, PollutionLevel.ELEVATED), (4, 0, PollutionLevel.ELEVATED), (4.5, 0, PollutionLevel.HIGH),
    (5, 0, PollutionLevel.HIGH), (10, 0, PollutionLevel.HIGH), (10.1, 0, PollutionLevel.VERY_HIGH),
    (0, 0.5, PollutionLevel.ELEVATED), (0, 19, PollutionLevel.ELEVATED), (0, 20, PollutionLevel.HIGH),
    (0, 49, PollutionLevel.HIGH), (0, 50, PollutionLevel.VERY_HIGH),
    (11, 5, PollutionLevel.VERY_HIGH), (0.9, 60, PollutionLevel.VERY_HIGH),  # disagree: the larger
])
def test_pollution_level_gradation(si, np_percent, level):
    assert pollution_level(si, np_percent) is level


# ---------------------------------------------------------------------------------------
# properties


def _breakpoint_cases() -> list:
    return [pytest.param(bp, table, id=f"{name}-{bp.pollutant.value}-{bp.averaging.value}")
            for name, table in TABLES.items() for bp in table]


def _grid(bp) -> list[Decimal]:
    """Every truncation step from 0 to 20 % above the top of the table."""
    steps = int(bp.rows[-1].hi * Decimal("1.2") / bp.precision)
    return [bp.precision * i for i in range(steps + 1)]


@pytest.mark.parametrize(("bp", "table"), _breakpoint_cases())
def test_every_truncation_step_is_monotone_and_non_negative(bp, table):
    indices = [sub_index(bp.pollutant, c, averaging=bp.averaging, table=table) for c in _grid(bp)]
    defined = [i for i in indices if i is not None]
    assert defined == sorted(defined) and defined[0] >= 0
    # defined on one contiguous stretch: blanks only below and (without extrapolation) above
    first = indices.index(defined[0])
    assert indices[first:first + len(defined)] == defined


def _concentrations(bp):
    top = float(bp.rows[-1].hi) * 3
    edges = [float(r.lo) for r in bp.rows] + [float(r.hi) for r in bp.rows]
    return st.one_of(st.floats(0, top, allow_nan=False), st.sampled_from(edges),
                     st.sampled_from(edges).map(lambda e: e * (1 + 1e-9)))


@pytest.mark.parametrize(("bp", "table"), _breakpoint_cases())
@given(data=st.data())
def test_sub_index_is_monotone_in_concentration(bp, table, data):
    a, b = sorted((data.draw(_concentrations(bp)), data.draw(_concentrations(bp))))
    low, high = (sub_index(bp.pollutant, c, averaging=bp.averaging, table=table) for c in (a, b))
    if low is not None and high is not None:
        assert 0 <= low <= high


@given(st.floats(0, 1e12, allow_nan=False), st.sampled_from([(bp.pollutant, bp.averaging) for bp in AQI_2024]))
def test_sub_index_is_never_negative(concentration, key):
    index = sub_index(key[0], concentration, averaging=key[1])
    assert index is None or index >= 0


READINGS = st.dictionaries(st.sampled_from([(bp.pollutant, bp.averaging) for bp in AQI_2024]),
                           st.one_of(st.none(), st.floats(0, 3000, allow_nan=False)), max_size=8)


@given(READINGS)
def test_aqi_is_the_max_of_the_sub_indices(readings):
    result = aqi(readings)
    subs = [sub_index(p, v, averaging=a) for (p, a), v in readings.items() if v is not None]
    defined = [s for s in subs if s is not None]
    if not defined:
        assert result is None
        return
    assert result is not None and result.aqi == max(defined) >= 0
    assert result.category == category(result.aqi)
    assert max(i for (p, _), i in result.sub_indices.items() if p is result.dominant) == result.aqi


HOURS = st.lists(st.one_of(st.none(), st.floats(0, 1000, allow_nan=False)), min_size=0, max_size=12)


@given(HOURS, st.sampled_from([PM25, PM10]))
def test_nowcast_lies_between_the_hours(hourly, pollutant):
    value = nowcast(hourly, pollutant=pollutant)
    present = [Fraction(str(c)) for c in hourly if c is not None]
    if sum(c is not None for c in hourly[:3]) < 2:
        assert value is None
        return
    step = air.NOWCAST_STEP[pollutant]
    assert value is not None
    assert (min(present) // step) * step <= Fraction(str(value)) <= max(present)
    assert Fraction(str(value)) % step == 0


# ---------------------------------------------------------------------------------------
# the real Almaty data (Kazhydromet automatic posts, Dec 2024 – Jan 2025)

#: ПДКм.р., mg/m³, written here independently of the module (DOMAIN 1.4)
SINGLE_LIMIT_MG_M3 = {"pm10": 0.3, "no2": 0.2, "so2": 0.5, "co": 5.0}


@pytest.fixture(scope="module")
def kgmt():
    """(the CSV rows, the readings as the air feed parses them)."""
    path = shared_path(KGMT_FILE)
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, parse_kgmt_csv(path.read_bytes()).records


def _module_values(records, pollutant) -> dict[str, list[float]]:
    by_station: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.parameter is pollutant:
            by_station[r.station_id].append(r.value)
    return by_station


@pytest.mark.shared_data
@pytest.mark.parametrize(("pollutant", "total", "stations"), [(NO2, 1253, 7), (PM10, 271, 3)])
def test_real_exceedance_counts_per_station(kgmt, pollutant, total, stations):
    rows, records = kgmt
    name = pollutant.value
    independent = Counter(row["station_id"] for row in rows
                          if row["parameter"] == name and float(row["raw_value"]) > SINGLE_LIMIT_MG_M3[name])
    ours = {station: exceedances(pollutant, values) for station, values in _module_values(records, pollutant).items()}
    assert {s: n for s, n in ours.items() if n} == dict(independent)
    assert (sum(independent.values()), len(independent)) == (total, stations)


@pytest.mark.shared_data
@pytest.mark.parametrize(("pollutant", "si", "np_percent", "level"), [
    (NO2, 4.996, 41.35, PollutionLevel.HIGH),  # Kazhydromet rated Almaty's 2024 level "high"
    (PM10, 1.918, 10.77, PollutionLevel.ELEVATED),
    (SO2, 1.505, 1.29, PollutionLevel.ELEVATED),
    (CO, 1.464, 4.19, PollutionLevel.ELEVATED),
])
def test_real_standard_index_and_repeatability(kgmt, pollutant, si, np_percent, level):
    rows, records = kgmt
    name = pollutant.value
    raw_by_station: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["parameter"] == name:
            raw_by_station[row["station_id"]].append(float(row["raw_value"]))
    bound = SINGLE_LIMIT_MG_M3[name]
    si_independent = max(max(v) for v in raw_by_station.values()) / bound
    np_independent = max(100 * sum(x > bound for x in v) / len(v) for v in raw_by_station.values())

    by_station = _module_values(records, pollutant)
    ours_si = standard_index(pollutant, [v for values in by_station.values() for v in values])
    ours_np = highest_repeatability(pollutant, by_station)
    assert ours_si == pytest.approx(si_independent, rel=1e-12)
    assert ours_np == pytest.approx(np_independent, rel=1e-12)
    assert (round(ours_si, 3), round(ours_np, 2)) == (si, np_percent)
    assert pollution_level(ours_si, ours_np) is level
