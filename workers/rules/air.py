"""Air-quality detectors: a station's AQI and Kazakh limit multiples, and a city-wide particulate episode.

* :class:`AirQuality` (``air.aqi``): per station, the US EPA AQI (NowCast for PM2.5 and PM10,
  hourly, 8-hour and 24-hour means for the gases) and the multiples of the Kazakh maximum single
  limit (ПДКм.р.), with every number computed by :mod:`workers.kpi.air`.
* :class:`AirEpisode` (``air.pm_rise``): the median over the stations of each one's PM2.5 level
  relative to its own level a few hours earlier (corrected by its learnt daily profile once it
  has one) jumps: a city-wide particulate episode (an inversion), one event keyed ``city``.

Severity of :class:`AirQuality`, from ``DOMAIN.md`` 1.1 and 1.4:

* ADVISORY: AQI ≥ 151 (Unhealthy: everyone may feel effects), or the Kazakh level "high"
  (III: СИ > 4 in the RD 52.04.667 gradation). Shown on the map, no incident.
* WARNING: the Kazakh level "very high" (IV: СИ > 10, a single concentration above ten
  ПДКм.р.), the level at which Kazhydromet reports high pollution for a post.
* CRITICAL: СИ > 20, Kazhydromet's "extremely high pollution" (more than 20 ПДК).

The AQI alone opens no incident by default (``warning_aqi`` 0). A station's NowCast AQI of
201–300, and even above 300, is what an Almaty winter night produces without any incident: the
simulator's quiet days reach 204 (seed 2) and 433 (seed 3, a stagnant night, PM2.5 near
300 µg/m³ at a basin post), and a per-station incident there would fire on most bad-weather
nights with nothing for an operator to act on. A city-wide episode is :class:`AirEpisode`'s
job. Set ``warning_aqi`` (e.g. 301) to make the AQI open incidents.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.schemas import iso
from core.units import CANONICAL_UNIT, Pollutant
from workers.kpi import air as kpi
from workers.rules.base import ADVISORY, CRITICAL, WARNING, Detector, Episodes, Event, RuleContext, parse_time

HOUR = timedelta(hours=1)


def _hour_of(observed: datetime, averaging_s: float) -> datetime:
    """The clock hour (UTC) a reading belongs to: the hour of its averaging window's middle."""
    middle = observed - timedelta(seconds=min(float(averaging_s or 3600), 3600.0) / 2)
    return middle.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _pollutant(name: Any) -> Pollutant | None:
    try:
        return Pollutant(str(name))
    except ValueError:
        return None


@dataclass(slots=True)
class _Series:
    """Hourly sums of one pollutant at one station, and its latest single reading."""

    hours: dict[datetime, list[float]] = field(default_factory=dict)
    latest: float | None = None
    latest_at: datetime | None = None

    def add(self, observed: datetime, averaging_s: float, value: float, keep_hours: int) -> None:
        hour = _hour_of(observed, averaging_s)
        cell = self.hours.setdefault(hour, [0.0, 0])
        cell[0] += value
        cell[1] += 1
        if self.latest_at is None or observed >= self.latest_at:
            self.latest, self.latest_at = value, observed
        horizon = hour - timedelta(hours=keep_hours)
        for old in [h for h in self.hours if h <= horizon]:
            del self.hours[old]

    def hourly(self, newest: datetime, count: int) -> list[float | None]:
        """Hourly means, newest first, from the hour ``newest`` back ``count`` hours (None: missing)."""
        out: list[float | None] = []
        for i in range(count):
            cell = self.hours.get(newest - i * HOUR)
            out.append(cell[0] / cell[1] if cell else None)
        return out


def _mean(values: Sequence[float | None], need: int) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if len(present) >= need else None


@dataclass(slots=True)
class _AqStation:
    series: dict[Pollutant, _Series] = field(default_factory=dict)
    lat: float | None = None
    lon: float | None = None
    district: str | None = None
    last_seen: datetime | None = None


class AirQuality(Detector):
    """Per station: the AQI (NowCast) and ПДК multiples; ADVISORY / WARNING / CRITICAL as the module says.

    The AQI is evaluated whenever a station's readings arrive, over the hour of its newest
    reading (the current hour counts with the readings it has so far, so a 20-minute post is
    seen within 20 minutes): PM2.5 and PM10 by the NowCast of up to 12 hourly means, O3 and
    CO by the 8-hour mean (at least ``min_hours_8h`` of the 8 hours), O3, NO2 and SO2 by the
    latest hourly mean, SO2 also by the 24-hour mean when 18 of 24 hours are there. The
    limit multiples divide each pollutant's latest single (20–30 min) reading by its ПДКм.р.
    (the pack's norms, else the defaults of :mod:`workers.kpi.air`); СИ is the largest.
    An episode closes after ``clear_after_s`` below every threshold, or when the station has
    sent nothing for ``stale_after_s``.
    """

    name = "air_quality"
    feeds = frozenset({"air"})
    signal = "air.aqi"

    @dataclass(frozen=True)
    class Params:
        """AQI and СИ thresholds per severity (AQI inclusive, СИ strictly above)."""

        advisory_aqi: int = 151
        warning_aqi: int = 0
        aqi_hysteresis: int = 10
        advisory_si: float = 4.0
        warning_si: float = 10.0
        critical_si: float = 20.0
        min_hours_8h: int = 6
        clear_after_s: float = 3600.0
        update_every_s: float = 3600.0
        stale_after_s: float = 3 * 3600.0

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        self.stations: dict[str, _AqStation] = {}
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(seconds=params.clear_after_s),
                                 update_every=timedelta(seconds=params.update_every_s))
        pack = ctx.pack
        norms = getattr(pack, "norms", None) if pack is not None else None
        self.limits = dict(norms.air_limits) if norms is not None and norms.air_limits else dict(kpi.DEFAULT_AIR_LIMITS)
        self._district_of = {s.id: s.district_id for s in getattr(pack, "stations", ())} if pack is not None else {}

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        touched: list[str] = []
        for record in records:
            p = _pollutant(record.get("parameter"))
            station_id, value = record.get("station_id"), record.get("value")
            if p is None or not station_id or value is None or not record.get("observed_at"):
                continue
            value = float(value)
            if not math.isfinite(value) or value < 0:
                continue
            st = self.stations.get(station_id)
            if st is None:
                st = self.stations[station_id] = _AqStation()
            if record.get("lat") is not None:
                st.lat, st.lon = record["lat"], record["lon"]
            if st.district is None:
                st.district = self._district_of.get(station_id)
                if st.district is None and st.lat is not None and self.ctx.pack is not None:
                    d = self.ctx.pack.district_at(st.lat, st.lon)
                    st.district = d.id if d else None
            st.last_seen = now
            st.series.setdefault(p, _Series()).add(parse_time(record["observed_at"]),
                                                   record.get("averaging_s") or 3600, value, keep_hours=26)
            if station_id not in touched:
                touched.append(station_id)
        out = []
        for station_id in touched:
            event = self._evaluate(station_id, now)
            if event is not None:
                out.append(event)
        return out + self._close_stale(now, set(touched))

    def tick(self, now: datetime) -> list[Event]:
        return self._close_stale(now, set())

    def _close_stale(self, now: datetime, skip: set[str]) -> list[Event]:
        out = []
        for station_id in list(self.episodes.active):
            st = self.stations.get(station_id)
            if station_id in skip or st is None or st.last_seen is None:
                continue
            if (now - st.last_seen).total_seconds() >= self.params.stale_after_s:
                # last_true <= last_seen, so with stale_after >= clear_after this closes it
                event = self.episodes.report(station_id, False, now)
                if event is not None:
                    out.append(event)
        return out

    def assess(self, station_id: str) -> dict[str, Any] | None:
        """The station's AQI and limit multiples now (the event's evidence), or None without data."""
        st = self.stations.get(station_id)
        if st is None:
            return None
        readings: dict[tuple[Pollutant, str], float | None] = {}
        used: dict[str, float] = {}
        for p, series in st.series.items():
            newest = max(series.hours) if series.hours else None
            if newest is None:
                continue
            if p in (Pollutant.PM25, Pollutant.PM10):
                value = kpi.nowcast(series.hourly(newest, kpi.NOWCAST_HOURS), pollutant=p)
                readings[(p, "24h")] = value
            if p in (Pollutant.O3, Pollutant.CO):
                readings[(p, "8h")] = _mean(series.hourly(newest, 8), self.params.min_hours_8h)
            if p in (Pollutant.O3, Pollutant.NO2, Pollutant.SO2):
                readings[(p, "1h")] = series.hourly(newest, 1)[0]
            if p is Pollutant.SO2:
                readings[(p, "24h")] = _mean(series.hourly(newest, 24), kpi.DAILY_MIN_HOURS)
            for (rp, averaging), value in readings.items():
                if rp is p and value is not None:
                    used[f"{p.value}/{averaging}"] = value
        result = kpi.aqi(readings)
        multiples = {}
        for p, series in st.series.items():
            if series.latest is not None and p in self.limits:
                multiples[p.value] = round(kpi.limit_multiple(p, series.latest, limits=self.limits), 3)
        if result is None and not multiples:
            return None
        si_pollutant = max(multiples, key=lambda k: multiples[k]) if multiples else None
        si = multiples[si_pollutant] if si_pollutant else 0.0
        level = kpi.pollution_level(si, 0.0)
        out: dict[str, Any] = {
            "aqi": None, "category": None, "category_name": None, "dominant": None, "averaging": None,
            "concentration": None, "unit": None,
            "pdk_multiple": None, "limit_multiples": multiples, "si": round(si, 3), "si_pollutant": si_pollutant,
            "pollution_level": level.name.lower(),
        }
        if result is not None:
            dominant, averaging = max(result.sub_indices.items(), key=lambda item: item[1])[0]
            out.update({
                "aqi": result.aqi, "category": result.category.key, "category_name": result.category.en,
                "dominant": result.dominant.value, "averaging": averaging.value,
                "concentration": round(used[f"{dominant.value}/{averaging.value}"], 4),
                "unit": _unit(dominant), "pdk_multiple": multiples.get(result.dominant.value),
                "sub_indices": {f"{p.value}/{a.value}": i for (p, a), i in result.sub_indices.items()},
            })
        return out

    def severity(self, assessment: Mapping[str, Any]) -> int:
        """The severity an assessment earns (0: none)."""
        p = self.params
        aqi, si = assessment.get("aqi") or 0, assessment.get("si") or 0.0
        if si > p.critical_si:
            return CRITICAL
        if (p.warning_aqi > 0 and aqi >= p.warning_aqi) or si > p.warning_si:
            return WARNING
        if aqi >= p.advisory_aqi or si > p.advisory_si:
            return ADVISORY
        return 0

    def _evaluate(self, station_id: str, now: datetime) -> Event | None:
        assessment = self.assess(station_id)
        if assessment is None:
            return None
        severity = self.severity(assessment)
        st = self.stations[station_id]
        active = severity > 0
        if not active and station_id in self.episodes.active:
            # hysteresis: an open episode lasts while the AQI stays within aqi_hysteresis of its threshold
            active = (assessment.get("aqi") or 0) >= self.params.advisory_aqi - self.params.aqi_hysteresis
        evidence = {"station_id": station_id, **assessment,
                    "thresholds": {"advisory_aqi": self.params.advisory_aqi, "warning_aqi": self.params.warning_aqi,
                                   "advisory_si": self.params.advisory_si, "warning_si": self.params.warning_si,
                                   "critical_si": self.params.critical_si}}
        return self.episodes.report(station_id, active, now, severity=max(severity, ADVISORY),
                                    district=st.district, lat=st.lat, lon=st.lon, evidence=evidence)


def _unit(p: Pollutant) -> str:
    return CANONICAL_UNIT[p]


# ---------------------------------------------------------------------------------------
# city-wide particulate episode


@dataclass(slots=True)
class _PmStation:
    values: deque[tuple[datetime, float]] = field(default_factory=deque)
    profile: dict[int, float] = field(default_factory=dict)
    """Local hour -> EWMA over days of the log of that hour's mean (the learnt daily profile)."""
    profile_days: dict[int, int] = field(default_factory=dict)
    hour_sum: dict[datetime, list[float]] = field(default_factory=dict)


class AirEpisode(Detector):
    """A city-wide particulate episode: PM2.5 jumps at most stations at once, relative to each one's own baseline.

    For each station, its *level* is the median of its PM2.5 readings over the last
    ``level_window_s`` (1 h: a lone spike does not count) and its *reference* the median over
    the ``reference_window_s`` (2 h) that ends ``lookback_s`` (3 h) before: how the same
    instrument read just before. Once the station has a learnt daily profile (an EWMA over days
    of each local hour's log mean, used from ``profile_min_days`` days on), the reference is
    moved by the profile's expected change between the two hours, so the ordinary evening
    rise is not mistaken for an episode. The city *rise* is the median over the stations
    (at least ``min_stations``) of level ÷ reference.

    The episode opens (WARNING, key ``city``) when the rise reaches ``rise_factor`` (2.0). On
    the simulator's quiet days the rise peaks at 1.36, 1.65 and 1.52 (seeds 1, 2, 3: the
    afternoon-to-evening climb plus the weather); its smog scenario (×3.2 with a 150-minute
    ramp) crosses 2.0 about 105–125 minutes after its onset. The references are then frozen at
    their pre-episode values and the episode lasts while the rise against them stays at or
    above ``stay_factor``; it closes ``clear_after_s`` after it fell below. Onset = the end of
    the reference window (``lookback_s`` before the reading that crossed).

    Without history (a fresh start) there is no profile and the reference is simply the
    station's own level 3 hours earlier; the threshold is set so that the ordinary daily
    cycle alone (about ×1.3 over 3 hours in Almaty's winter evening) cannot reach it.
    """

    name = "air_episode"
    feeds = frozenset({"air"})
    signal = "air.pm_rise"

    @dataclass(frozen=True)
    class Params:
        """Rise of the city median of station level ÷ own earlier reference."""

        parameter: str = "pm25"
        rise_factor: float = 2.0
        stay_factor: float = 1.6
        level_window_s: float = 3600.0
        reference_window_s: float = 7200.0
        lookback_s: float = 3 * 3600.0
        min_readings: int = 2
        min_stations: int = 3
        min_station_share: float = 0.5
        profile_min_days: int = 3
        profile_alpha: float = 0.3
        profile_max_correction: float = 1.6
        clear_after_s: float = 3600.0
        update_every_s: float = 3600.0
        timezone: str = ""

    def __init__(self, params: Any, ctx: RuleContext) -> None:
        super().__init__(params, ctx)
        self.stations: dict[str, _PmStation] = {}
        self.episodes = Episodes(self.name, self.signal, clear_after=timedelta(seconds=params.clear_after_s),
                                 update_every=timedelta(seconds=params.update_every_s))
        self.frozen: dict[str, float] | None = None
        self.peak = 0.0
        zone = params.timezone or (getattr(ctx.pack, "timezone", None) if ctx.pack is not None else None) or "UTC"
        self.zone = ZoneInfo(zone)
        self.latest: datetime | None = None
        self.onset: datetime | None = None

    # -- state ------------------------------------------------------------------------------

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        p = self.params
        newest = None
        keep = timedelta(seconds=p.lookback_s + p.reference_window_s + p.level_window_s)
        for record in records:
            if str(record.get("parameter")) != p.parameter or record.get("value") is None:
                continue
            station_id = record.get("station_id")
            if not station_id or not record.get("observed_at"):
                continue
            observed = parse_time(record["observed_at"])
            value = float(record["value"])
            if not math.isfinite(value) or value < 0:
                continue
            st = self.stations.setdefault(station_id, _PmStation())
            if st.values and observed <= st.values[-1][0]:
                continue
            st.values.append((observed, value))
            while st.values and st.values[0][0] < observed - keep:
                st.values.popleft()
            self._learn_profile(st, observed, value, record.get("averaging_s") or 3600)
            newest = observed if newest is None or observed > newest else newest
        if newest is None:
            return []
        self.latest = newest if self.latest is None else max(self.latest, newest)
        event = self._evaluate(self.latest, now)
        return [event] if event is not None else []

    def _learn_profile(self, st: _PmStation, observed: datetime, value: float, averaging_s: float) -> None:
        """Fold each finished local hour's mean into the station's hour-of-day profile."""
        hour = _hour_of(observed, averaging_s)
        cell = st.hour_sum.setdefault(hour, [0.0, 0])
        cell[0] += value
        cell[1] += 1
        for done in [h for h in st.hour_sum if h < hour]:
            total, n = st.hour_sum.pop(done)
            mean = total / n
            if mean <= 0:
                continue
            local_hour = done.astimezone(self.zone).hour
            log_mean = math.log(mean)
            if local_hour in st.profile:
                a = self.params.profile_alpha
                st.profile[local_hour] = (1 - a) * st.profile[local_hour] + a * log_mean
            else:
                st.profile[local_hour] = log_mean
            st.profile_days[local_hour] = st.profile_days.get(local_hour, 0) + 1

    def _expected_change(self, st: _PmStation, now_t: datetime, ref_t: datetime) -> float:
        """The profile's expected ratio between the hour of ``now_t`` and the hour of ``ref_t`` (1 if unknown)."""
        p = self.params
        h1, h0 = now_t.astimezone(self.zone).hour, ref_t.astimezone(self.zone).hour
        if min(st.profile_days.get(h1, 0), st.profile_days.get(h0, 0)) < p.profile_min_days:
            return 1.0
        ratio = math.exp(st.profile[h1] - st.profile[h0])
        return min(p.profile_max_correction, max(1 / p.profile_max_correction, ratio))

    # -- evaluation -------------------------------------------------------------------------

    def _window_median(self, st: _PmStation, lo: datetime, hi: datetime) -> float | None:
        values = [v for t, v in st.values if lo < t <= hi]
        return statistics.median(values) if len(values) >= self.params.min_readings else None

    def _evaluate(self, t: datetime, now: datetime) -> Event | None:
        p = self.params
        level_lo = t - timedelta(seconds=p.level_window_s)
        ref_hi = t - timedelta(seconds=p.lookback_s)
        ref_lo = ref_hi - timedelta(seconds=p.reference_window_s)
        ref_mid = ref_hi - timedelta(seconds=p.reference_window_s / 2)
        levels: dict[str, float] = {}
        references: dict[str, float] = {}
        for station_id, st in self.stations.items():
            level = self._window_median(st, level_lo, t)
            if level is None:
                continue
            levels[station_id] = level
            if self.frozen is not None:
                if station_id in self.frozen:
                    references[station_id] = self.frozen[station_id]
                continue
            ref = self._window_median(st, ref_lo, ref_hi)
            if ref is not None and ref > 0:
                references[station_id] = ref * self._expected_change(st, t, ref_mid)
        ratios = {s: levels[s] / references[s] for s in levels if s in references and references[s] > 0}
        needed = max(p.min_stations, math.ceil(p.min_station_share * len(self.stations)))
        if len(ratios) < needed:
            if self.frozen is None:
                return None
            return self._report(False, t, now, ratios, levels, references)
        rise = statistics.median(ratios.values())
        active = rise >= (p.stay_factor if self.frozen is not None else p.rise_factor)
        return self._report(active, t, now, ratios, levels, references, rise)

    def _report(self, active: bool, t: datetime, now: datetime, ratios: Mapping[str, float],
                levels: Mapping[str, float], references: Mapping[str, float], rise: float | None = None
                ) -> Event | None:
        p = self.params
        opening = active and self.frozen is None
        if opening:
            self.frozen = dict(references)
            self.peak = 0.0
            self.onset = t - timedelta(seconds=p.lookback_s)
        if active and rise is not None:
            self.peak = max(self.peak, rise)
        evidence = {
            "parameter": p.parameter, "rise": None if rise is None else round(rise, 3),
            "peak_rise": round(self.peak, 3),
            "stations": len(ratios), "stations_rising": sum(1 for r in ratios.values() if r >= p.rise_factor),
            "median_level": round(statistics.median(levels[s] for s in ratios), 1) if ratios else None,
            "median_reference": round(statistics.median(references[s] for s in ratios), 1) if ratios else None,
            "ratios": {s: round(r, 2) for s, r in sorted(ratios.items())},
            "rise_factor": p.rise_factor, "stay_factor": p.stay_factor, "window_end": iso(t),
            "baseline": "frozen at onset" if self.frozen is not None and not opening else "level 3 h earlier",
        }
        center = getattr(self.ctx.pack, "center", (None, None)) if self.ctx.pack is not None else (None, None)
        event = self.episodes.report("city", active, now, onset=self.onset, severity=WARNING,
                                     lat=center[0], lon=center[1], evidence=evidence)
        if "city" not in self.episodes.active:
            self.frozen = None
        return event
