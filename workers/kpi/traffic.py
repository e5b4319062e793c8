"""Road traffic KPIs: city score against its baseline, congested segments, speed bands.

Pure functions, no I/O, no clock: ``now`` and the city's time zone are passed in. Inputs are
the dicts the streams and latest stores hold (``TrafficScore.to_dict()``,
``TrafficFlow.to_dict()``); times are ISO 8601 strings with an offset or aware datetimes.

The score (Yandex "баллы пробок", 2GIS) is an ordinal 0–10 series that is not comparable
across providers, so every score KPI is a ``{provider: value}`` mapping and the baseline is
kept per provider: the median score of each (provider, day type, local time slot) cell, with
its MAD for anomaly detection (DOMAIN.md 3.5). Segment KPIs use the speed ratio
``speed / free flow`` and TomTom-like bands (DOMAIN.md 3.3).

Empty results: per-provider KPIs are empty dicts (no provider reported), a provider without a
baseline cell gets None; the congested count is 0, the median ratio and band shares None (no
segment with a speed and a free-flow speed).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import partial
from types import MappingProxyType
from typing import Literal

from workers.kpi.definitions import KpiDefinition, define
from workers.kpi.stats import percentile

CITY = "city"
#: A score or segment older than this before ``now`` is not current (scores refresh every ~2 min).
MAX_AGE = timedelta(minutes=15)
#: A segment is congested below this speed ratio (or when its ``congested`` flag is true).
CONGESTED_RATIO = 0.5
#: Speed-ratio bands, TomTom-like: (name, lower bound inclusive); the last band is open above.
BANDS: tuple[tuple[str, float], ...] = (
    ("red", 0.0), ("orange", 0.6), ("yellow", 0.7), ("light_green", 0.8), ("green", 0.9))

DayType = Literal["weekday", "saturday", "sunday"]


_kpi = partial(define, "traffic")


KPIS: tuple[KpiDefinition, ...] = (
    _kpi("score", "score", "newest city score (0–10) per provider observed in (now − 15 min, now]", None, "down",
         "Traffic score", "Баллы пробок", "Кептеліс балы"),
    _kpi("score_baseline", "score", "median score of the provider in this day type (weekday / Saturday / "
         "Sunday) and local 15-minute slot over the history", None, "down",
         "Usual score for this time", "Обычный балл в это время", "Осы уақыттағы әдеттегі балл"),
    _kpi("score_vs_baseline", "score", "score − baseline, per provider", 0.0, "down",
         "Score above usual", "Отклонение от обычного балла", "Әдеттегі балдан ауытқу"),
    _kpi("segments_congested", "count", "current segments with speed / free-flow speed < 0.5 or congested = true",
         0.0, "down", "Congested segments", "Участки с заторами", "Кептеліс учаскелері"),
    _kpi("speed_ratio_median", "ratio", "median over current segments of speed / free-flow speed", None, "up",
         "Median speed to free flow", "Медиана скорости к свободной", "Еркін жылдамдыққа қатынастың медианасы"),
    _kpi("speed_bands", "%", "100 × segments per band of speed / free-flow speed / segments with both: "
         "red < 0.6, orange 0.6–0.7, yellow 0.7–0.8, light green 0.8–0.9, green ≥ 0.9", None, "up",
         "Segments by speed band", "Участки по скорости", "Жылдамдық бойынша учаскелер"),
)


@dataclass(frozen=True, slots=True)
class Cell:
    """The baseline of one (provider, day type, slot): median score, MAD and sample size."""

    median: float
    mad: float
    n: int


@dataclass(frozen=True, slots=True)
class Baseline:
    """Robust score baseline per (provider, day type, local time slot).

    Attributes:
        zone: the city's time zone (day types and slots are local).
        slot_minutes: slot length; slot ``k`` covers local minutes ``[k·len, (k+1)·len)``.
        cells: ``(provider, day type, slot) -> Cell``.
    """

    zone: tzinfo
    slot_minutes: int
    cells: Mapping[tuple[str, DayType, int], Cell]

    def key(self, t: datetime) -> tuple[DayType, int]:
        """The (day type, slot) of an aware time, in local time."""
        local = t.astimezone(self.zone)
        return day_type(local), (local.hour * 60 + local.minute) // self.slot_minutes

    def cell(self, t: datetime, provider: str | None = None) -> Cell | None:
        """The cell of ``t`` for ``provider``, or None when the history has no score there.

        Args:
            t: an aware time.
            provider: may be omitted when the baseline holds one provider only.

        Raises:
            ValueError: ``provider`` omitted but the baseline holds several providers.
        """
        if provider is None:
            providers = {p for p, _, _ in self.cells}
            if len(providers) > 1:
                raise ValueError(f"name the provider: the baseline holds {sorted(providers)}")
            if not providers:
                return None
            provider = providers.pop()
        return self.cells.get((provider, *self.key(t)))

    def expected(self, t: datetime, provider: str | None = None) -> float | None:
        """The baseline (median) score at ``t``, or None without history for that cell."""
        cell = self.cell(t, provider)
        return None if cell is None else cell.median


def day_type(local: datetime) -> DayType:
    """``weekday`` (Monday–Friday), ``saturday`` or ``sunday`` of a local time."""
    return ("weekday", "saturday", "sunday")[max(local.weekday() - 4, 0)]


def build_baseline(scores: Iterable[Mapping[str, object]], zone: tzinfo, slot_minutes: int = 15) -> Baseline:
    """Median score and MAD per (provider, day type, local slot) from a history of score records.

    Args:
        scores: score records (``provider``, ``score``, ``observed_at``); records of an
            ``area_id`` other than ``city`` are left out.
        zone: the city's time zone.
        slot_minutes: slot length, a divisor of 1440.

    Raises:
        ValueError: ``slot_minutes`` does not divide a day.
    """
    if slot_minutes <= 0 or 1440 % slot_minutes:
        raise ValueError(f"slot_minutes must divide 1440, got {slot_minutes}")
    empty = Baseline(zone=zone, slot_minutes=slot_minutes, cells={})
    groups: dict[tuple[str, DayType, int], list[float]] = defaultdict(list)
    for record in _city(scores):
        groups[(str(record["provider"]), *empty.key(_time(record)))].append(float(record["score"]))
    cells = {key: _cell(values) for key, values in groups.items()}
    return Baseline(zone=zone, slot_minutes=slot_minutes, cells=MappingProxyType(cells))


def _cell(values: list[float]) -> Cell:
    median = percentile(values, 50)
    assert median is not None  # groups are never empty
    mad = percentile([abs(v - median) for v in values], 50)
    assert mad is not None
    return Cell(median=median, mad=mad, n=len(values))


def compute(scores: Iterable[Mapping[str, object]], segments: Iterable[Mapping[str, object]], *,
            baseline: Baseline, now: datetime, zone: tzinfo) -> dict[str, dict[str, object]]:
    """Every traffic KPI for the city.

    Args:
        scores: score records (latest or history); per provider the newest one observed in
            ``(now − MAX_AGE, now]`` is the current score.
        segments: latest segment records; those observed in ``(now − MAX_AGE, now]`` count.
        baseline: from :func:`build_baseline`.
        now: the time the KPIs are computed at (aware).
        zone: the city's time zone (the baseline cell is that of ``now``, local).

    Returns:
        ``{"city": {kpi key: value}}``.

    Raises:
        ValueError: ``zone`` and the baseline's zone disagree at ``now``.
    """
    if now.astimezone(zone).utcoffset() != now.astimezone(baseline.zone).utcoffset():
        raise ValueError(f"the baseline was built for {baseline.zone}, not {zone}")
    start = now - MAX_AGE
    current: dict[str, tuple[datetime, float]] = {}
    for record in _city(scores):
        t, provider = _time(record), str(record["provider"])
        if start < t <= now and (provider not in current or t >= current[provider][0]):
            current[provider] = (t, float(record["score"]))
    score = {p: current[p][1] for p in sorted(current)}
    expected = {p: baseline.expected(now, p) for p in score}
    fresh = [s for s in segments if start < _time(s) <= now]
    ratios = [r for s in fresh if (r := _ratio(s)) is not None]
    congested = sum(1 for s in fresh if s.get("congested") is True or ((r := _ratio(s)) is not None
                                                                       and r < CONGESTED_RATIO))
    return {CITY: {
        "traffic.score": score,
        "traffic.score_baseline": expected,
        "traffic.score_vs_baseline": {p: None if (e := expected[p]) is None else v - e for p, v in score.items()},
        "traffic.segments_congested": congested,
        "traffic.speed_ratio_median": percentile(ratios, 50),
        "traffic.speed_bands": _bands(ratios),
    }}


def band(ratio: float) -> str:
    """The band name of a speed ratio (red < 0.6 ≤ orange < 0.7 ≤ yellow < 0.8 ≤ light green < 0.9 ≤ green)."""
    name = BANDS[0][0]
    for candidate, lower in BANDS:
        if ratio >= lower:
            name = candidate
    return name


def _bands(ratios: list[float]) -> dict[str, float] | None:
    if not ratios:
        return None
    counts = dict.fromkeys((name for name, _ in BANDS), 0)
    for ratio in ratios:
        counts[band(ratio)] += 1
    return {name: 100 * count / len(ratios) for name, count in counts.items()}


def _ratio(segment: Mapping[str, object]) -> float | None:
    """``speed_kmh / free_flow_kmh``, or None when either is missing."""
    speed, free = segment.get("speed_kmh"), segment.get("free_flow_kmh")
    if speed is None or not free:
        return None
    return float(speed) / float(free)


def _city(scores: Iterable[Mapping[str, object]]) -> Iterable[Mapping[str, object]]:
    return (r for r in scores if r.get("area_id", CITY) == CITY)


def _time(record: Mapping[str, object]) -> datetime:
    """``observed_at`` (ISO string with an offset, or an aware datetime)."""
    value = record["observed_at"]
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
