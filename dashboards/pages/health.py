"""Data health: every feed's status against its cadence, age, lag, counts and transport state."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from dash import Input, Output, callback, dcc, html, register_page

from dashboards import data

register_page(__name__, path="/health", name="Data health", order=0)

STATUS_CLASS = {"ok": "st-ok", "stale": "st-warn", "silent": "st-bad", "error": "st-bad"}


def layout(**_query: str) -> html.Div:
    """The page: a table refreshed every 5 s."""
    return html.Div([
        html.H1("Data health"),
        html.Div(id="health-body", children=_body()),
        dcc.Interval(id="health-tick", interval=5_000),
    ], className="page")


@callback(Output("health-body", "children"), Input("health-tick", "n_intervals"))
def refresh(_n: int | None) -> Any:
    """Re-read the health document."""
    return _body()


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return f"{value}{suffix}"


def _local(stamp: str | None, zone: ZoneInfo) -> str:
    if not stamp:
        return "—"
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(zone)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _body() -> Any:
    try:
        doc = data.health()
    except Exception as err:  # noqa: BLE001 - the page must show the outage, not crash
        return html.Div(f"Cannot read health: {err}", className="st-bad banner")
    zone = ZoneInfo(data.context().pack.timezone)
    rows = [html.Tr([html.Th(h) for h in ("Feed", "Status", "Last event (local)", "Age", "Lag", "Accepted",
                                          "Rejected", "Transport")])]
    for name, feed in doc["feeds"].items():
        transport = feed["transport"]
        reasons = ", ".join(f"{code} {n:,}" for code, n in sorted(feed["rejected_by_reason"].items()))
        rows.append(html.Tr([
            html.Td(name), html.Td(feed["status"], className=STATUS_CLASS.get(feed["status"], "")),
            html.Td(_local(feed["last_event_at"], zone)), html.Td(_fmt(feed["age_s"], " s")),
            html.Td(_fmt(feed["lag_s"], " s")), html.Td(_fmt(feed["events_total"])),
            html.Td(_fmt(feed["rejected_total"]) + (f" ({reasons})" if reasons else ""),
                    className="st-warn" if feed["rejected_total"] else ""),
            html.Td(f"{transport['state'] or '—'}" + (f": {transport['last_error']}" if transport["last_error"]
                                                        else "")),
        ]))
    redis = doc["redis"]
    workers = doc["workers"]
    return html.Div([
        html.Table(rows, className="grid"),
        html.P(f"Redis {redis['version']}: {redis['used_memory_bytes'] or 0:,} bytes, "
               f"{redis['connected_clients']} clients, AOF {'on' if redis['aof_enabled'] else 'off'}. "
               f"Workers: {workers['count']}."),
    ])
