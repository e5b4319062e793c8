"""The wall (``/wall``): the city at a glance on a 1920×1080 screen read from 5 m, no interaction needed.

* The citywide map: districts coloured by a KPI (the worst AQI by default), road segments by speed
  ratio, air stations by AQI category, ambulance units by status, open appeals clustered and the
  unresolved incidents. Layers by URL: ``?layers=incidents,units,air,traffic,appeals`` (default all).
* KPI tiles: the headline KPI of each domain with its target, the trend against an hour ago (the
  KPI history), and the age of the data; a tile whose feed is late past twice its cadence, or
  whose snapshot has stopped moving, shows it (hatched, "stale").
* The incident ticker: unresolved incidents by severity with their age and SLA state.
* Kiosk: ``?kiosk=<token>`` hides the top bar; ``?rotate=60`` cycles the views in :data:`VIEWS`
  (choropleth KPI and zoom area) every 60 s; ``?choropleth=appeals`` picks the first view's KPI.

Updates: one callback on ``sc-live`` compares the hub's topic versions with those it last drew
(``wall-seen``) and sends only what moved: a layer's ``data`` by id (the map is never re-created,
so a zoom set by an operator survives), tiles as ``Patch`` entries, the ticker when incidents
moved or its SLA texts are 30 s old. Everything the screen shows comes from the hub
(:mod:`dashboards.data`); the only Redis read is the KPI value of an hour ago, once a minute per
process, whatever the number of screens.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from dash import Input, Output, Patch, State, callback, dcc, html, no_update, register_page

from dashboards import context, data, maps
from dashboards.i18n import LANGS, has, lang_of, names, number, t

register_page(__name__, path="/wall", name="Wall", title="Situation Center — wall", order=1)

#: Layers a URL may ask for, in drawing order (incidents on top).
LAYERS: tuple[str, ...] = ("traffic", "appeals", "units", "air", "incidents")
#: Layers without ``?layers=``: open appeals are left to the "appeals" choropleth view (their
#: clusters compete with the station discs from 5 m); ``?layers=...,appeals`` adds them.
DEFAULT_LAYERS: tuple[str, ...] = ("traffic", "units", "air", "incidents")
#: Choropleths: key -> (KPI domain, KPI key, scale, catalog key of the title).
CHOROPLETHS: Mapping[str, tuple[str, str, maps.Scale, str]] = {
    "air": ("air", "air.aqi", maps.AQI_SCALE, "wall.choro.air"),
    "appeals": ("appeals", "appeals.open", maps.count_scale(10, 25, 50, 100), "wall.choro.appeals"),
    "ambulance": ("ambulance", "ambulance.calls_waiting", maps.count_scale(1, 2, 4, 8), "wall.choro.ambulance"),
}
#: Rotation views: (choropleth, zoom area: None = the whole city, "focus" = the district with
#: the highest value of that choropleth).
VIEWS: tuple[tuple[str, str | None], ...] = (("air", None), ("appeals", None), ("ambulance", None),
                                              ("air", "focus"))
#: How many incidents the ticker lists.
TICKER_ROWS = 7
#: The ticker's SLA texts are redrawn at least this often (seconds).
TICKER_REFRESH_S = 30.0
#: A KPI snapshot not recomputed for this long marks every tile of its domain stale (seconds).
SNAPSHOT_STALE_S = 300.0


class TileSpec(NamedTuple):
    """One KPI tile: the domain, its headline KPI and one secondary KPI (a NamedTuple: Dash
    imports page modules outside ``sys.modules``, where dataclasses fail).

    ``scale`` multiplies the value for display (a ratio shown as %), ``unit`` is what follows it."""

    domain: str
    kpi: str
    secondary: str
    digits: int = 0
    scale: float = 1.0
    unit: str = ""


TILES: tuple[TileSpec, ...] = (
    TileSpec("air", "air.aqi", "air.stations_reporting", unit="AQI"),
    TileSpec("traffic", "traffic.speed_ratio_median", "traffic.segments_congested", scale=100.0, unit="%"),
    TileSpec("ambulance", "ambulance.within_norm_pct", "ambulance.calls_waiting", unit="%"),
    TileSpec("appeals", "appeals.open", "appeals.overdue"),
)


# --- the page ----------------------------------------------------------------------------------


def layout(lang: str | None = None, layers: str | None = None, rotate: str | None = None,
           kiosk: str | None = None, choropleth: str | None = None, **_query: Any) -> html.Div:
    """The wall, drawn from the hub's current documents (usable before any update arrives)."""
    lang = lang_of(lang) if lang else context.lang()
    chosen = _layers(layers)
    period = _rotate(rotate)
    first = choropleth if choropleth in CHOROPLETHS else VIEWS[0][0]
    view = {"index": 0, "choro": first, "focus": None}
    cfg = {"lang": lang, "layers": list(chosen), "rotate": period}
    topics = _topics()
    seen = _versions(topics)
    tiles = [tile(spec, topics, lang) for spec in TILES]
    seen["tiles"] = [_tile_key(spec, topics) for spec in TILES]
    seen["ticker_at"] = time.time()
    layer_components = _layer_components(topics, chosen, view, lang)
    return html.Div([
        html.Div(tiles, id="wall-tiles", className="wall-tiles"),
        html.Div([
            maps.base_map("wall-map", lang, layer_components, zoomControl=True),
            html.Div(_choro_title(view, lang), id="wall-choro-title", className="wall-choro-title"),
            html.Div(legend(chosen, view["choro"], lang), id="wall-legend", className="wall-legend"),
        ], className="wall-map"),
        html.Div([
            html.H2(t("wall.incidents", lang), className="wall-ticker-title"),
            html.Div(ticker(_incidents(topics), lang), id="wall-ticker", className="wall-ticker-rows"),
            html.Div(ranking(topics, view["choro"], lang), id="wall-ranking", className="wall-ranking"),
        ], className="wall-ticker"),
        dcc.Store(id="wall-cfg", data=cfg),
        dcc.Store(id="wall-seen", data=seen),
        dcc.Store(id="wall-view", data=view),
        dcc.Interval(id="wall-rotate", interval=(period or 60) * 1000, disabled=not period),
    ], className="wall" + (" kiosk" if kiosk else ""), lang=lang, **{"data-layers": ",".join(chosen)})


def _layers(value: str | None) -> tuple[str, ...]:
    if not value:
        return DEFAULT_LAYERS
    asked = {part.strip().lower() for part in value.split(",")}
    return tuple(name for name in LAYERS if name in asked)


def _rotate(value: str | None) -> int:
    try:
        seconds = int(float(value or 0))
    except ValueError:
        return 0
    return 0 if seconds <= 0 else max(10, min(seconds, 3600))


# --- reading the hub ----------------------------------------------------------------------------

TOPICS = ("kpi:air", "kpi:traffic", "kpi:ambulance", "kpi:appeals", "incidents", "units", "appeals_open", "health")


def _topics() -> dict[str, Any]:
    return {name: data.topic(name) for name in TOPICS}


def _versions(topics: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": {name: topics[name].version for name in TOPICS}}


def _doc(topics: Mapping[str, Any], name: str) -> Any:
    return topics[name].doc


def _kpi_values(topics: Mapping[str, Any], domain: str, scope: str = "city") -> dict[str, Any]:
    doc = _doc(topics, f"kpi:{domain}")
    if not doc:
        return {}
    return (doc.get("values") or {}).get(scope) or {}


def _incidents(topics: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(_doc(topics, "incidents") or [])


def _by_district(topics: Mapping[str, Any], choro: str) -> dict[str, Any]:
    domain, kpi, _, _ = CHOROPLETHS[choro]
    doc = _doc(topics, f"kpi:{domain}") or {}
    return {scope: values.get(kpi) for scope, values in (doc.get("values") or {}).items() if scope != "city"}


# --- the map ------------------------------------------------------------------------------------


def _layer_data(name: str, topics: Mapping[str, Any], lang: str) -> dict[str, Any]:
    if name == "traffic":
        return maps.segment_data(_kpi_values(topics, "traffic").get("traffic.segments") or [], lang)
    if name == "appeals":
        return maps.appeal_data(_doc(topics, "appeals_open") or [], lang)
    if name == "units":
        return maps.unit_data(_doc(topics, "units") or [], lang)
    if name == "air":
        return maps.station_data(_kpi_values(topics, "air").get("air.stations") or [], lang)
    return maps.incident_data(_incidents(topics), lang)


#: The hub topic each layer is drawn from.
LAYER_TOPIC = {"traffic": "kpi:traffic", "appeals": "appeals_open", "units": "units", "air": "kpi:air",
               "incidents": "incidents"}
_BUILDERS = {"traffic": maps.segment_layer, "appeals": maps.appeal_cluster_layer, "units": maps.unit_layer,
             "air": maps.station_layer, "incidents": maps.incident_layer}


def _layer_components(topics: Mapping[str, Any], chosen: Sequence[str], view: Mapping[str, Any],
                      lang: str) -> list[Any]:
    choro = view["choro"]
    _, _, scale, _ = CHOROPLETHS[choro]
    out = [maps.district_layer(_by_district(topics, choro), lang=lang, id="wall-districts", scale=scale,
                               label=t(CHOROPLETHS[choro][3], lang))]
    for name in LAYERS:
        # every layer exists (ids stay stable for the callback); one not asked for stays empty
        component = _BUILDERS[name]([], lang, id=f"wall-{name}")
        component.data = _layer_data(name, topics, lang) if name in chosen else maps.collection([])
        out.append(component)
    return out


def _choro_title(view: Mapping[str, Any], lang: str) -> list[Any]:
    title = [html.Span(t(CHOROPLETHS[view["choro"]][3], lang))]
    if view.get("focus"):
        district = data.context().pack.district(view["focus"])
        title.append(html.Span(t("wall.focus", lang, name=names(district.names.as_dict(), lang)), className="focus"))
    return title


def legend(chosen: Sequence[str], choro: str, lang: str) -> list[Any]:
    """The map's legend: the choropleth's classes, then a key for each shown layer."""
    _, _, scale, _ = CHOROPLETHS[choro]
    rows: list[Any] = []
    if choro == "air":
        from workers.kpi.air import CATEGORIES

        items = [(maps.AQI_COLOURS[c.key], f"{c.lowest}+") for c in CATEGORIES]
    else:
        bounds = [0, *scale.breaks]
        items = [(colour, f"{number(lo, lang)}+") for colour, lo in zip(scale.colours, bounds, strict=True)]
    rows.append(html.Div([html.Span([html.I(style={"background": c}), label], className="key")
                          for c, label in items], className="legend-row"))
    keys: list[Any] = []
    if "incidents" in chosen:
        keys.append(html.Span([html.I(className="dot", style={"background": maps.SEVERITY_COLOURS[3]}),
                               t("wall.layer.incidents", lang)], className="key"))
    if "units" in chosen:
        keys += [html.Span([html.I(className="dot small", style={"background": maps.UNIT_COLOURS[g]}),
                            t(f"wall.unit.{g}", lang)], className="key") for g in maps.UNIT_COLOURS]
    if "traffic" in chosen:
        keys.append(html.Span([html.I(className="line", style={"background": maps.BAND_COLOURS["red"]}),
                               html.I(className="line", style={"background": maps.BAND_COLOURS["green"]}),
                               t("wall.layer.traffic", lang)], className="key"))
    if "appeals" in chosen:
        keys.append(html.Span([html.I(className="dot", style={"background": "#b48cff"}),
                               t("wall.layer.appeals", lang)], className="key"))
    if keys:
        rows.append(html.Div(keys, className="legend-row"))
    return rows


def ranking(topics: Mapping[str, Any], choro: str, lang: str, rows: int = 8) -> list[Any]:
    """The districts by the choropleth's KPI, worst first (under the ticker: the map's numbers)."""
    _, _, scale, title = CHOROPLETHS[choro]
    pack = data.context().pack
    values = _by_district(topics, choro)
    ranked = sorted(((values.get(d.id), names(d.names.as_dict(), lang)) for d in pack.districts),
                    key=lambda item: (item[0] is None, -(item[0] or 0)))
    return [html.H2(t(title, lang), className="wall-ranking-title"),
            *[html.Div([html.I(style={"background": scale.colour(value)}), html.Span(name, className="name"),
                        html.Span(number(value, lang, scale.digits), className="num")], className="rank-row")
              for value, name in ranked[:rows]]]


# --- KPI tiles ----------------------------------------------------------------------------------

_DEFINITIONS: dict[str, Any] = {}


def definition(key: str) -> Any:
    """The KPI definition (``workers.kpi.definitions.KpiDefinition``) of ``key``, or None."""
    if not _DEFINITIONS:
        from workers.kpi import air, ambulance, appeals, traffic

        norms = data.context().pack.norms
        rows = [*air.KPIS, *traffic.KPIS, *appeals.KPIS,
                *(ambulance.definitions(norms) if norms is not None else ())]
        _DEFINITIONS.update({row.key: row for row in rows})
    return _DEFINITIONS.get(key)


def _number(value: float | None, spec: TileSpec, lang: str) -> str:
    return number(None if value is None else value * spec.scale, lang, spec.digits)


def trend(value: float | None, before: float | None, good: str) -> tuple[str, str]:
    """The arrow and its class comparing ``value`` with an hour ago: ``("▲", "better")`` ...
    ``("", "")`` without both values; a change under 1 % of the old value is flat ("▶")."""
    if value is None or before is None:
        return "", ""
    delta = value - before
    if abs(delta) <= 0.01 * max(abs(before), 1e-9):
        return "▶", "flat"
    rising = delta > 0
    return ("▲" if rising else "▼"), ("better" if rising == (good == "up") else "worse")


def tile(spec: TileSpec, topics: Mapping[str, Any], lang: str, *, now: float | None = None) -> html.Div:
    """One KPI tile: domain, KPI name, value (coloured by the target), target, trend vs an hour
    ago, secondary KPI, and the data's age (ticking in the browser; stale past 2× the feed's cadence)."""
    now = time.time() if now is None else now
    values = _kpi_values(topics, spec.domain)
    doc = _doc(topics, f"kpi:{spec.domain}") or {}
    row = definition(spec.kpi)
    value = values.get(spec.kpi)
    before = hour_ago(spec.domain, spec.kpi)
    meets = None if row is None else row.meets(value)
    arrow, arrow_class = trend(value, before, row.good if row else "up")
    target = ""
    if row is not None and row.target is not None:
        key = "wall.target_le" if row.good == "down" else "wall.target_ge"
        target = t(key, lang, v=_number(row.target, spec, lang) + (f" {spec.unit}" if spec.unit == "%" else ""))
    second = definition(spec.secondary)
    second_value = values.get(spec.secondary)
    feed = ((_doc(topics, "health") or {}).get("feeds") or {}).get(spec.domain) or {}
    last = feed.get("last_event_at")
    cadence = float(feed.get("expected_cadence_s") or 600)
    computed = _epoch(doc.get("computed_at"))
    stale = (feed.get("status") not in (None, "ok") or computed is None or now - computed > SNAPSHOT_STALE_S)
    age_ts = _epoch(last) or computed
    value_class = "value" + ("" if meets is None else (" ok" if meets else " bad"))
    label = f"wall.kpi.{spec.domain}"
    return html.Div([
        html.Div(t(f"nav.{spec.domain}", lang), className="tile-head domain"),
        html.Div(t(label, lang) if has(label) else (row.names[lang] if row else spec.kpi), className="kpi-name"),
        html.Div([html.Span(_number(value, spec, lang), className=value_class, id=f"wall-value-{spec.domain}"),
                  html.Span(spec.unit, className="unit"),
                  html.Div([html.Div(target, className="target"),
                            html.Div([html.Span(arrow, className=f"trend {arrow_class}"),
                                      t("wall.hour_ago", lang, v=_number(before, spec, lang))
                                      if before is not None else ""], className="hour-ago")],
                           className="side")], className="value-row"),
        html.Div(f"{second.names[lang]}: {number(second_value, lang)}" if second else "", className="secondary"),
        html.Div([html.Span(t("wall.stale", lang), className="stale-flag"),
                  html.Span(_age_text(age_ts, now, lang), className="sc-age",
                            **{"data-ts": "" if age_ts is None else str(int(age_ts * 1000)),
                               "data-stale-after": str(int(2 * cadence)), "data-stale": "1" if stale else "0"})],
                 className="tile-age"),
    ], className="sc-tile tile-" + spec.domain + (" stale" if stale or (age_ts and now - age_ts > 2 * cadence)
                                                 else ""), id=f"wall-tile-{spec.domain}")


def _tile_key(spec: TileSpec, topics: Mapping[str, Any]) -> str:
    """What a tile shows, to send only the tiles that changed."""
    values = _kpi_values(topics, spec.domain)
    feed = ((_doc(topics, "health") or {}).get("feeds") or {}).get(spec.domain) or {}
    doc = _doc(topics, f"kpi:{spec.domain}") or {}
    return json.dumps([values.get(spec.kpi), values.get(spec.secondary), feed.get("status"),
                       feed.get("last_event_at"), doc.get("computed_at"), hour_ago(spec.domain, spec.kpi)],
                      default=str)


def _age_text(ts: float | None, now: float, lang: str) -> str:
    if ts is None:
        return t("age.none", lang)
    s = max(0, int(now - ts))
    if s < 60:
        return t("age.seconds", lang, n=s)
    if s < 3600:
        return t("age.minutes", lang, n=s // 60)
    return t("age.hours", lang, n=s // 3600)


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# the KPI an hour ago: one history read per domain per minute per process
_HOUR_AGO: dict[str, tuple[int, dict[str, Any]]] = {}
_HOUR_AGO_LOCK = threading.Lock()


def hour_ago(domain: str, kpi: str, *, now: datetime | None = None) -> float | None:
    """The city value of ``kpi`` in the KPI history closest to an hour before ``now`` (within
    five minutes), or None. Cached per minute."""
    from workers.snapshots import read_history

    now = now or datetime.now(UTC)
    minute = int(now.timestamp() // 60)
    with _HOUR_AGO_LOCK:
        cached = _HOUR_AGO.get(domain)
    if cached is None or cached[0] != minute:
        values: dict[str, Any] = {}
        try:
            target = now - timedelta(hours=1)
            entries = read_history(data.context().redis, domain, target - timedelta(minutes=5),
                                   target + timedelta(minutes=5))
            if entries:
                best = min(entries, key=lambda e: abs(e["version"] / 1000 - target.timestamp()))
                values = (best.get("values") or {}).get("city") or {}
        except Exception:  # noqa: BLE001 - no trend is better than a broken wall
            values = {}
        cached = (minute, values)
        with _HOUR_AGO_LOCK:
            _HOUR_AGO[domain] = cached
    value = cached[1].get(kpi)
    return value if isinstance(value, int | float) else None


# --- the incident ticker ------------------------------------------------------------------------


def _duration(seconds: float, lang: str) -> str:
    minutes = int(abs(seconds) // 60)
    if minutes < 60:
        return f"{minutes} {t('unit.min', lang)}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} {t('unit.h', lang)}" + (f" {rest} {t('unit.min', lang)}" if rest and hours < 10 else "")


def sla_state(incident: Mapping[str, Any], now: float, lang: str) -> tuple[str, str]:
    """The SLA text of an incident and its class (``breached``, ``due``, ``ok``)."""
    sla = incident.get("sla") or {}
    ack_due, resolve_due = _epoch(sla.get("ack_due")), _epoch(sla.get("resolve_due"))
    if not incident.get("acknowledged_at") and ack_due is not None:
        left = ack_due - now
        if left < 0:
            return t("wall.sla.ack_overdue", lang, t=_duration(-left, lang)), "breached"
        return t("wall.sla.ack_in", lang, t=_duration(left, lang)), "due"
    if resolve_due is not None:
        left = resolve_due - now
        if left < 0:
            return t("wall.sla.resolve_overdue", lang, t=_duration(-left, lang)), "breached"
        return t("wall.sla.resolve_in", lang, t=_duration(left, lang)), "ok"
    return "", "ok"


def ticker(incidents: Sequence[Mapping[str, Any]], lang: str, *, now: float | None = None) -> list[Any]:
    """Rows of the unresolved incidents, most severe and most overdue first (at most
    :data:`TICKER_ROWS`, then "N more")."""
    now = time.time() if now is None else now
    if not incidents:
        return [html.Div(t("wall.no_incidents", lang), className="ticker-empty")]
    pack = data.context().pack
    district_names = {d.id: names(d.names.as_dict(), lang) for d in pack.districts}
    ranked = sorted(incidents, key=lambda i: (-int(i.get("severity") or 0),
                                              sla_state(i, now, lang)[1] != "breached",
                                              -(_epoch(i.get("detected_at")) or 0)))
    rows = []
    for inc in ranked[:TICKER_ROWS]:
        severity = int(inc.get("severity") or 2)
        sla_text, sla_class = sla_state(inc, now, lang)
        detected = _epoch(inc.get("detected_at"))
        place = district_names.get(inc.get("district") or "") or inc.get("district") or t("wall.citywide", lang)
        rows.append(html.Div([
            html.Span(t(f"wall.severity.{severity}", lang), className=f"sev sev-{severity}"),
            html.Div([
                html.Div([html.Span(maps.incident_label(inc.get("type"), lang), className="kind"),
                          html.Span(place, className="place")], className="line1"),
                html.Div([html.Span(_age_text(detected, now, lang), className="sc-age",
                                    **{"data-ts": "" if detected is None else str(int(detected * 1000))}),
                          html.Span(t(f"wall.status.{inc.get('status')}", lang)
                                    if inc.get("status") in ("open", "acknowledged", "assigned") else "",
                                    className="status"),
                          html.Span(sla_text, className=f"sla {sla_class}")], className="line2"),
            ], className="body"),
        ], className=f"ticker-row sev-{severity}", **{"data-id": str(inc.get("id"))}))
    if len(ranked) > TICKER_ROWS:
        rows.append(html.Div(t("wall.more", lang, n=len(ranked) - TICKER_ROWS), className="ticker-more"))
    return rows


# --- updates ------------------------------------------------------------------------------------

_LAYER_OUTPUTS = [Output(f"wall-{name}", "data") for name in LAYERS]


@callback(Output("wall-districts", "data"), *_LAYER_OUTPUTS, Output("wall-tiles", "children"),
          Output("wall-ticker", "children"), Output("wall-ranking", "children"), Output("wall-seen", "data"),
          Input("sc-live", "data"), State("wall-cfg", "data"), State("wall-seen", "data"),
          State("wall-view", "data"), prevent_initial_call=True)
def update(_live: Any, cfg: dict[str, Any] | None, seen: dict[str, Any] | None,
           view: dict[str, Any] | None) -> tuple[Any, ...]:
    """Send only what moved since this screen last drew (by topic version)."""
    cfg = cfg or {}
    lang = cfg.get("lang") if cfg.get("lang") in LANGS else context.lang()
    chosen = cfg.get("layers") or []
    view = view or {"choro": VIEWS[0][0]}
    seen = dict(seen or {})
    old = seen.get("v") or {}
    topics = _topics()
    now = time.time()
    current = _versions(topics)["v"]
    moved = {name for name in TOPICS if current.get(name) != old.get(name)}
    choro_domain = CHOROPLETHS.get(view.get("choro"), CHOROPLETHS["air"])[0]
    districts = (_district_data(topics, view, lang) if f"kpi:{choro_domain}" in moved else no_update)
    ranks = (ranking(topics, view.get("choro") if view.get("choro") in CHOROPLETHS else "air", lang)
             if f"kpi:{choro_domain}" in moved else no_update)
    layers = [_layer_data(name, topics, lang) if name in chosen and LAYER_TOPIC[name] in moved else no_update
              for name in LAYERS]
    keys = [_tile_key(spec, topics) for spec in TILES]
    before = seen.get("tiles") or [None] * len(TILES)
    tiles: Any = no_update
    if keys != before:
        tiles = Patch()
        for i, (spec, key) in enumerate(zip(TILES, keys, strict=True)):
            if i >= len(before) or key != before[i]:
                tiles[i] = tile(spec, topics, lang, now=now)
    ticker_rows: Any = no_update
    if "incidents" in moved or now - float(seen.get("ticker_at") or 0) >= TICKER_REFRESH_S:
        ticker_rows = ticker(_incidents(topics), lang, now=now)
        seen["ticker_at"] = now
    if not moved and tiles is no_update and ticker_rows is no_update:
        return (no_update,) * (5 + len(LAYERS))
    seen.update(v=current, tiles=keys)
    return (districts, *layers, tiles, ticker_rows, ranks, seen)


def _district_data(topics: Mapping[str, Any], view: Mapping[str, Any], lang: str) -> dict[str, Any]:
    choro = view.get("choro") if view.get("choro") in CHOROPLETHS else "air"
    _, _, scale, title = CHOROPLETHS[choro]
    return maps.district_data(_by_district(topics, choro), lang=lang, scale=scale, label=t(title, lang))


@callback(Output("wall-view", "data"), Output("wall-map", "viewport"),
          Output("wall-districts", "data", allow_duplicate=True), Output("wall-districts", "hideout"),
          Output("wall-choro-title", "children"), Output("wall-legend", "children"),
          Output("wall-ranking", "children", allow_duplicate=True), Input("wall-rotate", "n_intervals"),
          State("wall-cfg", "data"), State("wall-view", "data"), prevent_initial_call=True)
def rotate(n: int | None, cfg: dict[str, Any] | None, view: dict[str, Any] | None) -> tuple[Any, ...]:
    """The next view of the rotation: its choropleth (data and scale) and its zoom area."""
    cfg = cfg or {}
    lang = cfg.get("lang") if cfg.get("lang") in LANGS else context.lang()
    index = ((view or {}).get("index", 0) + 1) % len(VIEWS)
    choro, zoom = VIEWS[index]
    topics = _topics()
    focus = None
    if zoom == "focus":
        values = {d: v for d, v in _by_district(topics, choro).items() if isinstance(v, int | float)}
        known = {d.id for d in data.context().pack.districts}
        focus = max((d for d in values if d in known), key=lambda d: values[d], default=None)
    new_view = {"index": index, "choro": choro, "focus": focus}
    _, _, scale, _ = CHOROPLETHS[choro]
    return (new_view, maps.view_of(focus), _district_data(topics, new_view, lang), scale.hideout(),
            _choro_title(new_view, lang), legend(cfg.get("layers") or LAYERS, choro, lang),
            ranking(topics, choro, lang))
