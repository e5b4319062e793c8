"""Air quality (``/air``): stations by AQI and the districts' AQI, the air KPIs (AQI, the Kazakh
ПДК multiples and exceedances) and their history, and every station with its AQI, dominant
pollutant, ПДК multiple and offline/stuck flags (``dashboards/topic.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dash import html, register_page

from dashboards import maps, topic
from dashboards.i18n import number, t

register_page(__name__, path="/air", name="Air quality", title="Situation Center — air quality", order=6)


def stations(topics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stations of the air snapshot."""
    return list(topic.scope_values(topic.doc_of(topics, "kpi:air"), topic.CITY).get("air.stations") or [])


def layers(lang: str) -> list[Any]:
    return [maps.station_layer([], lang, id="air-l0")]


def layer_data(topics: Mapping[str, Any], lang: str) -> list[Any]:
    return [maps.station_data(stations(topics), lang)]


def table(topics: Mapping[str, Any], scope: str, lang: str) -> Any:
    """Every station of the scope, worst AQI first, offline ones last (a station's name says
    where it is; the district filter picks the district's stations)."""
    from workers.kpi.air import CATEGORIES

    category_names = {c.key: c.name(lang) for c in CATEGORIES}
    rows, classes = [], []
    for s in topic.station_rows(stations(topics), lang, district=scope):
        flags = [t("topics.flag.offline", lang)] if s["offline"] else []
        if s["stuck"]:
            which = ", ".join(topic.pollutant(p) for p in s["stuck_pollutants"])
            flags.append(t("topics.flag.stuck", lang) + (f" ({which})" if which else ""))
        colour = maps.AQI_COLOURS.get(s["category"] or "", maps.NO_DATA)
        multiple = "—" if s["multiple"] is None else \
            f"{number(s['multiple'], lang, 1)} ({topic.pollutant(s['multiple_pollutant'])})"
        rows.append([
            str(s["name"]),
            html.Span(number(s["aqi"], lang), className="aqi-chip", style={"background": colour},
                      title=category_names.get(s["category"] or "", "")),
            topic.pollutant(s["dominant"]) if s["dominant"] else "—",
            multiple, ", ".join(flags) or t("topics.flag.ok", lang),
        ])
        classes.append("stale" if s["offline"] or s["stuck"] else "bad" if (s["multiple"] or 0) > 1 else "")
    columns = [(t("topics.col.station", lang), "name"),
               (t("topics.col.aqi", lang), "num"), (t("topics.col.dominant", lang), ""),
               (t("topics.col.multiple", lang), "num"),
               (t("topics.col.flags", lang), "")]
    return [html.H2(t("topics.table.stations", lang)),
            topic.table(columns, rows, empty=t("topics.empty.rows", lang), row_classes=classes, table_id="air-grid")]


def legend(lang: str) -> list[Any]:
    from workers.kpi.air import CATEGORIES

    return [html.Span([html.I(className="dot", style={"background": maps.AQI_COLOURS[c.key]}), c.name(lang)],
                      className="key") for c in CATEGORIES]


def notes(values: Mapping[str, Any], scope: str, lang: str) -> dict[str, str]:
    """Under the AQI: its category and the pollutant giving it."""
    from workers.kpi.air import CATEGORIES

    category = {c.key: c.name(lang) for c in CATEGORIES}.get(values.get("air.aqi_category") or "")
    dominant = values.get("air.aqi_dominant")
    text = " · ".join(x for x in (category, topic.pollutant(dominant) if dominant else None) if x)
    return {"air.aqi": text} if text else {}


SPEC = topic.TopicSpec(
    key="air",
    tiles=("air.aqi", "air.si", "air.daily_multiple", "air.exceedances", "air.stations_offline"),
    charts=(("air.aqi",), ("air.si",), ("air.exceedances",)),
    choro_kpi="air.aqi", scale=maps.AQI_SCALE, choro_label="topics.choro.air",
    layers=layers, layer_data=layer_data, table=table, legend=legend, tile_notes=notes,
)
layout = topic.layout_for(SPEC)
topic.register(SPEC)
