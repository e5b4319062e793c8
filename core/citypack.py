"""City packs: the city's configuration as data (a directory with ``pack.json`` and data files).

``pack.json`` names the city, its time zone, bounds, centre and base map, and points at the
layers (districts, air monitoring stations, hospitals, ambulance substations, road segments)
and tables (norms, district population). Layers are GeoJSON files referenced with the
property names they already use, so a city can point the app at its own GIS exports
unchanged. The format is documented in ``docs/citypack.md``.

Everything loaded is a frozen dataclass. Every problem raises :class:`ConfigError` naming the
file and the field (or the feature), because a bad pack is fatal at start-up.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core import geo
from core.errors import ConfigError, SchemaError
from core.units import Pollutant, pollutant
from core.validate import Bounds

log = logging.getLogger(__name__)

DEMO_PACK = Path(__file__).parent / "packs" / "almaty_demo"
FORMAT_VERSION = 1
LANGUAGES = ("kk", "ru", "en")
#: When a name is missing in one language, the first of these present is used instead.
NAME_FALLBACK: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "kk": ("ru", "en"), "ru": ("kk", "en"), "en": ("ru", "kk"),
})
DEFAULT_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_ATTRIBUTION = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
AMBULANCE_CATEGORIES = (1, 2, 3, 4)


# --- what a pack holds ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Names:
    """A name in Kazakh, Russian and English (missing languages already filled by fallback)."""

    kk: str
    ru: str
    en: str

    def __getitem__(self, lang: str) -> str:
        if lang not in LANGUAGES:
            raise KeyError(lang)
        return str(getattr(self, lang))

    def as_dict(self) -> dict[str, str]:
        """``{"kk": ..., "ru": ..., "en": ...}``."""
        return {"kk": self.kk, "ru": self.ru, "en": self.en}


@dataclass(frozen=True, slots=True)
class MapSettings:
    """The base map: an XYZ tile URL template, its attribution (HTML) and zoom limits."""

    tile_url: str = DEFAULT_TILE_URL
    attribution: str = DEFAULT_ATTRIBUTION
    min_zoom: int = 10
    max_zoom: int = 19
    default_zoom: int = 12


@dataclass(frozen=True, slots=True)
class LayerRef:
    """Where a layer lives and which of its properties hold what we need."""

    path: Path
    id_property: str
    name_properties: Mapping[str, str]
    """Language (kk, ru, en) -> property name; languages left out fall back (``NAME_FALLBACK``)."""
    properties: Mapping[str, str]
    """Our field name -> the layer's property name, for the layer's other fields."""


Polygon = tuple[tuple[tuple[float, float], ...], ...]
"""Rings of ``(lon, lat)`` positions: the outer ring, then holes."""


@dataclass(frozen=True, slots=True)
class District:
    """An administrative district."""

    id: str
    names: Names
    population: int | None
    geometry: tuple[Polygon, ...]
    """Polygons of rings of ``(lon, lat)`` (a GeoJSON Polygon is one polygon here)."""
    bbox: tuple[float, float, float, float]
    """``(west, south, east, north)``."""
    area_m2: float
    centroid: tuple[float, float]
    """``(lat, lon)``, area-weighted (may lie outside a concave district)."""

    def contains(self, lat: float, lon: float) -> bool:
        """True if the point is inside (holes excluded). Prefer :func:`core.geo.district_at`."""
        w, s, e, n = self.bbox
        return s <= lat <= n and w <= lon <= e and geo.point_in_multipolygon(lat, lon, self.geometry)


@dataclass(frozen=True, slots=True)
class Station:
    """An air monitoring post."""

    id: str
    names: Names
    lat: float
    lon: float
    pollutants: tuple[Pollutant, ...]
    """What it measures (empty: not stated by the layer)."""
    district_id: str | None


@dataclass(frozen=True, slots=True)
class Hospital:
    """A hospital that receives ambulance patients."""

    id: str
    names: Names
    lat: float
    lon: float
    beds: int | None
    district_id: str | None


@dataclass(frozen=True, slots=True)
class Substation:
    """An ambulance substation (where brigades are based)."""

    id: str
    names: Names
    lat: float
    lon: float
    units: int | None
    """Ambulance brigades based here (None: not stated)."""
    district_id: str | None


@dataclass(frozen=True, slots=True)
class RoadSegment:
    """A road segment of the traffic layer."""

    id: str
    names: Names
    road_class: str
    """OpenStreetMap ``highway`` style: motorway, trunk, primary, secondary, tertiary ..."""
    speed_kmh: float
    """Free-flow speed."""
    lanes: int
    """Lanes in both directions together."""
    line: tuple[tuple[float, float], ...]
    """``(lon, lat)`` positions."""
    length_m: float

    def point_at(self, fraction: float) -> tuple[float, float]:
        """``(lat, lon)`` at ``fraction`` (0..1) of the segment's length."""
        return geo.point_along(self.line, fraction)

    @property
    def free_flow_s(self) -> float:
        """Travel time at free-flow speed, seconds."""
        return self.length_m / (self.speed_kmh / 3.6)


@dataclass(frozen=True, slots=True)
class AirLimit:
    """Maximum permissible concentrations (ПДК) of one pollutant, mg/m³."""

    single_mg_m3: float
    """ПДКм.р., the maximum single (20–30 min) concentration."""
    daily_mg_m3: float
    """ПДКс.с., the 24-hour mean."""
    hazard_class: int | None = None


@dataclass(frozen=True, slots=True)
class Norms:
    """The norms KPIs are measured against."""

    air_limits: Mapping[Pollutant, AirLimit]
    ambulance_arrival_min: Mapping[int, float]
    """Urgency category (1–4) -> arrival norm, minutes."""
    appeal_deadline_h: Mapping[str, float]
    """Appeal category -> service deadline, hours; always has ``other``."""

    def arrival_norm(self, category: int) -> timedelta:
        """Arrival norm of an ambulance urgency category.

        Raises:
            KeyError: the category has no norm.
        """
        return timedelta(minutes=self.ambulance_arrival_min[category])

    def appeal_deadline(self, category: str | None) -> timedelta:
        """Service deadline of an appeal category (unknown or None: the ``other`` deadline)."""
        hours = self.appeal_deadline_h.get(category or "other", self.appeal_deadline_h["other"])
        return timedelta(hours=hours)


@dataclass(frozen=True, slots=True)
class CityPack:
    """What a city pack says about the city."""

    id: str
    name: dict[str, str]
    timezone: str
    bounds: Bounds
    center: tuple[float, float]
    """``(lat, lon)``."""
    path: Path
    map: MapSettings = MapSettings()
    districts: tuple[District, ...] = ()
    stations: tuple[Station, ...] = ()
    hospitals: tuple[Hospital, ...] = ()
    substations: tuple[Substation, ...] = ()
    roads: tuple[RoadSegment, ...] = ()
    norms: Norms | None = None
    district_index: geo.AreaIndex[District] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    """Built from ``districts`` when not given; used by :func:`core.geo.district_at`."""

    def __post_init__(self) -> None:
        if self.district_index is None or not self.district_index.indexes(self.districts):
            object.__setattr__(self, "district_index", geo.AreaIndex(self.districts))

    @property
    def zone(self) -> ZoneInfo:
        """The city's time zone."""
        return ZoneInfo(self.timezone)

    def district(self, district_id: str) -> District:
        """The district with this id.

        Raises:
            KeyError: no such district.
        """
        for d in self.districts:
            if d.id == district_id:
                return d
        raise KeyError(district_id)

    def district_at(self, lat: float, lon: float) -> District | None:
        """The district containing the point, or None (same as :func:`core.geo.district_at`)."""
        return self.district_index.locate(lat, lon)


# --- reading --------------------------------------------------------------------------------


class _Source:
    """One file being read: builds errors that name it and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}")

    def read_json(self, what: str) -> Any:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{what} file {self.path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"{what} file {self.path} is a directory") from None
        except (ValueError, OSError) as err:
            raise ConfigError(f"{self.path} cannot be read as JSON: {err}") from err

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"must be an object, got {_kind(value)}")
        return value

    def get(self, data: Mapping[str, Any], key: str, where: str = "") -> Any:
        if key not in data or data[key] is None:
            raise self.error(f"{where}{key}", "is missing")
        return data[key]

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, value: Any, where: str, *, lo: float = -math.inf, hi: float = math.inf,
               positive: bool = False) -> float:
        """A finite number; numeric strings ("60") are accepted, as GIS exports often hold them."""
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise self.error(where, f"must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(where, f"must be a finite number, got {value!r}")
        if not lo <= value <= hi or (positive and value <= 0):
            bound = "> 0" if positive else f"within {lo}..{hi}"
            raise self.error(where, f"must be {bound}, got {value!r}")
        return float(value)

    def integer(self, value: Any, where: str, *, lo: int = 0, hi: int = 10**9) -> int:
        number = self.number(value, where, lo=lo, hi=hi)
        if number != int(number):
            raise self.error(where, f"must be a whole number, got {value!r}")
        return int(number)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _resolve(root: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


_PACK_FIELDS = frozenset({"format", "id", "name", "timezone", "bounds", "center", "map", "layers", "norms",
                          "population", "note"})


def load_pack(path: Path | str | None = None) -> CityPack:
    """Load the pack in directory ``path`` (empty or None: the bundled demo pack).

    Raises:
        ConfigError: the pack is missing or invalid; the message names the file and field.
    """
    root = Path(path) if path and str(path) not in ("", ".") else DEMO_PACK
    src = _Source(root / "pack.json")
    if not src.path.is_file():
        raise ConfigError(f"city pack {root} has no pack.json")
    data = src.obj(src.read_json("pack.json"), "top level")
    unknown = set(data) - _PACK_FIELDS
    if unknown:
        raise src.error("top level", f"unknown field(s) {sorted(unknown)}; known: {sorted(_PACK_FIELDS)}")
    version = data.get("format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise src.error("format", f"version {version!r} is not supported (this app reads {FORMAT_VERSION})")
    pack_id = src.text(src.get(data, "id"), "id")
    name = _names(src, src.obj(src.get(data, "name"), "name"), "name").as_dict()
    timezone = _timezone(src, src.get(data, "timezone"))
    bounds = _bounds(src, src.obj(src.get(data, "bounds"), "bounds"))
    center = _center(src, src.obj(src.get(data, "center"), "center"), bounds)
    map_settings = _map(src, src.obj(data.get("map", {}), "map"))
    layers = src.obj(src.get(data, "layers"), "layers")
    unknown = set(layers) - set(_LAYERS)
    if unknown:
        raise src.error("layers", f"unknown layer(s) {sorted(unknown)}; known: {sorted(_LAYERS)}")

    population = _population(src, root, data.get("population"))
    districts = _load_districts(src, root, layers, bounds, population)
    index = geo.AreaIndex(districts)
    points: dict[str, tuple[Any, ...]] = {}
    for kind in ("stations", "hospitals", "substations"):
        points[kind] = _load_points(src, root, layers, kind, bounds, index)
    roads = _load_roads(src, root, layers, bounds)
    norms = _norms(src, root, src.get(data, "norms"))
    return CityPack(id=pack_id, name=name, timezone=timezone, bounds=bounds, center=center, path=root,
                    map=map_settings, districts=districts, stations=points["stations"],
                    hospitals=points["hospitals"], substations=points["substations"], roads=roads, norms=norms,
                    district_index=index)


# --- pack.json fields -----------------------------------------------------------------------


def _names(src: _Source, values: Mapping[str, Any], where: str) -> Names:
    """Names in the three languages, filling missing ones from ``NAME_FALLBACK``."""
    given = {lang: v.strip() for lang, v in values.items() if lang in LANGUAGES and isinstance(v, str) and v.strip()}
    if not given:
        raise src.error(where, f"has no name in any of {list(LANGUAGES)}")
    filled = {lang: given.get(lang) or next(given[o] for o in NAME_FALLBACK[lang] if o in given) for lang in LANGUAGES}
    return Names(**filled)


def _timezone(src: _Source, value: Any) -> str:
    tz = src.text(value, "timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise src.error("timezone", f"{tz!r} is not a known IANA time zone (e.g. 'Asia/Almaty')") from None
    return tz


def _bounds(src: _Source, b: Mapping[str, Any]) -> Bounds:
    west = src.number(src.get(b, "west", "bounds."), "bounds.west", lo=-180, hi=180)
    south = src.number(src.get(b, "south", "bounds."), "bounds.south", lo=-90, hi=90)
    east = src.number(src.get(b, "east", "bounds."), "bounds.east", lo=-180, hi=180)
    north = src.number(src.get(b, "north", "bounds."), "bounds.north", lo=-90, hi=90)
    bounds = Bounds(west, south, east, north)
    if not (west < east and south < north):
        raise src.error("bounds", f"are empty or inverted ({bounds}); west < east and south < north")
    return bounds


def _center(src: _Source, c: Mapping[str, Any], bounds: Bounds) -> tuple[float, float]:
    lat = src.number(src.get(c, "lat", "center."), "center.lat", lo=-90, hi=90)
    lon = src.number(src.get(c, "lon", "center."), "center.lon", lo=-180, hi=180)
    if not bounds.contains(lat, lon):
        raise src.error("center", f"({lat}, {lon}) is outside the bounds ({bounds})")
    return (lat, lon)


def _map(src: _Source, m: Mapping[str, Any]) -> MapSettings:
    d = MapSettings()
    url = src.text(m.get("tile_url", d.tile_url), "map.tile_url")
    if not all(part in url for part in ("{z}", "{x}", "{y}")) or not url.startswith(("https://", "http://")):
        raise src.error("map.tile_url", f"must be an http(s) URL template with {{z}}, {{x}} and {{y}}, got {url!r}")
    attribution = src.text(m.get("attribution", d.attribution), "map.attribution")
    zooms = {k: src.integer(m.get(k, getattr(d, k)), f"map.{k}", lo=0, hi=24)
             for k in ("min_zoom", "max_zoom", "default_zoom")}
    if not zooms["min_zoom"] <= zooms["default_zoom"] <= zooms["max_zoom"]:
        raise src.error("map", f"zooms must satisfy min_zoom <= default_zoom <= max_zoom, got {zooms}")
    return MapSettings(tile_url=url, attribution=attribution, **zooms)


# --- layers ---------------------------------------------------------------------------------

#: Each layer's own fields (beyond id and names): field -> required?
_LAYERS: Mapping[str, Mapping[str, bool]] = MappingProxyType({
    "districts": {},
    "stations": {"pollutants": False},
    "hospitals": {"beds": False},
    "substations": {"units": False},
    "roads": {"road_class": True, "speed_kmh": True, "lanes": True},
})


def _layer_ref(src: _Source, root: Path, layers: Mapping[str, Any], kind: str) -> LayerRef:
    where = f"layers.{kind}"
    ref = src.obj(layers[kind], where)
    path = _resolve(root, src.text(src.get(ref, "path", f"{where}."), f"{where}.path"))
    if not path.is_file():
        raise src.error(f"{where}.path", f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    id_property = src.text(ref.get("id_property", "id"), f"{where}.id_property")
    names = src.obj(src.get(ref, "name_properties", f"{where}."), f"{where}.name_properties")
    bad = set(names) - set(LANGUAGES)
    if not names or bad:
        raise src.error(f"{where}.name_properties", f"must map some of {list(LANGUAGES)} to property names"
                        + (f"; unknown language(s) {sorted(bad)}" if bad else ""))
    for lang, prop in names.items():
        src.text(prop, f"{where}.name_properties.{lang}")
    props = src.obj(ref.get("properties", {}), f"{where}.properties")
    extra = set(props) - set(_LAYERS[kind])
    if extra:
        raise src.error(f"{where}.properties", f"unknown field(s) {sorted(extra)}; this layer has "
                        f"{sorted(_LAYERS[kind]) or 'none'}")
    mapping = {f: src.text(props.get(f, f), f"{where}.properties.{f}") for f in _LAYERS[kind]}
    missing = [lang for lang in LANGUAGES if lang not in names]
    if missing:
        log.info("%s: layer %s has no %s names; they fall back to %s", src.path, kind, missing, NAME_FALLBACK)
    return LayerRef(path=path, id_property=id_property, name_properties=MappingProxyType(dict(names)),
                    properties=MappingProxyType(mapping))


@dataclass(frozen=True, slots=True)
class _Feature:
    """A feature's common part, read and checked, with its file for error messages."""

    src: _Source
    where: str
    id: str
    names: Names
    props: Mapping[str, Any]
    geometry: Mapping[str, Any]


def _features(ref: LayerRef, kind: str, geometry_types: tuple[str, ...]) -> list[_Feature]:
    """The layer's features with ids (unique) and names, checking the geometry type."""
    src = _Source(ref.path)
    data = src.obj(src.read_json(f"{kind} layer"), "top level")
    if data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise src.error("type", "must be a GeoJSON FeatureCollection with a features array")
    _check_crs(src, data.get("crs"))
    out: list[_Feature] = []
    seen: set[str] = set()
    for i, feature in enumerate(data["features"]):
        where = f"features[{i}]"
        feature = src.obj(feature, where)
        props = src.obj(feature.get("properties") or {}, f"{where}.properties")
        raw_id = props.get(ref.id_property)
        if raw_id is None or isinstance(raw_id, bool | dict | list) or not str(raw_id).strip():
            raise src.error(f"{where}.properties.{ref.id_property}", "(the layer's id_property) is missing or empty")
        fid = str(raw_id).strip()
        where = f"{where} (id {fid!r})"
        if fid in seen:
            raise src.error(where, f"duplicate id in property {ref.id_property!r}")
        seen.add(fid)
        names = _names(src, {lang: props.get(prop) for lang, prop in ref.name_properties.items()},
                       f"{where}.properties {dict(ref.name_properties)}")
        geometry = src.obj(feature.get("geometry"), f"{where}.geometry")
        if geometry.get("type") not in geometry_types:
            raise src.error(f"{where}.geometry.type", f"must be {' or '.join(geometry_types)}, "
                            f"got {geometry.get('type')!r}")
        out.append(_Feature(src, where, fid, names, props, geometry))
    return out


def _check_crs(src: _Source, crs: Any) -> None:
    """Old-style GeoJSON may name its CRS; anything but WGS84 lon/lat is refused."""
    if crs is None:
        return
    name = str(crs.get("properties", {}).get("name", "")) if isinstance(crs, dict) else str(crs)
    if not name.upper().endswith(("CRS84", "4326")):
        raise src.error("crs", f"{name!r} is not WGS84; export the layer as GeoJSON in EPSG:4326 (lon, lat)")


def _position(f: _Feature, value: Any, where: str, bounds: Bounds) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise f.src.error(where, f"a position must be [lon, lat], got {value!r}")
    lon = f.src.number(value[0], f"{where}[0] (lon)")
    lat = f.src.number(value[1], f"{where}[1] (lat)")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise f.src.error(where, f"({lon}, {lat}) is not a WGS84 lon/lat (projected coordinates?)")
    if not bounds.contains(lat, lon):
        raise f.src.error(where, f"lon {lon}, lat {lat} lies outside the pack bounds ({bounds}); "
                          f"widen bounds in pack.json or check the lon/lat order")
    return (lon, lat)


def _polygons(f: _Feature, bounds: Bounds) -> tuple[Polygon, ...]:
    g = f.geometry
    coords = g.get("coordinates")
    parts = [coords] if g["type"] == "Polygon" else coords
    where = f"{f.where}.geometry.coordinates"
    if not isinstance(parts, list) or not parts:
        raise f.src.error(where, "must hold at least one polygon")
    polygons = []
    for p, rings in enumerate(parts):
        pw = where if g["type"] == "Polygon" else f"{where}[{p}]"
        if not isinstance(rings, list) or not rings:
            raise f.src.error(pw, "a polygon needs at least an outer ring")
        out_rings = []
        for r, ring in enumerate(rings):
            rw = f"{pw}[{r}]"
            if not isinstance(ring, list) or len(ring) < 4:
                raise f.src.error(rw, "a ring needs at least 4 positions (a closed triangle)")
            positions = tuple(_position(f, pos, f"{rw}[{k}]", bounds) for k, pos in enumerate(ring))
            if positions[0] != positions[-1]:
                raise f.src.error(rw, "ring is not closed (its first and last positions differ)")
            if geo.ring_area_m2(positions) == 0:
                raise f.src.error(rw, "ring has no area")
            out_rings.append(positions)
        polygons.append(tuple(out_rings))
    return tuple(polygons)


def _load_districts(src: _Source, root: Path, layers: Mapping[str, Any], bounds: Bounds,
                    population: Mapping[str, int]) -> tuple[District, ...]:
    if "districts" not in layers:
        raise src.error("layers.districts", "is missing (every pack needs its districts)")
    ref = _layer_ref(src, root, layers, "districts")
    districts = []
    for f in _features(ref, "districts", ("Polygon", "MultiPolygon")):
        geometry = _polygons(f, bounds)
        districts.append(District(id=f.id, names=f.names, population=population.get(f.id), geometry=geometry,
                                  bbox=geo.bbox_of(geometry), area_m2=geo.multipolygon_area_m2(geometry),
                                  centroid=geo.centroid(geometry)))
    if not districts:
        raise _Source(ref.path).error("features", "the districts layer has no features")
    unknown = set(population) - {d.id for d in districts}
    if unknown:
        raise src.error("population", f"district id(s) {sorted(unknown)} are not in {ref.path}")
    return tuple(districts)


def _load_points(src: _Source, root: Path, layers: Mapping[str, Any], kind: str, bounds: Bounds,
                 index: geo.AreaIndex[District]) -> tuple[Any, ...]:
    if kind not in layers:
        return ()
    ref = _layer_ref(src, root, layers, kind)
    build: Callable[..., Any] = {"stations": _station, "hospitals": _hospital, "substations": _substation}[kind]
    out = []
    for f in _features(ref, kind, ("Point",)):
        lon, lat = _position(f, f.geometry.get("coordinates"), f"{f.where}.geometry.coordinates", bounds)
        district = index.locate(lat, lon)
        out.append(build(f, ref, id=f.id, names=f.names, lat=lat, lon=lon,
                         district_id=district.id if district else None))
    return tuple(out)


def _optional(f: _Feature, ref: LayerRef, name: str) -> tuple[Any, str]:
    prop = ref.properties[name]
    return f.props.get(prop), f"{f.where}.properties.{prop}"


def _station(f: _Feature, ref: LayerRef, **common: Any) -> Station:
    value, where = _optional(f, ref, "pollutants")
    items = value.split(",") if isinstance(value, str) else value or []
    if not isinstance(items, list):
        raise f.src.error(where, f"must be a list of pollutants or a comma-separated string, got {value!r}")
    try:
        pollutants = tuple(pollutant(str(p).strip()) for p in items)
    except SchemaError as err:
        raise f.src.error(where, str(err)) from None
    return Station(pollutants=pollutants, **common)


def _hospital(f: _Feature, ref: LayerRef, **common: Any) -> Hospital:
    value, where = _optional(f, ref, "beds")
    return Hospital(beds=None if value in (None, "") else f.src.integer(value, where), **common)


def _substation(f: _Feature, ref: LayerRef, **common: Any) -> Substation:
    value, where = _optional(f, ref, "units")
    return Substation(units=None if value in (None, "") else f.src.integer(value, where), **common)


def _load_roads(src: _Source, root: Path, layers: Mapping[str, Any], bounds: Bounds) -> tuple[RoadSegment, ...]:
    if "roads" not in layers:
        return ()
    ref = _layer_ref(src, root, layers, "roads")
    out = []
    for f in _features(ref, "roads", ("LineString",)):
        coords = f.geometry.get("coordinates")
        where = f"{f.where}.geometry.coordinates"
        if not isinstance(coords, list) or len(coords) < 2:
            raise f.src.error(where, "a LineString needs at least 2 positions")
        line = tuple(_position(f, pos, f"{where}[{k}]", bounds) for k, pos in enumerate(coords))
        length = geo.line_length_m(line)
        if length <= 0:
            raise f.src.error(where, "the segment has zero length")
        fields = {}
        for name in ("road_class", "speed_kmh", "lanes"):
            value, fw = _optional(f, ref, name)
            if value in (None, ""):
                raise f.src.error(fw, f"is missing (the layer's {name} property, see layers.roads.properties)")
            fields[name] = (value, fw)
        out.append(RoadSegment(id=f.id, names=f.names, road_class=f.src.text(*fields["road_class"]),
                               speed_kmh=f.src.number(*fields["speed_kmh"], lo=1, hi=200),
                               lanes=f.src.integer(*fields["lanes"], lo=1, hi=20),
                               line=line, length_m=length))
    return tuple(out)


# --- tables ---------------------------------------------------------------------------------


def _table(src: _Source, root: Path, ref: Any, field_name: str) -> tuple[_Source, dict[str, Any]]:
    """A table referenced as ``{"path": ...}`` from pack.json: its source and its object."""
    ref = src.obj(ref, field_name)
    path = _resolve(root, src.text(src.get(ref, "path", f"{field_name}."), f"{field_name}.path"))
    if not path.is_file():
        raise src.error(f"{field_name}.path", f"{path} does not exist")
    table = _Source(path)
    return table, table.obj(table.read_json(field_name), "top level")


def _population(src: _Source, root: Path, ref: Any) -> Mapping[str, int]:
    if ref is None:
        return {}
    table, data = _table(src, root, ref, "population")
    values = table.obj(table.get(data, "districts"), "districts")
    return {str(k): table.integer(v, f"districts.{k}", lo=1) for k, v in values.items()}


def _norms(src: _Source, root: Path, ref: Any) -> Norms:
    table, data = _table(src, root, ref, "norms")
    return Norms(air_limits=MappingProxyType(_air_limits(table, table.obj(table.get(data, "air_limits_mg_m3"),
                                                                             "air_limits_mg_m3"))),
                 ambulance_arrival_min=MappingProxyType(_arrival(table, data)),
                 appeal_deadline_h=MappingProxyType(_deadlines(table, data)))


def _air_limits(table: _Source, limits: Mapping[str, Any]) -> dict[Pollutant, AirLimit]:
    out = {}
    for name, spec in limits.items():
        where = f"air_limits_mg_m3.{name}"
        try:
            key = pollutant(name)
        except SchemaError as err:
            raise table.error(where, str(err)) from None
        spec = table.obj(spec, where)
        single = table.number(table.get(spec, "single", f"{where}."), f"{where}.single", positive=True)
        daily = table.number(table.get(spec, "daily", f"{where}."), f"{where}.daily", positive=True)
        if daily > single:
            raise table.error(where, f"the daily limit {daily} exceeds the single limit {single}")
        hazard = spec.get("hazard_class")
        out[key] = AirLimit(single, daily, None if hazard is None else table.integer(hazard, f"{where}.hazard_class",
                                                                                    lo=1, hi=4))
    if not out:
        raise table.error("air_limits_mg_m3", "is empty")
    return out


def _arrival(table: _Source, data: Mapping[str, Any]) -> dict[int, float]:
    values = table.obj(table.get(data, "ambulance_arrival_min"), "ambulance_arrival_min")
    if sorted(values) != [str(c) for c in AMBULANCE_CATEGORIES]:
        raise table.error("ambulance_arrival_min", f"must give categories {list(AMBULANCE_CATEGORIES)} "
                          f"(as strings \"1\"..\"4\"), got {sorted(values)}")
    return {int(k): table.number(v, f"ambulance_arrival_min.{k}", positive=True) for k, v in values.items()}


def _deadlines(table: _Source, data: Mapping[str, Any]) -> dict[str, float]:
    values = table.obj(table.get(data, "appeal_deadline_h"), "appeal_deadline_h")
    if "other" not in values:
        raise table.error("appeal_deadline_h.other", "is missing (the deadline of categories not listed)")
    return {table.text(k, "appeal_deadline_h"): table.number(v, f"appeal_deadline_h.{k}", positive=True)
            for k, v in values.items()}
