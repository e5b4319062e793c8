"""Build the bundled Almaty demo pack (``core/packs/almaty_demo/``) from a handful of facts.

A coarse, clearly labelled approximation made by this project, not a map: districts are
Voronoi cells around approximate district-centre coordinates (public knowledge), clipped to a
rough city outline of our own; stations, hospitals, substations and the arterial road grid are
plausible placements of our own. Nothing is derived from ``../shared/data``.

Run from the project root; the output is deterministic and committed beside this script
(a test rebuilds it and compares)::

    python core/packs/make_almaty_demo.py          # write the files
    python core/packs/make_almaty_demo.py --check  # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "almaty_demo"
DIGITS = 5  # about 1 m

# Local plane for the Voronoi construction: x = (lon - LON0) * cos(LAT0), y = lat - LAT0, so
# distances are isotropic (1 unit ~ 111 km both ways) and cell borders are true bisectors.
LAT0, LON0 = 43.25, 76.95
KX = math.cos(math.radians(LAT0))

#: The city's extent as a coarse outline of our own, (lon, lat), counter-clockwise: about
#: 76.74-77.17 E and 43.03-43.40 N; the southern lobe is the Medeu foothills (the Malaya
#: Almatinka gorge to Shymbulak), the north reaches past Almaty-1 and the airport to Turksib's
#: edge, the west takes in Alatau's and Nauryzbay's newer microdistricts.
OUTLINE: tuple[tuple[float, float], ...] = (
    (76.745, 43.215),  # west, beyond Nauryzbay's microdistricts
    (76.760, 43.165),
    (76.820, 43.145),
    (76.880, 43.130),  # Bostandyk's foothills
    (76.935, 43.100),
    (77.000, 43.085),
    (77.050, 43.030),  # the southern tip of the Medeu gorge
    (77.120, 43.050),
    (77.170, 43.120),  # eastern mountains of Medeu
    (77.120, 43.200),
    (77.100, 43.260),
    (77.070, 43.330),  # the airport's east side
    (77.040, 43.370),
    (76.970, 43.400),  # Turksib's northern edge
    (76.920, 43.390),
    (76.900, 43.335),
    (76.850, 43.315),
    (76.790, 43.310),  # Alatau's north-west
    (76.750, 43.280),
)

#: District id -> (approximate district-centre lat, lon), names (kk, ru, en), population.
#: Centres: where each district's residential core lies (public knowledge, rounded to ~1 km).
#: Populations: a plausible split of about 2.3 million (illustrative, not a statistic).
DISTRICTS: dict[str, tuple[tuple[float, float], tuple[str, str, str], int]] = {
    "alatau": ((43.285, 76.835), ("Алатау ауданы", "Алатауский район", "Alatau District"), 350_000),
    "almaly": ((43.255, 76.915), ("Алмалы ауданы", "Алмалинский район", "Almaly District"), 240_000),
    "auezov": ((43.230, 76.865), ("Әуезов ауданы", "Ауэзовский район", "Auezov District"), 330_000),
    "bostandyk": ((43.210, 76.915), ("Бостандық ауданы", "Бостандыкский район", "Bostandyk District"), 400_000),
    "zhetysu": ((43.290, 76.925), ("Жетісу ауданы", "Жетысуский район", "Zhetysu District"), 190_000),
    "medeu": ((43.225, 77.000), ("Медеу ауданы", "Медеуский район", "Medeu District"), 235_000),
    "nauryzbay": ((43.195, 76.790), ("Наурызбай ауданы", "Наурызбайский район", "Nauryzbay District"), 250_000),
    "turksib": ((43.335, 76.975), ("Түрксіб ауданы", "Турксибский район", "Turksib District"), 305_000),
}

#: Air monitoring posts (11 automatic, as in Almaty's network): id -> lat, lon, place, pollutants.
STATIONS: tuple[tuple[str, float, float, tuple[str, str, str], tuple[str, ...]], ...] = (
    ("ALM-01", 43.2520, 76.9280, ("Орталық", "Центр", "City centre"), ("pm25", "pm10", "no2", "so2", "co")),
    ("ALM-02", 43.2330, 76.9750, ("Самал", "Самал", "Samal"), ("pm25", "pm10", "no2", "co")),
    ("ALM-03", 43.2150, 76.9000, ("Әл-Фараби", "Аль-Фараби", "Al-Farabi"), ("pm25", "pm10", "no2", "so2", "co")),
    ("ALM-04", 43.2300, 76.8600, ("Шағынаудандар", "Микрорайоны", "Microdistricts"),
     ("pm25", "pm10", "no2", "so2", "co")),
    ("ALM-05", 43.2900, 76.8300, ("Шаңырақ", "Шанырак", "Shanyrak"), ("pm25", "pm10", "no2", "co")),
    ("ALM-06", 43.1950, 76.8000, ("Қалқаман", "Калкаман", "Kalkaman"), ("pm25", "pm10", "no2", "co")),
    ("ALM-07", 43.2850, 76.9150, ("Құлагер", "Кулагер", "Kulager"), ("pm25", "pm10", "no2", "so2", "co")),
    ("ALM-08", 43.3350, 76.9650, ("Алматы-1", "Алматы-1", "Almaty-1"), ("pm25", "pm10", "no2", "so2", "co")),
    ("ALM-09", 43.3450, 77.0100, ("Әуежай", "Аэропорт", "Airport"), ("pm25", "pm10", "no2", "co")),
    ("ALM-10", 43.1850, 76.8850, ("Орбита", "Орбита", "Orbita"), ("pm25", "pm10", "no2", "co", "o3")),
    ("ALM-11", 43.1600, 77.0550, ("Медеу (фондық)", "Медеу (фон)", "Medeu (background)"), ("pm25", "pm10", "o3")),
)

#: Hospitals receiving ambulance patients: number, lat, lon, beds, kind.
HOSPITALS: tuple[tuple[int, float, float, int, str], ...] = (
    (1, 43.2560, 76.9050, 600, "clinical"),
    (2, 43.2220, 76.9300, 700, "clinical"),
    (3, 43.2380, 76.8700, 500, "clinical"),
    (4, 43.2480, 76.9650, 450, "clinical"),
    (5, 43.3200, 76.9550, 400, "clinical"),
    (6, 43.2780, 76.9300, 350, "clinical"),
    (7, 43.2800, 76.8500, 300, "clinical"),
    (8, 43.2050, 76.8200, 250, "clinical"),
    (9, 43.2000, 76.8950, 800, "emergency"),
    (10, 43.2450, 76.9350, 300, "children"),
)

#: Ambulance substations: number, lat, lon, brigades based there.
SUBSTATIONS: tuple[tuple[int, float, float, int], ...] = (
    (1, 43.2600, 76.9200, 16),
    (2, 43.2400, 76.9800, 12),
    (3, 43.2100, 76.9150, 16),
    (4, 43.2250, 76.8550, 16),
    (5, 43.2950, 76.8450, 12),
    (6, 43.1900, 76.8100, 10),
    (7, 43.2900, 76.9300, 12),
    (8, 43.3300, 76.9800, 12),
    (9, 43.3550, 76.9500, 8),
    (10, 43.2650, 76.8000, 10),
    (11, 43.2450, 76.8400, 12),
    (12, 43.1850, 76.8850, 10),
)

# --- the arterial grid ----------------------------------------------------------------------
# North-south streets by longitude and east-west streets by latitude (approximate); segments
# join consecutive intersections along each street.
MOMYSHULY, SAIN, ROZYBAKIEV, SEIFULLIN, FURMANOV, DOSTYK, SUYUNBAY = (
    76.838, 76.858, 76.885, 76.937, 76.947, 76.957, 76.962)
RYSKULOV, RAIYMBEK, TOLE_BI, ABAY = 43.288, 43.268, 43.253, 43.240


def _al_farabi(lon: float) -> float:
    """Al-Farabi Avenue's latitude at ``lon``: it climbs gently from the south-west to Dostyk."""
    return round(43.195 + (lon - 76.800) * 0.19, 4)


#: code -> names (kk, ru, en), road class, free-flow km/h, lanes (both ways), nodes (lon, lat).
ROADS: dict[str, tuple[tuple[str, str, str], str, float, int, tuple[tuple[float, float], ...]]] = {
    "ALFARABI": (("Әл-Фараби даңғылы", "проспект аль-Фараби", "Al-Farabi Avenue"), "trunk", 70, 8,
                 tuple((lon, _al_farabi(lon)) for lon in (76.800, MOMYSHULY, SAIN, ROZYBAKIEV, 76.920, FURMANOV,
                                                          DOSTYK)) + ((77.005, 43.222),)),
    "ABAY": (("Абай даңғылы", "проспект Абая", "Abay Avenue"), "primary", 55, 6,
             tuple((lon, ABAY) for lon in (76.800, MOMYSHULY, SAIN, ROZYBAKIEV, SEIFULLIN, FURMANOV, DOSTYK))),
    "TOLEBI": (("Төле би көшесі", "улица Толе би", "Tole bi Street"), "primary", 45, 4,
               tuple((lon, TOLE_BI) for lon in (76.790, MOMYSHULY, SAIN, ROZYBAKIEV, SEIFULLIN, FURMANOV, DOSTYK))),
    "RAIYMBEK": (("Райымбек даңғылы", "проспект Райымбека", "Raiymbek Avenue"), "trunk", 60, 6,
                 tuple((lon, RAIYMBEK) for lon in (76.760, 76.800, MOMYSHULY, SAIN, ROZYBAKIEV, SEIFULLIN, FURMANOV,
                                                   SUYUNBAY, 76.990))),
    "RYSKULOV": (("Рысқұлов даңғылы", "проспект Рыскулова", "Ryskulov Avenue"), "trunk", 60, 6,
                 tuple((lon, RYSKULOV) for lon in (76.800, MOMYSHULY, SAIN, SEIFULLIN, SUYUNBAY))),
    "MOMYSHULY": (("Момышұлы көшесі", "улица Момышулы", "Momyshuly Street"), "primary", 55, 6,
                  ((MOMYSHULY, _al_farabi(MOMYSHULY)), (MOMYSHULY, ABAY), (MOMYSHULY, TOLE_BI),
                   (MOMYSHULY, RAIYMBEK), (MOMYSHULY, RYSKULOV))),
    "SAIN": (("Саин көшесі", "улица Саина", "Sain Street"), "primary", 60, 6,
             ((SAIN, _al_farabi(SAIN)), (SAIN, ABAY), (SAIN, TOLE_BI), (SAIN, RAIYMBEK), (SAIN, RYSKULOV))),
    "ROZYBAKIEV": (("Розыбакиев көшесі", "улица Розыбакиева", "Rozybakiev Street"), "secondary", 45, 4,
                   ((ROZYBAKIEV, _al_farabi(ROZYBAKIEV)), (ROZYBAKIEV, ABAY), (ROZYBAKIEV, TOLE_BI),
                    (ROZYBAKIEV, RAIYMBEK))),
    "SEIFULLIN": (("Сейфуллин даңғылы", "проспект Сейфуллина", "Seifullin Avenue"), "primary", 45, 4,
                  ((SEIFULLIN, ABAY), (SEIFULLIN, TOLE_BI), (SEIFULLIN, RAIYMBEK), (SEIFULLIN, RYSKULOV),
                   (76.935, 43.320))),
    "FURMANOV": (("Фурманов көшесі", "улица Фурманова", "Furmanov Street"), "secondary", 40, 4,
                 ((FURMANOV, _al_farabi(FURMANOV)), (FURMANOV, ABAY), (FURMANOV, TOLE_BI), (FURMANOV, RAIYMBEK))),
    "DOSTYK": (("Достық даңғылы", "проспект Достык", "Dostyk Avenue"), "primary", 50, 6,
               ((DOSTYK, _al_farabi(DOSTYK)), (DOSTYK, ABAY), (DOSTYK, TOLE_BI), (DOSTYK, 43.260))),
    "SUYUNBAY": (("Сүйінбай даңғылы", "проспект Суюнбая", "Suyunbay Avenue"), "primary", 55, 4,
                 ((SUYUNBAY, RAIYMBEK), (SUYUNBAY, RYSKULOV), (76.960, 43.330), (76.965, 43.370))),
    "VOAD": (("Шығыс айналма автожолы", "Восточная объездная автодорога (ВОАД)", "Eastern Bypass (VOAD)"),
             "trunk", 80, 6, ((77.005, 43.222), (77.020, 43.245), (77.025, 43.262), (77.035, 43.290),
                              (77.045, 43.330))),
    "KULDZHA": (("Құлжа тас жолы", "Кульджинский тракт", "Kuldzha Highway"), "trunk", 70, 4,
                ((76.990, RAIYMBEK), (77.035, 43.290), (77.095, 43.305))),
    "BAKAD": (("Үлкен Алматы айналма автожолы", "Большая Алматинская кольцевая автодорога (БАКАД)",
               "Big Almaty Ring Road (BAKAD)"), "motorway", 100, 6,
              ((76.770, 43.170), (76.755, 43.220), (76.760, RAIYMBEK), (76.790, 43.320), (76.870, 43.355),
               (76.965, 43.370), (77.045, 43.365))),
    "MEDEU": (("Медеу жолы (Горная көшесі)", "дорога на Медеу (улица Горная)", "Medeu Road (Gornaya Street)"),
              "secondary", 50, 2, ((DOSTYK, _al_farabi(DOSTYK)), (76.975, 43.205), (77.000, 43.180),
                                   (77.030, 43.165), (77.058, 43.157))),
}

NORMS: dict[str, Any] = {
    "air_limits_mg_m3": {
        "pm25": {"single": 0.16, "daily": 0.035},
        "pm10": {"single": 0.3, "daily": 0.06},
        "no2": {"single": 0.2, "daily": 0.04, "hazard_class": 2},
        "so2": {"single": 0.5, "daily": 0.05, "hazard_class": 3},
        "co": {"single": 5.0, "daily": 3.0, "hazard_class": 4},
        "o3": {"single": 0.16, "daily": 0.03, "hazard_class": 1},
    },
    "ambulance_arrival_min": {"1": 10, "2": 15, "3": 30, "4": 60},
    "appeal_deadline_h": {
        "water_supply": 24, "heating": 24, "electricity": 24, "roads": 240, "waste": 48, "lighting": 72,
        "public_transport": 120, "noise": 72, "other": 360,
    },
    "sources": {
        "air_limits_mg_m3": "ПДКм.р. (single) and ПДКс.с. (24 h), ГН 2.1.6.695-98 set plus PM, as used by "
                            "Kazhydromet; legal basis ҚР ДСМ-70 of 2 Aug 2022 (see docs/citypack.md)",
        "ambulance_arrival_min": "Order ҚР ДСМ-225/2020: categories 1-4, 10/15/30/60 minutes",
        "appeal_deadline_h": "ILLUSTRATIVE values chosen for the demo, not taken from a regulation",
    },
}

MAP = {
    "tile_url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "attribution": '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    "min_zoom": 10, "max_zoom": 19, "default_zoom": 12,
}

NOTE = ("DEMO PACK: a coarse approximation made by this project, not official boundaries. Districts are "
        "Voronoi cells around approximate district centres clipped to a rough city outline; stations, "
        "hospitals, substations and roads are plausible placements of our own. Generated by "
        "core/packs/make_almaty_demo.py; do not edit by hand.")


# --- Voronoi cells by half-plane clipping ----------------------------------------------------


def _to_plane(lon: float, lat: float) -> tuple[float, float]:
    return ((lon - LON0) * KX, lat - LAT0)


def _to_lonlat(x: float, y: float) -> tuple[float, float]:
    return (LON0 + x / KX, LAT0 + y)


def clip_half_plane(polygon: list[tuple[float, float]], site: tuple[float, float],
                    other: tuple[float, float]) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: the part of ``polygon`` (open ring) nearer to ``site`` than to ``other``."""
    (sx, sy), (ox, oy) = site, other
    dx, dy = ox - sx, oy - sy
    mx, my = (sx + ox) / 2, (sy + oy) / 2

    def side(p: tuple[float, float]) -> float:  # < 0: nearer to site
        return (p[0] - mx) * dx + (p[1] - my) * dy

    out: list[tuple[float, float]] = []
    for i, cur in enumerate(polygon):
        prev = polygon[i - 1]
        s_prev, s_cur = side(prev), side(cur)
        if s_cur <= 0:
            if s_prev > 0:
                out.append(_cut(prev, cur, s_prev, s_cur))
            out.append(cur)
        elif s_prev <= 0:
            out.append(_cut(prev, cur, s_prev, s_cur))
    return out


def _cut(a: tuple[float, float], b: tuple[float, float], sa: float, sb: float) -> tuple[float, float]:
    t = sa / (sa - sb)
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def voronoi_cells(sites: dict[str, tuple[float, float]],
                  outline: tuple[tuple[float, float], ...]) -> dict[str, list[tuple[float, float]]]:
    """Each site's Voronoi cell (in the local plane) within ``outline`` (lon, lat), as lon/lat rings."""
    plane_outline = [_to_plane(lon, lat) for lon, lat in outline]
    plane_sites = {k: _to_plane(lon, lat) for k, (lat, lon) in sites.items()}
    cells = {}
    for key, site in plane_sites.items():
        cell = plane_outline
        for other_key, other in plane_sites.items():
            if other_key != key:
                cell = clip_half_plane(cell, site, other)
        cells[key] = [_to_lonlat(x, y) for x, y in cell]
    return cells


def _ring(points: list[tuple[float, float]]) -> list[list[float]]:
    """A closed, counter-clockwise GeoJSON ring rounded to ``DIGITS``, without repeated points."""
    ring: list[list[float]] = []
    for lon, lat in points:
        p = [round(lon, DIGITS), round(lat, DIGITS)]
        if not ring or p != ring[-1]:
            ring.append(p)
    if ring[0] == ring[-1]:
        ring.pop()
    area2 = sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:] + ring[:1], strict=True))
    if area2 < 0:
        ring.reverse()
    return ring + [ring[0]]


# --- output ---------------------------------------------------------------------------------


def _names(kk: str, ru: str, en: str) -> dict[str, str]:
    return {"name_kk": kk, "name_ru": ru, "name_en": en}


def _point(props: dict[str, Any], lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": [lon, lat]}}


def _collection(features: list[dict[str, Any]]) -> str:
    """A FeatureCollection labelled with ``NOTE`` (a GeoJSON foreign member), one feature per line."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    return ('{"type":"FeatureCollection","note":' + json.dumps(NOTE) + ',"features":[\n' + ",\n".join(lines)
            + "\n]}\n")


def district_features() -> list[dict[str, Any]]:
    cells = voronoi_cells({k: centre for k, (centre, _, _) in DISTRICTS.items()}, OUTLINE)
    return [{"type": "Feature", "properties": {"id": key, **_names(*names)},
             "geometry": {"type": "Polygon", "coordinates": [_ring(cells[key])]}}
            for key, (_, names, _) in DISTRICTS.items()]


def station_features() -> list[dict[str, Any]]:
    return [_point({"id": sid, **_names(f"{sid} бекеті, {kk}", f"Пост {sid}, {ru}", f"Post {sid}, {en}"),
                    "pollutants": list(pollutants), "kind": "automatic"}, lat, lon)
            for sid, lat, lon, (kk, ru, en), pollutants in STATIONS]


def hospital_features() -> list[dict[str, Any]]:
    kinds = {
        "clinical": ("№{n} қалалық клиникалық аурухана", "Городская клиническая больница №{n}",
                     "City Clinical Hospital No. {n}"),
        "emergency": ("Жедел медициналық жәрдем ауруханасы (№{n})", "Больница скорой медицинской помощи (№{n})",
                      "Emergency Hospital (No. {n})"),
        "children": ("№{n} қалалық балалар ауруханасы", "Городская детская больница №{n}",
                     "City Children's Hospital No. {n}"),
    }
    return [_point({"id": f"H{n:02d}", **_names(*(t.format(n=n) for t in kinds[kind])), "beds": beds}, lat, lon)
            for n, lat, lon, beds, kind in HOSPITALS]


def substation_features() -> list[dict[str, Any]]:
    return [_point({"id": f"SUB-{n:02d}", **_names(f"№{n} жедел жәрдем қосалқы станциясы",
                                                   f"Подстанция скорой помощи №{n}", f"Substation No. {n}"),
                    "units": units}, lat, lon)
            for n, lat, lon, units in SUBSTATIONS]


def road_features() -> list[dict[str, Any]]:
    out = []
    for code, ((kk, ru, en), road_class, speed, lanes, nodes) in ROADS.items():
        for i, (a, b) in enumerate(zip(nodes, nodes[1:], strict=False), start=1):
            out.append({"type": "Feature",
                        "properties": {"id": f"{code}-{i:02d}", **_names(kk, ru, en), "road_class": road_class,
                                       "speed_kmh": speed, "lanes": lanes},
                        "geometry": {"type": "LineString", "coordinates": [list(a), list(b)]}})
    return out


def pack_json() -> dict[str, Any]:
    names = {"name_kk": "kk", "name_ru": "ru", "name_en": "en"}
    name_properties = {lang: prop for prop, lang in names.items()}

    def layer(path: str, **properties: str) -> dict[str, Any]:
        ref: dict[str, Any] = {"path": path, "id_property": "id", "name_properties": name_properties}
        if properties:
            ref["properties"] = properties
        return ref

    return {
        "format": 1,
        "id": "almaty_demo",
        "name": {"kk": "Алматы (демо)", "ru": "Алматы (демо)", "en": "Almaty (demo)"},
        "timezone": "Asia/Almaty",
        "bounds": {"west": 76.60, "south": 42.95, "east": 77.35, "north": 43.50},
        "center": {"lat": 43.2380, "lon": 76.9450},
        "map": MAP,
        "layers": {
            "districts": layer("districts.geojson"),
            "stations": layer("stations.geojson", pollutants="pollutants"),
            "hospitals": layer("hospitals.geojson", beds="beds"),
            "substations": layer("substations.geojson", units="units"),
            "roads": layer("roads.geojson", road_class="road_class", speed_kmh="speed_kmh", lanes="lanes"),
        },
        "norms": {"path": "norms.json"},
        "population": {"path": "population.json"},
        "note": NOTE + " Bounds: the city's extent (about 76.74-77.17 E, 43.03-43.40 N) padded by about 10 km "
                       "for the foothills and the ring road.",
    }


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def build() -> dict[str, str]:
    """Every file of the demo pack: name -> text."""
    population = {"note": "Illustrative split of about 2.3 million residents (demo data, not a statistic).",
                  "year": 2025, "districts": {k: pop for k, (_, _, pop) in DISTRICTS.items()}}
    return {
        "pack.json": _json(pack_json()),
        "districts.geojson": _collection(district_features()),
        "stations.geojson": _collection(station_features()),
        "hospitals.geojson": _collection(hospital_features()),
        "substations.geojson": _collection(substation_features()),
        "roads.geojson": _collection(road_features()),
        "norms.json": _json(NORMS),
        "population.json": _json(population),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    files = build()
    stale = [n for n, text in files.items() if not (OUT / n).exists() or (OUT / n).read_text("utf-8") != text]
    if args.check:
        print("stale: " + ", ".join(stale) if stale else "up to date")
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
