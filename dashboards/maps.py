"""Shared map builders (dash-leaflet) for every page: the base map and one builder per layer.

Every builder is small and returns a dash-leaflet component (or, with ``*_data``, only the GeoJSON
``data`` of that layer, for callbacks that update a layer in place). The map itself is created once
per page; callbacks then send new ``data`` to a layer by its id, never a new map, so the operator's
zoom, pan and filters survive every update (``docs/dashboards.md``).

Usage::

    from dashboards import maps
    layers = [maps.district_layer(aqi_by_district, lang=lang, id="p-districts", scale=maps.AQI_SCALE),
              maps.incident_layer(incidents, lang, id="p-incidents")]
    page = maps.base_map("p-map", lang, layers)
    # later, in a callback: Output("p-incidents", "data") <- maps.incident_data(incidents, lang)

Styling lives in ``assets/maps.js`` (``window.scMaps``: style and point functions that read the
layer's ``hideout``) and ``assets/maps.css``. The map reads well without tiles (tests and offline
walls): the district polygons are the base, on a dark background; the pack's tile layer is kept
for real deployments and dimmed under the dark theme.

Safety: Leaflet renders tooltip and popup strings as HTML, and names, categories and ids come from
feeds and citizens. Every string placed in a ``tooltip`` or ``popup`` property is built by
:func:`tip`, which escapes each value (``html.escape``); nothing else may put text there.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dash_leaflet as dl

from dashboards import data
from dashboards.i18n import has, names, number, t

#: EPA AQI category colours (TAD Table 2), keyed like ``workers.kpi.air.CATEGORIES``.
AQI_COLOURS: Mapping[str, str] = {
    "good": "#00e400", "moderate": "#ffff00", "usg": "#ff7e00", "unhealthy": "#ff0000",
    "very_unhealthy": "#8f3f97", "hazardous": "#7e0023",
}
#: Speed-ratio band colours (``workers.kpi.traffic.BANDS``), red = slowest.
BAND_COLOURS: Mapping[str, str] = {
    "red": "#e0262b", "orange": "#ff8c1a", "yellow": "#f2d024", "light_green": "#8bd34a", "green": "#2bb24c",
}
#: Ambulance unit colours by status group (``workers.kpi.ambulance.UNIT_GROUPS``).
UNIT_COLOURS: Mapping[str, str] = {"available": "#2ecc71", "on_call": "#ff9f1a", "at_hospital": "#4aa3ff"}
#: Incident colours by severity (1 advisory, 2 warning, 3 critical).
SEVERITY_COLOURS: Mapping[int, str] = {1: "#4aa3ff", 2: "#ffb020", 3: "#ff3b3b"}
#: Colour of a value-less district, a station without data, a stale segment.
NO_DATA = "#3a4452"
#: Unit statuses (GTFS-RT vehicle states and dispatch states) -> group, for units that carry no
#: call context. Units with a call (``call_id``) are on a call unless their own status says otherwise.
_UNIT_GROUP = {
    "available": "available", "free": "available", "idle": "available", "in_service": "available",
    "closed": "available", "cancelled": "available",
    "on_call": "on_call", "busy": "on_call", "dispatched": "on_call", "en_route": "on_call",
    "on_scene": "on_call", "transporting": "on_call",
    "at_hospital": "at_hospital", "handover": "at_hospital",
}


@dataclass(frozen=True, slots=True)
class Scale:
    """A colour scale for a choropleth: ``colours[i]`` for values in ``[breaks[i-1], breaks[i])``.

    Attributes:
        breaks: ascending lower bounds of the 2nd..last classes (``len(colours) - 1`` of them).
        colours: CSS colours, lowest class first.
        digits: decimals shown in tooltips and the legend.
        unit: catalog key of the unit shown after values (``""``: none).
        opacity: fill opacity of coloured districts.
    """

    breaks: tuple[float, ...]
    colours: tuple[str, ...]
    digits: int = 0
    unit: str = ""
    opacity: float = 0.55
    labels: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.colours) != len(self.breaks) + 1:
            raise ValueError("a scale needs one colour more than breaks")
        if list(self.breaks) != sorted(self.breaks):
            raise ValueError("breaks must ascend")

    def colour(self, value: float | None) -> str:
        """The colour of ``value`` (the same rule as ``scMaps.districtStyle`` in the browser)."""
        if value is None:
            return NO_DATA
        index = sum(1 for b in self.breaks if value >= b)
        return self.colours[index]

    def hideout(self) -> dict[str, Any]:
        """What the JS style function reads."""
        return {"breaks": list(self.breaks), "colours": list(self.colours), "none": NO_DATA,
                "opacity": self.opacity}


#: US EPA AQI categories.
AQI_SCALE = Scale(breaks=(51, 101, 151, 201, 301), colours=tuple(AQI_COLOURS.values()))
#: Counts where more is worse (open appeals, waiting calls ...): a dark-to-hot ramp.
def count_scale(*breaks: float, unit: str = "") -> Scale:
    """A sequential scale for counts where more is worse, with the given class breaks."""
    ramp = ("#1f4e5f", "#2f7f6f", "#c9a227", "#e8772e", "#d7263d", "#8e1b3a")
    return Scale(breaks=tuple(breaks), colours=ramp[:len(breaks) + 1], unit=unit)


#: Speed ratio (speed / free flow): red below 0.6 ... green from 0.9.
RATIO_SCALE = Scale(breaks=(0.6, 0.7, 0.8, 0.9), colours=tuple(BAND_COLOURS.values()), digits=2)


def tip(*lines: Any, bold_first: bool = True) -> str:
    """A tooltip/popup string from text lines, every one escaped (``None`` lines are dropped).

    The only way text reaches Leaflet's HTML tooltips in this app: a feed-supplied
    ``<img src=x onerror=...>`` shows as text.
    """
    parts = [html.escape(str(line), quote=True) for line in lines if line is not None and line != ""]
    if bold_first and parts:
        parts[0] = f"<b>{parts[0]}</b>"
    return "<br>".join(parts)


def _feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [round(float(lon), 6), round(float(lat), 6)]}


def collection(features: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": list(features)}


def _fn(name: str) -> dict[str, str]:
    """A reference to a function of ``window.scMaps`` (``assets/maps.js``)."""
    return {"variable": f"scMaps.{name}"}


def _pack() -> Any:
    return data.context().pack


# --- the base map ------------------------------------------------------------------------------


def base_map(map_id: str, lang: str, layers: Sequence[Any], *, zoom: float | None = None,
             center: tuple[float, float] | None = None, dark: bool = True, pack: Any = None,
             style: Mapping[str, Any] | None = None, **props: Any) -> dl.Map:
    """The map: the pack's tile layer (and its attribution), limited to the pack's bounds, with
    ``layers`` on top. Create it once per page and update its layers by id.

    Args:
        map_id: the component id (``viewport`` may be set later for rotations; nothing else).
        lang: kk/ru/en (a ``sc-lang-<lang>`` class on the container).
        layers: layer components, drawn in order (districts first).
        zoom, center: initial view (default: fit every district, :func:`city_bounds`); ``center``
            is ``(lat, lon)``, the zoom then defaults to the pack's.
        dark: dark theme (dimmed tiles, dark background): reads with or without tiles.
        pack: the city pack (default: the installed context's).
        style: CSS of the map container (default: fill the parent).
        props: more ``dl.Map`` properties (e.g. ``zoomControl=False``).
    """
    pack = pack or _pack()
    settings = pack.map
    b = pack.bounds
    tiles = dl.TileLayer(url=settings.tile_url, attribution=settings.attribution, maxZoom=settings.max_zoom,
                         minZoom=settings.min_zoom, className="sc-tiles")
    # center and zoom are always set (dash-leaflet's viewport tracking compares with them); the
    # city's bounds are then fitted once on mount through ``viewport``
    view: dict[str, Any] = {"center": list(center or pack.center),
                            "zoom": zoom if zoom is not None else settings.default_zoom}
    if zoom is None and center is None and pack.districts:
        view["viewport"] = {"bounds": city_bounds(pack), "options": {"padding": [10, 10]}}
    return dl.Map(
        id=map_id, children=[tiles, *layers], **view, zoomSnap=0.25, zoomDelta=0.5,
        minZoom=settings.min_zoom, maxZoom=settings.max_zoom,
        maxBounds=[[b.south, b.west], [b.north, b.east]], maxBoundsViscosity=0.8,
        className=f"sc-map sc-lang-{lang}" + (" sc-map-dark" if dark else ""),
        style=dict(style or {"height": "100%", "width": "100%"}), **props)


def city_bounds(pack: Any = None) -> list[list[float]]:
    """``[[south, west], [north, east]]`` around every district (the initial view of a city map)."""
    pack = pack or _pack()
    boxes = [d.bbox for d in pack.districts]
    return [[min(b[1] for b in boxes), min(b[0] for b in boxes)], [max(b[3] for b in boxes), max(b[2] for b in boxes)]]


def view_of(district_id: str | None, pack: Any = None) -> dict[str, Any]:
    """A ``viewport`` for the map: a district's bounds (or the whole city for None), for
    rotations and "zoom to" buttons. ``{"bounds": [[s, w], [n, e]], "transition": "flyToBounds"}``."""
    pack = pack or _pack()
    if district_id is None:
        return {"bounds": city_bounds(pack), "transition": "flyToBounds", "options": {"padding": [10, 10]}}
    w, s, e, n = pack.district(district_id).bbox
    return {"bounds": [[s, w], [n, e]], "transition": "flyToBounds", "options": {"padding": [40, 40]}}


# --- districts ----------------------------------------------------------------------------------


def district_data(values_by_district: Mapping[str, float | None], *, lang: str, scale: Scale,
                  label: str = "", pack: Any = None) -> dict[str, Any]:
    """The choropleth's GeoJSON: every pack district with its ``value``, ``colour`` and tooltip
    (the district's name in ``lang``, then ``label: value unit``)."""
    pack = pack or _pack()
    unit = t(scale.unit, lang) if scale.unit else ""
    features = []
    for d in pack.districts:
        value = values_by_district.get(d.id)
        shown = number(value, lang, scale.digits) + (f" {unit}" if unit and value is not None else "")
        geometry = {"type": "MultiPolygon",
                    "coordinates": [[[list(p) for p in ring] for ring in polygon] for polygon in d.geometry]}
        features.append(_feature(
            geometry, id=d.id, name=names(d.names.as_dict(), lang), value=value, colour=scale.colour(value),
            tooltip=tip(names(d.names.as_dict(), lang), f"{label}: {shown}" if label else shown)))
    return collection(features)


def district_layer(values_by_district: Mapping[str, float | None], *, lang: str, id: str,  # noqa: A002
                   scale: Scale, label: str = "", pack: Any = None) -> dl.GeoJSON:
    """District polygons coloured by a KPI (``values_by_district``: district id -> value, None:
    no data). Colours come from ``scMaps.districtStyle`` reading ``hideout`` = ``scale.hideout()``;
    update ``data`` (and ``hideout`` when the scale changes) by id."""
    return dl.GeoJSON(id=id, data=district_data(values_by_district, lang=lang, scale=scale, label=label, pack=pack),
                      style=_fn("districtStyle"), hoverStyle=_fn("districtHover"), hideout=scale.hideout())


# --- incidents ----------------------------------------------------------------------------------


def incident_label(kind: str | None, lang: str) -> str:
    """A translated incident type (``wall.type.<type>``), else the type as given."""
    key = f"wall.type.{kind}"
    return t(key, lang) if kind and has(key) else str(kind or "—")


def incident_data(incidents: Iterable[Mapping[str, Any]], lang: str, *, now: float | None = None,
                  pack: Any = None) -> dict[str, Any]:
    """Points of the unresolved incidents that have a place: severity, status, whether an SLA
    clock is breached (``overdue``), tooltip (type, id, district)."""
    import time
    from datetime import datetime

    pack = pack or _pack()
    now = time.time() if now is None else now
    district_names = {d.id: names(d.names.as_dict(), lang) for d in pack.districts}
    features = []
    for inc in incidents:
        if inc.get("lat") is None or inc.get("lon") is None:
            continue
        sla = inc.get("sla") or {}
        overdue = False
        for due_key, stop_key in (("ack_due", "acknowledged_at"), ("resolve_due", "resolved_at")):
            due = sla.get(due_key)
            if due and not inc.get(stop_key):
                overdue = overdue or datetime.fromisoformat(str(due).replace("Z", "+00:00")).timestamp() < now
        severity = int(inc.get("severity") or 2)
        features.append(_feature(
            _point(inc["lat"], inc["lon"]), id=str(inc.get("id")), severity=severity, status=inc.get("status"),
            overdue=overdue, colour=SEVERITY_COLOURS.get(severity, SEVERITY_COLOURS[2]),
            tooltip=tip(incident_label(inc.get("type"), lang), inc.get("title"), inc.get("id"),
                        district_names.get(inc.get("district") or "", inc.get("district")))))
    return collection(features)


def incident_layer(incidents: Iterable[Mapping[str, Any]], lang: str, *, id: str = "incidents",  # noqa: A002
                   pack: Any = None) -> dl.GeoJSON:
    """Incident markers: size and colour by severity, a pulsing halo when an SLA clock is
    breached (``scMaps.incidentPoint``)."""
    return dl.GeoJSON(id=id, data=incident_data(incidents, lang, pack=pack), pointToLayer=_fn("incidentPoint"),
                      hideout={"colours": {str(k): v for k, v in SEVERITY_COLOURS.items()}})


# --- ambulance units ----------------------------------------------------------------------------


def unit_group(unit: Mapping[str, Any]) -> str:
    """``available``, ``on_call`` or ``at_hospital`` for a unit record (own status first; a GTFS-RT
    vehicle state with a ``call_id`` counts as on a call)."""
    group = _UNIT_GROUP.get(str(unit.get("status") or ""))
    if group is not None:
        return group
    return "on_call" if unit.get("call_id") else "available"


def unit_data(units: Iterable[Mapping[str, Any]], lang: str = "ru") -> dict[str, Any]:
    """Points of the ambulance units with a position: group, colour, tooltip (id, label, status)."""
    features = []
    for u in units:
        if u.get("lat") is None or u.get("lon") is None:
            continue
        group = unit_group(u)
        features.append(_feature(
            _point(u["lat"], u["lon"]), id=str(u.get("unit_id")), group=group, colour=UNIT_COLOURS[group],
            tooltip=tip(u.get("unit_id"), u.get("label"), t(f"wall.unit.{group}", lang))))
    return collection(features)


def unit_layer(units: Iterable[Mapping[str, Any]], lang: str = "ru", *, id: str = "units") -> dl.GeoJSON:  # noqa: A002
    """Ambulance units, coloured by status group (green available, orange on a call, blue at hospital)."""
    return dl.GeoJSON(id=id, data=unit_data(units, lang), pointToLayer=_fn("unitPoint"))


# --- air stations -------------------------------------------------------------------------------


def station_data(stations: Iterable[Mapping[str, Any]], lang: str) -> dict[str, Any]:
    """Points of the air stations (the air snapshot's ``air.stations``): AQI, EPA category colour
    (grey when offline or without an AQI), tooltip (name in ``lang``, AQI, category)."""
    from workers.kpi.air import CATEGORIES

    category_names = {c.key: c.name(lang) for c in CATEGORIES}
    features = []
    for s in stations:
        if s.get("lat") is None or s.get("lon") is None:
            continue
        category, aqi = s.get("category"), s.get("aqi")
        offline = bool(s.get("offline"))
        colour = NO_DATA if offline or category not in AQI_COLOURS else AQI_COLOURS[category]
        name = names(s.get("names"), lang) or s.get("name") or s.get("station_id")
        features.append(_feature(
            _point(s["lat"], s["lon"]), id=str(s.get("station_id")), aqi=aqi, category=category, offline=offline,
            colour=colour, label="" if aqi is None else str(aqi),
            tooltip=tip(name, None if aqi is None else f"AQI {aqi}", category_names.get(category or ""),
                        t("wall.offline", lang) if offline else None)))
    return collection(features)


def station_layer(stations: Iterable[Mapping[str, Any]], lang: str, *, id: str = "stations") -> dl.GeoJSON:  # noqa: A002
    """Air stations as discs in their EPA AQI category colour, the AQI written inside."""
    return dl.GeoJSON(id=id, data=station_data(stations, lang), pointToLayer=_fn("stationPoint"))


# --- citizens' appeals --------------------------------------------------------------------------


def appeal_data(appeals: Iterable[Mapping[str, Any]], lang: str = "ru") -> dict[str, Any]:
    """Points of open appeals (the hub's ``appeals_open``): category, tooltip (category, id)."""
    features = []
    for a in appeals:
        if a.get("lat") is None or a.get("lon") is None:
            continue
        category = a.get("category")
        key = f"wall.category.{category}"
        features.append(_feature(
            _point(a["lat"], a["lon"]), id=str(a.get("request_id")), category=category,
            tooltip=tip(t(key, lang) if category and has(key) else category, a.get("request_id"))))
    return collection(features)


def appeal_cluster_layer(appeals: Iterable[Mapping[str, Any]], lang: str = "ru", *,
                         id: str = "appeals") -> dl.GeoJSON:  # noqa: A002
    """Open appeals clustered on the client (supercluster): a count bubble per cluster, single
    appeals as small dots."""
    return dl.GeoJSON(id=id, data=appeal_data(appeals, lang), cluster=True, zoomToBoundsOnClick=True,
                      superClusterOptions={"radius": 110, "maxZoom": 16},
                      pointToLayer=_fn("appealPoint"), clusterToLayer=_fn("appealCluster"))


# --- road segments ------------------------------------------------------------------------------


def segment_data(segments: Iterable[Mapping[str, Any]], lang: str) -> dict[str, Any]:
    """Lines of the traffic snapshot's ``traffic.segments``: band colour (grey when stale or
    without a ratio), tooltip (name, speed / free flow)."""
    kmh = t("unit.kmh", lang)
    features = []
    for s in segments:
        line = s.get("geometry")
        if not line or len(line) < 2:
            continue
        band = s.get("band")
        stale = bool(s.get("stale"))
        colour = NO_DATA if stale or band not in BAND_COLOURS else BAND_COLOURS[band]
        speed, free = s.get("speed_kmh"), s.get("free_flow_kmh")
        features.append(_feature(
            {"type": "LineString", "coordinates": [[float(x), float(y)] for x, y in line]},
            id=str(s.get("segment_id")), band=band, stale=stale, colour=colour,
            tooltip=tip(s.get("name") or s.get("segment_id"),
                        None if speed is None else f"{number(speed, lang)} / {number(free, lang)} {kmh}")))
    return collection(features)


def segment_layer(segments: Iterable[Mapping[str, Any]], lang: str, *, id: str = "segments") -> dl.GeoJSON:  # noqa: A002
    """Road segments coloured by speed-ratio band (``scMaps.segmentStyle``)."""
    return dl.GeoJSON(id=id, data=segment_data(segments, lang), style=_fn("segmentStyle"))
