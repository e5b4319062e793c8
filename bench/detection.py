"""Detection quality against the simulator's ground truth: found, real, and how fast.

    python bench/detection.py [--seeds 1 2 3] [--days 1] [--start 2026-11-16] [--out FILE]

For each seed, the simulator plays ``--days`` local days of Almaty with every scenario of the
library planted each day (``simulator/scenarios``), through the real parsers; the analytics engine
(every registered detector with its live defaults, ``workers.analytics.Engine``) and correlation
(``workers.correlate``) see the records in delivery order with ``now`` = simulated time, ticked
every simulated minute: the same code the workers run. Then:

* a planted incident is **found** if a raised situation (one with a WARNING or CRITICAL event)
  holds an event with one of the incident's signals, active during it, at its place (its station,
  feed, district, or within ``--reach-m`` of its point; anywhere for citywide ones);
* a raised situation is **real** if it matches a planted incident that expects one; one that
  matches only the noise-only scenario counts as a **noise incident**; others are false;
* the detection delay is from the incident's onset to the moment the matching situation first
  held a WARNING+ event (an advisory that escalates counts from its escalation).

Prints a table per scenario type and writes the figures as JSON (default
``bench/results/detection.json``). Targets (issue 4): ≥95 % found, ≥90 % real, no noise incident.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.citypack import load_pack  # noqa: E402
from core.geo import haversine_m  # noqa: E402
from simulator.driver import plan_run  # noqa: E402
from simulator.offline import deliveries  # noqa: E402
from simulator.scenarios import PlantedIncident  # noqa: E402
from workers.analytics import Engine  # noqa: E402
from workers.correlate import MemoryBook, MemorySituation, apply  # noqa: E402
from workers.rules.base import WARNING, Event  # noqa: E402

#: Signals that count for a planted incident's signal (an AQI alert during smog is smog found).
ALIASES = {"air.aqi": "air.pm_rise"}
GRACE = timedelta(minutes=30)
TICK = timedelta(minutes=1)


def simulate(pack: Any, seed: int, start: datetime, days: float) -> tuple[list[PlantedIncident], MemoryBook, dict]:
    """Run one seed; return the ground truth, the situations raised, and counts."""
    duration = timedelta(days=days)
    run = plan_run(pack, seed=seed, start=start, duration=duration)
    engine = Engine(pack)
    book = MemoryBook()
    records = 0
    next_tick = start
    t0 = time.perf_counter()
    for delivery in deliveries(pack, seed=seed, start=start, duration=duration, run=run):
        while next_tick <= delivery.at:
            apply(engine.tick(next_tick), book, next_tick)
            next_tick += TICK
        apply(engine.step(delivery.feed, delivery.records, delivery.at), book, delivery.at)
        records += len(delivery.records)
    end = start + duration
    while next_tick <= end:
        apply(engine.tick(next_tick), book, next_tick)
        next_tick += TICK
    stats = {"records": records, "seconds": round(time.perf_counter() - t0, 1)}
    return list(run.truth), book, stats


def event_matches(event: Event, incident: PlantedIncident, reach_m: float) -> bool:
    """Whether ``event`` is evidence of ``incident``: right signal, time and place."""
    signal = ALIASES.get(event.signal, event.signal)
    if signal not in incident.signals and event.signal not in incident.signals:
        return False
    ends = event.ended_at or event.at
    if event.onset > incident.end + GRACE or ends < incident.start - timedelta(minutes=10):
        return False
    if incident.targets:
        if event.signal in ("source.silent", "source.stuck", "feed.outage"):
            return event.key in incident.targets
    if incident.lat is None and incident.district is None:
        return True  # citywide
    if event.lat is not None and incident.lat is not None and event.lon is not None and incident.lon is not None:
        if haversine_m(event.lat, event.lon, incident.lat, incident.lon) - (event.radius_m or 0) <= reach_m:
            return True
    return incident.district is not None and event.district == incident.district


def evaluate(truth: Iterable[PlantedIncident], book: MemoryBook, reach_m: float) -> dict[str, Any]:
    """Match raised situations and planted incidents."""
    raised = [s for s in book.situations.values() if s.severity >= WARNING]
    truth = list(truth)
    per_incident: list[dict[str, Any]] = []
    matched_by: dict[str, list[str]] = defaultdict(list)
    for incident in truth:
        hits: list[tuple[MemorySituation, datetime]] = []
        for situation in raised:
            evidence = [e for e in situation.events.values() if event_matches(e, incident, reach_m)]
            if evidence:
                matched_by[situation.id].append(incident.id)
                hits.append((situation, situation.raised_at or situation.detected_at))
        first = min((at for _, at in hits), default=None)
        per_incident.append({
            "id": incident.id, "scenario": incident.scenario, "type": incident.type,
            "expect_incident": incident.expect_incident, "start": incident.start.isoformat(),
            "found": bool(hits), "situations": [s.id for s, _ in hits],
            "delay_s": None if first is None else round((first - incident.start).total_seconds()),
        })
    expects = {i.id: i.expect_incident for i in truth}
    situations = []
    for s in raised:
        incidents = matched_by.get(s.id, [])
        verdict = ("real" if any(expects[i] for i in incidents) else "noise" if incidents else "false")
        situations.append({"id": s.id, "type": s.type, "severity": s.severity, "verdict": verdict,
                           "incidents": incidents, "detected_at": s.detected_at.isoformat(),
                           "signals": sorted({e.signal for e in s.events.values()}),
                           "events": sorted(s.events)})
    return {"incidents": per_incident, "situations": situations}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate per scenario type over seeds."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        for row in result["incidents"]:
            by_type[row["scenario"]].append(row)
    table = {}
    for scenario, rows in sorted(by_type.items()):
        delays = [r["delay_s"] for r in rows if r["found"] and r["delay_s"] is not None]
        table[scenario] = {"planted": len(rows), "found": sum(r["found"] for r in rows),
                           "expect_incident": rows[0]["expect_incident"],
                           "median_delay_min": round(statistics.median(delays) / 60, 1) if delays else None}
    expected = [r for rows in by_type.values() for r in rows if r["expect_incident"]]
    situations = [s for result in results for s in result["situations"]]
    real = sum(s["verdict"] == "real" for s in situations)
    return {
        "planted": len(expected), "found": sum(r["found"] for r in expected),
        "recall": round(sum(r["found"] for r in expected) / len(expected), 4) if expected else None,
        "raised": len(situations), "real": real,
        "precision": round(real / len(situations), 4) if situations else None,
        "noise_incidents": sum(s["verdict"] == "noise" for s in situations),
        "false_incidents": sum(s["verdict"] == "false" for s in situations),
        "by_scenario": table,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--start", default="2026-11-16", help="first local day (Asia/Almaty)")
    parser.add_argument("--reach-m", type=float, default=3_000.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "detection.json")
    args = parser.parse_args(argv)
    pack = load_pack(None)
    start = datetime.combine(datetime.fromisoformat(args.start).date(), datetime.min.time(),
                             pack.zone).astimezone(UTC)
    results = []
    for seed in args.seeds:
        truth, book, stats = simulate(pack, seed, start, args.days)
        result = evaluate(truth, book, args.reach_m)
        result.update(seed=seed, **stats)
        results.append(result)
        one = summarize([result])
        print(f"seed {seed}: {stats['records']:,} records in {stats['seconds']} s; found {one['found']}/"
              f"{one['planted']}, raised {one['raised']} ({one['real']} real, {one['noise_incidents']} noise, "
              f"{one['false_incidents']} false)")
        for s in result["situations"]:
            if s["verdict"] != "real":
                print(f"   {s['verdict']}: {s['id']} {s['type']} {s['detected_at']} {s['signals']} {s['events'][:3]}")
        for row in result["incidents"]:
            if row["expect_incident"] and not row["found"]:
                print(f"   missed: {row['id']} ({row['type']}) from {row['start']}")
    summary = summarize(results)
    print(f"\n{'scenario':22} planted found  median delay")
    for scenario, row in summary["by_scenario"].items():
        delay = "-" if row["median_delay_min"] is None else f"{row['median_delay_min']} min"
        print(f"{scenario:22} {row['planted']:7} {row['found']:5}  {delay}")
    print(f"\nfound {summary['found']}/{summary['planted']} ({summary['recall']:.1%}), real "
          f"{summary['real']}/{summary['raised']} ({(summary['precision'] or 0):.1%}), noise incidents "
          f"{summary['noise_incidents']}, false {summary['false_incidents']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python bench/detection.py " + " ".join(argv or sys.argv[1:]),
                                    "seeds": args.seeds, "days": args.days, "summary": summary,
                                    "runs": results}, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
