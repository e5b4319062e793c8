"""Air-quality indices: the US EPA AQI (2024 table), the NowCast, and the Kazakh limits (ПДК);
the air KPI table (:data:`KPIS`) and the snapshot computation over recent readings (:func:`compute`).

Pure functions: numbers in, numbers out; no I/O, no clock. Concentrations are in the canonical
units of :mod:`core.units` (PM2.5/PM10 µg/m³, O3 and CO ppm, SO2 and NO2 ppb). The rules and
their sources are in the shared ``DOMAIN.md``, section 1.

Exactness: a float is read as the decimal it prints as (``str(9.1) == "9.1"``, not
9.0999999999999996447), the AQI equation runs in :class:`~decimal.Decimal` and the NowCast and
daily mean in exact fractions, so binary round-off never decides a truncation or a rounding tie.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal, localcontext
from enum import IntEnum, StrEnum
from fractions import Fraction
from functools import partial
from types import MappingProxyType
from typing import Literal

from core.citypack import AirLimit, CityPack
from core.schemas import iso
from core.units import Pollutant, to_canonical
from workers.kpi.definitions import KpiDefinition, define

Number = float | int | Decimal

#: Decimal arithmetic context of this module, so a caller's context never changes a result.
_CONTEXT = Context(prec=50)


# ---------------------------------------------------------------------------------------
# the breakpoint table (DOMAIN 1.1), as data


class Averaging(StrEnum):
    """Averaging period of a concentration, as the AQI table names it."""

    H1 = "1h"
    H8 = "8h"
    H24 = "24h"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a breakpoint table: concentrations ``lo..hi`` map to indices ``index_lo..index_hi``."""

    lo: Decimal
    hi: Decimal
    index_lo: int
    index_hi: int


@dataclass(frozen=True, slots=True)
class Breakpoints:
    """The breakpoints of one pollutant over one averaging period.

    Attributes:
        precision: a concentration is truncated to a multiple of this before the lookup.
        rows: contiguous rows, ascending. Below the first row the index is not defined.
        extrapolate: above the last row, continue on its slope (the TAD's "AQI above 500"
            rule) if True; if False the table is blank there and another period applies.
    """

    pollutant: Pollutant
    averaging: Averaging
    precision: Decimal
    rows: tuple[Row, ...]
    extrapolate: bool = True


AqiTable = tuple[Breakpoints, ...]
TableKey = tuple[Pollutant, Averaging]

#: Truncation of the concentration before the lookup (truncate, never round).
PRECISION: Mapping[Pollutant, Decimal] = MappingProxyType({
    Pollutant.O3: Decimal("0.001"), Pollutant.PM25: Decimal("0.1"), Pollutant.PM10: Decimal("1"),
    Pollutant.CO: Decimal("0.1"), Pollutant.SO2: Decimal("1"), Pollutant.NO2: Decimal("1"),
})


def _rows(*spec: tuple[str, str, int, int]) -> tuple[Row, ...]:
    return tuple(Row(Decimal(lo), Decimal(hi), index_lo, index_hi) for lo, hi, index_lo, index_hi in spec)


def _bp(p: Pollutant, averaging: str, *spec: tuple[str, str, int, int], extrapolate: bool = True) -> Breakpoints:
    return Breakpoints(p, Averaging(averaging), PRECISION[p], _rows(*spec), extrapolate)


#: AQI 0–300 of the 2024 table [verified]. Blank cells: 8-h O3 above 0.200 ppm (use 1-h O3),
#: 1-h O3 below 0.125 ppm, 1-h SO2 above 304 ppb (use 24-h SO2, which starts at 305 ppb).
_UP_TO_300: AqiTable = (
    _bp(Pollutant.O3, "8h", ("0.000", "0.054", 0, 50), ("0.055", "0.070", 51, 100), ("0.071", "0.085", 101, 150),
        ("0.086", "0.105", 151, 200), ("0.106", "0.200", 201, 300), extrapolate=False),
    _bp(Pollutant.O3, "1h", ("0.125", "0.164", 101, 150), ("0.165", "0.204", 151, 200), ("0.205", "0.404", 201, 300)),
    _bp(Pollutant.PM25, "24h", ("0.0", "9.0", 0, 50), ("9.1", "35.4", 51, 100), ("35.5", "55.4", 101, 150),
        ("55.5", "125.4", 151, 200), ("125.5", "225.4", 201, 300)),
    _bp(Pollutant.PM10, "24h", ("0", "54", 0, 50), ("55", "154", 51, 100), ("155", "254", 101, 150),
        ("255", "354", 151, 200), ("355", "424", 201, 300)),
    _bp(Pollutant.CO, "8h", ("0.0", "4.4", 0, 50), ("4.5", "9.4", 51, 100), ("9.5", "12.4", 101, 150),
        ("12.5", "15.4", 151, 200), ("15.5", "30.4", 201, 300)),
    _bp(Pollutant.SO2, "1h", ("0", "35", 0, 50), ("36", "75", 51, 100), ("76", "185", 101, 150),
        ("186", "304", 151, 200), extrapolate=False),
    _bp(Pollutant.SO2, "24h", ("305", "604", 201, 300)),
    _bp(Pollutant.NO2, "1h", ("0", "53", 0, 50), ("54", "100", 51, 100), ("101", "360", 101, 150),
        ("361", "649", 151, 200), ("650", "1249", 201, 300)),
)

# The Hazardous rows. PM2.5 225.5–325.4 = 301–500 is verified for 2024. The others are
# [unverified] against TAD-2024 Table 6: 2024-era code uses one merged 301–500 row, the 2018
# TAD had two rows (301–400, 401–500), and PM10 504 µg/m³ gives 389 merged but 400 split.
# Both layouts are data; check the PDF before release and pick one with build_table().
HAZARDOUS_MERGED: Mapping[TableKey, tuple[Row, ...]] = MappingProxyType({
    (Pollutant.PM25, Averaging.H24): _rows(("225.5", "325.4", 301, 500)),
    (Pollutant.PM10, Averaging.H24): _rows(("425", "604", 301, 500)),
    (Pollutant.CO, Averaging.H8): _rows(("30.5", "50.4", 301, 500)),
    (Pollutant.SO2, Averaging.H24): _rows(("605", "1004", 301, 500)),
    (Pollutant.NO2, Averaging.H1): _rows(("1250", "2049", 301, 500)),
    (Pollutant.O3, Averaging.H1): _rows(("0.405", "0.604", 301, 500)),
})
HAZARDOUS_SPLIT: Mapping[TableKey, tuple[Row, ...]] = MappingProxyType({
    (Pollutant.PM25, Averaging.H24): _rows(("225.5", "325.4", 301, 500)),
    (Pollutant.PM10, Averaging.H24): _rows(("425", "504", 301, 400), ("505", "604", 401, 500)),
    (Pollutant.CO, Averaging.H8): _rows(("30.5", "40.4", 301, 400), ("40.5", "50.4", 401, 500)),
    (Pollutant.SO2, Averaging.H24): _rows(("605", "804", 301, 400), ("805", "1004", 401, 500)),
    (Pollutant.NO2, Averaging.H1): _rows(("1250", "1649", 301, 400), ("1650", "2049", 401, 500)),
    (Pollutant.O3, Averaging.H1): _rows(("0.405", "0.504", 301, 400), ("0.505", "0.604", 401, 500)),
})


def build_table(hazardous: Mapping[TableKey, tuple[Row, ...]]) -> AqiTable:
    """The 2024 table (AQI 0–300) with the given Hazardous rows appended to each pollutant."""
    return tuple(replace(bp, rows=bp.rows + hazardous.get((bp.pollutant, bp.averaging), ())) for bp in _UP_TO_300)


#: The table in force since 6 May 2024, with the merged Hazardous row.
AQI_2024: AqiTable = build_table(HAZARDOUS_MERGED)
#: The same with the 2018 TAD's two Hazardous rows (see the [unverified] note above).
AQI_2024_SPLIT_HAZARDOUS: AqiTable = build_table(HAZARDOUS_SPLIT)
#: The PM2.5 breakpoints before the 2024 revision (hrbonz/python-aqi), for old data.
PM25_PRE_2024 = _bp(Pollutant.PM25, "24h", ("0.0", "12.0", 0, 50), ("12.1", "35.4", 51, 100),
                    ("35.5", "55.4", 101, 150), ("55.5", "150.4", 151, 200), ("150.5", "250.4", 201, 300),
                    ("250.5", "350.4", 301, 400), ("350.5", "500.4", 401, 500))
#: The whole 2018 TAD table: the old PM2.5 rows and the split Hazardous rows.
AQI_PRE_2024: AqiTable = tuple(PM25_PRE_2024 if bp.pollutant is Pollutant.PM25 else bp
                               for bp in AQI_2024_SPLIT_HAZARDOUS)


# ---------------------------------------------------------------------------------------
# sub-index and AQI (DOMAIN 1.2)


def breakpoints(pollutant: Pollutant | str, averaging: Averaging | str, *, table: AqiTable = AQI_2024) -> Breakpoints:
    """The breakpoints of ``pollutant`` over ``averaging`` in ``table``.

    Raises:
        ValueError: unknown pollutant or period, or the table has no such combination.
    """
    key = (Pollutant(pollutant), Averaging(averaging))
    for bp in table:
        if (bp.pollutant, bp.averaging) == key:
            return bp
    raise ValueError(f"the AQI table has no breakpoints for {key[0].value} over {key[1].value}")


def sub_index(pollutant: Pollutant | str, concentration: Number, *, averaging: Averaging | str,
              table: AqiTable = AQI_2024) -> int | None:
    """The AQI sub-index of one concentration: truncate, look up, interpolate, round half up.

    Above the top of the table the last row's slope continues (no cap at 500).

    Returns:
        The sub-index, or None where the table is blank: 8-h O3 above 0.200 ppm and 1-h O3
        below 0.125 ppm (use the other O3 period), 1-h SO2 above 304 ppb (the caller must use
        24-h SO2), 24-h SO2 below 305 ppb (use 1-h SO2).

    Raises:
        ValueError: a negative or non-finite concentration, or no breakpoints for the pair.
    """
    bp = breakpoints(pollutant, averaging, table=table)
    c = _truncate(_decimal(concentration), bp.precision)
    row = _row(bp, c)
    if row is None:
        return None
    with localcontext(_CONTEXT):
        index = (row.index_hi - row.index_lo) * (c - row.lo) / (row.hi - row.lo) + row.index_lo
        return int(index.to_integral_value(rounding=ROUND_HALF_UP))


def _decimal(value: Number) -> Decimal:
    """``value`` as the decimal it is written as (a float through its shortest repr).

    Raises:
        ValueError: negative, NaN or infinite.
    """
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite() or number < 0:
        raise ValueError(f"a concentration must be finite and not negative, got {value!r}")
    return number


def _truncate(value: Decimal, step: Decimal) -> Decimal:
    with localcontext(_CONTEXT):
        return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def _row(bp: Breakpoints, c: Decimal) -> Row | None:
    """The row ``c`` falls in (the last row above the table when it extrapolates), else None."""
    if c < bp.rows[0].lo or (c > bp.rows[-1].hi and not bp.extrapolate):
        return None
    return next(row for row in reversed(bp.rows) if row.lo <= c)


@dataclass(frozen=True, slots=True)
class Category:
    """An AQI category (DOMAIN 1.1): from ``lowest`` up to the next category's lowest - 1."""

    key: str
    lowest: int
    rgb: tuple[int, int, int]
    en: str
    ru: str
    kk: str

    def name(self, language: str) -> str:
        """The name in ``language`` (``en``, ``ru`` or ``kk``); KeyError for others."""
        return {"en": self.en, "ru": self.ru, "kk": self.kk}[language]


# EPA names and colours (TAD Table 2); the Russian and Kazakh names are our translations.
CATEGORIES: tuple[Category, ...] = (
    Category("good", 0, (0, 228, 0), "Good", "Хорошо", "Жақсы"),
    Category("moderate", 51, (255, 255, 0), "Moderate", "Умеренно", "Орташа"),
    Category("usg", 101, (255, 126, 0), "Unhealthy for Sensitive Groups", "Вредно для чувствительных групп",
             "Сезімтал топтар үшін зиянды"),
    Category("unhealthy", 151, (255, 0, 0), "Unhealthy", "Вредно", "Зиянды"),
    Category("very_unhealthy", 201, (143, 63, 151), "Very Unhealthy", "Очень вредно", "Өте зиянды"),
    Category("hazardous", 301, (126, 0, 35), "Hazardous", "Опасно", "Қауіпті"),
)


def category(index: int) -> Category:
    """The category of an AQI value; everything from 301 up (beyond 500 too) is Hazardous.

    Raises:
        ValueError: a negative index.
    """
    if index < 0:
        raise ValueError(f"an AQI is never negative, got {index}")
    return next(cat for cat in reversed(CATEGORIES) if cat.lowest <= index)


@dataclass(frozen=True, slots=True)
class AqiResult:
    """The AQI over several pollutants.

    Attributes:
        aqi: the largest sub-index.
        dominant: the pollutant giving it (the "critical pollutant").
        sub_indices: every defined sub-index, keyed by (pollutant, averaging period).
    """

    aqi: int
    category: Category
    dominant: Pollutant
    sub_indices: Mapping[TableKey, int]

    @property
    def colour(self) -> tuple[int, int, int]:
        """The category's EPA colour, RGB."""
        return self.category.rgb


def aqi(readings: Mapping[tuple[Pollutant | str, Averaging | str], Number | None], *,
        table: AqiTable = AQI_2024) -> AqiResult | None:
    """The AQI of concurrent readings, e.g. ``{(Pollutant.PM25, "24h"): 40.2, (Pollutant.O3, "8h"): 0.061}``.

    Give O3 over both periods and SO2 over both where available: the larger defined sub-index
    wins, which is the table's rule for both. Readings that are None, or fall in a blank cell,
    are left out. On a tie the reading given first is dominant.

    Returns:
        The result, or None when no reading gives a defined sub-index.

    Raises:
        ValueError: as :func:`sub_index`.
    """
    subs = _defined_sub_indices(readings, table)
    if not subs:
        return None
    (dominant, _), top = max(subs.items(), key=lambda item: item[1])
    return AqiResult(top, category(top), dominant, MappingProxyType(subs))


def _defined_sub_indices(readings: Mapping[tuple[Pollutant | str, Averaging | str], Number | None],
                         table: AqiTable) -> dict[TableKey, int]:
    given = {(Pollutant(p), Averaging(a)): value for (p, a), value in readings.items() if value is not None}
    subs = {key: sub_index(key[0], value, averaging=key[1], table=table) for key, value in given.items()}
    return {key: index for key, index in subs.items() if index is not None}


# ---------------------------------------------------------------------------------------
# NowCast (DOMAIN 1.3) and the daily mean


NOWCAST_HOURS = 12
NOWCAST_MIN_WEIGHT = Fraction(1, 2)
#: The NowCast is truncated to this (µg/m³) before the AQI lookup.
NOWCAST_STEP: Mapping[Pollutant, Fraction] = MappingProxyType({Pollutant.PM25: Fraction(1, 10),
                                                               Pollutant.PM10: Fraction(1)})
DAILY_HOURS = 24
DAILY_MIN_HOURS = 18


def nowcast(hourly: Sequence[Number | None], *, pollutant: Pollutant | str) -> float | None:
    """The EPA NowCast of PM2.5 or PM10 from raw (untruncated) hourly means.

    Args:
        hourly: hourly means, newest first (``hourly[0]`` is the latest hour), None where an
            hour is missing; the first 12 are used.
        pollutant: PM2.5 or PM10.

    Returns:
        The NowCast truncated to 0.1 µg/m³ (PM2.5) or 1 µg/m³ (PM10), or None unless at least
        2 of the 3 most recent hours are present.

    Raises:
        ValueError: another pollutant, or a negative or non-finite hourly value.
    """
    step = _nowcast_step(pollutant)
    hours = [None if c is None else _fraction(c) for c in hourly[:NOWCAST_HOURS]]
    if sum(c is not None for c in hours[:3]) < 2:
        return None
    return float(_floor_to(_weighted_mean(hours), step))


def nowcast_aqi(hourly: Sequence[Number | None], *, pollutant: Pollutant | str,
                table: AqiTable = AQI_2024) -> int | None:
    """The NowCast AQI: :func:`nowcast` looked up in the 24-h table of the pollutant.

    Returns:
        The AQI, or None when the NowCast is not valid.
    """
    value = nowcast(hourly, pollutant=pollutant)
    return None if value is None else sub_index(pollutant, value, averaging=Averaging.H24, table=table)


def _nowcast_step(pollutant: Pollutant | str) -> Fraction:
    try:
        return NOWCAST_STEP[Pollutant(pollutant)]
    except KeyError:
        raise ValueError(f"the NowCast is defined for PM2.5 and PM10, not {pollutant}") from None


def _weighted_mean(hours: Sequence[Fraction | None]) -> Fraction:
    """Σ cᵢ·wⁱ / Σ wⁱ over present hours (i = 0 newest), w = min/max floored at 0.5."""
    present = [c for c in hours if c is not None]
    high = max(present)
    weight = max(min(present) / high, NOWCAST_MIN_WEIGHT) if high else Fraction(1)
    terms = [(c, weight**i) for i, c in enumerate(hours) if c is not None]
    return sum((c * w for c, w in terms), Fraction(0)) / sum((w for _, w in terms), Fraction(0))


def _fraction(value: Number) -> Fraction:
    return Fraction(_decimal(value))


def _floor_to(value: Fraction, step: Fraction) -> Fraction:
    return math.floor(value / step) * step


def daily_mean(hourly: Sequence[Number | None]) -> float | None:
    """The 24-h mean of one day (midnight to midnight, local standard time).

    Args:
        hourly: exactly 24 hourly means, None where an hour is missing.

    Returns:
        The mean of the present hours, or None when fewer than 18 of the 24 are present.

    Raises:
        ValueError: not 24 values, or a negative or non-finite value.
    """
    mean = _daily_mean(hourly)
    return None if mean is None else float(mean)


def daily_pm25_aqi(hourly: Sequence[Number | None], *, table: AqiTable = AQI_2024) -> int | None:
    """The daily PM2.5 AQI of 24 hourly means (None when the day is not valid, as :func:`daily_mean`)."""
    mean = _daily_mean(hourly)
    if mean is None:
        return None
    # truncate the exact mean first: float(mean) could round 9.0999... up to 9.1
    return sub_index(Pollutant.PM25, float(_floor_to(mean, Fraction(1, 10))), averaging=Averaging.H24, table=table)


def _daily_mean(hourly: Sequence[Number | None]) -> Fraction | None:
    if len(hourly) != DAILY_HOURS:
        raise ValueError(f"a day has {DAILY_HOURS} hourly means, got {len(hourly)}")
    present = [_fraction(c) for c in hourly if c is not None]
    return sum(present, Fraction(0)) / len(present) if len(present) >= DAILY_MIN_HOURS else None


# ---------------------------------------------------------------------------------------
# Kazakhstan: ПДК, СИ, НП and the pollution level (DOMAIN 1.4)


#: ПДКм.р. (single) and ПДКс.с. (daily), mg/m³; a city pack's Norms.air_limits replace them.
DEFAULT_AIR_LIMITS: Mapping[Pollutant, AirLimit] = MappingProxyType({
    Pollutant.PM25: AirLimit(0.16, 0.035),
    Pollutant.PM10: AirLimit(0.3, 0.06),
    Pollutant.NO2: AirLimit(0.2, 0.04, hazard_class=2),
    Pollutant.SO2: AirLimit(0.5, 0.05, hazard_class=3),
    Pollutant.CO: AirLimit(5.0, 3.0, hazard_class=4),
    Pollutant.O3: AirLimit(0.16, 0.03, hazard_class=1),
})

LimitBasis = Literal["single", "daily"]


def limit(pollutant: Pollutant | str, *, basis: LimitBasis = "single",
          limits: Mapping[Pollutant, AirLimit] = DEFAULT_AIR_LIMITS) -> float:
    """The ПДКм.р. (``single``) or ПДКс.с. (``daily``) of ``pollutant`` in its canonical unit.

    The mg/m³ limit is converted by :func:`core.units.to_canonical` (MOLAR_VOLUME_L at 25 °C,
    MOLECULAR_WEIGHT), the function that converts readings on ingest, so a reading received
    at exactly the limit converts to exactly the converted limit.

    Raises:
        KeyError: ``limits`` has no entry for the pollutant.
        ValueError: an unknown basis.
    """
    p = Pollutant(pollutant)
    if basis not in ("single", "daily"):
        raise ValueError(f"basis must be 'single' (ПДКм.р.) or 'daily' (ПДКс.с.), got {basis!r}")
    mg_m3 = limits[p].single_mg_m3 if basis == "single" else limits[p].daily_mg_m3
    return to_canonical(p, mg_m3, "mg/m3")


def limit_multiple(pollutant: Pollutant | str, value: float, *, basis: LimitBasis = "single",
                   limits: Mapping[Pollutant, AirLimit] = DEFAULT_AIR_LIMITS) -> float:
    """``value`` (canonical unit) in multiples of the ПДК: 1.0 is at the limit, above 1 exceeds it."""
    return value / limit(pollutant, basis=basis, limits=limits)


def exceedances(pollutant: Pollutant | str, values: Iterable[float], *,
                limits: Mapping[Pollutant, AirLimit] = DEFAULT_AIR_LIMITS) -> int:
    """How many single measurements are strictly above the ПДКм.р."""
    bound = limit(pollutant, limits=limits)
    return sum(1 for value in values if value > bound)


def standard_index(pollutant: Pollutant | str, values: Iterable[float], *,
                   limits: Mapping[Pollutant, AirLimit] = DEFAULT_AIR_LIMITS) -> float | None:
    """СИ: the largest single measurement divided by the ПДКм.р. (None without measurements).

    Pass one post's values for a post's СИ, or all posts' values for the city's.
    """
    top = max(values, default=None)
    return None if top is None else limit_multiple(pollutant, top, limits=limits)


def exceedance_percent(pollutant: Pollutant | str, values: Iterable[float], *,
                       limits: Mapping[Pollutant, AirLimit] = DEFAULT_AIR_LIMITS) -> float | None:
    """The share of one post's measurements above the ПДКм.р., % (None without measurements)."""
    values = list(values)
    return 100 * exceedances(pollutant, values, limits=limits) / len(values) if values else None


def highest_repeatability(pollutant: Pollutant | str, by_post: Mapping[str, Iterable[float]], *,
                          limits: Mapping[Pollutant, AirLimit] = DEFAULT_AIR_LIMITS) -> float | None:
    """НП: the largest :func:`exceedance_percent` of any post, % (None without measurements)."""
    shares = (exceedance_percent(pollutant, values, limits=limits) for values in by_post.values())
    return max((share for share in shares if share is not None), default=None)


class PollutionLevel(IntEnum):
    """Уровень загрязнения of the Kazhydromet bulletins (RD 52.04.667-2005)."""

    LOW = 1  # I, низкий
    ELEVATED = 2  # II, повышенный
    HIGH = 3  # III, высокий
    VERY_HIGH = 4  # IV, очень высокий


@dataclass(frozen=True, slots=True)
class LevelBound:
    """A level applies when СИ is above ``si_above`` or НП (%) is above ``np_above``."""

    level: PollutionLevel
    si_above: float
    np_above: float


# [unverified] gradation (DOMAIN 1.4): I СИ 0–1, НП 0; II СИ 2–4, НП 1–19; III СИ 5–10,
# НП 20–49; IV СИ >10, НП ≥50. Each level starts just above the previous level's range, so
# values in the table's gaps (СИ 1–2 and 4–5, НП 19–20 and 49–50) take the higher level.
LEVEL_BOUNDS: tuple[LevelBound, ...] = (
    LevelBound(PollutionLevel.ELEVATED, si_above=1, np_above=0),
    LevelBound(PollutionLevel.HIGH, si_above=4, np_above=19),
    LevelBound(PollutionLevel.VERY_HIGH, si_above=10, np_above=49),
)


def pollution_level(si: float, np_percent: float, *,
                    bounds: Sequence[LevelBound] = LEVEL_BOUNDS) -> PollutionLevel:
    """The pollution level from СИ and НП: where they disagree, the higher of the two."""
    reached = [b.level for b in bounds if si > b.si_above or np_percent > b.np_above]
    return max(reached, default=PollutionLevel.LOW)


# ---------------------------------------------------------------------------------------
# the KPI table and the snapshot computation


_kpi = partial(define, "air")

KPIS: tuple[KpiDefinition, ...] = (
    _kpi("aqi", "AQI", "highest station AQI in the scope (EPA 2024 table): per station the largest sub-index of "
         "NowCast PM2.5 and PM10 (12 h), 8-h CO and O3, 1-h NO2, SO2 and O3 (24-h SO2 above 304 ppb)", 100.0,
         "down", "Air quality index", "Индекс качества воздуха", "Ауа сапасының индексі"),
    _kpi("aqi_category", "category", "EPA category of air.aqi: good, moderate, usg, unhealthy, very_unhealthy, "
         "hazardous", None, "down", "AQI category", "Категория AQI", "AQI санаты"),
    _kpi("aqi_dominant", "pollutant", "pollutant giving air.aqi at the worst station", None, "down",
         "Dominant pollutant", "Определяющая примесь", "Басым қоспа"),
    _kpi("aqi_station", "station", "station giving air.aqi (the worst one)", None, "down",
         "Worst station", "Худший пост", "Ең нашар бекет"),
    _kpi("si", "×ПДК", "СИ: largest single reading / ПДКм.р. over the scope's posts and pollutants, last 24 h",
         1.0, "down", "Standard index (SI)", "Стандартный индекс (СИ)", "Стандартты индекс (СИ)"),
    _kpi("si_by_pollutant", "×ПДК", "per pollutant: largest single reading / ПДКм.р., last 24 h "
         "(the single-limit exceedance multiple; above 1 exceeds)", None, "down",
         "Single-limit multiple by pollutant", "Кратность ПДКм.р. по примесям", "Қоспалар бойынша ШЖК м.б. еселігі"),
    _kpi("np", "%", "НП: largest share of one post's single readings above ПДКм.р., over posts and pollutants, "
         "last 24 h", 0.0, "down", "Highest repeatability (NP)", "Наибольшая повторяемость (НП)",
         "Ең жоғары қайталанушылық (НП)"),
    _kpi("np_by_pollutant", "%", "per pollutant: largest share of one post's single readings above ПДКм.р.",
         None, "down", "Highest repeatability by pollutant", "НП по примесям", "Қоспалар бойынша НП"),
    _kpi("pollution_level", "level", "RD 52.04.667-2005 level from СИ and НП (the higher of the two): "
         "1 low, 2 elevated, 3 high, 4 very high", 1.0, "down", "Pollution level", "Уровень загрязнения",
         "Ластану деңгейі"),
    _kpi("daily_multiple", "×ПДК", "largest 24-h mean / ПДКс.с. over posts and pollutants; a post's 24-h mean "
         "needs ≥ 18 of the last 24 hourly means", 1.0, "down", "Daily-limit multiple",
         "Кратность ПДКс.с.", "ШЖК о.т. еселігі"),
    _kpi("daily_multiple_by_pollutant", "×ПДК", "per pollutant: largest post 24-h mean / ПДКс.с.", None, "down",
         "Daily-limit multiple by pollutant", "Кратность ПДКс.с. по примесям", "Қоспалар бойынша ШЖК о.т. еселігі"),
    _kpi("exceedances", "count", "single readings above ПДКм.р. in the last 24 h, all posts and pollutants", 0.0,
         "down", "Limit exceedances", "Превышения ПДК", "ШЖК асып кетулері"),
    _kpi("exceedances_by_pollutant", "count", "per pollutant: single readings above ПДКм.р. in the last 24 h",
         None, "down", "Exceedances by pollutant", "Превышения ПДК по примесям", "Қоспалар бойынша асып кетулер"),
    _kpi("stations_reporting", "count", "stations with a reading in the last 2 h", None, "up",
         "Stations reporting", "Посты на связи", "Байланыстағы бекеттер"),
    _kpi("stations_offline", "count", "known or recently seen stations without a reading for more than 2 h", 0.0,
         "down", "Stations offline", "Посты без данных", "Деректерсіз бекеттер"),
    _kpi("stations_stuck", "count", "stations whose latest 4 readings of a pollutant are the same value", 0.0,
         "down", "Stations stuck", "Посты с залипшими значениями", "Мәні қатып қалған бекеттер"),
    _kpi("stations_by_category", "count", "stations per AQI category", None, "down",
         "Stations by AQI category", "Посты по категориям AQI", "AQI санаттары бойынша бекеттер"),
)

CITY = "city"
#: The per-station details in every scope (not a KPI row: the wall map reads it).
STATIONS = "air.stations"
#: Readings older than this before ``now`` are not read (the ПДКс.с. needs 24 h).
WINDOW = timedelta(hours=24)
#: A station without any reading for longer than this is offline.
OFFLINE_AFTER = timedelta(hours=2)
#: A series whose latest this many readings are equal is stuck.
STUCK_REPEATS = 4
#: Readings averaged over longer than this are not hourly data and are left out (but mark the station seen).
MAX_AVERAGING_S = 3600
#: 8-h means (CO, O3) need this many of their 8 hourly means (EPA's 75 % completeness).
EIGHT_HOUR_MIN = 6
#: 1-h sub-indices use the newest of this many latest complete hours (one late report is tolerated).
ONE_HOUR_LOOKBACK = 2

_HOUR_S = 3600
_POLLUTANTS: Mapping[str, Pollutant] = MappingProxyType({p.value: p for p in Pollutant})  # StrEnum: p == p.value


@dataclass(slots=True)
class StationAir:
    """What :func:`compute` works out for one station (``details()`` is its snapshot form)."""

    station_id: str
    name: str | None
    names: Mapping[str, str] | None
    lat: float | None
    lon: float | None
    district: str | None
    last_seen: datetime | None
    offline: bool
    stuck: tuple[str, ...]
    result: AqiResult | None
    nowcasts: dict[Pollutant, float]
    singles: dict[Pollutant, list[float]]
    daily_means: dict[Pollutant, float]

    def details(self, limits: Mapping[Pollutant, AirLimit]) -> dict[str, object]:
        """The station in the snapshot (``air.stations``)."""
        return {
            "station_id": self.station_id, "name": self.name, "names": self.names, "lat": self.lat, "lon": self.lon,
            "district": self.district,
            "aqi": None if self.result is None else self.result.aqi,
            "category": None if self.result is None else self.result.category.key,
            "dominant": None if self.result is None else self.result.dominant.value,
            "pm25": self.nowcasts.get(Pollutant.PM25), "pm10": self.nowcasts.get(Pollutant.PM10),
            "last_seen": None if self.last_seen is None else iso(self.last_seen),
            "offline": self.offline, "stuck": bool(self.stuck), "stuck_pollutants": list(self.stuck),
            "exceedances": {p.value: exceedances(p, v, limits=limits) for p, v in self.singles.items() if p in limits},
            "limit_multiple": {p.value: standard_index(p, v, limits=limits)
                               for p, v in self.singles.items() if p in limits and v},
        }


def compute(readings: Iterable[Mapping[str, object]], *, now: datetime, pack: CityPack | None = None,
            limits: Mapping[Pollutant, AirLimit] | None = None, window: timedelta = WINDOW,
            offline_after: timedelta = OFFLINE_AFTER, stuck_repeats: int = STUCK_REPEATS,
            table: AqiTable = AQI_2024) -> dict[str, dict[str, object]]:
    """Every air KPI per scope, with per-station details, from the recent readings.

    Args:
        readings: air readings (``AirReading.to_dict()`` shape: ``station_id``, ``parameter``,
            ``value`` in the canonical unit, ``observed_at`` = end of the averaging period,
            ``averaging_s``, ``lat``, ``lon``, optional ``station_name``); those observed in
            ``(now − window, now]`` count, in any order.
        now: the time of the snapshot (aware).
        pack: the city pack: its stations are listed even when silent (then offline), its
            ``district_at`` places stations in districts and its norms give the ПДК.
        limits: ПДК table; default the pack's ``norms.air_limits``, else :data:`DEFAULT_AIR_LIMITS`.
        window: how far back readings are read: 24 h gives the ПДКс.с. its day; longer windows
            only widen the exceedance counts, СИ and НП.
        offline_after: a station with no reading for longer than this is offline.
        stuck_repeats: a series whose latest this many readings are equal is stuck.
        table: the AQI table.

    How the numbers are made:

    * **Hourly means**: a reading ending at t belongs to the clock hour ending at t rounded up to
      the hour; the mean is weighted by ``averaging_s`` (three 20-min readings → their mean).
      Readings averaged over more than an hour are left out (they still mark the station seen).
      Hour 1 is the latest complete hour (ending at or before ``now``).
    * **AQI per station**: NowCast (12 h, 2 of the latest 3 hours) for PM2.5 and PM10; 8-h mean of
      hours 1–8 for CO and O3 (≥ 6 of 8 present); the newest of hours 1–2 for 1-h NO2, SO2 and
      O3; the 24-h mean (≥ 18 of 24 hours) for SO2 when its 1-h value is off the 1-h table. The
      AQI is the largest sub-index, its pollutant dominant.
    * **Per district and city: the worst station**, not the mean. The AQI is a warning scale (the
      largest sub-index, not an average of pollutants) and the EPA reports an area by its highest
      monitor: a mean of stations would dilute a hotspot that people near that post breathe, and
      would move when a clean post goes offline.
    * **ПДК**: single readings (each reading, not hourly means, averaged over ≤ 1 h) against
      ПДКм.р.: exceedance counts, СИ (largest single / ПДКм.р.), НП (largest share of one post's
      readings above it) and the pollution level from СИ and НП; the mean of the last 24 hourly
      means (≥ 18 present) against ПДКс.с.
    * **Offline**: no reading for more than ``offline_after`` (a pack station never seen in the
      window too). **Stuck**: the latest ``stuck_repeats`` readings of a pollutant are equal.
      Both are flags: the values still count (the operator decides whether to trust them).

    Returns:
        ``{scope: {kpi key: value}}`` with the keys of :data:`KPIS` plus :data:`STATIONS` (a
        list of station details: station_id, name, lat, lon, district, aqi, category, dominant,
        pm25 and pm10 NowCasts, last_seen, offline, stuck, stuck_pollutants, exceedances and
        limit_multiple per pollutant). Scopes: ``city`` and each district with a station.
        Missing data is None, never 0 (counts are 0).
    """
    limits = limits if limits is not None else (pack.norms.air_limits if pack is not None and pack.norms
                                                 else DEFAULT_AIR_LIMITS)
    now_s = now.timestamp()
    start_s = (now - window).timestamp()
    series: dict[str, dict[Pollutant, list[tuple[float, Decimal, int]]]] = {}
    seen: dict[str, float] = {}
    where: dict[str, tuple[float, float, float, str | None]] = {}  # station -> (t, lat, lon, name)
    for r in readings:
        t = _epoch(r["observed_at"])
        if not start_s < t <= now_s:
            continue
        station = str(r["station_id"])
        if t > seen.get(station, -math.inf):
            seen[station] = t
        if t >= where.get(station, (-math.inf,))[0]:
            name = r.get("station_name")
            where[station] = (t, float(r["lat"]), float(r["lon"]),  # type: ignore[arg-type]
                              None if name is None else str(name))
        averaging = int(r.get("averaging_s") or _HOUR_S)  # type: ignore[call-overload]
        if averaging > MAX_AVERAGING_S:
            continue
        pollutant = _POLLUTANTS.get(r["parameter"]) or Pollutant(r["parameter"])  # type: ignore[arg-type]
        series.setdefault(station, {}).setdefault(pollutant, []).append(
            (t, _decimal(r["value"]), averaging))  # type: ignore[arg-type]

    known = {s.id: s for s in pack.stations} if pack is not None else {}
    last_hour = math.floor(now_s / _HOUR_S) * _HOUR_S  # end of hour 1
    stations: list[StationAir] = []
    for station_id in sorted(set(known) | set(seen)):
        meta = known.get(station_id)
        t_lat_lon = where.get(station_id)
        lat, lon = (t_lat_lon[1], t_lat_lon[2]) if t_lat_lon else (meta.lat, meta.lon) if meta else (None, None)
        name = meta.names.en if meta is not None else (t_lat_lon[3] if t_lat_lon else None)
        district = None
        if pack is not None and lat is not None and lon is not None:
            found = pack.district_at(lat, lon)
            district = found.id if found is not None else None
        by_pollutant = series.get(station_id, {})
        hourly = {p: _hourly(points, last_hour) for p, points in by_pollutant.items()}
        nowcasts = {p: value for p in (Pollutant.PM25, Pollutant.PM10) if p in hourly
                    and (value := nowcast(hourly[p][:NOWCAST_HOURS], pollutant=p)) is not None}
        last = seen.get(station_id)
        stations.append(StationAir(
            station_id=station_id, name=name, names=None if meta is None else meta.names.as_dict(),
            lat=lat, lon=lon, district=district,
            last_seen=None if last is None else datetime.fromtimestamp(last, UTC),
            offline=last is None or now_s - last > offline_after.total_seconds(),
            stuck=tuple(p.value for p, points in sorted(by_pollutant.items()) if _stuck(points, stuck_repeats)),
            result=aqi(_aqi_inputs(hourly, nowcasts), table=table),
            nowcasts=nowcasts,
            singles={p: [float(v) for _, v, _ in points] for p, points in by_pollutant.items()},
            daily_means={p: float(m) for p, h in hourly.items()
                         if (m := _mean(h[:DAILY_HOURS], DAILY_MIN_HOURS)) is not None},
        ))

    scopes: dict[str, list[StationAir]] = {CITY: stations}
    for st in stations:
        if st.district is not None:
            scopes.setdefault(st.district, []).append(st)
    return {scope: _scope_values(members, limits) for scope, members in scopes.items()}


def _scope_values(stations: Sequence[StationAir], limits: Mapping[Pollutant, AirLimit]) -> dict[str, object]:
    rated = [s for s in stations if s.result is not None]
    # the worst station; on a tie the first in id order
    worst = max(rated, key=lambda s: s.result.aqi, default=None)  # type: ignore[union-attr]
    pollutants = sorted({p for s in stations for p in s.singles if p in limits}, key=lambda p: p.value)
    si = {p.value: standard_index(p, [v for s in stations for v in s.singles.get(p, ())], limits=limits)
          for p in pollutants}
    np_ = {p.value: highest_repeatability(p, {s.station_id: s.singles[p] for s in stations if p in s.singles},
                                          limits=limits) for p in pollutants}
    daily = {p.value: max(limit_multiple(p, s.daily_means[p], basis="daily", limits=limits)
                          for s in stations if p in s.daily_means)
             for p in pollutants if any(p in s.daily_means for s in stations)}
    counts = {p.value: sum(exceedances(p, s.singles.get(p, ()), limits=limits) for s in stations)
              for p in pollutants}
    si_max = max((v for v in si.values() if v is not None), default=None)
    np_max = max((v for v in np_.values() if v is not None), default=None)
    by_category = dict.fromkeys((c.key for c in CATEGORIES), 0)
    for s in rated:
        by_category[s.result.category.key] += 1  # type: ignore[union-attr]
    top = None if worst is None else worst.result
    return {
        "air.aqi": None if top is None else top.aqi,
        "air.aqi_category": None if top is None else top.category.key,
        "air.aqi_dominant": None if top is None else top.dominant.value,
        "air.aqi_station": None if worst is None else worst.station_id,
        "air.si": si_max,
        "air.si_by_pollutant": si,
        "air.np": np_max,
        "air.np_by_pollutant": np_,
        "air.pollution_level": None if si_max is None or np_max is None else int(pollution_level(si_max, np_max)),
        "air.daily_multiple": max(daily.values(), default=None),
        "air.daily_multiple_by_pollutant": daily,
        "air.exceedances": sum(counts.values()),
        "air.exceedances_by_pollutant": counts,
        "air.stations_reporting": sum(1 for s in stations if not s.offline),
        "air.stations_offline": sum(1 for s in stations if s.offline),
        "air.stations_stuck": sum(1 for s in stations if s.stuck),
        "air.stations_by_category": by_category,
        STATIONS: [s.details(limits) for s in stations],
    }


def _hourly(points: Sequence[tuple[float, Decimal, int]], last_hour: float) -> list[Decimal | None]:
    """Hourly means, newest first: index 0 is the hour ending at ``last_hour``; 24 hours."""
    sums: dict[int, tuple[Decimal, int]] = {}
    for t, value, averaging in points:
        back = int((last_hour - math.ceil(t / _HOUR_S) * _HOUR_S) // _HOUR_S)
        if 0 <= back < DAILY_HOURS:
            total, weight = sums.get(back, (Decimal(0), 0))
            sums[back] = (total + value * averaging, weight + averaging)
    with localcontext(_CONTEXT):
        return [None if (s := sums.get(i)) is None else s[0] / s[1] for i in range(DAILY_HOURS)]


def _aqi_inputs(hourly: Mapping[Pollutant, Sequence[Decimal | None]],
                nowcasts: Mapping[Pollutant, float]) -> dict[tuple[Pollutant, Averaging], Number | None]:
    """The concentrations the AQI takes, by (pollutant, averaging period), in the table's order of preference."""
    inputs: dict[tuple[Pollutant, Averaging], Number | None] = {
        (p, Averaging.H24): value for p, value in nowcasts.items()}
    for p in (Pollutant.CO, Pollutant.O3):
        if p in hourly:
            inputs[(p, Averaging.H8)] = _mean(hourly[p][:8], EIGHT_HOUR_MIN)
    for p in (Pollutant.NO2, Pollutant.SO2, Pollutant.O3):
        if p in hourly:
            inputs[(p, Averaging.H1)] = next((c for c in hourly[p][:ONE_HOUR_LOOKBACK] if c is not None), None)
    if Pollutant.SO2 in hourly:
        # the 24-h row only starts at 305 ppb, so it never outranks a defined 1-h SO2 sub-index
        inputs[(Pollutant.SO2, Averaging.H24)] = _mean(hourly[Pollutant.SO2][:DAILY_HOURS], DAILY_MIN_HOURS)
    return inputs


def _mean(values: Sequence[Decimal | None], minimum: int) -> Decimal | None:
    present = [v for v in values if v is not None]
    if len(present) < minimum:
        return None
    with localcontext(_CONTEXT):
        return sum(present, Decimal(0)) / len(present)


def _stuck(points: Sequence[tuple[float, Decimal, int]], repeats: int) -> bool:
    if len(points) < repeats:
        return False
    latest = sorted(points, key=lambda p: p[0])[-repeats:]
    return len({value for _, value, _ in latest}) == 1


def _epoch(value: object) -> float:
    """Epoch seconds of an ISO 8601 string with an offset or an aware datetime."""
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if t.tzinfo is None:
        raise ValueError(f"observed_at {value!r} has no UTC offset")
    return t.timestamp()
