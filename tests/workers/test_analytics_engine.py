"""The engine and its configuration, the backtest command, and incidents as the situation book."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from core.citypack import load_pack
from core.errors import ConfigError
from tests.conftest import shared_path
from workers import backtest
from workers.analytics import Engine, load_rules_config
from workers.rules import REGISTRY, detector_classes


@pytest.fixture(scope="module")
def pack():
    return load_pack(None)


def test_every_registered_detector_loads_with_a_unique_name_and_defaults(pack):
    classes = detector_classes()
    assert len(classes) == len(REGISTRY)
    engine = Engine(pack)
    assert engine.names == list(classes)
    for detector in engine.detectors:
        assert detector.feeds, f"{detector.name} reads no feed"
        assert detector.feeds <= {"air", "traffic", "ambulance", "appeals"}


def test_rules_file_overrides_and_disables(tmp_path, pack):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"appeal_hotspot": {"min_counts": [6, 7, 10]}, "series_anomaly": {"enabled": False}}))
    engine = Engine(pack, load_rules_config(path))
    assert "series_anomaly" not in engine.names
    [hotspot] = [d for d in engine.detectors if d.name == "appeal_hotspot"]
    assert hotspot.params.min_counts == (6, 7, 10)


@pytest.mark.parametrize(("content", "message"), [
    ('{"no_such_detector": {}}', "no detector named ['no_such_detector']"),
    ('{"appeal_hotspot": {"no_such_param": 1}}', "has no parameter(s) ['no_such_param']"),
    ('{"appeal_hotspot": {"cell_m": "wide"}}', "is not like"),
    ("[1, 2]", "expected an object"),
    ("{broken", "rules file"),
])
def test_a_bad_rules_file_names_the_problem(tmp_path, pack, content, message):
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        Engine(pack, load_rules_config(path))


def test_a_detector_that_raises_loses_only_its_own_output(pack, monkeypatch):
    engine = Engine(pack)
    victim = engine.detectors[0]
    monkeypatch.setattr(victim, "tick", lambda now: 1 / 0)
    assert engine.tick(datetime(2026, 11, 22, tzinfo=UTC)) == []  # the others ran, nothing raised


@pytest.mark.shared_data
def test_backtest_cli_writes_the_same_alerts_as_the_nab_run(tmp_path):
    from core.cli import main
    from workers.rules import seasonal

    source = shared_path("nab/data/artificialWithAnomaly/art_daily_jumpsup.csv")
    out = tmp_path / "alerts.csv"
    assert main(["backtest", str(source), "--detector", "seasonal", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    series = seasonal.read_series_csv(source)
    assert len(rows) == len(series)
    assert [r["timestamp"] for r in rows[:2]] == ["2014-04-01 00:00:00", "2014-04-01 00:05:00"]
    assert [r["alert"] == "1" for r in rows] == seasonal.backtest_series(series)
    assert sum(r["alert"] == "1" for r in rows) >= 1


def test_backtest_of_a_record_detector_over_json_lines(tmp_path, pack):
    t0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    lines = []
    for i in range(8):  # one post, the same PM2.5 eight times: stuck from the sixth reading
        record = {"kind": "readings", "station_id": "ALM-01", "parameter": "pm25", "value": 41.5, "unit": "ug/m3",
                  "observed_at": (t0 + timedelta(minutes=20 * i)).isoformat(), "lat": 43.25, "lon": 76.92,
                  "averaging_s": 1200}
        lines.append(json.dumps({"feed": "air", "record": record}))
    path = tmp_path / "air.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    summary = backtest.run(path, "source_stuck", out, pack=pack)
    flags = [row["alert"] for row in csv.DictReader(io.StringIO(out.getvalue()))]
    assert summary == {"rows": 8, "alerts": 1}
    assert flags.index("1") == 5


def test_backtest_names_a_bad_line_and_an_unknown_detector(tmp_path, pack):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"feed": "air", "record": {"kind": "readings"}}\n{not json\n')
    with pytest.raises(ValueError, match="line 1"):
        backtest.run(path, "source_stuck", io.StringIO(), pack=pack)
    with pytest.raises(ValueError, match="no detector 'nope'"):
        backtest.run(path, "nope", io.StringIO(), pack=pack)
