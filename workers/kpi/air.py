"""Air-quality indices: the US EPA AQI (2024 table), the NowCast, and the Kazakh limits (ПДК).

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
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal, localcontext
from enum import IntEnum, StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Literal

from core.citypack import AirLimit
from core.units import Pollutant, to_canonical

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
