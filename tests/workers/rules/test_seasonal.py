"""The seasonal-baseline detector (workers/rules/seasonal.py) on synthetic series, and on the NAB subset."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from bench import nab_run
from tests.conftest import shared_path
from workers.rules.seasonal import Alarm, Params, SeasonalDetector, backtest_series, read_series_csv

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday


def daily_sine(days: float, step_min: int = 5, seed: int = 0, noise: float = 1.0, amp: float = 10.0,
               weekend_drop: float = 0.0) -> list[tuple[datetime, float]]:
    """A daily sine around 50 with Gaussian noise (sigma ``noise``), optionally lower at weekends."""
    rnd = random.Random(seed)
    rows = []
    for i in range(int(days * 1440 / step_min)):
        t = START + timedelta(minutes=i * step_min)
        minute = t.hour * 60 + t.minute
        x = 50.0 + amp * math.sin(2 * math.pi * minute / 1440) + rnd.gauss(0.0, noise)
        if t.weekday() >= 5:
            x -= weekend_drop
        rows.append((t, x))
    return rows


def alarms(rows: list[tuple[datetime, float]], params: Params | None = None) -> list[tuple[int, Alarm]]:
    detector = SeasonalDetector(params)
    out = []
    for i, (t, x) in enumerate(rows):
        alarm = detector.update(t, x)
        if alarm is not None:
            out.append((i, alarm))
    return out


# ---------------------------------------------------------------------------------------
# quiet on normal series


LEARNED = timedelta(days=7)
"""Until every time-of-day slot holds a week of values, its MAD rests on 3-6 values and is noisy."""


@pytest.mark.parametrize("step_min", [5, 30, 60])
def test_clean_daily_sine_raises_nothing_after_warm_up(step_min):
    early = 0
    for seed in range(4):
        found = alarms(daily_sine(28, step_min=step_min, seed=100 * step_min + seed))
        assert [a for _, a in found if a.at >= START + LEARNED] == []
        early += len(found)
    assert early <= 2  # the first week, on short slot histories, may raise a rare false alarm


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_daily_series_with_weekly_profile_is_quiet_once_learned(seed):
    """Sanity of the defaults live: a plain noisy series with a weekday/weekend profile, 6 weeks.

    The first two weekends may alarm (a weekend drop of 4 sigma has not been seen yet, the weekend
    slots need three samples); after that, nothing.
    """
    rows = daily_sine(42, step_min=5, seed=seed, noise=2.0, weekend_drop=8.0)
    late = [(i, a) for i, a in alarms(rows) if a.at >= START + timedelta(days=14)]
    assert late == []


def test_heavy_noise_and_routine_spikes_are_quiet():
    """Routine, regular spikes (every 100 rows, as in a spike train) are learned as normal."""
    rows = [(START + timedelta(minutes=5 * i), 20.0 if i % 100 in (0, 6) else 0.0) for i in range(4000)]
    assert alarms(rows) == []


# ---------------------------------------------------------------------------------------
# anomalies


def test_spike_is_found_within_one_row():
    found_at_spike = 0
    for seed in range(6):
        rows = daily_sine(20, seed=seed)
        at = len(rows) - 500 - 37 * seed
        t, x = rows[at]
        rows[at] = (t, x + 30.0)  # 30 sigma, one row
        found = [(i, a) for i, a in alarms(rows) if a.at >= START + LEARNED]
        if [i for i, _ in found] in ([at], [at + 1]):
            found_at_spike += 1
            i, alarm = found[0]
            assert alarm.direction == "up" and alarm.rule == "novel"
            assert alarm.at == rows[i][0] and alarm.value == rows[i][1]
            expected = 50.0 + 10.0 * math.sin(2 * math.pi * (t.hour * 60 + t.minute) / 1440)
            assert alarm.expected == pytest.approx(expected, abs=2.0)
            assert 0.5 < alarm.scale < 4.0  # about the noise sigma of 1, from a per-slot MAD
            assert alarm.z > alarm.threshold and alarm.statistic >= alarm.threshold
            assert alarm.slot.startswith(("dow=", "weekday", "weekend", "tod="))
            assert alarm.to_json()["direction"] == "up"
    assert found_at_spike >= 5


def test_dip_is_found_and_is_down():
    for seed in range(6):
        rows = daily_sine(20, seed=seed)
        at = len(rows) - 700 - 37 * seed
        for j in range(at, at + 6):  # half an hour 6 sigma low
            rows[j] = (rows[j][0], rows[j][1] - 6.0)
        found = [(i, a) for i, a in alarms(rows) if a.at >= START + LEARNED]
        assert len(found) == 1, (seed, found)
        i, alarm = found[0]
        assert at <= i <= at + 5 and alarm.direction == "down" and alarm.rule == "cusum"
        assert alarm.statistic > alarm.threshold == Params().cusum_h


def test_level_shift_alarms_once_then_adapts():
    rows = daily_sine(30, seed=6)
    shift_at = 12 * 288 + 100
    rows = [(t, x + (8.0 if i >= shift_at else 0.0)) for i, (t, x) in enumerate(rows)]
    found = alarms(rows)
    assert len(found) == 1, found
    i, alarm = found[0]
    assert shift_at <= i <= shift_at + 3
    assert alarm.direction == "up"
    # the baseline has followed: late rows are expected near the new level
    detector = SeasonalDetector()
    for t, x in rows:
        detector.update(t, x)
    assert detector.cusum["up"] < detector.params.cusum_h


def test_flat_constant_series_with_one_jump_alarms():
    t = [START + timedelta(minutes=5 * i) for i in range(6 * 288)]
    flat = [(ti, 7.0) for ti in t]
    assert alarms(flat) == []  # the scale floor: a constant series is not infinitely surprising at rest
    jump_at = 5 * 288
    jumped = [(ti, 7.0 if i < jump_at else 9.0) for i, ti in enumerate(t)]
    found = alarms(jumped)
    assert [i for i, _ in found] == [jump_at]
    assert math.isfinite(found[0][1].z) and found[0][1].scale > 0


def test_gaps_do_not_crash_or_alarm():
    rows = daily_sine(20, seed=7)
    keep = [r for i, r in enumerate(rows)
            if not (5 * 288 <= i < 5 * 288 + 72)      # a 6-hour gap
            and not (10 * 288 <= i < 13 * 288)        # a 3-day gap
            and not (i % 97 == 0)]                    # scattered missing rows
    assert [a for _, a in alarms(keep) if a.at >= START + LEARNED] == []
    flags = backtest_series(keep)
    assert len(flags) == len(keep) and sum(flags) <= 1


def test_rows_out_of_order_or_repeated_are_ignored():
    rows = daily_sine(3, seed=8)
    detector = SeasonalDetector()
    for t, x in rows[:500]:
        detector.update(t, x)
    assert detector.update(rows[10][0], 1e9) is None
    assert detector.update(rows[499][0], -1e9) is None
    assert detector.update(rows[500][0], float("nan")) is None


def test_sampling_step_is_inferred():
    for step_min in (1, 5, 30):
        detector = SeasonalDetector()
        for t, x in daily_sine(0.1 if step_min == 1 else 1, step_min=step_min):
            detector.update(t, x)
        assert detector.step == step_min * 60


def test_params_are_frozen_with_defaults():
    p = Params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.cusum_h = 1.0  # type: ignore[misc]
    assert p.cusum_h > p.cusum_k > 1.0
    assert alarms(daily_sine(10, seed=9), dataclasses.replace(p, cusum_h=1e9, spike_z=1e9)) == []


# ---------------------------------------------------------------------------------------
# CSV


def test_read_series_csv(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,-2\n"
                    "2014-04-01 00:10:00+05:00,3e1\n")
    rows = read_series_csv(path)
    assert rows == [(datetime(2014, 4, 1, tzinfo=UTC), 1.5), (datetime(2014, 4, 1, 0, 5, tzinfo=UTC), -2.0),
                    (datetime(2014, 3, 31, 19, 10, tzinfo=UTC), 30.0)]


@pytest.mark.parametrize("bad", ["2014-04-01 00:10:00,abc", "yesterday,3", "2014-04-01 00:10:00,", "2014-04-01,nan"])
def test_bad_csv_row_names_the_line(tmp_path, bad):
    path = tmp_path / "s.csv"
    path.write_text(f"timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n{bad}\n")
    with pytest.raises(ValueError, match="line 4"):
        read_series_csv(path)


def test_csv_without_value_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("timestamp,count\n2014-04-01 00:00:00,1\n")
    with pytest.raises(ValueError, match="value"):
        read_series_csv(path)


# ---------------------------------------------------------------------------------------
# the benchmark


def test_nab_run_fails_loudly_on_missing_data(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        nab_run.run(tmp_path / "nope")
    assert nab_run.main(["--data", str(tmp_path / "nope"), "--json", str(tmp_path / "x.json")]) == 2


@pytest.mark.shared_data
def test_nab_subset_scores_above_80(tmp_path):
    nab_dir = shared_path("nab/labels/combined_windows.json").parent.parent
    score = nab_run.run(nab_dir, out_dir=tmp_path)
    assert score.normalized > 80.0, score
    assert score.null == pytest.approx(-11.0) and score.perfect == pytest.approx(11.0)
    detected = sum(f.detected for f in score.files.values())
    false_positives = sum(f.false_positives for f in score.files.values())
    assert detected >= 10 and false_positives <= 15
    written = tmp_path / "realKnownCause" / "nyc_taxi.csv"
    lines = written.read_text().splitlines()
    assert lines[0] == "timestamp,alert" and len(lines) == 10321
    assert {line.rsplit(",", 1)[1] for line in lines[1:]} == {"0", "1"}
