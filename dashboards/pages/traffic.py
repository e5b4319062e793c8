"""Traffic (``/traffic``): road segments by speed ratio and congestion, the traffic KPIs, their
history and the slowest segments, for the city or a district (``dashboards/topic.py``).

The traffic snapshot keeps the city scope only: a district's tiles and choropleth are worked out
here from the current segments by the traffic KPI module's own formulas (a segment belongs to the
district holding its midpoint); the history charts stay citywide (said under the page).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dash import html, register_page

from dashboards import maps, topic
from dashboards.i18n import number, percent, t

register_page(__name__, path="/traffic", name="Traffic", title="Situation Center — traffic", order=4)

#: The colour of congested segments, drawn over the speed bands.
CONGESTED = "#ff4fd8"
#: The districts' median speed ratio, faint under the segments.
SCALE = maps.Scale(breaks=maps.RATIO_SCALE.breaks, colours=maps.RATIO_SCALE.colours, digits=2, opacity=0.28)


def segments(topics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The current segments of the traffic snapshot."""
    return list(topic.scope_values(topic.doc_of(topics, "kpi:traffic"), topic.CITY).get("traffic.segments") or [])


def _snapshot_time(topics: Mapping[str, Any]) -> datetime:
    doc = topic.doc_of(topics, "kpi:traffic") or {}
    ts = topic.epoch(doc.get("computed_at"))
    return datetime.fromtimestamp(ts if ts is not None else time.time(), UTC)


def live_values(topics: Mapping[str, Any], scope: str) -> dict[str, Any]:
    """The city's snapshot values; for a district, the segment KPIs of its segments."""
    city = topic.scope_values(topic.doc_of(topics, "kpi:traffic"), topic.CITY)
    if scope == topic.CITY:
        return city
    mine = [s for s in segments(topics) if topic.segment_district(s) == scope]
    return topic.traffic_values(mine, _snapshot_time(topics))


def choro_live(topics: Mapping[str, Any]) -> dict[str, Any]:
    """Median speed ratio of each district's current segments."""
    by: dict[str, list[dict[str, Any]]] = {}
    for s in segments(topics):
        district = topic.segment_district(s)
        if district is not None:
            by.setdefault(district, []).append(s)
    now = _snapshot_time(topics)
    return {d: topic.traffic_values(rows, now)["traffic.speed_ratio_median"] for d, rows in by.items()}


def congested_data(rows: list[dict[str, Any]], lang: str) -> dict[str, Any]:
    """The congested current segments, in :data:`CONGESTED`."""
    out = maps.segment_data([s for s in rows if s.get("congested") and not s.get("stale")], lang)
    for feature in out["features"]:
        feature["properties"]["colour"] = CONGESTED
    return out


def layers(lang: str) -> list[Any]:
    return [maps.segment_layer([], lang, id="traffic-l0"), maps.segment_layer([], lang, id="traffic-l1")]


def layer_data(topics: Mapping[str, Any], lang: str) -> list[Any]:
    rows = segments(topics)
    return [maps.segment_data(rows, lang), congested_data(rows, lang)]


def table(topics: Mapping[str, Any], scope: str, lang: str) -> Any:
    """The slowest current segments of the scope."""
    rows, classes = [], []
    for s in topic.worst_segments(segments(topics), district=scope):
        band = s.get("band")
        state = (t("topics.flag.stale", lang) if s.get("stale") else
                 t("topics.flag.congested", lang) if s.get("congested") else t("topics.flag.ok", lang))
        speed = "—" if s.get("speed_kmh") is None else \
            f"{number(s.get('speed_kmh'), lang)} / {number(s.get('free_flow_kmh'), lang)}"
        rows.append([
            html.Span([html.I(className="chip", style={"background": maps.BAND_COLOURS.get(band, maps.NO_DATA)}),
                       str(s.get("name") or s.get("segment_id"))]),
            topic.district_name(s.get("district"), lang), speed,
            percent(s.get("ratio"), lang), state,
        ])
        classes.append("stale" if s.get("stale") else "bad" if s.get("congested") else "")
    columns = [(t("topics.col.segment", lang), "name"), (t("topics.col.district", lang), ""),
               (t("topics.col.speed", lang), "num"),
               (t("topics.col.ratio", lang), "num"), (t("topics.col.state", lang), "")]
    return [html.H2(t("topics.table.segments", lang)),
            topic.table(columns, rows, empty=t("topics.empty.rows", lang), row_classes=classes,
                        table_id="traffic-grid")]


def legend(lang: str) -> list[Any]:
    return [html.Span([html.I(className="line", style={"background": maps.BAND_COLOURS["red"]}),
                       html.I(className="line", style={"background": maps.BAND_COLOURS["green"]}),
                       t("topics.layer.segments", lang)], className="key"),
            html.Span([html.I(className="line", style={"background": CONGESTED}), t("topics.layer.congested", lang)],
                      className="key")]


SPEC = topic.TopicSpec(
    key="traffic",
    tiles=("traffic.speed_ratio_median", "traffic.segments_congested", "traffic.score", "traffic.score_vs_baseline"),
    charts=(("traffic.speed_ratio_median",), ("traffic.segments_congested",), ("traffic.score",)),
    choro_kpi=None, scale=SCALE, choro_label="topics.choro.traffic", district_history=False,
    layers=layers, layer_data=layer_data, table=table, live_values=live_values, choro_live=choro_live,
    legend=legend, tile_notes=lambda values, scope, lang: {} if scope == topic.CITY else {
        k: t("topics.city_only", lang) for k in ("traffic.score", "traffic.score_vs_baseline")},
)
layout = topic.layout_for(SPEC)
topic.register(SPEC)
