"""The NAB scorer (bench/nab.py) against NAB's rules and its published numbers on the shared files."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy
import pytest

from bench import nab
from tests.conftest import shared_path

START = datetime(2014, 4, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)


def stamps(n: int) -> list[datetime]:
    """``n`` timestamps 5 minutes apart, like NAB's artificial files."""
    return [START + i * STEP for i in range(n)]


def window(ts: list[datetime], first: int, last: int) -> nab.Window:
    """The window covering rows ``first`` to ``last``, inclusive."""
    return ts[first], ts[last]


def alerts_at(n: int, *rows: int) -> list[bool]:
    return [i in rows for i in range(n)]


# 1,000 rows: probation is rows 0-149; one window of 10 rows, rows 500-509.
N = 1000
TS = stamps(N)
W = [window(TS, 500, 509)]


def score(*rows: int, profile: str = "standard", windows: list[nab.Window] = W) -> nab.FileScore:
    return nab.score_file(TS, alerts_at(N, *rows), windows, profile)


# ---------------------------------------------------------------------------------------
# the rules, on synthetic files


def test_sigmoid_and_probation_constants():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.01) == -1.0
    assert [nab.probationary_length(n) for n in (1000, 4032, 10320)] == [150, 604, 750]


def test_null_detector_costs_a_fn_per_window():
    assert score() == nab.FileScore(-1.0, 0.0, 0.0, -1.0, 0, 1, 0)


def test_detection_at_window_start_and_end():
    """NAB's unweighted sigmoid at a window's first row is about 0.987; dividing by that maximum
    makes the first row worth exactly A_TP. The last row sits at position -1/W, so it scores
    σ(-1/W)/σ(-1): small, and 0 only in the limit of long windows."""
    first = score(500)
    assert first.score == pytest.approx(1.0, abs=1e-12)
    assert (first.detected, first.missed, first.false_positives) == (1, 0, 0)
    assert nab.MAX_TP == pytest.approx(0.987, abs=1e-3)
    assert score(509).score == pytest.approx(nab.scaled_sigmoid(-1 / 10) / nab.MAX_TP, abs=1e-12)
    assert nab.scaled_sigmoid(-1 / 403) / nab.MAX_TP < 0.007  # last row of a 403-row NAB window
    # halfway: position -(509 - 505 + 1) / 10 = -0.5
    assert score(505).score == pytest.approx(0.84828 / 0.98661, abs=1e-5)
    assert score(500).score > score(502).score > score(505).score > score(509).score > 0


def test_only_the_first_detection_in_a_window_counts():
    """Later alerts in the same window are neither rewarded nor counted as false positives."""
    assert score(502, 503, 507, 509) == score(502)
    assert score(502, 503, 507, 509).false_positives == 0


def test_one_inside_and_one_outside():
    inside = nab.scaled_sigmoid(-(509 - 502 + 1) / 10) / nab.MAX_TP
    after = 0.11 * nab.scaled_sigmoid((520 - 509) / 9)  # distance in (W - 1) rows, as NAB divides
    result = score(502, 520)
    assert result.score == pytest.approx(inside + after, abs=1e-12)
    assert (result.detected, result.missed, result.false_positives) == (1, 0, 1)
    assert score(300, 502).score == pytest.approx(inside - 0.11, abs=1e-12)  # no window before row 300


def test_false_positives_weighted_by_distance_past_the_window():
    costs = [score(row).fp_score for row in (510, 512, 518, 530, 536, 537, 900)]
    assert costs == sorted(costs, reverse=True)  # the further past the window, the dearer
    assert costs[0] == pytest.approx(0.11 * nab.scaled_sigmoid(1 / 9), abs=1e-12)
    assert -0.11 < costs[0] < -0.02
    assert costs[-2] == costs[-1] == -0.11  # beyond three window widths: the full A_FP
    assert score(200).fp_score == -0.11  # no window before it: the full A_FP
    assert score(200, 300, 400).fp_score == pytest.approx(-0.33, abs=1e-12)


def test_probationary_period_ignores_early_alerts():
    assert score(*range(150)) == score()
    assert score(150).false_positives == 1
    early = [window(TS, 10, 19)]  # a window wholly in the probationary period is not scored
    assert score(windows=early).score == 0.0
    assert score(15, windows=early).score == 0.0
    assert score(200, windows=early).fp_score == pytest.approx(0.11 * nab.scaled_sigmoid(181 / 9), abs=1e-12)


def test_profiles():
    windows = [window(TS, 500, 509), window(TS, 800, 809)]
    rows = (300, 500)  # one false positive before any window, one window caught, one missed
    standard, low_fp, low_fn = (score(*rows, profile=p, windows=windows) for p in nab.PROFILES)
    assert standard.score == pytest.approx(1.0 - 1.0 - 0.11, abs=1e-12)
    assert low_fp.score == pytest.approx(1.0 - 1.0 - 0.22, abs=1e-12)
    assert low_fn.score == pytest.approx(1.0 - 2.0 - 0.11, abs=1e-12)

    def normalized(profile: str, *alert_rows: int) -> float:
        result = nab.FileResult(TS, alerts_at(N, *alert_rows), windows)
        return nab.score_corpus({"f.csv": result}, profile).normalized

    noisy = (500, 800, *range(160, 400, 10))  # catches both windows, 24 false positives
    quiet = (500,)  # catches one, no false positive
    gap = {p: normalized(p, *noisy) - normalized(p, *quiet) for p in nab.PROFILES}
    assert gap["reward_low_FP_rate"] < gap["standard"] < 0 < gap["reward_low_FN_rate"]
    assert gap == pytest.approx({"standard": 34 - 50, "reward_low_FP_rate": -32 - 50,
                                 "reward_low_FN_rate": 56 - 50}, abs=1e-9)


def test_alert_every_k_rows_by_hand():
    """Alerts every 100 rows: 200, 300, 400 precede the window (-0.11 each), 500 is its first row
    (+1), 600-900 are more than three widths past it (-0.11 each); rows 0 and 100 are probationary."""
    result = score(*range(0, N, 100))
    assert result.score == pytest.approx(1.0 - 7 * 0.11, abs=1e-12)
    assert (result.detected, result.missed, result.false_positives) == (1, 0, 7)


def test_corpus_normalization():
    one = nab.FileResult(TS, alerts_at(N, 500), W)
    two = nab.FileResult(TS, alerts_at(N), [window(TS, 300, 309), window(TS, 700, 709)])
    corpus = nab.score_corpus({"a.csv": one, "b.csv": two})
    assert (corpus.raw, corpus.null, corpus.perfect) == pytest.approx((-1.0, -3.0, 3.0), abs=1e-12)
    assert corpus.normalized == pytest.approx(100 * 2 / 6, abs=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="alerts"):
        nab.score_file(TS, [False], W)
    with pytest.raises(ValueError, match="overlapping"):
        nab.score_file(TS, alerts_at(N), [window(TS, 500, 509), window(TS, 505, 520)])


# ---------------------------------------------------------------------------------------
# the shared NAB files


def nab_dir():
    return shared_path("nab/labels/combined_windows.json").parent.parent


def corpus(detector) -> dict[str, nab.FileResult]:
    """Every labelled file, with ``detector(values) -> alerts``."""
    windows = nab.load_windows(nab_dir() / "labels" / "combined_windows.json")
    out = {}
    for rel, limits in windows.items():
        series = nab.load_series(nab_dir(), rel)
        out[rel] = nab.FileResult([t for t, _ in series], detector([v for _, v in series]), limits)
    return out


@pytest.mark.shared_data
def test_shared_files_windows_and_probation():
    files = corpus(lambda values: [False] * len(values))
    assert len(files) == 7 and sum(len(f.windows) for f in files.values()) == 11
    for rel, f in files.items():
        spans = nab._window_rows(f.timestamps, f.windows)
        assert len(spans) == len(f.windows), rel  # every limit is a row timestamp
        if rel.startswith("artificialWithAnomaly/"):
            assert len(f.timestamps) == 4032 and [b - a + 1 for a, b in spans] == [403]
        else:
            assert len(f.timestamps) == 10320 and [b - a + 1 for a, b in spans] == [207] * 5
        assert all(a >= nab.probationary_length(len(f.timestamps)) for a, _ in spans)


@pytest.mark.shared_data
def test_null_scores_0_and_perfect_100_on_the_shared_files():
    null = corpus(lambda values: [False] * len(values))
    perfect = {rel: f._replace(alerts=nab.perfect_alerts(f.timestamps, f.windows)) for rel, f in null.items()}
    for profile in nab.PROFILES:
        assert nab.score_corpus(null, profile).normalized == 0.0
        assert nab.score_corpus(perfect, profile).normalized == pytest.approx(100.0, abs=1e-9)
    standard = nab.score_corpus(null, "standard")
    assert standard.null == -11.0 and standard.perfect == pytest.approx(11.0, abs=1e-12)
    assert nab.score_corpus(null, "reward_low_FN_rate").null == -22.0


def windowed_gaussian(values: list[float], size: int = 6400, step: int = 100) -> list[float]:
    """NAB's windowedGaussian detector (nab/detectors/gaussian/windowedGaussian_detector.py):
    anomaly score = 1 - Q((x - mean) / std), x mirrored above the mean, against the previous ``size``
    values (the first rows: all values so far), the window sliding ``step`` rows at a time; numpy mean
    and population std."""
    data = numpy.asarray(values, dtype=float)
    lo, hi, mean, std = 0, 0, 0.0, 1.0
    scores = []
    for i, x in enumerate(data):
        far = x if x >= mean else 2 * mean - x  # NAB mirrors values below the mean
        scores.append(1 - 0.5 * math.erfc((far - mean) / std / math.sqrt(2)) if hi > lo else 0.0)
        if hi - lo < size:
            hi = i + 1
        elif i + 1 - hi == step:
            lo, hi = lo + step, i + 1
        else:
            continue
        mean, std = numpy.mean(data[lo:hi]), numpy.std(data[lo:hi])
        std = std if std != 0.0 else 0.000001
    return scores


def nab_threshold_alerts(scores: list[float], threshold: float = 1.0) -> list[bool]:
    """Alerts as NAB drew them from its committed results: the anomaly_score column holds 12
    significant digits (Python 2 ``str``), and ``config/thresholds.json`` sets windowedGaussian's
    standard-profile threshold to 1.0 (anomaly score >= threshold)."""
    return [float(f"{s:.12g}") >= threshold for s in scores]


@pytest.mark.shared_data
def test_windowed_gaussian_reproduces_the_published_score():
    """NAB's results/windowedGaussian/windowedGaussian_standard_scores.csv (@de8e91a) gives -1.0 on five
    artificial files, -0.692444609523 on art_load_balancer_spikes and -5.0 on nyc_taxi: normalized
    100 * (-10.6924 + 11) / 22 = 1.4, the published figure."""
    files = corpus(lambda values: nab_threshold_alerts(windowed_gaussian(values)))
    result = nab.score_corpus(files, "standard")
    published = {rel: -1.0 for rel in files}
    published["artificialWithAnomaly/art_load_balancer_spikes.csv"] = -0.692444609523
    published["realKnownCause/nyc_taxi.csv"] = -5.0
    assert {rel: round(s.score, 12) for rel, s in result.files.items()} == published
    assert result.files["artificialWithAnomaly/art_load_balancer_spikes.csv"].false_positives == 15
    assert result.normalized == pytest.approx(1.39798, abs=1e-5)
    assert round(result.normalized, 1) == 1.4
    # NAB's windowedGaussian_reward_low_FP_rate_scores.csv (same threshold, 1.0): -2.34244460952
    low_fp = nab.score_corpus(files, "reward_low_FP_rate").files
    assert round(low_fp["artificialWithAnomaly/art_load_balancer_spikes.csv"].score, 11) == -2.34244460952


@pytest.mark.shared_data
def test_cli_scores_a_results_directory(tmp_path, capsys):
    files = corpus(lambda values: [False] * len(values))
    for rel, f in files.items():
        path = tmp_path / "run" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        alerts = nab.perfect_alerts(f.timestamps, f.windows)
        path.write_text("timestamp,alert\n" + "".join(f"{t:%Y-%m-%d %H:%M:%S},{int(a)}\n"
                                                      for t, a in zip(f.timestamps, alerts, strict=True)))
    assert nab.main(["--results", str(tmp_path / "run"), "--data", str(nab_dir())]) == 0
    out = json.loads((tmp_path / "run" / "nab_scores.json").read_text())
    assert {p: round(s["normalized"], 9) for p, s in out.items()} == {p: 100.0 for p in nab.PROFILES}
    assert out["standard"]["null"] == -11.0
    assert "realKnownCause/nyc_taxi.csv" in capsys.readouterr().out

    (tmp_path / "run" / "realKnownCause" / "nyc_taxi.csv").unlink()
    assert nab.main(["--results", str(tmp_path / "run"), "--data", str(nab_dir())]) == 2
