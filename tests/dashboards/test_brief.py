"""The leadership brief's pure builders (``dashboards/pages/brief.py``) on small fixture documents:
headline numbers with targets and trends against 3 h ago, "what changed", serious incidents,
district numbers, and the tiles' text in kk/ru/en."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.citypack import load_pack
from dashboards import data
from dashboards.i18n import LANGS, catalog
from tests.dashboards.test_incidents_page import load_page

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
T = NOW.timestamp()


@pytest.fixture(scope="module")
def page():
    module, restore = load_page("brief")
    yield module
    restore()


@pytest.fixture(scope="module", autouse=True)
def city_context():
    old = (data._CTX, data._HUB)
    data._CTX = SimpleNamespace(pack=load_pack(None), redis=None)
    yield
    data._CTX, data._HUB = old


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def inc(id_: str, *, severity: int = 2, status: str = "open", detected: timedelta = timedelta(hours=1),
        resolved: timedelta | None = None, district: str = "almaly", **over) -> dict:
    at = NOW - detected
    doc = {"id": id_, "type": "road_crash", "status": status, "severity": severity, "district": district,
           "districts": [district], "detected_at": iso(at), "acknowledged_at": None, "assignee": None,
           "resolved_at": iso(NOW - resolved) if resolved is not None else None, "merged_at": None,
           "sla": {"ack_due": iso(at + timedelta(minutes=15)), "resolve_due": iso(at + timedelta(hours=24))}}
    doc.update(over)
    return doc


def test_brief_catalog_has_three_languages_with_matching_placeholders():
    own = json.loads((ROOT / "dashboards/locales/brief.json").read_text(encoding="utf-8"))
    assert set(own) <= set(catalog())
    for key, texts in own.items():
        assert set(texts) == set(LANGS), key
        marks = {lang: sorted(re.findall(r"{(\w+)}", texts[lang])) for lang in LANGS}
        assert marks["kk"] == marks["ru"] == marks["en"], key


def test_headlines_carry_target_colour_and_trend(page):
    now = {"air.aqi": 160, "air.pollution_level": 3, "ambulance.within_norm_pct_c1": 84.0,
           "ambulance.response_p90_c1": 11.4, "appeals.overdue": 0, "appeals.open": 518,
           "appeals.closed_within_deadline": 95.0, "traffic.score": 6.0, "traffic.score_baseline": 4.0,
           "incidents.serious": 2, "incidents.overdue": 1}
    before = {"air.aqi": 120, "ambulance.within_norm_pct_c1": 92.0, "appeals.overdue": 0,
              "appeals.closed_within_deadline": 90.0, "traffic.score": 6.02, "incidents.serious": 3}
    items = {i["id"]: i for i in (page.headline(spec, now, before) for spec in page.HEADLINES)}
    assert len(items) == 6
    air = items["air"]
    assert (air["value"], air["target"], air["meets"], air["arrow"], air["trend"]) == (160, 100.0, False, "▲", "worse")
    amb = items["ambulance"]
    assert (amb["meets"], amb["arrow"], amb["trend"]) == (False, "▼", "worse")
    assert (items["overdue"]["meets"], items["overdue"]["trend"]) == (True, "flat")  # unchanged zero
    assert (items["closed"]["meets"], items["closed"]["trend"]) == (True, "better")
    traffic = items["traffic"]
    assert (traffic["key"], traffic["meets"], traffic["trend"]) == ("traffic.score", False, "flat")  # 6 > usual 4
    assert (items["incidents"]["meets"], items["incidents"]["trend"]) == (False, "better")
    # no score provider: the speed against free flow, shown in %
    fallback = page.headline(page.HEADLINES[4], {"traffic.speed_ratio_median": 0.72}, {})
    assert (fallback["key"], fallback["unit"], fallback["scale"]) == ("traffic.speed_ratio_median", "%", 100.0)


def test_tiles_read_in_each_language(page):
    spec = page.HEADLINES[1]
    item = page.headline(spec, {"ambulance.within_norm_pct_c1": 84.4, "ambulance.response_p90_c1": 11.44},
                         {"ambulance.within_norm_pct_c1": 92.0})
    texts = {lang: str(page.tile(item, lang).to_plotly_json()) for lang in LANGS}
    assert "'84'" in texts["en"] and "target ≥ 90 %" in texts["en"] and "3 h ago: 92" in texts["en"]
    assert "цель ≥ 90 %" in texts["ru"] and "3 ч назад: 92" in texts["ru"] and "11,4 мин" in texts["ru"]
    assert "мақсат ≥ 90 %" in texts["kk"] and "3 сағ бұрын: 92" in texts["kk"]
    empty = page.headline(page.HEADLINES[0], {"air.aqi": 90, "air.pollution_level": 4}, {})
    en = str(page.tile(empty, "en").to_plotly_json())
    assert "3 h ago: no data" in en and "Pollution: IV, very high" in en


def test_incident_counts_now_and_three_hours_ago(page):
    docs = [inc("A", detected=timedelta(hours=1)),                                    # new within 3 h
            inc("B", detected=timedelta(hours=5), severity=3),                        # open all along, overdue
            inc("C", detected=timedelta(hours=6), status="resolved", resolved=timedelta(hours=2)),  # open 3 h ago
            inc("D", detected=timedelta(hours=4), severity=1),                        # advisory: not serious
            inc("E", detected=timedelta(hours=4), status="resolved", resolved=timedelta(hours=3.5))]
    assert page.incident_counts(docs, T) == {"incidents.serious": 2, "incidents.overdue": 2}
    assert page.incident_counts(docs, T - 3 * 3600) == {"incidents.serious": 2, "incidents.overdue": 2}
    assert page.incident_counts([inc("F", detected=timedelta(minutes=5))], T)["incidents.overdue"] == 0


def test_what_changed_lists_opened_resolved_and_kpi_moves(page):
    docs = [inc("A", detected=timedelta(hours=1)), inc("B", detected=timedelta(hours=5)),
            inc("C", detected=timedelta(hours=6), status="resolved", resolved=timedelta(hours=2)),
            inc("M", detected=timedelta(minutes=30), status="merged")]
    found = page.changes(docs, T)
    assert [i["id"] for i in found["opened"]] == ["A"]
    assert [i["id"] for i in found["resolved"]] == ["C"]
    moves = page.kpi_moves({"air.aqi": 180, "appeals.open": 510, "appeals.overdue": 1, "ambulance.calls_waiting": 2},
                           {"air.aqi": 100, "appeals.open": 500, "appeals.overdue": 0, "ambulance.calls_waiting": 9})
    assert [(m["key"], m["arrow"], m["trend"]) for m in moves] == [("air.aqi", "▲", "worse"),
                                                                   ("ambulance.calls_waiting", "▼", "better")]
    snap = {"now": T, "all": docs, "current": {"air.aqi": 180}, "before": {"air.aqi": 100}, "has_history": True}
    text = str([c.to_plotly_json() for c in page.changes_block(snap, "en")])
    assert "'opened'" in text and "100 → 180 AQI" in text
    quiet = str([c.to_plotly_json() for c in page.changes_block({**snap, "before": {}, "has_history": False}, "ru")])
    assert "Истории за 3 ч пока нет" in quiet


def test_serious_incidents_and_district_numbers(page):
    docs = [inc("A", severity=2, detected=timedelta(hours=1)), inc("B", severity=3, detected=timedelta(hours=2)),
            inc("C", severity=1), inc("D", status="resolved", resolved=timedelta(hours=1)),
            inc("E", severity=2, district="medeu")]
    assert [i["id"] for i in page.serious(docs)] == ["B", "A", "E"]
    kpi = {"air": {"values": {"almaly": {"air.aqi": 180, "air.pollution_level": 3}}},
           "appeals": {"values": {"almaly": {"appeals.open": 40, "appeals.overdue": 2}}},
           "ambulance": {"values": {"almaly": {"ambulance.within_norm_pct": 95.0}}}}
    numbers = page.district_numbers(kpi, docs, "almaly")
    assert numbers["values"]["air.aqi"] == 180 and numbers["values"]["appeals.overdue"] == 2
    assert numbers["values"]["ambulance.calls_waiting"] is None
    assert [i["id"] for i in numbers["incidents"]] == ["B", "A", "C"]
    assert page.district_state(numbers) == "bad"
    assert page.district_state(page.district_numbers({}, [], "turksib")) == "ok"
    assert page.district_state(page.district_numbers(kpi, [], "almaly")) == "bad"  # AQI 180 > 150
