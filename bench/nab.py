"""Numenta Anomaly Benchmark (NAB) scoring, re-implemented without NAB's dependencies.

    python bench/nab.py --results DIR [--data DIR] [--profile NAME] [--out FILE]

reads ``DIR/<category>/<file>.csv`` (columns ``timestamp,alert``, one row per data row, as
``sitcen backtest`` writes them) for every file in ``labels/combined_windows.json``, prints the
raw score of each file and the normalized score of the set, and writes them as JSON (default
``DIR/nab_scores.json``).

The rules are those of numenta/NAB ``nab/sweeper.py`` (read at d62afec: ``calcSweepScore``,
``calcScoreByThreshold``, ``scoreDataSet``), ``config/profiles.json`` and ``nab/runner.py``
(``normalize``), for binary alerts (NAB: anomaly score >= threshold):

* the first ``min(floor(0.15 * N), 0.15 * 5000)`` rows of a file are probationary and not scored;
* in a window of W rows ending at row R, only the first alert counts (NAB keeps the maximum, and
  the score falls along the window): alert row i scores ``A_TP * σ(-(R - i + 1) / W) / σ(-1)``
  with ``σ(y) = 2 / (1 + e^{5y}) - 1``, so the first row of a window scores exactly ``A_TP`` and
  the last one ``A_TP * σ(-1/W) / σ(-1)``, nearly 0; later alerts in the window are ignored;
* a window without a scored alert costs ``-A_FN``; a window lying wholly in the probationary
  period is not scored at all (NAB never names it);
* every alert outside windows is a false positive: ``A_FP * σ(|R_prev - i| / (W_prev - 1))``
  (σ is -1 beyond 3) after the closest preceding window, or ``-A_FP`` if no window precedes it;
* normalized score = ``100 * (S - S_null) / (S_perfect - S_null)`` over a set of files, with
  S_null the score of a detector that never alerts and S_perfect that of one alerting on the
  first row of every window (``tpCount * A_TP`` in NAB's runner; equal unless a window lies in
  the probationary period).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent

PROBATION_PERCENT = 0.15
"""Share of each file NAB does not score (``Sweeper(probationPercent=0.15)``)."""

Window = tuple[datetime, datetime]
"""An anomaly window: first and last timestamp, both inclusive."""


@dataclass(frozen=True)
class Profile:
    """A NAB application profile (the ``CostMatrix`` of ``config/profiles.json``)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}


@dataclass(frozen=True)
class FileScore:
    """The NAB score of one file.

    Attributes:
        score: Raw score, ``tp_score + fp_score + fn_score``.
        tp_score: Sum over detected windows of the first alert's weighted sigmoid.
        fp_score: Sum over scored alerts outside windows (zero or negative).
        fn_score: ``-A_FN`` per missed window.
        detected: Windows with at least one scored alert.
        missed: Scored windows without one.
        false_positives: Scored alert rows outside every window.
    """

    score: float
    tp_score: float
    fp_score: float
    fn_score: float
    detected: int
    missed: int
    false_positives: int


class FileResult(NamedTuple):
    """A detector's alerts on one file, with the file's timestamps and labelled windows."""

    timestamps: Sequence[datetime]
    alerts: Sequence[bool]
    windows: Sequence[Window]


@dataclass(frozen=True)
class CorpusScore:
    """The NAB score of a set of files under one profile.

    Attributes:
        profile: Profile name.
        files: Score of each file, by relative path.
        raw: S, the sum of the files' raw scores.
        null: S_null, the raw score of the detector that never alerts.
        perfect: S_perfect, the raw score of the detector alerting on each window's first row.
        normalized: ``100 * (S - S_null) / (S_perfect - S_null)``.
    """

    profile: str
    files: dict[str, FileScore]
    raw: float
    null: float
    perfect: float
    normalized: float


def scaled_sigmoid(position: float) -> float:
    """NAB's ``scaledSigmoid``: 2/(1+e^{5y}) - 1, and -1 beyond 3 window widths.

    Args:
        position: Relative position: -1 at a window's left edge, 0 at its right edge, positive
            (in window widths) past it.

    Returns:
        About 0.98661 at -1, 0 at 0, about -0.98661 at 1.
    """
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)
"""Unweighted score of an alert on a window's first row; NAB divides true positives by it."""


def probationary_length(rows: int) -> float:
    """Rows at the start of a file that are not scored: ``min(floor(0.15*N), 0.15*5000)``."""
    return min(math.floor(PROBATION_PERCENT * rows), PROBATION_PERCENT * 5000)


def parse_time(text: str) -> datetime:
    """A NAB timestamp (``2014-04-10 07:15:00`` or ``2014-04-10 07:15:00.000000``), naive as NAB's."""
    return datetime.fromisoformat(text.strip())


def load_series(data_dir: Path | str, relpath: str) -> list[tuple[datetime, float]]:
    """Read a NAB data file.

    Args:
        data_dir: The NAB root (holding ``data/`` and ``labels/``) or its ``data/`` directory.
        relpath: ``<category>/<file>.csv``, as in ``combined_windows.json``.

    Returns:
        The ``(timestamp, value)`` rows in file order.
    """
    base = Path(data_dir)
    path = base / "data" / relpath if (base / "data").is_dir() else base / relpath
    with path.open(newline="") as f:
        return [(parse_time(row["timestamp"]), float(row["value"])) for row in csv.DictReader(f)]


def load_windows(labels_path: Path | str) -> dict[str, list[Window]]:
    """Read ``combined_windows.json``: relative data path -> its windows, sorted by start."""
    raw = json.loads(Path(labels_path).read_text())
    return {rel: sorted((parse_time(a), parse_time(b)) for a, b in limits) for rel, limits in raw.items()}


def _window_rows(timestamps: Sequence[datetime], windows: Sequence[Window]) -> list[tuple[int, int]]:
    """First and last row index of each window, in time order; windows holding no row are dropped."""
    rows = []
    for start, end in sorted(windows):
        first = bisect.bisect_left(timestamps, start)
        last = bisect.bisect_right(timestamps, end) - 1
        if first > last:
            continue
        if rows and first <= rows[-1][1]:
            raise ValueError(f"overlapping windows at {start}")
        rows.append((first, last))
    return rows


def score_file(timestamps: Sequence[datetime], alerts: Sequence[bool], windows: Sequence[Window],
               profile: Profile | str = "standard") -> FileScore:
    """Score one file's alerts as NAB's sweeper does.

    Args:
        timestamps: Row timestamps, strictly increasing.
        alerts: One truthy value per row where the detector alerted.
        windows: Labelled anomaly windows (inclusive limits); NAB's limits are row timestamps.
        profile: A :class:`Profile` or the name of one in :data:`PROFILES`.

    Returns:
        The file's :class:`FileScore`.

    Raises:
        ValueError: if lengths differ, timestamps are not increasing or windows overlap.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    if len(timestamps) != len(alerts):
        raise ValueError(f"{len(timestamps)} timestamps but {len(alerts)} alerts")
    if any(a >= b for a, b in zip(timestamps, timestamps[1:], strict=False)):
        raise ValueError("timestamps must be strictly increasing")
    spans = _window_rows(timestamps, windows)
    scored_from = math.ceil(probationary_length(len(timestamps)))
    fired = [i for i, alert in enumerate(alerts) if alert and i >= scored_from]

    tp_score = fn_score = fp_score = 0.0
    detected = missed = false_positives = 0
    for first, last in spans:
        if last < scored_from:
            continue  # wholly probationary: NAB never scores this window
        width = last - first + 1
        hit = bisect.bisect_left(fired, first)
        if hit < len(fired) and fired[hit] <= last:
            tp_score += scaled_sigmoid(-(last - fired[hit] + 1) / width) * prof.tp_weight / MAX_TP
            detected += 1
        else:
            fn_score -= prof.fn_weight
            missed += 1

    ends = [last for _, last in spans]
    for i in fired:
        k = bisect.bisect_left(ends, i)  # spans[k] is the first window not ending before row i
        if k < len(spans) and spans[k][0] <= i:
            continue  # inside a window: a true positive, or ignored after the first one
        false_positives += 1
        if k == 0:
            fp_score -= prof.fp_weight
        else:
            first, last = spans[k - 1]  # NAB divides by W - 1 and fails on a one-row window
            fp_score += scaled_sigmoid((i - last) / max(last - first, 1)) * prof.fp_weight
    return FileScore(tp_score + fp_score + fn_score, tp_score, fp_score, fn_score, detected, missed,
                     false_positives)


def perfect_alerts(timestamps: Sequence[datetime], windows: Sequence[Window]) -> list[bool]:
    """Alerts of NAB's perfect detector: one on the first row of every window."""
    alerts = [False] * len(timestamps)
    for first, _ in _window_rows(timestamps, windows):
        alerts[first] = True
    return alerts


def score_corpus(results: Mapping[str, FileResult], profile: Profile | str = "standard") -> CorpusScore:
    """Score a set of files and normalize the total between the null and the perfect detector.

    Args:
        results: Relative path -> :class:`FileResult` (timestamps, alerts, windows).
        profile: A :class:`Profile` or the name of one in :data:`PROFILES`.

    Returns:
        The :class:`CorpusScore`.
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    files: dict[str, FileScore] = {}
    raw = null = perfect = 0.0
    for rel, (timestamps, alerts, windows) in results.items():
        files[rel] = score_file(timestamps, alerts, windows, prof)
        raw += files[rel].score
        null += score_file(timestamps, [False] * len(timestamps), windows, prof).score
        perfect += score_file(timestamps, perfect_alerts(timestamps, windows), windows, prof).score
    normalized = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return CorpusScore(prof.name, files, raw, null, perfect, normalized)


# ---------------------------------------------------------------------------------------
# command line


def _truthy(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "1.0"):
        return True
    if value in ("0", "false", "0.0", ""):
        return False
    raise ValueError(f"alert must be 0/1 or true/false, not {text!r}")


def load_alerts(path: Path) -> tuple[list[datetime], list[bool]]:
    """Read a ``timestamp,alert`` results file."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [parse_time(r["timestamp"]) for r in rows], [_truthy(r["alert"]) for r in rows]


def _default_nab_dir() -> Path:
    """``<SC_SHARED_DATA_DIR>/nab``, resolved against the project root like the tests do."""
    sys.path.insert(0, str(ROOT))
    from core.settings import Settings

    base = Settings.from_env().shared_data_dir
    return (base if base.is_absolute() else (ROOT / base).resolve()) / "nab"


def main(argv: Sequence[str] | None = None) -> int:
    """Score a results directory; print the table and write the JSON. Returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="directory of <category>/<file>.csv")
    parser.add_argument("--data", type=Path, default=None, help="NAB root with data/ and labels/")
    parser.add_argument("--profile", choices=[*PROFILES, "all"], default="all")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default RESULTS/nab_scores.json)")
    args = parser.parse_args(argv)
    nab_dir = args.data or _default_nab_dir()
    windows = load_windows(nab_dir / "labels" / "combined_windows.json")

    results: dict[str, FileResult] = {}
    problems = []
    for rel in sorted(windows):
        path = args.results / rel
        if not path.exists():
            problems.append(f"missing {path}")
            continue
        timestamps, alerts = load_alerts(path)
        expected = [t for t, _ in load_series(nab_dir, rel)]
        if timestamps != expected:
            problems.append(f"{path}: timestamps differ from the data file's ({len(timestamps)} vs "
                            f"{len(expected)} rows)")
            continue
        results[rel] = FileResult(timestamps, alerts, windows[rel])
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2

    names = list(PROFILES) if args.profile == "all" else [args.profile]
    scores = [score_corpus(results, name) for name in names]
    print(f"{'file':<55}" + "".join(f"{name:>20}" for name in names))
    for rel in results:
        print(f"{rel:<55}" + "".join(f"{s.files[rel].score:>20.4f}" for s in scores))
    for label, attr in (("raw S", "raw"), ("S_null", "null"), ("S_perfect", "perfect"),
                        ("normalized", "normalized")):
        print(f"{label:<55}" + "".join(f"{getattr(s, attr):>20.4f}" for s in scores))

    out = args.out or args.results / "nab_scores.json"
    out.write_text(json.dumps({s.profile: asdict(s) for s in scores}, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
