"""What the four topic pages (``/traffic``, ``/ambulance``, ``/air``, ``/appeals``) share.

A page is a :class:`TopicSpec` (its KPIs, charts, choropleth, map layers and table) given to
:func:`layout_for` and :func:`register`. Every page has the same frame:

* a bar: the page title, the district filter (every district of the pack, named in the language;
  "whole city" first), the time range (last 1/3/6/12/24 h) and the replay control (replay on/off,
  play/pause, speed, a slider over the range's minutes and the minute shown);
* KPI tiles for the chosen scope: value (coloured against the target), target, the good
  direction, the data's age (ticking in the browser, ``assets/live.js``);
* the map (``dashboards.maps``: created once; district choropleth and layers get new ``data``
  only, so the operator's zoom survives; the district filter flies to the district);
* KPI history charts over the range (Plotly, dark, target line), read once per range or district
  change from the per-minute history (``workers.snapshots.read_history``), then extended with
  ``Patch`` as new minutes arrive through ``sc-live``;
* a table (per page).

Replay: the slider steps through the minutes of the range that have a history entry (a timer
runs only while playing); each step reads that one minute's entry and
shows the tiles and the district choropleth as they were, and a cursor on the charts. Other
layers, the table and the charts' live edge stay live.

Reads: KPI documents come from the hub (:mod:`dashboards.data`). History is read from Redis only
when the range or district changes and one entry per replay step. The waiting calls and the
appeals' categories need the latest records, which no hub topic carries: they are read once per
process at most every :data:`RECORDS_EVERY_S` (whatever the number of screens), like the wall's
hour-ago values.

Everything shown from a feed (segment, station, category names) is text (Dash escapes it);
tooltips are built by :func:`dashboards.maps.tip`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from dash import Input, Output, Patch, State, callback, ctx, dcc, html, no_update

from dashboards import context, data, maps
from dashboards.i18n import LANGS, has, lang_of, names, number, t, when

#: Time ranges offered (hours); the default.
RANGES: tuple[int, ...] = (1, 3, 6, 12, 24)
DEFAULT_RANGE = 6
#: Replay speeds: minutes per step; a step every :data:`PLAY_MS`.
SPEEDS: tuple[int, ...] = (1, 5, 15)
PLAY_MS = 700
CITY = "city"
#: The latest records (calls, appeals) are re-read at most this often per process (seconds).
RECORDS_EVERY_S = 5.0
#: A KPI snapshot not recomputed for this long marks the tiles stale (seconds).
SNAPSHOT_STALE_S = 300.0
#: How units are shown (catalog key of the text after a value; None: nothing) and their digits.
UNITS: Mapping[str, tuple[str | None, int]] = {
    "%": ("topics.unit.percent", 1), "ratio": ("topics.unit.percent", 0), "min": ("unit.min", 1),
    "h": ("unit.h", 1), "count": (None, 0), "AQI": ("topics.unit.aqi", 0), "×ПДК": ("topics.unit.limit", 1),
    "score": ("topics.unit.score", 1), "level": (None, 0),
}
#: Plotly colours of a chart's traces, in order.
TRACE_COLOURS = ("#4aa3ff", "#ffb020", "#b48cff", "#2ecc71", "#ff5a4f")
TARGET_COLOUR = "#f1c40f"


# --- KPI definitions --------------------------------------------------------------------------

_DEFINITIONS: dict[str, Any] = {}
_DEF_LOCK = threading.Lock()


def definitions(norms: Any = None) -> dict[str, Any]:
    """Every KPI definition by key (the ambulance targets from the pack's norms)."""
    with _DEF_LOCK:
        if not _DEFINITIONS:
            from workers.kpi import air, ambulance, appeals, traffic

            if norms is None:
                try:
                    norms = data.context().pack.norms
                except RuntimeError:
                    norms = None
            rows = [*air.KPIS, *traffic.KPIS, *appeals.KPIS,
                    *(ambulance.definitions(norms) if norms is not None else ambulance.KPIS)]
            _DEFINITIONS.update({row.key: row for row in rows})
        return _DEFINITIONS


def definition(key: str) -> Any:
    """The :class:`workers.kpi.definitions.KpiDefinition` of ``key`` (KeyError if unknown)."""
    return definitions()[key]


def kpi_name(key: str, lang: str) -> str:
    """The KPI's name in ``lang``, from its definition."""
    return definition(key).names[lang]


def unit_text(unit: str, lang: str) -> str:
    """What follows a value of ``unit`` ("%", "min", "× ПДК" ...), "" for plain counts."""
    key = UNITS.get(unit, (None, 0))[0]
    return t(key, lang) if key else ""


def scaled(value: Any, unit: str) -> Any:
    """A KPI value as shown: ratios as percentages, others unchanged."""
    if isinstance(value, int | float) and unit == "ratio":
        return value * 100
    return value


def fmt(value: Any, unit: str, lang: str, *, with_unit: bool = True) -> str:
    """A KPI value formatted for ``lang`` (``—`` without a value)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    digits = UNITS.get(unit, (None, 1))[1]
    text = number(scaled(value, unit), lang, digits)
    suffix = unit_text(unit, lang) if with_unit else ""
    return f"{text} {suffix}" if suffix else text


# --- the spec of a page -----------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSpec:
    """One topic page.

    Attributes:
        key: the domain (``traffic`` ...), the prefix of every component id and the KPI snapshot read.
        tiles: KPI keys shown as tiles.
        charts: history charts, each a tuple of KPI keys drawn as traces (a ``{name: value}`` KPI
            gives one trace per name).
        choro_kpi: the KPI of the district choropleth (from the snapshot's district scopes and,
            in replay, from the history); None: ``choro_live`` only, no replay of it.
        scale: the choropleth's colour scale.
        choro_label: catalog key of the choropleth's title.
        district_history: whether the history holds district scopes (traffic: city only).
        topics: hub topics the page's layers and table read (besides its KPI snapshot and health).
        layers: ``f(lang) -> [layer components]`` drawn above the districts (ids ``<key>-l<i>``).
        layer_data: ``f(topics, lang) -> [GeoJSON data]``, one per layer.
        table: ``f(topics, scope, lang) -> children`` of the table panel.
        live_values: ``f(topics, scope) -> {kpi: value}`` overriding the snapshot's scope values.
        choro_live: ``f(topics) -> {district: value}`` overriding the snapshot's district values.
        legend: ``f(lang) -> children`` of the map legend.
        chart_titles: chart index -> catalog key of its title (default: the KPI's name).
        tile_notes: ``f(values, scope, lang) -> {kpi: text}``: a line under a tile's value.
    """

    key: str
    tiles: tuple[str, ...]
    charts: tuple[tuple[str, ...], ...]
    choro_kpi: str | None
    scale: maps.Scale
    choro_label: str
    district_history: bool = True
    topics: tuple[str, ...] = ()
    layers: Callable[[str], list[Any]] = field(default=lambda lang: [])
    layer_data: Callable[[Mapping[str, Any], str], list[Any]] = field(default=lambda topics, lang: [])
    table: Callable[[Mapping[str, Any], str, str], Any] = field(default=lambda topics, scope, lang: [])
    live_values: Callable[[Mapping[str, Any], str], dict[str, Any]] | None = None
    choro_live: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    legend: Callable[[str], list[Any]] | None = None
    chart_titles: Mapping[int, str] = field(default_factory=dict)
    tile_notes: Callable[[Mapping[str, Any], str, str], dict[str, str]] | None = None

    def all_topics(self) -> tuple[str, ...]:
        """Hub topics the page reads."""
        return (f"kpi:{self.key}", "health", *self.topics)

    def id(self, name: str) -> str:  # noqa: A003 - a component id
        """The component id ``<key>-<name>``."""
        return f"{self.key}-{name}"


# --- reading ------------------------------------------------------------------------------------


def read_topics(spec: TopicSpec) -> dict[str, Any]:
    """The hub's current load of every topic the page reads."""
    return {name: data.topic(name) for name in spec.all_topics()}


def doc_of(topics: Mapping[str, Any], name: str) -> Any:
    """The document of a topic (None before its first load)."""
    item = topics.get(name)
    return None if item is None else item.doc


def scope_values(doc: Mapping[str, Any] | None, scope: str) -> dict[str, Any]:
    """``{kpi: value}`` of one scope of a KPI snapshot or history entry."""
    return dict(((doc or {}).get("values") or {}).get(scope) or {})


def district_values(doc: Mapping[str, Any] | None, kpi: str) -> dict[str, Any]:
    """``{district: value}`` of ``kpi`` over the district scopes of a snapshot or history entry."""
    return {scope: values.get(kpi) for scope, values in ((doc or {}).get("values") or {}).items()
            if scope != CITY and isinstance(values, Mapping)}


def epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO time (``Z`` allowed), or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_RECORDS: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
_RECORDS_LOCK = threading.Lock()


def latest_records(feed: str, kind: str, *, now: float | None = None) -> list[dict[str, Any]]:
    """The latest merged records of ``feed``/``kind`` (calls, appeals), read at most every
    :data:`RECORDS_EVERY_S` per process. An unreachable Redis gives the last good read."""
    from core import keys

    now = time.time() if now is None else now
    with _RECORDS_LOCK:
        cached = _RECORDS.get((feed, kind))
    if cached is not None and now - cached[0] < RECORDS_EVERY_S:
        return cached[1]
    try:
        rows = [orjson.loads(raw) for raw in data.context().redis.hvals(keys.latest_key(feed, kind))]
    except Exception:  # noqa: BLE001 - keep the last good read; the connection state shows the outage
        return [] if cached is None else cached[1]
    with _RECORDS_LOCK:
        _RECORDS[(feed, kind)] = (now, rows)
    return rows


def read_entries(domain: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The per-minute KPI history of ``domain`` in ``[start, end]`` (empty when Redis fails)."""
    from workers.snapshots import read_history

    try:
        return read_history(data.context().redis, domain, start, end)
    except Exception:  # noqa: BLE001 - an empty chart, not a broken page
        return []


# --- tiles --------------------------------------------------------------------------------------


def value_id(spec_key: str, kpi: str) -> str:
    """The id of a tile's value (``traffic-v-segments_congested``)."""
    return f"{spec_key}-v-{kpi.split('.', 1)[1]}"


def age_text(ts: float | None, now: float, lang: str) -> str:
    """``3 min ago`` (the browser keeps it ticking)."""
    if ts is None:
        return t("age.none", lang)
    s = max(0, int(now - ts))
    if s < 60:
        return t("age.seconds", lang, n=s)
    if s < 3600:
        return t("age.minutes", lang, n=s // 60)
    return t("age.hours", lang, n=s // 3600)


def _dict_value(value: Mapping[str, Any], unit: str, lang: str) -> tuple[str, str]:
    """A ``{name: value}`` KPI (scores per provider): the values joined, and who gave them."""
    items = [(k, v) for k, v in sorted(value.items()) if isinstance(v, int | float)]
    if not items:
        return "—", ""
    return " / ".join(fmt(v, unit, lang, with_unit=False) for _, v in items), " / ".join(k for k, _ in items)


def tile(spec_key: str, kpi: str, value: Any, lang: str, *, age_ts: float | None = None, now: float | None = None,
         stale: bool = False, stale_after_s: float = 600.0, replay_at: str | None = None,
         note: str | None = None) -> html.Div:
    """One KPI tile: name, value (``ok``/``bad`` against the target), unit, target, the good
    direction, and the data's age (or, in replay, the minute shown).

    Args:
        spec_key: the page (ids).
        kpi: the KPI key (name, unit, target and direction come from its definition).
        value: its value (a number, a ``{name: number}`` mapping, or None).
        age_ts: epoch seconds of the data (ticking age); ignored in replay.
        stale: the data is late (hatched tile, "stale" flag).
        stale_after_s: the browser marks the tile stale past this age.
        replay_at: the minute shown, when replaying.
        note: a line under the value (e.g. "whole city only").
    """
    now = time.time() if now is None else now
    row = definition(kpi)
    sub = ""
    if isinstance(value, Mapping):
        shown, sub = _dict_value(value, row.unit, lang)
        meets = None
    else:
        shown = fmt(value, row.unit, lang, with_unit=False)
        meets = row.meets(value) if isinstance(value, int | float) else None
    unit = unit_text(row.unit, lang)
    target = ""
    if row.target is not None:
        key = "wall.target_le" if row.good == "down" else "wall.target_ge"
        target = t(key, lang, v=fmt(row.target, row.unit, lang))
    value_class = "value" + ("" if meets is None else (" ok" if meets else " bad"))
    if replay_at is not None:
        age = html.Span(t("topics.at", lang, t=replay_at), className="replay-at")
    else:
        age = html.Span(age_text(age_ts, now, lang), className="sc-age",
                        **{"data-ts": "" if age_ts is None else str(int(age_ts * 1000)),
                           "data-stale-after": str(int(stale_after_s)), "data-stale": "1" if stale else "0"})
    return html.Div([
        html.Div(row.names[lang], className="kpi-name", title=row.formula),
        html.Div([html.Span(shown, className=value_class, id=value_id(spec_key, kpi)),
                  html.Span(unit, className="unit")], className="value-row"),
        html.Div(sub or note or "", className="sub"),
        html.Div([html.Span(target, className="target"),
                  html.Span(t(f"topics.good.{row.good}", lang), className=f"good good-{row.good}")],
                 className="target-row"),
        html.Div([html.Span(t("wall.stale", lang), className="stale-flag"), age], className="tile-age"),
    ], className="sc-tile topic-tile" + (" stale" if stale and replay_at is None else "")
       + (" replay" if replay_at is not None else ""), **{"data-kpi": kpi})


def freshness(topics: Mapping[str, Any], domain: str, now: float) -> tuple[float | None, bool, float]:
    """The data's time (the feed's last event, else the snapshot's), whether it is stale, and
    the age past which the browser calls it stale (2× the feed's cadence)."""
    doc = doc_of(topics, f"kpi:{domain}") or {}
    feed = ((doc_of(topics, "health") or {}).get("feeds") or {}).get(domain) or {}
    cadence = float(feed.get("expected_cadence_s") or 600)
    computed = epoch(doc.get("computed_at"))
    ts = epoch(feed.get("last_event_at")) or computed
    stale = (feed.get("status") not in (None, "ok") or computed is None or now - computed > SNAPSHOT_STALE_S
             or (ts is not None and now - ts > 2 * cadence))
    return ts, stale, 2 * cadence


def tiles(spec: TopicSpec, values: Mapping[str, Any], lang: str, *, age_ts: float | None = None,
          stale: bool = False, stale_after_s: float = 600.0, replay_at: str | None = None, now: float | None = None,
          notes: Mapping[str, str] | None = None) -> list[html.Div]:
    """The page's tiles from ``{kpi: value}`` of one scope (live or a history minute)."""
    return [tile(spec.key, kpi, values.get(kpi), lang, age_ts=age_ts, stale=stale, stale_after_s=stale_after_s,
                 replay_at=replay_at, now=now, note=(notes or {}).get(kpi)) for kpi in spec.tiles]


def live_scope_values(spec: TopicSpec, topics: Mapping[str, Any], scope: str) -> dict[str, Any]:
    """The scope's current values (the page's own computation where the snapshot has none)."""
    if spec.live_values is not None:
        return spec.live_values(topics, scope)
    return scope_values(doc_of(topics, f"kpi:{spec.key}"), scope)


def live_tiles(spec: TopicSpec, topics: Mapping[str, Any], scope: str, lang: str, now: float) -> list[html.Div]:
    """The tiles as they are now."""
    ts, stale, after = freshness(topics, spec.key, now)
    values = live_scope_values(spec, topics, scope)
    notes = spec.tile_notes(values, scope, lang) if spec.tile_notes else None
    return tiles(spec, values, lang, age_ts=ts, stale=stale, stale_after_s=after, now=now, notes=notes)


def tile_key(spec: TopicSpec, topics: Mapping[str, Any], scope: str, now: float) -> str:
    """What the live tiles show (they are redrawn only when it changes)."""
    values = live_scope_values(spec, topics, scope)
    ts, stale, _ = freshness(topics, spec.key, now)
    return orjson.dumps([[values.get(k) for k in spec.tiles], ts, stale], option=orjson.OPT_NON_STR_KEYS).decode()


# --- history charts -----------------------------------------------------------------------------


def local(ms: int | float, zone: Any) -> str:
    """Epoch ms as a naive ISO time in the city's zone (Plotly draws it as given)."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


def x_range(end_ms: int | float, hours: int, zone: Any) -> list[str]:
    """The charts' x-range: the last ``hours`` before ``end_ms``, in the city's zone."""
    return [local(end_ms - hours * 3_600_000, zone), local(end_ms, zone)]


def trace_names(chart: Sequence[str], entries: Iterable[Mapping[str, Any]], scope: str) -> list[tuple[str, str | None]]:
    """The traces of a chart: ``(kpi, sub-key)`` with a sub-key per name of a ``{name: value}`` KPI."""
    out: list[tuple[str, str | None]] = []
    subs: dict[str, set[str]] = {}
    for entry in entries:
        values = scope_values(entry, scope)
        for kpi in chart:
            value = values.get(kpi)
            if isinstance(value, Mapping):
                subs.setdefault(kpi, set()).update(value)
    for kpi in chart:
        if kpi in subs:
            out += [(kpi, sub) for sub in sorted(subs[kpi])]
        else:
            out.append((kpi, None))
    return out


def point(entry: Mapping[str, Any], scope: str, kpi: str, sub: str | None) -> float | None:
    """One trace's value in a history entry (None: a gap)."""
    value = scope_values(entry, scope).get(kpi)
    if sub is not None:
        value = value.get(sub) if isinstance(value, Mapping) else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return scaled(value, definition(kpi).unit)


def history_figure(chart: Sequence[str], entries: Sequence[Mapping[str, Any]], scope: str, lang: str, *,
                   end_ms: int | float, hours: int, zone: Any, cursor_ms: int | float | None = None,
                   title: str | None = None) -> dict[str, Any]:
    """A Plotly figure (a dict) of the KPIs ``chart`` over the history ``entries`` of ``scope``:
    one line per KPI (or per name of a ``{name: value}`` KPI), the target as a dashed line, the
    x-range the last ``hours`` before ``end_ms`` in the city's time, dark and legible from a desk.
    """
    first = definition(chart[0])
    unit = unit_text(first.unit, lang)
    xs = [local(e["version"] // 60_000 * 60_000, zone) for e in entries]
    traces: list[dict[str, Any]] = []
    for i, (kpi, sub) in enumerate(trace_names(chart, entries, scope)):
        name = sub if sub is not None else kpi_name(kpi, lang)
        traces.append({"type": "scatter", "mode": "lines", "name": name, "x": xs,
                       "y": [point(e, scope, kpi, sub) for e in entries], "connectgaps": False,
                       "line": {"width": 3, "color": TRACE_COLOURS[i % len(TRACE_COLOURS)], "shape": "hv"},
                       "hovertemplate": "%{y:.4~g}" + (f" {unit}" if unit else "") + "<extra>%{fullData.name}</extra>"})
    start, end = x_range(end_ms, hours, zone)
    if first.target is not None:
        target = scaled(first.target, first.unit)
        traces.append({"type": "scatter", "mode": "lines", "name": t("target", lang), "x": [start, end],
                       "y": [target, target], "hoverinfo": "skip",
                       "line": {"width": 2, "dash": "dash", "color": TARGET_COLOUR}})
    title = title or kpi_name(chart[0], lang)
    return {"data": traces, "layout": {
        "title": {"text": title + (f", {unit}" if unit else ""), "x": 0.01, "xanchor": "left", "y": 0.985,
                  "yanchor": "top", "yref": "container", "font": {"size": 17, "color": "#e6e9ee"}},
        "template": "plotly_dark", "paper_bgcolor": "#18202b", "plot_bgcolor": "#18202b",
        "font": {"size": 14, "color": "#cfd8e3", "family": "system-ui, sans-serif"},
        "margin": {"l": 56, "r": 14, "t": 58, "b": 30}, "autosize": True,
        "xaxis": {"type": "date", "range": [start, end], "gridcolor": "#2b3440", "tickformat": "%H:%M",
                  "hoverformat": "%H:%M", "fixedrange": True},
        "yaxis": {"gridcolor": "#2b3440", "zerolinecolor": "#3a4452", "rangemode": "tozero", "fixedrange": True},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                   "bgcolor": "rgba(0,0,0,0)", "font": {"size": 14}},
        "showlegend": len(traces) > 1, "hovermode": "x unified", "uirevision": "keep",
        "shapes": [] if cursor_ms is None else [cursor_shape(cursor_ms, zone)],
    }}


def cursor_shape(ms: int | float, zone: Any) -> dict[str, Any]:
    """The replay cursor on a chart: a vertical line at the minute shown."""
    x = local(ms, zone)
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": "#ffffff", "width": 2, "dash": "dot"}}


def extend_patch(chart: Sequence[str], figure_traces: Sequence[tuple[str, str | None]], entry: Mapping[str, Any],
                 scope: str, *, hours: int, zone: Any) -> Patch:
    """A ``Patch`` appending one minute (``entry``) to a chart drawn by :func:`history_figure`
    and sliding its x-range (and target line) to end there."""
    patch = Patch()
    minute = entry["version"] // 60_000 * 60_000
    x = local(minute, zone)
    for i, (kpi, sub) in enumerate(figure_traces):
        patch["data"][i]["x"].append(x)
        patch["data"][i]["y"].append(point(entry, scope, kpi, sub))
    start, end = x_range(minute, hours, zone)
    patch["layout"]["xaxis"]["range"] = [start, end]
    if definition(chart[0]).target is not None:
        patch["data"][len(figure_traces)]["x"] = [start, end]
    return patch


# --- replay -------------------------------------------------------------------------------------


def frames_of(entries: Iterable[Mapping[str, Any]]) -> list[int]:
    """The minutes (epoch ms) a replay steps through: one per history entry, ascending."""
    return sorted({int(e["version"]) // 60_000 * 60_000 for e in entries})


def frame_at(frames: Sequence[int], index: Any) -> int | None:
    """The minute at slider position ``index`` (clamped to the frames; None without frames)."""
    if not frames:
        return None
    try:
        i = int(index)
    except (TypeError, ValueError):
        i = len(frames) - 1
    return frames[max(0, min(i, len(frames) - 1))]


def step(index: int, speed: int, last: int) -> tuple[int, bool]:
    """The next slider position while playing ``speed`` minutes per step, and whether it has
    reached the end."""
    nxt = min(last, index + max(1, speed))
    return nxt, nxt >= last


def slider_marks(frames: Sequence[int], zone: Any, lang: str, *, every: int = 6) -> dict[int, str]:
    """About ``every`` evenly spaced marks labelled with the city's clock."""
    if not frames:
        return {}
    gap = max(1, len(frames) // every)
    idx = list(range(0, len(frames), gap))
    if len(frames) - 1 - idx[-1] < gap / 2 and len(idx) > 1:
        idx[-1] = len(frames) - 1
    else:
        idx.append(len(frames) - 1)
    return {i: when(datetime.fromtimestamp(frames[i] / 1000, UTC), lang, zone, "HH:mm") for i in idx}




# --- tables -------------------------------------------------------------------------------------


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], *, empty: str,
          row_classes: Sequence[str] | None = None, table_id: str | None = None) -> html.Table | html.Div:
    """A table: ``columns`` = ``(header text, class)``; cells are text or components (never HTML)."""
    if not rows:
        return html.Div(empty, className="topic-empty")
    head = html.Thead(html.Tr([html.Th(text, className=cls) for text, cls in columns]))
    body = html.Tbody([html.Tr([html.Td(cell, className=cls) for cell, (_, cls) in zip(row, columns, strict=True)],
                               className=(row_classes[i] if row_classes else ""))
                       for i, row in enumerate(rows)])
    return html.Table([head, body], className="topic-grid", **({"id": table_id} if table_id else {}))


def district_name(district_id: str | None, lang: str, pack: Any = None) -> str:
    """A district's name in ``lang`` (the id when the pack does not know it, ``—`` for none)."""
    if not district_id:
        return "—"
    pack = pack or data.context().pack
    for d in pack.districts:
        if d.id == district_id:
            return names(d.names.as_dict(), lang)
    return str(district_id)


def district_options(lang: str, pack: Any = None) -> list[dict[str, str]]:
    """The district filter's options: the whole city, then every district of the pack by name."""
    pack = pack or data.context().pack
    items = sorted(((names(d.names.as_dict(), lang), d.id) for d in pack.districts), key=lambda x: x[0])
    return [{"label": t("district.all", lang), "value": CITY}, *({"label": n, "value": i} for n, i in items)]


def category_label(category: Any, lang: str) -> str:
    """An appeal category in ``lang`` (the feed's code as text when unknown)."""
    key = f"wall.category.{category}"
    return t(key, lang) if category and has(key) else str(category or "—")


# traffic ---------------------------------------------------------------------------------------


def segment_district(segment: Mapping[str, Any], pack: Any = None) -> str | None:
    """The district of a segment's midpoint (from its geometry)."""
    line = segment.get("geometry") or []
    if not line:
        return None
    pack = pack or data.context().pack
    lon, lat = line[len(line) // 2] if len(line) > 2 else ((line[0][0] + line[-1][0]) / 2,
                                                            (line[0][1] + line[-1][1]) / 2)
    found = pack.district_at(lat, lon)
    return None if found is None else found.id


def traffic_values(segments: Sequence[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """The segment KPIs (congested count, median speed ratio, bands) of a set of segments, by the
    traffic KPI module's own formulas (for a district: the snapshot keeps the city only)."""
    from workers.kpi import traffic
    from workers.kpi.traffic import Baseline

    values = traffic.compute([], segments, baseline=Baseline(zone=UTC, slot_minutes=15, cells={}), now=now,
                             zone=UTC)[traffic.CITY]
    return {k: values[k] for k in ("traffic.segments_congested", "traffic.speed_ratio_median", "traffic.speed_bands")}


def worst_segments(segments: Iterable[Mapping[str, Any]], *, district: str | None = None, limit: int = 14,
                   pack: Any = None) -> list[dict[str, Any]]:
    """The slowest current segments (lowest speed ratio; stale ones last), in ``district`` if given."""
    rows = []
    for s in segments:
        where = segment_district(s, pack)
        if district not in (None, CITY) and where != district:
            continue
        rows.append({**s, "district": where})
    rows.sort(key=lambda s: (bool(s.get("stale")), s.get("ratio") is None, s.get("ratio") or 0.0,
                             str(s.get("segment_id"))))
    return rows[:limit]


# ambulance -------------------------------------------------------------------------------------


def _times(call: Mapping[str, Any]) -> dict[str, float]:
    return {k: ts for k, v in (call.get("times") or {}).items() if (ts := epoch(v)) is not None}


def waiting_calls(calls: Iterable[Mapping[str, Any]], now: float, *,
                  district: str | None = None) -> list[dict[str, Any]]:
    """Calls received and not yet given a unit (the ``calls_waiting`` rule), longest waiting first:
    category, district, received, minutes waiting, position (for the map). No patient data."""
    from core.schemas import call_status

    out = []
    for call in calls:
        times = _times(call)
        received = times.get("call_received")
        if received is None or received > now or call.get("unit_id"):
            continue
        if call_status(call.get("times") or {}) != "waiting":
            continue
        if district not in (None, CITY) and call.get("district") != district:
            continue
        out.append({"category": call.get("category"), "district": call.get("district"), "received": received,
                    "waiting_min": (now - received) / 60, "lat": call.get("lat"), "lon": call.get("lon")})
    out.sort(key=lambda c: c["received"])
    return out


def slow_responses(calls: Iterable[Mapping[str, Any]], norms: Any, now: float, *, window_s: float = 3 * 3600,
                   district: str | None = None, limit: int = 8) -> list[dict[str, Any]]:
    """The slowest responses completed in the last ``window_s``, by response against the call's
    category norm (the KPI module's response rule): category, district, response and norm
    (minutes), by how much it exceeds the norm, when it arrived. No patient data."""
    from workers.kpi.ambulance import CANCELLED, response

    out = []
    for call in calls:
        raw = call.get("times") or {}
        if CANCELLED in raw:
            continue
        times = {k: datetime.fromisoformat(str(v).replace("Z", "+00:00")) for k, v in raw.items()}
        got = response(call, times)
        category = call.get("category")
        if got is None or category not in norms.ambulance_arrival_min:
            continue
        seconds, done = got
        if not now - window_s < done.timestamp() <= now:
            continue
        if district not in (None, CITY) and call.get("district") != district:
            continue
        norm = float(norms.ambulance_arrival_min[category])
        minutes = seconds / 60
        out.append({"category": category, "district": call.get("district"), "response_min": minutes,
                    "norm_min": norm, "over_min": minutes - norm, "ratio": minutes / norm, "at": done.timestamp()})
    out.sort(key=lambda r: -r["ratio"])
    return out[:limit]


# air -------------------------------------------------------------------------------------------


def station_rows(stations: Iterable[Mapping[str, Any]], lang: str, *,
                 district: str | None = None) -> list[dict[str, Any]]:
    """The air stations, worst AQI first (offline ones last): name in ``lang``, district, AQI,
    category, dominant pollutant, the highest ПДК multiple and its pollutant, flags."""
    out = []
    for s in stations:
        if district not in (None, CITY) and s.get("district") != district:
            continue
        multiples = {p: v for p, v in (s.get("limit_multiple") or {}).items() if isinstance(v, int | float)}
        top = max(multiples.items(), key=lambda kv: kv[1], default=(None, None))
        out.append({"station_id": s.get("station_id"),
                    "name": names(s.get("names"), lang) or s.get("name") or s.get("station_id"),
                    "district": s.get("district"), "aqi": s.get("aqi"), "category": s.get("category"),
                    "dominant": s.get("dominant"), "multiple": top[1], "multiple_pollutant": top[0],
                    "offline": bool(s.get("offline")), "stuck": bool(s.get("stuck")),
                    "stuck_pollutants": list(s.get("stuck_pollutants") or []), "last_seen": s.get("last_seen")})
    out.sort(key=lambda r: (r["offline"], r["aqi"] is None, -(r["aqi"] or 0), str(r["station_id"])))
    return out


POLLUTANT_NAMES = {"pm25": "PM2.5", "pm10": "PM10", "no2": "NO₂", "so2": "SO₂", "o3": "O₃", "co": "CO"}


def pollutant(code: Any) -> str:
    """A pollutant code as people write it (``pm25`` -> ``PM2.5``)."""
    return POLLUTANT_NAMES.get(str(code), str(code or "—"))


# appeals ---------------------------------------------------------------------------------------


def appeal_categories(appeals: Sequence[Mapping[str, Any]], norms: Any, now: datetime, *,
                      district: str | None = None, window: timedelta = timedelta(hours=24)) -> list[dict[str, Any]]:
    """Per category: open, overdue, median time to close (h) and requested in the window, by the
    appeals KPI module's own rules (its ``compute`` over each category's appeals); most open first."""
    from workers.kpi import appeals as kpi

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for a in appeals:
        if district not in (None, CITY) and a.get("district") != district:
            continue
        groups.setdefault(str(a.get("category") or kpi.UNKNOWN), []).append(a)
    out = []
    for category, rows in groups.items():
        values = kpi.compute(rows, norms=norms, now=now, window=window)[kpi.CITY]
        requested = sum(values["appeals.by_channel"].values())
        out.append({"category": category, "open": values["appeals.open"], "overdue": values["appeals.overdue"],
                    "median_h": values["appeals.time_to_close_median"], "requested": requested})
    out.sort(key=lambda r: (-r["overdue"], -r["open"], -r["requested"], r["category"]))
    return out


def appeal_channels(appeals: Sequence[Mapping[str, Any]], now: datetime, *, district: str | None = None,
                    window: timedelta = timedelta(hours=24)) -> list[dict[str, Any]]:
    """Per channel: requested in the window and open now; most requested first."""
    start = now - window
    counts: dict[str, list[int]] = {}
    for a in appeals:
        if district not in (None, CITY) and a.get("district") != district:
            continue
        channel = str(a.get("channel") or "unknown")
        row = counts.setdefault(channel, [0, 0])
        requested = epoch(a.get("requested_at"))
        if requested is not None and start.timestamp() < requested <= now.timestamp():
            row[0] += 1
        if a.get("status") == "open":
            row[1] += 1
    out = [{"channel": c, "requested": r, "open": o} for c, (r, o) in counts.items()]
    out.sort(key=lambda r: (-r["requested"], -r["open"], r["channel"]))
    return out


def channel_label(channel: str, lang: str) -> str:
    """A channel in ``lang`` (the feed's code as text when unknown)."""
    key = f"topics.channel.{channel}"
    return t(key, lang) if has(key) else channel


# --- the page -----------------------------------------------------------------------------------


def _hours(value: Any) -> int:
    try:
        hours = int(value)
    except (TypeError, ValueError):
        return DEFAULT_RANGE
    return hours if hours in RANGES else DEFAULT_RANGE


def _scope(value: Any) -> str:
    if not value or value == CITY:
        return CITY
    known = {d.id for d in data.context().pack.districts}
    return value if value in known else CITY


def _history_scope(spec: TopicSpec, scope: str) -> str:
    return scope if spec.district_history else CITY


def _zone() -> Any:
    return data.context().pack.zone


def charts_for(spec: TopicSpec, scope: str, hours: int, lang: str, *, now: datetime | None = None
               ) -> tuple[list[dict[str, Any]], list[int], list[list[tuple[str, str | None]]], int]:
    """The charts of ``scope`` over the last ``hours``: figures, the replay frames, each chart's
    traces (for later ``Patch`` extends) and the minute of the newest entry."""
    now = now or datetime.now(UTC)
    entries = read_entries(spec.key, now - timedelta(hours=hours), now)
    hscope = _history_scope(spec, scope)
    zone = _zone()
    end_ms = now.timestamp() * 1000
    figures = [history_figure(chart, entries, hscope, lang, end_ms=end_ms, hours=hours, zone=zone,
                              title=t(spec.chart_titles[i], lang) if i in spec.chart_titles else None)
               for i, chart in enumerate(spec.charts)]
    traces = [trace_names(chart, entries, hscope) for chart in spec.charts]
    last = entries[-1]["version"] // 60_000 * 60_000 if entries else 0
    return figures, frames_of(entries), traces, last


def _choro_values(spec: TopicSpec, topics: Mapping[str, Any]) -> dict[str, Any]:
    if spec.choro_live is not None:
        return spec.choro_live(topics)
    return district_values(doc_of(topics, f"kpi:{spec.key}"), spec.choro_kpi or "")


def _choro_data(spec: TopicSpec, values: Mapping[str, Any], lang: str) -> dict[str, Any]:
    label = t(spec.choro_label, lang)
    unit = definition(spec.choro_kpi).unit if spec.choro_kpi else ""
    shown = {d: scaled(v, unit) if isinstance(v, int | float) else None for d, v in values.items()}
    return maps.district_data(shown, lang=lang, scale=spec.scale, label=label)


def _legend(spec: TopicSpec, lang: str) -> list[Any]:
    scale = spec.scale
    bounds = [0, *scale.breaks]
    items = [html.Span([html.I(style={"background": c}), f"{number(lo, lang, scale.digits)}+"], className="key")
             for c, lo in zip(scale.colours, bounds, strict=True)]
    rows = [html.Div([html.Span(t(spec.choro_label, lang), className="legend-title"), *items], className="legend-row")]
    if spec.legend is not None:
        rows.append(html.Div(spec.legend(lang), className="legend-row"))
    return rows


def _seen(spec: TopicSpec, topics: Mapping[str, Any], scope: str, now: float) -> dict[str, Any]:
    return {"v": {name: topics[name].version for name in spec.all_topics()},
            "tiles": tile_key(spec, topics, scope, now)}


def layout_for(spec: TopicSpec) -> Callable[..., html.Div]:
    """The page's ``layout(lang=None, district=None, hours=None, **query)`` (``?district=almaly&hours=3``)."""

    def layout(lang: str | None = None, district: str | None = None, hours: str | None = None,
               **_query: Any) -> html.Div:
        lang = lang_of(lang) if lang else context.lang()
        scope = _scope(district)
        span = _hours(hours)
        now = time.time()
        topics = read_topics(spec)
        figures, frames, traces, last = charts_for(spec, scope, span, lang)
        seen = {**_seen(spec, topics, scope, now), "chart_minute": last, "traces": traces}
        pack = data.context().pack
        layers = [maps.district_layer({}, lang=lang, id=spec.id("districts"), scale=spec.scale,
                                      label=t(spec.choro_label, lang))]
        layers[0].data = _choro_data(spec, _choro_values(spec, topics), lang)
        extra = spec.layers(lang)
        for i, (component, layer_data) in enumerate(zip(extra, spec.layer_data(topics, lang), strict=True)):
            component.id = spec.id(f"l{i}")
            component.data = layer_data
            layers.append(component)
        the_map = maps.base_map(spec.id("map"), lang, layers, zoomControl=True)
        if scope != CITY:
            the_map.viewport = maps.view_of(scope, pack)
        speed_options = [{"label": f"{s}×", "value": s} for s in SPEEDS]
        return html.Div([
            html.Div([
                html.H1(t(f"nav.{spec.key}", lang), className="topic-title"),
                html.Div([html.Span(t("topics.district", lang), className="ctl-label"),
                          dcc.Dropdown(id=spec.id("district"), options=district_options(lang, pack), value=scope,
                                       clearable=False, searchable=False, className="topic-district")],
                         className="ctl"),
                html.Div([html.Span(t("topics.range", lang), className="ctl-label"),
                          dcc.RadioItems(id=spec.id("range"), value=span, inline=True, className="topic-range",
                                         options=[{"label": t("topics.last_h", lang, n=h), "value": h}
                                                  for h in RANGES])], className="ctl"),
                html.Div([
                    html.Button(t("topics.replay", lang), id=spec.id("replay"), n_clicks=0, className="btn replay-btn",
                                **{"data-on": t("topics.live", lang), "data-off": t("topics.replay", lang)}),
                    html.Button("▶", id=spec.id("play"), n_clicks=0, className="btn play-btn",
                                title=t("topics.play", lang)),
                    dcc.RadioItems(id=spec.id("speed"), value=SPEEDS[0], inline=True, options=speed_options,
                                   className="topic-speed"),
                    html.Div(dcc.Slider(id=spec.id("slider"), min=0, max=max(0, len(frames) - 1), step=1,
                                        value=max(0, len(frames) - 1),
                                        marks=slider_marks(frames, _zone(), lang), allow_direct_input=False,
                                        updatemode="mouseup", className="topic-slider"),
                             className="slider-wrap"),
                    html.Span(id=spec.id("when"), className="replay-when"),
                ], id=spec.id("replay-bar"), className="topic-replay"),
            ], className="topic-bar"),
            html.Div(live_tiles(spec, topics, scope, lang, now), id=spec.id("tiles"),
                     className=f"topic-tiles n{len(spec.tiles)}"),
            html.Div([
                html.Div([
                    the_map,
                    html.Div(_legend(spec, lang), className="topic-legend"),
                    html.Div(t("topics.replay_banner", lang), id=spec.id("banner"), className="replay-banner"),
                ], className="topic-map"),
                html.Div([dcc.Graph(id=spec.id(f"chart-{i}"), figure=fig, className="topic-chart",
                                    config={"displayModeBar": False, "responsive": True})
                          for i, fig in enumerate(figures)],
                         id=spec.id("charts"), className=f"topic-charts n{len(figures)}"),
                html.Div(spec.table(topics, scope, lang), id=spec.id("table"), className="topic-table"),
            ], className="topic-main"),
            html.Div(t("topics.city_history", lang) if not spec.district_history else "",
                     id=spec.id("note"), className="topic-note" + ("" if scope != CITY else " hidden")),
            dcc.Store(id=spec.id("cfg"), data={"lang": lang}),
            dcc.Store(id=spec.id("seen"), data=seen),
            dcc.Store(id=spec.id("frames"), data=frames),
            dcc.Store(id=spec.id("mode"), data={"replay": False}),
            dcc.Interval(id=spec.id("tick"), interval=PLAY_MS, disabled=True),
        ], className=f"topic topic-{spec.key}", lang=lang, id=spec.id("page"))

    return layout


def _lang(cfg: Mapping[str, Any] | None) -> str:
    lang = (cfg or {}).get("lang")
    return lang if lang in LANGS else context.lang()


def register(spec: TopicSpec) -> None:
    """The page's callbacks (ids prefixed by ``spec.key``)."""
    n_charts = len(spec.charts)
    chart_figs = [Output(spec.id(f"chart-{i}"), "figure") for i in range(n_charts)]
    chart_figs_dup = [Output(spec.id(f"chart-{i}"), "figure", allow_duplicate=True) for i in range(n_charts)]
    layer_outputs = [Output(spec.id(f"l{i}"), "data") for i in range(len(spec.layers("en")))]

    @callback(*chart_figs, Output(spec.id("frames"), "data"), Output(spec.id("slider"), "max"),
              Output(spec.id("slider"), "marks"), Output(spec.id("slider"), "value"),
              Output(spec.id("seen"), "data", allow_duplicate=True), Output(spec.id("map"), "viewport"),
              Output(spec.id("note"), "className"),
              Input(spec.id("district"), "value"), Input(spec.id("range"), "value"),
              State(spec.id("cfg"), "data"), State(spec.id("seen"), "data"), State(spec.id("mode"), "data"),
              prevent_initial_call=True)
    def history(district: Any, hours: Any, cfg: Any, seen: Any, mode: Any) -> tuple[Any, ...]:
        """Range or district changed: the charts from the history (one read), the replay frames."""
        lang = _lang(cfg)
        scope = _scope(district)
        span = _hours(hours)
        figures, frames, traces, last = charts_for(spec, scope, span, lang)
        replaying = bool((mode or {}).get("replay"))
        if replaying and frames:
            zone = _zone()
            for fig in figures:
                fig["layout"]["shapes"] = [cursor_shape(frames[-1], zone)]
        seen = Patch()
        seen["chart_minute"] = last
        seen["traces"] = traces
        viewport = maps.view_of(None if scope == CITY else scope) if ctx.triggered_id == spec.id("district") \
            else no_update
        note = "topic-note" + ("" if scope != CITY and not spec.district_history else " hidden")
        return (*figures, frames, max(0, len(frames) - 1), slider_marks(frames, _zone(), lang),
                max(0, len(frames) - 1), seen, viewport, note)

    @callback(Output(spec.id("tiles"), "children"), Output(spec.id("districts"), "data"), *layer_outputs,
              Output(spec.id("table"), "children"), *chart_figs_dup, Output(spec.id("frames"), "data",
                                                                            allow_duplicate=True),
              Output(spec.id("seen"), "data"), Output(spec.id("when"), "children"),
              Input("sc-live", "data"), Input(spec.id("district"), "value"), Input(spec.id("mode"), "data"),
              Input(spec.id("slider"), "value"),
              State(spec.id("cfg"), "data"), State(spec.id("seen"), "data"), State(spec.id("frames"), "data"),
              State(spec.id("range"), "value"), prevent_initial_call=True)
    def view(_live: Any, district: Any, mode: Any, index: Any, cfg: Any, seen: Any, frames: Any,
             hours: Any) -> tuple[Any, ...]:
        """What is on screen: live (only what moved) or, in replay, the chosen minute."""
        lang = _lang(cfg)
        scope = _scope(district)
        span = _hours(hours)
        now = time.time()
        topics = read_topics(spec)
        seen = dict(seen or {})
        seen_patch = Patch()
        old = seen.get("v") or {}
        current = {name: topics[name].version for name in spec.all_topics()}
        moved = {name for name, v in current.items() if v != old.get(name)}
        trigger = ctx.triggered_id
        replaying = bool((mode or {}).get("replay"))
        out_tiles: Any = no_update
        out_choro: Any = no_update
        out_when: Any = no_update
        charts: list[Any] = [no_update] * n_charts
        out_frames: Any = no_update
        zone = _zone()
        layer_values = [no_update] * len(layer_outputs)
        layer_topics = set(spec.topics)
        if trigger == "sc-live" or trigger is None:
            if moved & layer_topics or f"kpi:{spec.key}" in moved:
                for i, value in enumerate(spec.layer_data(topics, lang)):
                    layer_values[i] = value
        table_value: Any = no_update
        if trigger == spec.id("district") or moved - {"health"}:
            table_value = spec.table(topics, scope, lang)
        if replaying:
            minute = frame_at(frames or [], index)
            if trigger in (spec.id("mode"), spec.id("slider"), spec.id("district")) and minute is not None:
                entries = read_entries(spec.key, datetime.fromtimestamp(minute / 1000, UTC),
                                       datetime.fromtimestamp((minute + 59_999) / 1000, UTC))
                entry = entries[0] if entries else {"values": {}}
                at = when(datetime.fromtimestamp(minute / 1000, UTC), lang, zone, "HH:mm")
                hscope = _history_scope(spec, scope)
                values = scope_values(entry, hscope)
                notes = spec.tile_notes(values, hscope, lang) if spec.tile_notes else {}
                if hscope != scope:
                    notes = dict.fromkeys(spec.tiles, t("topics.whole_city", lang))
                out_tiles = tiles(spec, values, lang, replay_at=at, notes=notes)
                if spec.choro_kpi is not None:
                    out_choro = _choro_data(spec, district_values(entry, spec.choro_kpi), lang)
                out_when = at
                for i in range(n_charts):
                    patch = Patch()
                    patch["layout"]["shapes"] = [cursor_shape(minute, zone)]
                    charts[i] = patch
        else:
            key = tile_key(spec, topics, scope, now)
            if trigger in (spec.id("mode"), spec.id("district")) or key != seen.get("tiles"):
                out_tiles = live_tiles(spec, topics, scope, lang, now)
                seen_patch["tiles"] = key
            if trigger == spec.id("mode") or f"kpi:{spec.key}" in moved or (spec.choro_live and moved):
                out_choro = _choro_data(spec, _choro_values(spec, topics), lang)
            if trigger == spec.id("mode"):
                out_when = ""
                for i in range(n_charts):
                    patch = Patch()
                    patch["layout"]["shapes"] = []
                    charts[i] = patch
        # the charts' live edge: a new minute of history is appended (in replay too)
        doc = doc_of(topics, f"kpi:{spec.key}")
        if trigger == "sc-live" and doc and seen.get("traces") is not None:
            minute = int(doc.get("version") or 0) // 60_000 * 60_000
            if minute > int(seen.get("chart_minute") or 0):
                entry = {"version": minute, "values": doc.get("values") or {}}
                hscope = _history_scope(spec, scope)
                for i, chart in enumerate(spec.charts):
                    traces = [tuple(x) for x in seen["traces"][i]]
                    charts[i] = extend_patch(chart, traces, entry, hscope, hours=span, zone=zone)
                seen_patch["chart_minute"] = minute
                if not replaying:
                    frames_patch = Patch()
                    frames_patch.append(minute)
                    out_frames = frames_patch
        seen_patch["v"] = current
        return (out_tiles, out_choro, *layer_values, table_value, *charts, out_frames, seen_patch, out_when)

    @callback(Output(spec.id("mode"), "data"), Output(spec.id("replay"), "children"),
              Output(spec.id("replay-bar"), "className"), Output(spec.id("slider"), "max", allow_duplicate=True),
              Output(spec.id("slider"), "marks", allow_duplicate=True),
              Output(spec.id("slider"), "value", allow_duplicate=True),
              Output(spec.id("tick"), "disabled"), Output(spec.id("page"), "className"),
              Input(spec.id("replay"), "n_clicks"), State(spec.id("mode"), "data"), State(spec.id("frames"), "data"),
              State(spec.id("cfg"), "data"), prevent_initial_call=True)
    def toggle(_n: Any, mode: Any, frames: Any, cfg: Any) -> tuple[Any, ...]:
        """Replay on (the slider at the newest minute, paused) or off (back to live)."""
        lang = _lang(cfg)
        on = not bool((mode or {}).get("replay"))
        frames = list(frames or [])
        last = max(0, len(frames) - 1)
        return ({"replay": on}, t("topics.live" if on else "topics.replay", lang),
                "topic-replay" + (" on" if on else ""), last, slider_marks(frames, _zone(), lang), last, True,
                f"topic topic-{spec.key}" + (" replaying" if on else ""))

    @callback(Output(spec.id("tick"), "disabled", allow_duplicate=True),
              Output(spec.id("slider"), "value", allow_duplicate=True),
              Input(spec.id("play"), "n_clicks"), State(spec.id("tick"), "disabled"),
              State(spec.id("slider"), "value"), State(spec.id("slider"), "max"), prevent_initial_call=True)
    def play(_n: Any, disabled: Any, value: Any, last: Any) -> tuple[Any, ...]:
        """Play from the slider's position (from the start when at the end) or pause."""
        if disabled:
            start = 0 if (value or 0) >= (last or 0) else no_update
            return False, start
        return True, no_update

    @callback(Output(spec.id("slider"), "value", allow_duplicate=True),
              Output(spec.id("tick"), "disabled", allow_duplicate=True),
              Input(spec.id("tick"), "n_intervals"), State(spec.id("slider"), "value"),
              State(spec.id("slider"), "max"), State(spec.id("speed"), "value"), prevent_initial_call=True)
    def advance(_n: Any, value: Any, last: Any, speed: Any) -> tuple[Any, ...]:
        """One replay step while playing (stops at the newest minute)."""
        nxt, done = step(int(value or 0), int(speed or 1), int(last or 0))
        return nxt, done

    @callback(Output(spec.id("play"), "children"), Input(spec.id("tick"), "disabled"))
    def play_label(off: Any) -> str:
        """▶ while paused, ❚❚ while playing."""
        return "▶" if off else "❚❚"

