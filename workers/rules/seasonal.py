"""A seasonal-baseline anomaly detector for one univariate series (counts, scores, levels).

:class:`SeasonalDetector` is pure and online: ``update(t, x)`` takes one row (its own timestamp,
never the wall clock) and returns an :class:`Alarm` or ``None``. The same :class:`Params`
defaults run live and in the benchmark (``bench/nab_run.py``); nothing in it knows a file, a
label or a period.

How a row is judged:

1. **Seasonal baseline.** The sampling step is inferred from the first timestamps (1 min, 5 min,
   30 min ...); the day is cut into slots of that width. Each slot keeps, net of the level, the last
   values of the same time of day in three bounded histories: same day of week (weekly profile),
   same day type (weekday / weekend) and any day. The seasonal component is the **median** of the
   most specific history holding at least ``min_slot_samples`` values; the robust scale is
   ``1.4826 * MAD`` of the same values, floored (``scale_floor`` times the series' recent
   interquartile spread, ``rel_floor`` times the expected level, ``min_scale``) so a flat series
   does not make every wiggle infinite.
2. **Level.** The level is the median of the deseasonalized values of the last ``level_window``;
   expected = level + seasonal component. A sustained shift moves the level once it fills half the
   window, so it is one alarm, not one a day until the slot histories forget the old level.
3. **Calibrated surprise.** The standardized residual ``z = (x - expected) / scale`` is ranked
   among the last ``calibration_rows`` residuals: ``p_up = (1 + #{z' >= z}) / (n + 1)`` and
   ``p_down`` likewise; ``-ln p`` is the row's surprise in each direction. Residuals that are
   routine for this series (a square wave's jittering edges, a spike train's regular spikes)
   carry little evidence; the most a row can carry is ``ln(n + 1)`` (7.6 nats for 2000 rows).
   Rows inside an alarm episode are not added, so an anomaly does not teach that anomalies are
   routine.
4. **Two-sided CUSUM** of the surprise: ``S = max(0, S + s - cusum_k)`` per direction; an alarm
   when ``S > cusum_h`` (with the defaults, about three consecutive never-seen rows, or a longer run
   of rare ones: a holiday lull, a burst of spikes). Rule ``novel``: a single value at least
   ``spike_z`` scales out and ``spike_ratio`` times beyond every residual of the calibration window
   alarms at once.
5. **Start-up.** Until a slot has ``min_slot_samples`` values the baseline is the median / MAD of
   the last ``recent_window`` (the recent level); on it only rule ``novel`` may fire, and nothing
   fires before ``warmup`` and ``min_calibration_rows``.
6. **One anomaly, one alarm.** After an alarm the direction is in an episode: no new alarm in
   that direction until its CUSUM has stayed below the threshold for ``refractory``. Gaps longer
   than ``max_gap_steps`` sampling steps reset the CUSUMs (no evidence carried across missing data).

Cost per row is bounded: slot histories are short deques, the calibration and spread windows are
sorted lists of at most ``calibration_rows`` values (bisect in, bisect out).

``backtest_series`` runs a detector over rows and returns one alert flag per row;
``read_series_csv`` reads a ``timestamp,value`` CSV (zone-less timestamps are UTC).
"""

from __future__ import annotations

import bisect
import csv
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

Direction = Literal["up", "down"]

MAD_TO_SIGMA = 1.4826
IQR_TO_SIGMA = 1.349


@dataclass(frozen=True)
class Params:
    """Parameters of :class:`SeasonalDetector`; the defaults are what runs live and in the benchmark.

    Attributes:
        tod_days: Values kept per time-of-day slot over all days (the last N days).
        daytype_days: Values kept per (weekday / weekend, time of day) slot.
        dow_weeks: Values kept per (day of week, time of day) slot (the last N weeks).
        min_slot_samples: A slot history is used only once it holds this many values.
        recent_window: Span of the recent-level fallback baseline (median of the last values).
        calibration_rows: Residuals kept to rank a new residual against (the surprise).
        min_calibration_rows: No alarm before this many residuals have been ranked.
        warmup: No alarm before the series is this old (first row to current row).
        cusum_k: Reference value subtracted from each row's surprise (nats); above 1, the mean
            surprise of a well-calibrated row, so routine rows drain the CUSUM.
        cusum_h: Alarm threshold on the CUSUM (nats).
        spike_z: Rule ``novel``: a single value at least this many robust scales from the baseline ...
        spike_ratio: ... and at least this many times the most extreme residual of the calibration
            window in its direction alarms at once (new records of a heavy-tailed series are routine;
            a value twice as far out as any seen is not).
        refractory: After an alarm, no new alarm in that direction until the CUSUM has stayed below
            ``cusum_h`` this long.
        max_gap_steps: A gap longer than this many sampling steps resets the CUSUMs.
        scale_floor: Scale floor as a share of the series' recent interquartile spread (as sigma).
        rel_floor: Scale floor as a share of the expected level's magnitude.
        min_scale: Absolute scale floor.
        level_window: The level is the median deseasonalized value over this span; a sustained
            shift is absorbed once it fills half of it.
    """

    tod_days: int = 14
    daytype_days: int = 10
    dow_weeks: int = 6
    min_slot_samples: int = 3
    recent_window: timedelta = timedelta(hours=3)
    calibration_rows: int = 2000
    min_calibration_rows: int = 100
    warmup: timedelta = timedelta(days=1)
    cusum_k: float = 3.5
    cusum_h: float = 10.0
    spike_z: float = 8.0
    spike_ratio: float = 2.0
    refractory: timedelta = timedelta(hours=12)
    max_gap_steps: int = 6
    scale_floor: float = 0.05
    rel_floor: float = 0.001
    min_scale: float = 1e-6
    level_window: timedelta = timedelta(hours=72)


@dataclass(frozen=True)
class Alarm:
    """One anomaly, with the evidence an operator reads.

    Attributes:
        at: Time of the row that raised it.
        value: The row's value.
        expected: The baseline for that row (slot median plus level offset).
        scale: Robust scale used (1.4826 * MAD, floored).
        z: ``(value - expected) / scale``.
        statistic: What crossed the threshold: the CUSUM (nats of surprise) for rule ``cusum``,
            ``|z|`` for rule ``novel``.
        threshold: ``cusum_h`` or ``spike_z``.
        direction: ``up`` (above the baseline) or ``down``.
        slot: Which baseline: ``dow=<0-6> tod=HH:MM``, ``weekend|weekday tod=HH:MM``,
            ``tod=HH:MM`` or ``recent`` (the recent-level fallback).
        rule: ``cusum`` (accumulated surprise) or ``novel`` (one value beyond every residual in the
            calibration window and at least ``spike_z`` scales out).
    """

    at: datetime
    value: float
    expected: float
    scale: float
    z: float
    statistic: float
    threshold: float
    direction: Direction
    slot: str
    rule: Literal["cusum", "novel"] = "cusum"

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (time ISO)."""
        return {"at": self.at.isoformat(), "value": self.value, "expected": self.expected, "scale": self.scale,
                "z": self.z, "statistic": self.statistic, "threshold": self.threshold,
                "direction": self.direction, "slot": self.slot, "rule": self.rule}


def _median(values: list[float]) -> float:
    """Median of a sorted, non-empty list."""
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else 0.5 * (values[mid - 1] + values[mid])


def _median_mad(values: Iterable[float]) -> tuple[float, float]:
    """Median and raw MAD of a non-empty collection."""
    ordered = sorted(values)
    med = _median(ordered)
    return med, _median(sorted(abs(v - med) for v in ordered))


class _SortedWindow:
    """The last ``size`` values, kept both in arrival order and sorted (bounded cost per update)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.order: deque[float] = deque()
        self.sorted: list[float] = []

    def __len__(self) -> int:
        return len(self.order)

    def add(self, value: float) -> None:
        if len(self.order) >= self.size:
            old = self.order.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        self.order.append(value)
        bisect.insort(self.sorted, value)

    def count_at_least(self, value: float) -> int:
        return len(self.sorted) - bisect.bisect_left(self.sorted, value)

    def count_at_most(self, value: float) -> int:
        return bisect.bisect_right(self.sorted, value)

    def quantile(self, q: float) -> float:
        return self.sorted[min(len(self.sorted) - 1, int(q * len(self.sorted)))]


class _TimedSortedWindow:
    """Values of a sliding time span, kept in arrival order and sorted (for its median)."""

    def __init__(self) -> None:
        self.order: deque[tuple[datetime, float]] = deque()
        self.sorted: list[float] = []

    def __len__(self) -> int:
        return len(self.order)

    def add(self, t: datetime, value: float) -> None:
        self.order.append((t, value))
        bisect.insort(self.sorted, value)

    def evict_before(self, start: datetime) -> None:
        while self.order and self.order[0][0] < start:
            _, old = self.order.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]

    def median(self) -> float:
        return _median(self.sorted)


class SeasonalDetector:
    """Online seasonal-baseline detector for one series; see the module docstring.

    Rows must come in time order; a row not later than the previous one is ignored.
    """

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or Params()
        p = self.params
        self.step: float | None = None  # sampling interval in seconds, inferred
        self._pending: list[tuple[datetime, float]] = []  # rows seen before the step is known
        self.first_t: datetime | None = None
        self.last_t: datetime | None = None
        self._level_window = _TimedSortedWindow()  # deseasonalized values of the last level_window
        self._tod: dict[int, deque[float]] = {}
        self._daytype: dict[tuple[bool, int], deque[float]] = {}
        self._dow: dict[tuple[int, int], deque[float]] = {}
        self._recent: deque[tuple[datetime, float]] = deque()
        self._calibration = _SortedWindow(p.calibration_rows)
        self._spread = _SortedWindow(p.calibration_rows)
        self.cusum: dict[Direction, float] = {"up": 0.0, "down": 0.0}
        self._episode_until: dict[Direction, datetime | None] = {"up": None, "down": None}

    # ------------------------------------------------------------------ public

    def update(self, t: datetime, x: float) -> Alarm | None:
        """Take one row; return an :class:`Alarm` if it starts a new anomaly."""
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        if not math.isfinite(x):
            return None
        if self.last_t is not None and t <= self.last_t:
            return None
        if self.first_t is None:
            self.first_t = t
        if self.step is None:
            self._pending.append((t, x))
            self.last_t = t
            if len(self._pending) < 12:
                return None
            deltas = sorted((b - a).total_seconds() for (a, _), (b, _) in zip(self._pending, self._pending[1:],
                                                                              strict=False))
            self.step = max(1.0, _median(deltas))
            pending, self._pending = self._pending, []
            self.last_t = None
            alarm = None
            for row_t, row_x in pending:
                alarm = self._judge(row_t, row_x)
            return alarm
        return self._judge(t, x)

    # ------------------------------------------------------------------ internals

    def _slot(self, t: datetime) -> int:
        assert self.step is not None
        seconds = t.hour * 3600 + t.minute * 60 + t.second
        per_day = max(1, round(86400 / self.step))
        return int(seconds // self.step) % per_day

    def _baseline(self, t: datetime, tod: int) -> tuple[float, float, str] | None:
        """Seasonal component (median), raw MAD and name of the most specific slot history with enough values."""
        p = self.params
        dow = t.weekday()
        weekend = dow >= 5
        hhmm = f"{t.hour:02d}:{t.minute:02d}"
        levels: tuple[tuple[dict, object, str], ...] = (
            (self._dow, lambda k: (dow, k), f"dow={dow} tod={hhmm}"),
            (self._daytype, lambda k: (weekend, k), f"{'weekend' if weekend else 'weekday'} tod={hhmm}"),
            (self._tod, lambda k: k, f"tod={hhmm}"),
        )
        for store, key, name in levels:
            history = store.get(key(tod))  # type: ignore[operator]
            if history is None or len(history) < p.min_slot_samples:
                continue
            med, mad = _median_mad(history)
            return med, mad, name
        return None

    def _learn(self, t: datetime, tod: int, stored: float) -> None:
        p = self.params
        dow = t.weekday()
        for store, key, size in ((self._tod, tod, p.tod_days), (self._daytype, (dow >= 5, tod), p.daytype_days),
                                 (self._dow, (dow, tod), p.dow_weeks)):
            history = store.get(key)
            if history is None:
                history = store[key] = deque(maxlen=size)
            history.append(stored)

    def _judge(self, t: datetime, x: float) -> Alarm | None:
        p = self.params
        assert self.step is not None
        if self.last_t is not None and (t - self.last_t).total_seconds() > p.max_gap_steps * self.step:
            self.cusum = {"up": 0.0, "down": 0.0}
        self.last_t = t
        tod = self._slot(t)

        # recent-level fallback window
        while self._recent and t - self._recent[0][0] > p.recent_window:
            self._recent.popleft()

        self._level_window.evict_before(t - p.level_window)
        level = self._level_window.median() if len(self._level_window) else x
        base = self._baseline(t, tod)
        alarm = None
        if base is not None:
            season, mad, slot = base
            expected = level + season
        elif len(self._recent) >= 3:
            expected, mad = _median_mad(v for _, v in self._recent)
            season, slot = 0.0, "recent"
        if base is not None or len(self._recent) >= 3:
            spread = 0.0
            if len(self._spread) >= 4:
                spread = (self._spread.quantile(0.75) - self._spread.quantile(0.25)) / IQR_TO_SIGMA
            scale = max(MAD_TO_SIGMA * mad, p.scale_floor * spread, p.rel_floor * abs(expected), p.min_scale)
            alarm = self._score(t, x, expected, scale, (x - expected) / scale, slot)
        else:
            season = 0.0

        # level: median of the deseasonalized values of the last level_window (a shift is absorbed
        # once it fills half of it); slot histories hold value - level, the seasonal component
        self._level_window.add(t, x - season)
        self._learn(t, tod, x - level)
        self._recent.append((t, x))
        self._spread.add(x)
        return alarm

    def _score(self, t: datetime, x: float, expected: float, scale: float, z: float, slot: str) -> Alarm | None:
        p = self.params
        cal = self._calibration
        n = len(cal)
        ready = n >= p.min_calibration_rows and self.first_t is not None and t - self.first_t >= p.warmup
        alarm = None
        if n:
            beyond = {"up": cal.count_at_least(z), "down": cal.count_at_most(z)}
            for direction in ("up", "down"):
                stat = 0.0
                if slot != "recent":  # the recent-level fallback only catches novel values
                    stat = max(0.0, self.cusum[direction] - math.log((1 + beyond[direction]) / (n + 1)) - p.cusum_k)
                self.cusum[direction] = stat
                out = z if direction == "up" else -z
                record = max(0.0, cal.sorted[-1] if direction == "up" else -cal.sorted[0])
                novel = beyond[direction] == 0 and out >= p.spike_z and out >= p.spike_ratio * record
                if stat <= p.cusum_h and not novel:
                    continue
                self.cusum[direction] = 0.0
                until = self._episode_until[direction]
                if until is not None and t < until:
                    self._episode_until[direction] = t + p.refractory  # still the same anomaly
                    continue
                if ready:
                    self._episode_until[direction] = t + p.refractory
                    if alarm is None:
                        alarm = (Alarm(t, x, expected, scale, z, stat, p.cusum_h, direction, slot, "cusum")
                                 if stat > p.cusum_h else
                                 Alarm(t, x, expected, scale, z, abs(z), p.spike_z, direction, slot, "novel"))
        if not any(until is not None and t < until for until in self._episode_until.values()):
            cal.add(z)  # an anomaly in progress must not teach the detector that anomalies are routine
        return alarm


def backtest_series(rows: Iterable[tuple[datetime, float]], params: Params | None = None) -> list[bool]:
    """Run a fresh detector over ``rows``; one flag per row, True where it raised an alarm."""
    detector = SeasonalDetector(params)
    return [detector.update(t, x) is not None for t, x in rows]


def read_series_csv(path: Path | str) -> list[tuple[datetime, float]]:
    """Read a ``timestamp,value`` CSV; timestamps without a zone are taken as UTC.

    Raises:
        ValueError: a missing column, or a row whose timestamp or value does not parse (naming its
            line number).
    """
    path = Path(path)
    rows: list[tuple[datetime, float]] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"timestamp", "value"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for row in reader:
            line = reader.line_num
            try:
                t = datetime.fromisoformat((row["timestamp"] or "").strip())
                x = float((row["value"] or "").strip())
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}, line {line}: bad row {row!r}: {exc}") from None
            if not math.isfinite(x):
                raise ValueError(f"{path}, line {line}: value {row['value']!r} is not finite")
            rows.append((t if t.tzinfo else t.replace(tzinfo=UTC), x))
    return rows
