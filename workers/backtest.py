"""``sitcen backtest FILE --detector NAME``: run one detector over a recorded file, exactly as live.

Two kinds of input, by the detector:

* ``seasonal`` (the univariate seasonal-baseline detector, :mod:`workers.rules.seasonal`): FILE is
  a ``timestamp,value`` CSV (NAB's format); each row goes to ``update(t, x)`` with the live
  defaults (or ``--rules`` overrides).
* any registered record detector (``workers/rules``: ``appeal_hotspot``, ``source_silent`` ...):
  FILE is JSON lines, each ``{"feed": "<feed>", "record": {...}}`` with the record as the feed
  stream holds it (what ``GET /api/v1/feeds/<feed>/...`` and the simulator produce), and an
  optional ``"at"`` (ISO time the record arrived; default: the record's own time). The detector
  sees each record at its time and is ticked at it, as the live loop does.

The output is CSV ``timestamp,alert``, one row per input row: ``alert`` is 1 where the detector
opened an event of WARNING severity or more (an alarm, for the series detector), else 0. That is
the format ``bench/nab.py`` scores.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from core.schemas import iso
from workers.rules import detector_classes
from workers.rules.base import WARNING, RuleContext, build_params, parse_time

SERIES_DETECTORS = ("seasonal",)


def names() -> list[str]:
    """Every detector ``backtest`` can run."""
    return [*SERIES_DETECTORS, *detector_classes()]


def run(path: Path, detector: str, out: IO[str], *, pack: Any = None,
        overrides: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Backtest ``detector`` over ``path``, writing ``timestamp,alert`` rows to ``out``.

    Returns the row and alert counts.

    Raises:
        ValueError: unknown detector, or a bad input row (the message names the line).
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "alert"])
    rows = alerts = 0
    series = detector in SERIES_DETECTORS
    for t, alert in (_series(path, overrides) if series else _records(path, detector, pack, overrides)):
        # a series keeps NAB's timestamp form (UTC, no zone), so bench/nab.py scores it as it is
        writer.writerow([t.strftime("%Y-%m-%d %H:%M:%S") if series else iso(t), int(alert)])
        rows += 1
        alerts += bool(alert)
    return {"rows": rows, "alerts": alerts}


def _series(path: Path, overrides: Mapping[str, Any] | None) -> Iterator[tuple[datetime, bool]]:
    import dataclasses

    from workers.rules import seasonal

    params = seasonal.Params()
    if overrides:
        try:
            params = dataclasses.replace(params, **dict(overrides))
        except TypeError as err:
            raise ValueError(f"seasonal: {err}") from None
    detector = seasonal.SeasonalDetector(params)
    for t, x in seasonal.read_series_csv(path):
        yield t, detector.update(t, x) is not None


def _records(path: Path, name: str, pack: Any, overrides: Mapping[str, Any] | None) -> Iterator[tuple[datetime, bool]]:
    classes = detector_classes()
    if name not in classes:
        raise ValueError(f"no detector {name!r}; detectors: {', '.join(names())}")
    if pack is None:
        from core.citypack import load_pack

        pack = load_pack(None)
    cls = classes[name]
    detector = cls(build_params(cls, overrides), RuleContext(pack=pack))
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                feed, record = str(item["feed"]), item["record"]
                if not isinstance(record, dict):
                    raise TypeError("record is not an object")
                at = parse_time(item["at"]) if item.get("at") else record_time(record)
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}, line {line_no}: {type(err).__name__}: {err}") from None
            events = []
            if feed in detector.feeds:
                events += detector.observe(feed, [record], at)
            events += detector.tick(at)
            yield at, any(e.phase == "open" and e.severity >= WARNING for e in events)


def record_time(record: Mapping[str, Any]) -> datetime:
    """The time a stream record describes (observed, updated, or its latest NEMSIS time)."""
    for name in ("observed_at", "updated_at", "requested_at"):
        if record.get(name):
            return parse_time(record[name])
    times = record.get("times")
    if isinstance(times, Mapping) and times:
        return max(parse_time(v) for v in times.values())
    raise ValueError("the record has no time (observed_at, updated_at, requested_at or times)")

