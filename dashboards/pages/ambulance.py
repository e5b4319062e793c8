"""Ambulance (``/ambulance``): units by status, calls waiting and the share within the arrival
norm by district; the ambulance KPIs and their history; calls waiting and the slowest recent
responses against their category's norm (``dashboards/topic.py``). No patient data is shown:
calls appear by category, district and times only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import dash_leaflet as dl
from dash import html, register_page

from dashboards import data, maps, topic
from dashboards.i18n import number, t, when

register_page(__name__, path="/ambulance", name="Ambulance", title="Situation Center — ambulance", order=5)

#: Waiting calls by category (1 most urgent).
CATEGORY_COLOURS = {1: "#d7263d", 2: "#e8772e", 3: "#a8891c", 4: "#4a6fa5"}
#: Share of calls within the arrival norm, % (target 90): red below 70 ... green from 95.
NORM_SCALE = maps.Scale(breaks=(70, 80, 90, 95), colours=("#d7263d", "#e8772e", "#f2d024", "#8bd34a", "#2bb24c"),
                        unit="topics.unit.percent")


def calls() -> list[dict[str, Any]]:
    return topic.latest_records("ambulance", "calls")


def waiting_data(rows: list[dict[str, Any]], lang: str) -> dict[str, Any]:
    """Waiting calls as discs labelled with their category (tooltip: category, district, minutes)."""
    features = []
    for c in rows:
        if c.get("lat") is None or c.get("lon") is None:
            continue
        category = c.get("category")
        waited = f"{number(c['waiting_min'], lang)} {t('unit.min', lang)}"
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [c["lon"], c["lat"]]},
                         "properties": {"label": str(category or "?"), "colour": CATEGORY_COLOURS.get(category, "#666"),
                                        "tooltip": maps.tip(t("topics.table.waiting", lang),
                                                            t("topics.category_n", lang, n=category),
                                                            topic.district_name(c.get("district"), lang),
                                                            waited)}})
    return maps.collection(features)


def layers(lang: str) -> list[Any]:
    return [maps.unit_layer([], lang, id="ambulance-l0"),
            dl.GeoJSON(id="ambulance-l1", data=maps.collection([]), pointToLayer={"variable": "scMaps.stationPoint"})]


def layer_data(topics: Mapping[str, Any], lang: str) -> list[Any]:
    return [maps.unit_data(topic.doc_of(topics, "units") or [], lang),
            waiting_data(topic.waiting_calls(calls(), time.time()), lang)]


def table(topics: Mapping[str, Any], scope: str, lang: str) -> Any:
    """Calls waiting (longest first), then the slowest responses of the last 3 h against their norm."""
    now = time.time()
    zone = data.context().pack.zone
    minutes = t("unit.min", lang)
    waiting = topic.waiting_calls(calls(), now, district=scope)
    wait_rows = [[t("topics.category_n", lang, n=c["category"]), topic.district_name(c["district"], lang),
                  when(_iso(c["received"]), lang, zone, "HH:mm"), f"{number(c['waiting_min'], lang)} {minutes}"]
                 for c in waiting[:8]]
    slow = topic.slow_responses(calls(), data.context().pack.norms, now, district=scope)
    slow_rows = [[t("topics.category_n", lang, n=r["category"]), topic.district_name(r["district"], lang),
                  number(r["response_min"], lang, 1), number(r["norm_min"], lang),
                  number(r["over_min"], lang, 1) if r["over_min"] > 0 else "—",
                  when(_iso(r["at"]), lang, zone, "HH:mm")] for r in slow]
    return [
        html.H2(t("topics.table.waiting", lang)),
        topic.table([(t("topics.col.category", lang), ""), (t("topics.col.district", lang), ""),
                     (t("topics.col.received", lang), "num"), (t("topics.col.waiting", lang), "num")],
                    wait_rows, empty=t("topics.empty.waiting", lang), table_id="ambulance-waiting",
                    row_classes=["bad" if c["category"] in (1, 2) else "" for c in waiting[:8]]),
        html.H2(t("topics.table.slowest", lang)),
        topic.table([(t("topics.col.category", lang), ""), (t("topics.col.district", lang), ""),
                     (t("topics.col.response", lang), "num"), (t("topics.col.norm", lang), "num"),
                     (t("topics.col.over", lang), "num"), (t("topics.col.arrived", lang), "num")],
                    slow_rows, empty=t("topics.empty.rows", lang), table_id="ambulance-slowest",
                    row_classes=["bad" if r["over_min"] > 0 else "" for r in slow]),
    ]


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


def legend(lang: str) -> list[Any]:
    keys = [html.Span([html.I(className="dot small", style={"background": maps.UNIT_COLOURS[g]}),
                       t(f"wall.unit.{g}", lang)], className="key") for g in maps.UNIT_COLOURS]
    keys.append(html.Span([html.I(className="dot", style={"background": CATEGORY_COLOURS[1]}),
                           t("topics.layer.waiting", lang)], className="key"))
    return keys


SPEC = topic.TopicSpec(
    key="ambulance",
    tiles=("ambulance.within_norm_pct", "ambulance.calls_waiting", "ambulance.response_p50",
           "ambulance.response_p90", "ambulance.units_available"),
    charts=(("ambulance.within_norm_pct",), ("ambulance.calls_waiting",),
            ("ambulance.response_p50", "ambulance.response_p90")),
    choro_kpi="ambulance.within_norm_pct", scale=NORM_SCALE, choro_label="topics.choro.ambulance",
    topics=("units",), layers=layers, layer_data=layer_data, table=table, legend=legend,
    chart_titles={2: "topics.chart.response"},
)
layout = topic.layout_for(SPEC)
topic.register(SPEC)
