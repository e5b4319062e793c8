"""Data health: every feed's status against its cadence, age, lag, counts, transport state and its
newest rejected records; Redis and the analytics workers. Redrawn when the live channel says the
health document moved (every 2 s), never by polling Redis itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dash import Input, Output, callback, html, register_page

from dashboards import context, data
from dashboards.i18n import has, number, t, when

register_page(__name__, path="/health", name="Data health", order=90)

STATUS_CLASS = {"ok": "st-ok", "stale": "st-warn", "silent": "st-bad", "error": "st-bad"}


def layout(**_query: str) -> html.Div:
    """The page, drawn at once and redrawn on every live change."""
    lang = context.lang()
    return html.Div([html.H1(t("health.title", lang)), html.Div(id="health-body", children=body(lang))],
                    className="page health")


@callback(Output("health-body", "children"), Input("sc-live", "data"))
def refresh(_live: Any) -> Any:
    """Redraw from the hub's latest health document."""
    return body(context.lang())


def _seconds(value: float | None, lang: str) -> str:
    if value is None:
        return "—"
    if value >= 120:
        return f"{number(value / 60, lang, 1)} {t('unit.min', lang)}"
    return f"{number(value, lang, 1)} s"


def body(lang: str) -> Any:
    """The tables, from the health document and the newest dead letters (both from the hub)."""
    try:
        doc = data.health()
    except Exception:  # noqa: BLE001 - the page must show the outage, not crash
        return html.Div(t("health.unreadable", lang), className="st-bad banner")
    zone = data.context().pack.zone
    heads = ("health.feed", "health.status", "health.cadence", "health.last_event", "health.age", "health.lag",
             "health.accepted", "health.rejected", "health.transport")
    rows = [html.Tr([html.Th(t(h, lang)) for h in heads])]
    for name, feed in doc["feeds"].items():
        transport = feed.get("transport") or {}
        reasons = ", ".join(f"{code} {number(n, lang)}" for code, n in sorted(feed["rejected_by_reason"].items()))
        status = feed["status"]
        rows.append(html.Tr([
            html.Td(t(f"feed.{name}", lang) if has(f"feed.{name}") else name),
            html.Td(t(f"health.st.{status}", lang) if has(f"health.st.{status}") else status,
                    className=STATUS_CLASS.get(status, "")),
            html.Td(_seconds(feed.get("expected_cadence_s"), lang)),
            html.Td(when(feed["last_event_at"], lang, zone, "d MMM HH:mm:ss")),
            html.Td(_seconds(feed["age_s"], lang)), html.Td(_seconds(feed["lag_s"], lang)),
            html.Td(number(feed["events_total"], lang)),
            html.Td(number(feed["rejected_total"], lang) + (f" ({reasons})" if reasons else ""),
                    className="st-warn" if feed["rejected_total"] else ""),
            html.Td((transport.get("state") or "—") + (f": {transport['last_error']}"
                                                        if transport.get("last_error") else "")),
        ]))
    redis, workers = doc["redis"], doc["workers"]
    return html.Div([
        html.Table(rows, className="grid"),
        html.P([t("health.redis", lang, version=redis.get("version") or "—",
                  memory=number((redis.get("used_memory_bytes") or 0) / 1e6, lang, 1),
                  clients=redis.get("connected_clients") or 0,
                  aof=t("health.on" if redis.get("aof_enabled") else "health.off", lang)),
                " · ", t("health.workers", lang, n=workers.get("count", 0))]),
        html.H2(t("health.dead", lang)),
        *_dead(lang, zone),
    ])


def _dead(lang: str, zone: Any) -> list[Any]:
    letters = data.topic("dead_letters").doc or {}
    out: list[Any] = []
    for feed, rows in letters.items():
        title = t(f"feed.{feed}", lang) if has(f"feed.{feed}") else feed
        if not rows:
            out.append(html.P(f"{title}: {t('health.dead.none', lang)}", className="muted"))
            continue
        head = html.Tr([html.Th(t(h, lang)) for h in ("health.dead.when", "health.dead.code", "health.dead.error",
                                                        "health.dead.raw")])
        body_rows = [html.Tr([html.Td(when(datetime.fromtimestamp(r["at_ms"] / 1000, UTC), lang, zone,
                                           "d MMM HH:mm:ss")),
                              html.Td(r["code"]), html.Td(r["error"]),  # feed-supplied: text, never HTML
                              html.Td(html.Code(r["raw"]))]) for r in rows]
        out += [html.H3(title), html.Table([head, *body_rows], className="grid dead")]
    return out
