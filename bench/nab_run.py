"""Run the seasonal detector (default Params) over our NAB subset and score it with bench/nab.py.

    python bench/nab_run.py [--data ../shared/data/nab] [--out bench/results/nab] [--json bench/results/nab.json]

writes ``OUT/<category>/<file>.csv`` (``timestamp,alert`` with alert 0/1, one row per data row),
prints each file's raw score (standard profile, with detected / missed windows and false
positives) and the normalized score of the set, and writes the figures with the published scores
on the same seven files to ``bench/results/nab.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import nab  # noqa: E402
from workers.rules.seasonal import Params, backtest_series  # noqa: E402

DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "nab"
DEFAULT_OUT = ROOT / "bench" / "results" / "nab"
DEFAULT_JSON = ROOT / "bench" / "results" / "nab.json"

#: Published normalized standard-profile scores on exactly these seven files (shared/data/README.md).
PUBLISHED = {"ARTime": 78.3, "Numenta HTM": 72.1, "relativeEntropy": 71.1, "contextOSE": 56.5, "KNN-CAD": 48.6,
             "Twitter ADVec": 41.8, "windowed Gaussian": 1.4}


def check_data_dir(data_dir: Path) -> Path:
    """The NAB root, or a loud error naming the path that is missing."""
    data_dir = Path(data_dir).resolve()
    labels = data_dir / "labels" / "combined_windows.json"
    if not labels.is_file():
        raise FileNotFoundError(f"NAB data not found: {labels} is missing (pass --data DIR, the NAB root "
                                f"holding data/ and labels/)")
    return data_dir


def run(data_dir: Path | str = DEFAULT_DATA, out_dir: Path | str | None = None, params: Params | None = None,
        profile: str = "standard") -> nab.CorpusScore:
    """Run the detector on every labelled file and score the alerts.

    Args:
        data_dir: The NAB root (``data/`` and ``labels/combined_windows.json``).
        out_dir: If given, write ``<category>/<file>.csv`` (``timestamp,alert``) there.
        params: Detector parameters; ``None`` for the defaults (what the benchmark reports).
        profile: NAB profile to score with.

    Returns:
        The :class:`bench.nab.CorpusScore`.
    """
    data_dir = check_data_dir(Path(data_dir))
    windows = nab.load_windows(data_dir / "labels" / "combined_windows.json")
    results: dict[str, nab.FileResult] = {}
    for rel in sorted(windows):
        path = data_dir / "data" / rel
        if not path.is_file():
            raise FileNotFoundError(f"NAB data file missing: {path}")
        rows = nab.load_series(data_dir, rel)
        alerts = backtest_series(rows, params)
        timestamps = [t for t, _ in rows]
        results[rel] = nab.FileResult(timestamps, alerts, windows[rel])
        if out_dir is not None:
            target = Path(out_dir) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["timestamp", "alert"])
                writer.writerows((t.strftime("%Y-%m-%d %H:%M:%S"), int(a)) for t, a in zip(timestamps, alerts,
                                                                                          strict=True))
    return nab.score_corpus(results, profile)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="NAB root with data/ and labels/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for <category>/<file>.csv alerts")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the figures")
    args = parser.parse_args(argv)
    try:
        data_dir = check_data_dir(args.data)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2

    started = time.perf_counter()
    scores = {name: run(data_dir, args.out if name == "standard" else None, profile=name) for name in nab.PROFILES}
    elapsed = time.perf_counter() - started
    std = scores["standard"]
    print(f"{'file':<52}{'raw':>9}{'found':>7}{'missed':>7}{'FP':>5}")
    for rel, fs in std.files.items():
        print(f"{rel:<52}{fs.score:>9.4f}{fs.detected:>7}{fs.missed:>7}{fs.false_positives:>5}")
    print(f"{'raw S / S_null / S_perfect':<52}{std.raw:>9.4f} / {std.null:.4f} / {std.perfect:.4f}")
    print(f"{'normalized (standard)':<52}{std.normalized:>9.2f}")
    for name in nab.PROFILES:
        if name != "standard":
            print(f"{'normalized (' + name + ')':<52}{scores[name].normalized:>9.2f}")
    print("published on these seven files (standard): " + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items()))

    report = {
        "detector": "workers.rules.seasonal.SeasonalDetector",
        "params": {k: (str(v) if not isinstance(v, (int, float)) else v) for k, v in asdict(Params()).items()},
        "data": str(data_dir),
        "alerts_dir": str(args.out),
        "seconds": round(elapsed, 2),
        "normalized": {name: round(s.normalized, 2) for name, s in scores.items()},
        "standard": {"raw": std.raw, "null": std.null, "perfect": std.perfect,
                     "files": {rel: asdict(fs) for rel, fs in std.files.items()}},
        "published_standard": PUBLISHED,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.json} and {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
