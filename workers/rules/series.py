"""City-level series against their own seasonal baseline: the seasonal detector, live.

Three series, each cut into fixed bins and fed bin by bin to a
:class:`~workers.rules.seasonal.SeasonalDetector` with the *same defaults that score 81.4 on NAB*
(``bench/nab_run.py``): the city traffic score of each provider (mean per bin), new ambulance
calls per bin, new appeals per bin. A bin closes when a record of a later bin arrives or when
``close_after`` has passed its end; empty count bins are zeros (a quiet night is data).

An alarm is an ADVISORY event by default (``severity``): a city-wide volume or score out of its
seasonal pattern is context for the operators (and joins a situation it fits), not by itself an
incident. The detector needs a day of history before it may alarm (its warm-up) and learns its
weekly pattern over weeks, so a freshly started center is quiet here at first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from workers.rules import seasonal
from workers.rules.base import ADVISORY, Detector, Event, parse_time

_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday; bins are aligned to whole multiples from it


@dataclass
class _Series:
    signal: str
    key: str
    bin_s: int
    count: bool
    detector: seasonal.SeasonalDetector
    start: float | None = None  # epoch s of the open bin
    total: float = 0.0
    n: int = 0


class SeriesAnomaly(Detector):
    """Seasonal anomalies of the city's traffic score, call volume and appeal volume."""

    name = "series_anomaly"
    feeds = frozenset({"traffic", "ambulance", "appeals"})

    @dataclass(frozen=True)
    class Params:
        """Bin widths per series, when an open bin closes, the severity of an alarm."""

        traffic_bin_min: int = 15
        calls_bin_min: int = 15
        appeals_bin_min: int = 60
        close_after_min: float = 5.0
        severity: int = ADVISORY
        remember_ids_h: float = 48.0

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__(params, ctx)
        self.series: dict[str, _Series] = {}
        self._seen: dict[str, float] = {}  # call / appeal id -> first seen (epoch s)
        self._last_prune = 0.0

    def _get(self, key: str, signal: str, bin_min: int, count: bool) -> _Series:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series(signal=signal, key=key, bin_s=bin_min * 60, count=count,
                                           detector=seasonal.SeasonalDetector())
        return s

    def observe(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        p = self.params
        out: list[Event] = []
        for r in records:
            kind = r.get("kind")
            if kind == "scores":
                s = self._get(f"traffic:{r.get('provider')}", "traffic.city_score", p.traffic_bin_min, False)
                out += self._add(s, parse_time(r["observed_at"]).timestamp(), float(r["score"]))
            elif kind == "calls":
                received = (r.get("times") or {}).get("call_received")
                if received and self._first(f"c:{r['call_id']}", received):
                    s = self._get("ambulance:calls", "ambulance.volume", p.calls_bin_min, True)
                    out += self._add(s, parse_time(received).timestamp(), 1.0)
            elif kind == "requests":
                requested = r.get("requested_at")
                if requested and self._first(f"a:{r['request_id']}", requested):
                    s = self._get("appeals:new", "appeals.volume", p.appeals_bin_min, True)
                    out += self._add(s, parse_time(requested).timestamp(), 1.0)
        out += self.tick(now)
        return out

    def tick(self, now: datetime) -> list[Event]:
        out: list[Event] = []
        t = now.timestamp()
        grace = self.params.close_after_min * 60
        for s in self.series.values():
            while s.start is not None and t >= s.start + s.bin_s + grace:
                out += self._close(s, s.start + s.bin_s)
        if t - self._last_prune > 3600:
            self._last_prune = t
            cutoff = t - self.params.remember_ids_h * 3600
            self._seen = {k: v for k, v in self._seen.items() if v >= cutoff}
        return out

    def _first(self, key: str, when: str) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = parse_time(when).timestamp()
        return True

    def _add(self, s: _Series, t: float, value: float) -> list[Event]:
        start = t - (t - _EPOCH.timestamp()) % s.bin_s
        out: list[Event] = []
        if s.start is None:
            s.start = start
        if start < s.start:
            return out  # a late record of a bin already judged
        while start > s.start:
            out += self._close(s, s.start + s.bin_s)
        s.total += value
        s.n += 1
        return out

    def _close(self, s: _Series, next_start: float) -> list[Event]:
        """Judge the open bin, open the next one (empty count bins are judged as zeros on the way)."""
        assert s.start is not None
        value = s.total if s.count else (s.total / s.n if s.n else None)
        bin_start = datetime.fromtimestamp(s.start, _EPOCH.tzinfo)
        s.start, s.total, s.n = next_start, 0.0, 0
        if value is None:
            return []
        alarm = s.detector.update(bin_start, value)
        if alarm is None:
            return []
        evidence = {**alarm.to_json(), "series": s.key, "bin_min": s.bin_s // 60}
        at = bin_start + timedelta(seconds=s.bin_s)
        event = Event(id=f"{self.name}:{s.key}:{int(bin_start.timestamp())}", detector=self.name, signal=s.signal,
                      key=s.key, phase="open", onset=bin_start, detected_at=at, at=at,
                      severity=self.params.severity, evidence=evidence)
        # an alarm is a moment, not a lasting condition: it opens and closes at once
        return [event, dataclasses.replace(event, phase="closed", ended_at=at)]
