"""Citizens' appeals (``/appeals``): open appeals clustered and the districts' overdue appeals,
the appeals KPIs and their history, and per category (open, overdue, median time to close) and
per channel (``dashboards/topic.py``). Citizens' words are never shown here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dash import html, register_page

from dashboards import data, maps, topic
from dashboards.i18n import number, t

register_page(__name__, path="/appeals", name="Appeals", title="Situation Center — appeals", order=7)

OVERDUE_SCALE = maps.count_scale(1, 5, 10, 25)


def layers(lang: str) -> list[Any]:
    return [maps.appeal_cluster_layer([], lang, id="appeals-l0")]


def layer_data(topics: Mapping[str, Any], lang: str) -> list[Any]:
    return [maps.appeal_data(topic.doc_of(topics, "appeals_open") or [], lang)]


def table(topics: Mapping[str, Any], scope: str, lang: str) -> Any:
    """Categories (open, overdue, median time to close, received in 24 h), then channels."""
    records = topic.latest_records("appeals", "requests")
    now = datetime.now(UTC)
    cats = topic.appeal_categories(records, data.context().pack.norms, now, district=scope)
    cat_rows = [[topic.category_label(c["category"], lang), number(c["open"], lang), number(c["overdue"], lang),
                 number(c["median_h"], lang, 1), number(c["requested"], lang)] for c in cats]
    chans = topic.appeal_channels(records, now, district=scope)
    chan_rows = [[topic.channel_label(c["channel"], lang), number(c["requested"], lang), number(c["open"], lang)]
                 for c in chans]
    return [
        html.H2(t("topics.table.categories", lang)),
        topic.table([(t("topics.col.category", lang), "name"), (t("topics.col.open", lang), "num"),
                     (t("topics.col.overdue", lang), "num"), (t("topics.col.median_close", lang), "num"),
                     (t("topics.col.requested", lang), "num")], cat_rows, empty=t("topics.empty.rows", lang),
                    row_classes=["bad" if c["overdue"] else "" for c in cats], table_id="appeals-categories"),
        html.H2(t("topics.table.channels", lang)),
        topic.table([(t("topics.col.channel", lang), "name"), (t("topics.col.requested", lang), "num"),
                     (t("topics.col.open", lang), "num")], chan_rows, empty=t("topics.empty.rows", lang),
                    table_id="appeals-channels"),
    ]


def legend(lang: str) -> list[Any]:
    return [html.Span([html.I(className="dot", style={"background": "#b48cff"}), t("topics.layer.appeals", lang)],
                      className="key")]


SPEC = topic.TopicSpec(
    key="appeals",
    tiles=("appeals.open", "appeals.overdue", "appeals.new_last_hour", "appeals.closed_within_deadline",
           "appeals.time_to_close_median"),
    charts=(("appeals.open", "appeals.overdue"), ("appeals.new_last_hour",), ("appeals.closed_within_deadline",)),
    choro_kpi="appeals.overdue", scale=OVERDUE_SCALE, choro_label="topics.choro.appeals",
    topics=("appeals_open",), layers=layers, layer_data=layer_data, table=table, legend=legend,
    chart_titles={0: "topics.chart.open_overdue"},
)
layout = topic.layout_for(SPEC)
topic.register(SPEC)
