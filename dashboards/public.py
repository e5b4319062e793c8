"""The public app (port 8051): city indicators for anyone, and the same numbers as open data.

A separate process with **no write callbacks and no query endpoint**: it reads one document, the
public indicators built by ``workers.public`` (district × hour, delayed, small counts suppressed,
nothing personal), from ``keys.PUBLIC_INDICATORS``, and serves

* ``GET /``: the page, mobile-first, in Kazakh, Russian or English (``?lang=`` wins and is
  remembered in the ``sc_lang`` cookie, then the cookie, then ``Accept-Language``; default
  Russian); plain HTML and CSS, no script, the map and the 24-hour chart as SVG images;
* ``GET /api/v1/public/indicators`` (JSON, the document as built) and
  ``GET /api/v1/public/indicators.csv`` (or ``?format=csv``: one row per hour × area × indicator),
  with ``Cache-Control: public, max-age=60``, a strong ``ETag``, ``Last-Modified``, ``304`` on
  ``If-None-Match`` / ``If-Modified-Since`` and ``Access-Control-Allow-Origin: *``;
* ``GET /healthz``: a constant ``ok`` (for load balancers; the load benchmark's ceiling).

Caching, so that a viral link costs Redis nothing: :class:`DocumentCache` reads the document at
most once per ``SC_PUBLIC_CACHE_S`` per process (single-flight: one request refreshes, the others
keep being served the previous document, or wait for the first one), and every response body
(page per language, JSON, CSV, gzip variants) is rendered once per document and then served as
bytes by :class:`PublicFront`, a pure ASGI layer in front of FastAPI and Dash. When Redis is down
the last good document is served with its own (older) time; before the first one, a friendly
"data not yet available" page (and 503 from the API).

The page is a Dash component tree (:func:`page_layout`): Dash serves it at ``/_dash-layout`` for
its renderer (``app.layout`` returns the cached tree), and :func:`to_html` writes the same tree as
static HTML for ``/``. Dash's callback routes (``POST /_dash-update-component``, the websocket)
are removed: there are no callbacks, and the front answers any method but GET, HEAD and OPTIONS
with 405.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import html as html_lib
import io
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import anyio
import orjson
from dash import Dash, html
from fastapi import FastAPI

from core import keys
from core.settings import Settings
from dashboards.i18n import LANG_NAMES, LANGS, lang_of, number, percent, t, when

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API_PATH = "/api/v1/public/indicators"
CSV_PATH = API_PATH + ".csv"
JSON_PATH = API_PATH + ".json"
HEALTH_PATH = "/healthz"
LANG_COOKIE = "sc_lang"
LANG_COOKIE_S = 365 * 86400
MAX_AGE_S = 60
#: The page says updates are late when the document is older than this.
STALE_AFTER = timedelta(minutes=20)
#: Waiting at most this long for Redis when there is a document to fall back on.
REDIS_TIMEOUT_S = 1.0
SAFE_METHODS = frozenset({"GET", "HEAD"})
#: Before any document was found, Redis is asked again after this long (not after the whole period).
NO_DOCUMENT_RETRY_S = 5.0

#: CSV columns (docs/open-data.md describes them).
CSV_COLUMNS = ("hour_start", "hour_end", "hour_start_local", "area_id", "area_type", "indicator", "value", "unit",
               "n", "category", "provider", "flag")

#: AQI category colours (EPA TAD Table 2) and the text colour readable on each.
AQI_COLOURS: Mapping[str, tuple[str, str]] = {
    "good": ("#00e400", "#000"), "moderate": ("#ffff00", "#000"), "usg": ("#ff7e00", "#000"),
    "unhealthy": ("#ff0000", "#fff"), "very_unhealthy": ("#8f3f97", "#fff"), "hazardous": ("#7e0023", "#fff"),
}
AQI_RANGES: Mapping[str, str] = {"good": "0–50", "moderate": "51–100", "usg": "101–150", "unhealthy": "151–200",
                                 "very_unhealthy": "201–300", "hazardous": "301+"}
NO_DATA_FILL = "#d9d9d9"

CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1b1f24;
  background:#f4f5f7}
a{color:#0b57d0}
.wrap{max-width:1180px;margin:0 auto;padding:12px 14px 32px}
header.top{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:8px}
h1{font-size:1.35rem;margin:4px 0}
h2{font-size:1.1rem;margin:0 0 8px}
.city{color:#4a5563;font-size:.95rem;margin:0}
nav.langs{display:flex;gap:6px}
nav.langs a{display:inline-block;min-width:44px;padding:8px 10px;border:1px solid #c3c8d0;border-radius:8px;
  text-align:center;text-decoration:none;color:#1b1f24;background:#fff;font-size:.9rem}
nav.langs a[aria-current=true]{background:#1b1f24;color:#fff;border-color:#1b1f24}
.asof{margin:10px 0 4px;padding:8px 12px;background:#fff;border-radius:10px;border:1px solid #e1e4e8;
  font-size:.95rem}
.asof strong{white-space:nowrap}
.stale{margin:6px 0;padding:8px 12px;border-radius:10px;background:#fff4ce;border:1px solid #f0d27a}
.grid{display:grid;grid-template-columns:1fr;gap:12px;margin-top:12px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:12px;padding:14px;min-width:0}
.big{font-size:1.6rem;font-weight:700;line-height:1.2}
.big .chip{font-size:1.25rem}
.muted{color:#4a5563;font-size:.9rem}
.chip{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;
  border:1px solid rgba(0,0,0,.15)}
.aqi-good{background:#00e400;color:#000}.aqi-moderate{background:#ffff00;
  color:#000}.aqi-usg{background:#ff7e00;color:#000}
.aqi-unhealthy{background:#ff0000;color:#fff}.aqi-very_unhealthy{background:#8f3f97;
  color:#fff}.aqi-hazardous{background:#7e0023;color:#fff}
.aqi-none{background:#d9d9d9;color:#000}
.pairs{display:flex;flex-wrap:wrap;gap:8px 18px;margin:4px 0 0;padding:0;list-style:none}
.pairs li{min-width:0}.pairs b{font-size:1.35rem;display:block}
.pairs.small b{font-size:1.05rem}.pairs.small li{font-size:.88rem;color:#4a5563}
.sub{margin:8px 0 0}
.map img,.trend img{width:100%;height:auto;display:block}
.legend{display:flex;flex-wrap:wrap;gap:6px;margin:10px 0 0;padding:0;list-style:none;font-size:.8rem}
.legend li{display:flex;align-items:center;gap:6px}
.legend i{display:inline-block;width:14px;height:14px;border-radius:3px;border:1px solid rgba(0,0,0,.2)}
.districts{display:grid;grid-template-columns:1fr;gap:10px;margin:0;padding:0;list-style:none}
.district{background:#fff;border:1px solid #e1e4e8;border-radius:12px;padding:12px;container-type:inline-size}
.district h3{font-size:1rem;margin:0 0 6px;display:flex;justify-content:space-between;gap:8px;
  align-items:baseline}
.district dl{display:grid;grid-template-columns:1fr;gap:0 10px;margin:0;font-size:.92rem}
.district dd{margin-bottom:4px}
@container (min-width:330px){.district dl{grid-template-columns:minmax(0,1fr) minmax(0,1.2fr);gap:2px 10px}
  .district dd{margin-bottom:0}}
.district dt{color:#4a5563}.district dd{margin-left:0;margin-top:0;font-weight:600}
.hid{color:#6b7280;font-weight:400;font-style:italic}
details{background:#fff;border:1px solid #e1e4e8;border-radius:12px;padding:12px 14px;margin-top:12px}
summary{font-weight:600;cursor:pointer;min-height:28px}
details p{margin:8px 0}
footer{margin-top:16px;font-size:.88rem;color:#4a5563}
footer p{margin:4px 0}
.nodata{background:#fff;border-radius:12px;padding:24px;border:1px solid #e1e4e8;margin-top:16px}
@media (min-width:700px){.grid{grid-template-columns:repeat(2,1fr)}
  .districts{grid-template-columns:repeat(2,1fr)}}
@media (min-width:1100px){.grid{grid-template-columns:repeat(4,1fr)}
  .districts{grid-template-columns:repeat(3,1fr)}
.lower{display:grid;grid-template-columns:4fr 8fr;gap:12px;align-items:start}}
""".strip()
CSS_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode() + "'"
#: The static page has no script at all; only its own inline style and data: images.
PAGE_CSP = (f"default-src 'none'; style-src {CSS_HASH}; img-src 'self' data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'"
#: Dash's own pages (its renderer at any other path): scripts by hash (see dashboards.auth.CSP).
DASH_CSP = ("default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'")


# --- the document cache ---------------------------------------------------------------------------


def _etag(body: bytes, suffix: str = "") -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + suffix + '"'


@dataclass
class Variant:
    """One response body with its identity and gzip forms and their strong ETags."""

    body: bytes
    etag: str
    gz: bytes | None = None
    gz_etag: str = ""

    @classmethod
    def of(cls, body: bytes) -> Variant:
        return cls(body=body, etag=_etag(body))

    def gzipped(self) -> tuple[bytes, str]:
        if self.gz is None:
            self.gz = gzip.compress(self.body, 6, mtime=0)
            self.gz_etag = self.etag[:-1] + '-gz"'
        return self.gz, self.gz_etag


@dataclass
class Snapshot:
    """A public document as read from Redis, and what is rendered from it (lazily, once)."""

    raw: bytes
    doc: dict[str, Any]
    fetched_at: float
    last_modified: str
    json: Variant = field(init=False)
    csv: Variant | None = None
    pages: dict[str, Variant] = field(default_factory=dict)
    trees: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.json = Variant.of(self.raw)


def _http_date(value: str | None) -> str:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        moment = datetime.now(UTC)
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


class DocumentCache:
    """The public document, read from Redis at most once per ``ttl_s`` (single-flight).

    :meth:`current` returns the held snapshot while it is fresh; when due, one caller refreshes
    (one ``GET``) while concurrent callers keep the previous snapshot (or, before the first one,
    wait for that same refresh). A failed read keeps the last good snapshot and is not retried
    before ``ttl_s`` either, so a Redis outage costs one attempt per period. Until a first document
    has been found, the period is at most :data:`NO_DOCUMENT_RETRY_S`.
    """

    def __init__(self, fetch: Callable[[], bytes | None], ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.ttl_s = float(ttl_s)
        self.clock = clock
        self.state: Snapshot | None = None
        self.reads = 0
        self.errors = 0
        self._checked: float | None = None
        self._lock = threading.Lock()

    def due(self) -> bool:
        # before the first document exists, look again sooner (the first build is minutes away at most)
        period = self.ttl_s if self.state is not None else min(self.ttl_s, NO_DOCUMENT_RETRY_S)
        return self._checked is None or self.clock() - self._checked >= period

    def current(self) -> Snapshot | None:
        if not self.due():
            return self.state
        if not self._lock.acquire(blocking=self.state is None):
            return self.state  # another caller is refreshing; the previous document will do
        try:
            if self.due():
                self._refresh()
        finally:
            self._lock.release()
        return self.state

    def _refresh(self) -> None:
        self.reads += 1
        try:
            raw = self.fetch()
            if raw is not None and (self.state is None or raw != self.state.raw):
                doc = orjson.loads(raw)
                self.state = Snapshot(raw=raw, doc=doc, fetched_at=time.time(),
                                      last_modified=_http_date(doc.get("generated_at")))
        except Exception as err:  # noqa: BLE001 - keep serving the last good document
            self.errors += 1
            log.warning("public document not refreshed (%s); serving the last good one", err)
        finally:
            self._checked = self.clock()


# --- rendering: Dash components to static HTML -----------------------------------------------------

_VOID = frozenset({"img", "br", "hr", "meta", "link", "input", "source", "wbr"})
_ATTR_NAMES = {"className": "class", "htmlFor": "for"}


def to_html(node: Any) -> str:
    """Static HTML of a tree of ``dash.html`` components (text escaped; ``style`` is not written)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return html_lib.escape(node, quote=False)
    if isinstance(node, (int, float)):
        return html_lib.escape(str(node))
    if isinstance(node, (list, tuple)):
        return "".join(to_html(child) for child in node)
    tag = type(node).__name__.lower()
    attrs = []
    for name in [*getattr(node, "_prop_names", ()), *(k for k in vars(node) if k.startswith(("aria-", "data-")))]:
        if name in ("children", "style") or name.startswith("n_"):
            continue
        value = getattr(node, name, None)
        if value is None or value is False:
            continue
        attr = _ATTR_NAMES.get(name, name)
        attrs.append(f" {attr}" if value is True else f' {attr}="{html_lib.escape(str(value), quote=True)}"')
    opening = f"<{tag}{''.join(attrs)}>"
    if tag in _VOID:
        return opening
    return f"{opening}{to_html(getattr(node, 'children', None))}</{tag}>"


# --- the page --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CityShape:
    """District polygons projected to an SVG box, from the city pack (static)."""

    width: int
    height: int
    paths: Mapping[str, str]
    labels: Mapping[str, tuple[float, float]]

    @classmethod
    def of(cls, pack: Any, width: int = 600) -> CityShape:
        import math

        points = [p for d in pack.districts for poly in d.geometry for ring in poly for p in ring]
        if not points:
            return cls(width, 10, {}, {})
        west, east = min(p[0] for p in points), max(p[0] for p in points)
        south, north = min(p[1] for p in points), max(p[1] for p in points)
        kx = math.cos(math.radians((south + north) / 2))
        scale = (width - 20) / max((east - west) * kx, 1e-9)
        height = int((north - south) * scale + 20)

        def xy(lon: float, lat: float) -> tuple[float, float]:
            return 10 + (lon - west) * kx * scale, 10 + (north - lat) * scale

        paths, labels = {}, {}
        for d in pack.districts:
            parts = []
            for poly in d.geometry:
                for ring in poly:
                    coords = [xy(lon, lat) for lon, lat in ring]
                    parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in coords) + "Z")
            paths[d.id] = "".join(parts)
            lat, lon = d.centroid
            labels[d.id] = xy(lon, lat)
        return cls(width, height, paths, labels)


def _svg_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _fill(cell: Mapping[str, Any] | None) -> tuple[str, str]:
    category = (cell or {}).get("category")
    return AQI_COLOURS.get(category, (NO_DATA_FILL, "#000")) if category else (NO_DATA_FILL, "#000")


def map_svg(shape: CityShape, values: Mapping[str, Mapping[str, Any]], lang: str) -> str:
    """The district map: polygons filled with their AQI colour, the AQI at each centroid."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {shape.width} {shape.height}" '
             f'font-family="system-ui,Arial,sans-serif">']
    for area, path in shape.paths.items():
        fill, _ = _fill((values.get(area) or {}).get("aqi"))
        parts.append(f'<path d="{path}" fill="{fill}" stroke="#fff" stroke-width="2.5"/>')
    for area, (x, y) in shape.labels.items():
        cell = (values.get(area) or {}).get("aqi") or {}
        _, ink = _fill(cell)
        text = html_lib.escape(number(cell.get("value"), lang) if cell.get("value") is not None else "—")
        parts.append(f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="middle" dominant-baseline="middle" '
                     f'font-size="22" font-weight="700" fill="{ink}">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def trend_svg(hours: Sequence[Mapping[str, Any]], zone: ZoneInfo, lang: str) -> str:
    """Bars of the city's hourly AQI over the published hours, coloured by category."""
    width, height, top, bottom = 600, 220, 18, 34
    values = [((h["values"].get("city") or {}).get("aqi") or {}) for h in hours]
    peak = max([300, *(v.get("value") or 0 for v in values)])
    step = width / max(len(hours), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'font-family="system-ui,Arial,sans-serif" font-size="20">']
    for level in (100, 200, 300):
        y = top + (height - top - bottom) * (1 - level / peak)
        parts.append(f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e1e4e8"/>'
                     f'<text x="2" y="{y - 2:.1f}" fill="#6b7280">{level}</text>')
    for i, (hour, cell) in enumerate(zip(hours, values, strict=True)):
        x = i * step + 1
        if cell.get("value") is not None:
            fill, _ = _fill(cell)
            bar = (height - top - bottom) * min(cell["value"], peak) / peak
            parts.append(f'<rect x="{x:.1f}" y="{height - bottom - bar:.1f}" width="{step - 2:.1f}" '
                         f'height="{bar:.1f}" fill="{fill}" stroke="rgba(0,0,0,.25)" stroke-width=".5"/>')
        local = datetime.fromisoformat(hour["start"].replace("Z", "+00:00")).astimezone(zone)
        if local.hour % 6 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 8}" fill="#4a5563">{local:%H}:00</text>')
    parts.append("</svg>")
    return "".join(parts)


def _delay_text(delay_min: int, lang: str) -> str:
    if delay_min and delay_min % 60 == 0:
        return t("public.delay_h", lang, n=number(delay_min // 60, lang))
    return t("public.delay_min", lang, n=number(delay_min, lang))


def _count_text(cell: Mapping[str, Any] | None, lang: str) -> Any:
    cell = cell or {}
    if cell.get("flag") == "suppressed":
        return html.Span(t("public.hidden", lang), className="hid")
    if cell.get("value") is None:
        return html.Span(t("public.no_data", lang), className="hid")
    return number(cell["value"], lang)


def _share_text(cell: Mapping[str, Any] | None, lang: str) -> Any:
    cell = cell or {}
    if cell.get("flag") == "suppressed":
        return html.Span(t("public.hidden", lang), className="hid")
    if cell.get("value") is None:
        return html.Span(t("public.no_data", lang), className="hid")
    value = float(cell["value"])
    return percent(value / 100, lang, 0 if value in (0.0, 100.0) else 1)


def _chip(cell: Mapping[str, Any] | None, lang: str, *, with_name: bool = True) -> Any:
    cell = cell or {}
    category = cell.get("category")
    if cell.get("value") is None or not category:
        return html.Span(t("public.no_data", lang), className="chip aqi-none")
    text = number(cell["value"], lang)
    if with_name:
        text = f"{text} · {t('public.aqi.' + category, lang)}"
    return html.Span(text, className=f"chip aqi-{category}")


def _names(mapping: Mapping[str, str] | None, lang: str) -> str:
    mapping = mapping or {}
    return mapping.get(lang) or mapping.get("ru") or mapping.get("en") or next(iter(mapping.values()), "")


def _lang_nav(lang: str) -> Any:
    return html.Nav([html.A(code.upper(), href=f"/?lang={code}", lang=code, title=LANG_NAMES[code],
                            **{"aria-current": "true" if code == lang else "false"}) for code in LANGS],
                    className="langs", **{"aria-label": t("public.lang", lang)})


def _header(city_name: str, lang: str) -> Any:
    return html.Header([html.Div([html.H1(t("public.title", lang)), html.P(city_name, className="city")]),
                        _lang_nav(lang)], className="top")


def not_ready_layout(lang: str, city_name: str = "") -> Any:
    """The page before the first public document exists."""
    return html.Div([_header(city_name, lang),
                     html.Div([html.H2(t("public.not_ready.title", lang)), html.P(t("public.not_ready.text", lang))],
                              className="nodata")], className="wrap")


def page_layout(doc: Mapping[str, Any], lang: str, shape: CityShape, *, now: datetime | None = None) -> Any:
    """The public page of one document in one language (Dash components)."""
    zone = ZoneInfo(doc.get("period", {}).get("timezone") or "Asia/Almaty")
    city_name = _names((doc.get("city") or {}).get("names"), lang)
    hours = doc.get("hours") or []
    if not hours:
        return not_ready_layout(lang, city_name)
    latest = hours[-1]
    values = latest["values"]
    city = values.get("city") or {}
    period = doc.get("period") or {}
    delay = _delay_text(int(period.get("delay_min") or 0), lang)
    end_local = datetime.fromisoformat(latest["end"].replace("Z", "+00:00")).astimezone(zone)
    start_local = datetime.fromisoformat(latest["start"].replace("Z", "+00:00")).astimezone(zone)
    as_of = html.P([t("public.as_of", lang, time=when(end_local, lang, zone, "d MMMM, HH:mm"), delay=delay)],
                   className="asof")
    blocks: list[Any] = [_header(city_name, lang), as_of]
    generated = datetime.fromisoformat(str(doc.get("generated_at")).replace("Z", "+00:00"))
    if (now or datetime.now(UTC)) - generated > STALE_AFTER:
        blocks.append(html.P(t("public.stale", lang), className="stale"))
    hour_label = t("public.hour", lang, day=when(start_local, lang, zone, "d MMMM"),
                   start=f"{start_local:%H:%M}", end=f"{end_local:%H:%M}")

    aqi = city.get("aqi") or {}
    air_card = html.Section([
        html.H2(t("public.air", lang)),
        html.P(_chip(aqi, lang), className="big"),
        html.P(t(f"public.advice.{aqi['category']}", lang)) if aqi.get("category") else None,
        html.P(t("public.air.value", lang, value=number(aqi.get("value"), lang)), className="muted"),
    ], className="card")
    amb = city.get("ambulance_within_norm") or {}
    amb_card = html.Section([
        html.H2(t("public.ambulance", lang)),
        html.P(_share_text(amb, lang), className="big"),
        html.P(t("public.ambulance.caption", lang, n=number(amb.get("n"), lang)) if amb.get("n")
               else t("public.ambulance.caption_none", lang), className="muted"),
    ], className="card")
    app_card = html.Section([
        html.H2(t("public.appeals", lang)),
        html.Ul([html.Li([html.B(_count_text(city.get(f"appeals_{k}"), lang)), t(f"public.appeals.{k}", lang)])
                 for k in ("new", "resolved", "overdue")], className="pairs"),
        html.P(t("public.in_hour", lang) + ": " + hour_label, className="muted"),
    ], className="card")
    traffic = city.get("traffic_score") or {}
    traffic_card = html.Section([
        html.H2(t("public.traffic", lang)),
        html.P(t("public.traffic.value", lang, score=number(traffic["value"], lang))
               if traffic.get("value") is not None else html.Span(t("public.no_data", lang), className="hid"),
               className="big"),
        html.P(t("public.traffic.scale", lang), className="muted"),
    ], className="card")
    blocks.append(html.Div([air_card, amb_card, app_card, traffic_card], className="grid"))

    legend = html.Ul([html.Li([html.I(className=f"aqi-{key}"), f"{AQI_RANGES[key]} {t('public.aqi.' + key, lang)}"])
                      for key in AQI_COLOURS], className="legend", **{"aria-label": t("public.legend", lang)})
    map_card = html.Section([
        html.H2(t("public.air", lang) + " · " + t("public.districts", lang)),
        html.Div(html.Img(src=_svg_uri(map_svg(shape, values, lang)), alt=t("public.map.alt", lang),
                          width=str(shape.width), height=str(shape.height)), className="map"),
        legend,
    ], className="card")
    trend_card = html.Section([
        html.H2(t("public.trend", lang)),
        html.Div(html.Img(src=_svg_uri(trend_svg(hours, zone, lang)), alt=t("public.trend.alt", lang),
                          width="600", height="220"), className="trend"),
    ], className="card")
    areas = [a for a in doc.get("areas") or [] if a.get("type") == "district"]
    cards = []
    for area in sorted(areas, key=lambda a: _names(a.get("names"), lang)):
        v = values.get(area["id"]) or {}
        amb_d = v.get("ambulance_within_norm") or {}
        cards.append(html.Li([
            html.H3([html.Span(_names(area.get("names"), lang)), _chip(v.get("aqi"), lang, with_name=False)]),
            html.Dl([
                html.Dt(t("public.air", lang)),
                html.Dd(t(f"public.aqi.{(v.get('aqi') or {}).get('category')}", lang)
                        if (v.get("aqi") or {}).get("category") else _count_text(v.get("aqi"), lang)),
                html.Dt(t("public.ambulance", lang) + ", " + t("public.ambulance.short", lang)),
                html.Dd([_share_text(amb_d, lang),
                         *([f" ({t('public.ambulance.of', lang, n=number(amb_d['n'], lang))})"]
                           if amb_d.get("n") else [])]),
            ]),
            html.P(t("public.appeals", lang), className="muted sub"),
            html.Ul([html.Li([html.B(_count_text(v.get(f"appeals_{k}"), lang)), t(f"public.appeals.{k}", lang)])
                     for k in ("new", "resolved", "overdue")], className="pairs small"),
        ], className="district"))
    district_block = html.Section([html.H2(t("public.districts", lang) + " · " + hour_label),
                                   html.Ul(cards, className="districts")])
    blocks.append(html.Div([html.Div([map_card, trend_card], className="grid-col"), district_block],
                           className="lower", style=None))

    norms = (doc.get("norms") or {}).get("ambulance_arrival_min") or {}
    min_count = (doc.get("suppression") or {}).get("min_count", 5)
    blocks.append(html.Details([
        html.Summary(t("public.method", lang)),
        html.P(t("public.method.delay", lang, delay=delay)),
        html.P(t("public.method.air", lang)),
        html.P(t("public.method.ambulance", lang, **{f"c{c}": number(norms.get(str(c)), lang) for c in (1, 2, 3, 4)})),
        html.P(t("public.method.appeals", lang)),
        html.P(t("public.method.traffic", lang)),
        html.P(t("public.method.suppression", lang, min=number(min_count, lang))),
    ]))
    licence = doc.get("licence") or {}
    blocks.append(html.Footer([
        html.P([html.B(t("public.open_data", lang) + ": "), t("public.open_data.text", lang) + " ",
                html.A("JSON", href=API_PATH), " · ", html.A("CSV", href=CSV_PATH)]),
        html.P([t("public.licence", lang, licence=licence.get("name", ""), attribution=licence.get("attribution", "")),
                " ", html.A(licence.get("url", ""), href=licence.get("url", "#"), rel="license")]),
    ]))
    return html.Div(blocks, className="wrap")


def page_document(tree: Any, lang: str, title: str) -> bytes:
    """The whole HTML page around a rendered tree."""
    return ("<!DOCTYPE html>\n"
            f'<html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html_lib.escape(title)}</title>"
            '<meta name="color-scheme" content="light">'
            f"<style>{CSS}</style></head><body>{to_html(tree)}</body></html>").encode()


# --- CSV --------------------------------------------------------------------------------------------


def csv_rows(doc: Mapping[str, Any]) -> list[list[Any]]:
    """The document as CSV rows (header first): one row per hour × area × indicator."""
    zone = ZoneInfo((doc.get("period") or {}).get("timezone") or "UTC")
    units = {i["key"]: i["unit"] for i in doc.get("indicators") or []}
    types = {a["id"]: a["type"] for a in doc.get("areas") or []}
    rows: list[list[Any]] = [list(CSV_COLUMNS)]
    for hour in doc.get("hours") or []:
        local = datetime.fromisoformat(hour["start"].replace("Z", "+00:00")).astimezone(zone).isoformat()
        for area in [a["id"] for a in doc.get("areas") or []]:
            for key, cell in (hour["values"].get(area) or {}).items():
                value = cell.get("value")
                rows.append([hour["start"], hour["end"], local, area, types.get(area, ""), key,
                             "" if value is None else value, units.get(key, ""),
                             "" if cell.get("n") is None else cell["n"], cell.get("category") or "",
                             cell.get("provider") or "", cell.get("flag") or ""])
    return rows


def to_csv(doc: Mapping[str, Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(csv_rows(doc))
    return out.getvalue().encode("utf-8")


# --- the front: every public response from cache ---------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _tags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


class PublicFront:
    """The ASGI layer in front of FastAPI and Dash (see the module doc)."""

    def __init__(self, app: Any, cache: DocumentCache, shape: CityShape, server: Any = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.app = app
        self.cache = cache
        self.shape = shape
        self.server = server
        self.clock = clock
        self.not_ready: dict[str, Variant] = {}
        self._dash_csp: str | None = None

    async def snapshot(self) -> Snapshot | None:
        if not self.cache.due():
            return self.cache.state
        if self.cache.state is None:
            return await anyio.to_thread.run_sync(self.cache.current)
        with anyio.move_on_after(REDIS_TIMEOUT_S):
            return await anyio.to_thread.run_sync(self.cache.current, abandon_on_cancel=True)
        return self.cache.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if method not in SAFE_METHODS and not (method == "OPTIONS" and path.startswith(API_PATH)):
            answer = Answer(405, [("allow", "GET, HEAD, OPTIONS"), ("content-type", "text/plain; charset=utf-8")],
                            b"read-only: GET, HEAD and OPTIONS only\n")
            await self._send(scope, send, answer, kind="api")
            return
        headers = _headers(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if path == HEALTH_PATH:
            await self._send(scope, send, Answer(200, [("content-type", "text/plain; charset=utf-8"),
                                                       ("cache-control", "no-store")], b"ok\n"), kind="api")
            return
        if path in (API_PATH, JSON_PATH, CSV_PATH):
            await self._send(scope, send, await self.api(method, path, query, headers), kind="api")
            return
        if path in ("/", "/index.html"):
            await self._send(scope, send, await self.page(query, headers), kind="page")
            return
        await self.app(scope, receive, self._wrap(send))

    # -- answers --

    async def api(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Answer:
        cors = [("access-control-allow-origin", "*"), ("access-control-expose-headers", "ETag, Last-Modified"),
                ("vary", "Accept-Encoding")]
        if method == "OPTIONS":
            return Answer(204, [*cors, ("access-control-allow-methods", "GET, HEAD, OPTIONS"),
                                ("access-control-allow-headers", "If-None-Match, If-Modified-Since"),
                                ("access-control-max-age", "86400")])
        snap = await self.snapshot()
        if snap is None:
            return Answer(503, [*cors, ("content-type", "application/json"), ("retry-after", "60"),
                                ("cache-control", "no-store")],
                          b'{"error":"not_available","message":"the public indicators are not yet available"}')
        as_csv = path == CSV_PATH or (query.get("format") or [""])[0].lower() == "csv"
        if as_csv:
            if snap.csv is None:
                snap.csv = Variant.of(to_csv(snap.doc))
            variant, content_type = snap.csv, "text/csv; charset=utf-8"
            extra = [("content-disposition", 'inline; filename="public-indicators.csv"')]
        else:
            variant, content_type, extra = snap.json, "application/json", []
        return self._conditional(variant, headers, [*cors, *extra, ("content-type", content_type),
                                                    ("cache-control", f"public, max-age={MAX_AGE_S}"),
                                                    ("last-modified", snap.last_modified)],
                                 snap.last_modified)

    async def page(self, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Answer:
        chosen = (query.get("lang") or [""])[0].lower()
        if chosen in LANGS:
            lang = chosen
            extra = [("set-cookie", f"{LANG_COOKIE}={lang}; Path=/; Max-Age={LANG_COOKIE_S}; SameSite=Lax"),
                     ("cache-control", f"private, max-age={MAX_AGE_S}")]
        else:
            cookie = _cookie(headers.get("cookie", ""), LANG_COOKIE)
            lang = cookie if cookie in LANGS else lang_of(headers.get("accept-language"))
            extra = [("cache-control", f"public, max-age={MAX_AGE_S}")]
        extra += [("content-type", "text/html; charset=utf-8"), ("vary", "Accept-Encoding, Accept-Language, Cookie"),
                  ("content-language", lang)]
        snap = await self.snapshot()
        if snap is None:
            if lang not in self.not_ready:
                self.not_ready[lang] = Variant.of(page_document(not_ready_layout(lang), lang, t("public.title", lang)))
            return self._conditional(self.not_ready[lang], headers,
                                     [*[h for h in extra if h[0] != "cache-control"], ("cache-control", "no-store")])
        variant = snap.pages.get(lang)
        if variant is None:
            tree = self.tree(snap, lang)
            title = t("public.page_title", lang, city=_names((snap.doc.get("city") or {}).get("names"), lang))
            variant = snap.pages[lang] = Variant.of(page_document(tree, lang, title))
        return self._conditional(variant, headers, [*extra, ("last-modified", snap.last_modified)])

    def tree(self, snap: Snapshot, lang: str) -> Any:
        """The page's component tree for ``lang`` (built once per document)."""
        if lang not in snap.trees:
            snap.trees[lang] = page_layout(snap.doc, lang, self.shape, now=self.clock())
        return snap.trees[lang]

    def _conditional(self, variant: Variant, headers: Mapping[str, str], extra: list[tuple[str, str]],
                     last_modified: str | None = None) -> Answer:
        use_gzip = "gzip" in headers.get("accept-encoding", "").lower()
        body, etag = variant.gzipped() if use_gzip else (variant.body, variant.etag)
        out = [*extra, ("etag", etag)]
        if use_gzip:
            out.append(("content-encoding", "gzip"))
        inm = headers.get("if-none-match")
        if inm is not None:
            tags = _tags(inm)
            if "*" in tags or etag in tags or variant.etag in tags or (variant.gz_etag and variant.gz_etag in tags):
                return Answer(304, [h for h in out if h[0] not in ("content-type", "content-encoding",
                                                                   "content-disposition")])
        elif last_modified and (ims := headers.get("if-modified-since")):
            try:
                if parsedate_to_datetime(last_modified) <= parsedate_to_datetime(ims):
                    return Answer(304, [h for h in out if h[0] not in ("content-type", "content-encoding",
                                                                       "content-disposition")])
            except (TypeError, ValueError):
                pass
        return Answer(200, out, body)

    # -- sending --

    def security_headers(self, content_type: str, kind: str) -> list[tuple[str, str]]:
        out = [("x-content-type-options", "nosniff"), ("referrer-policy", "strict-origin-when-cross-origin")]
        if kind == "page":
            out += [("x-frame-options", "DENY"), ("content-security-policy", PAGE_CSP)]
        elif kind == "api":
            out += [("x-frame-options", "DENY"), ("content-security-policy", API_CSP)]
        elif content_type.startswith("text/html"):
            out += [("x-frame-options", "DENY"), ("content-security-policy", self.dash_csp())]
        return out

    def dash_csp(self) -> str:
        if self._dash_csp is None:
            from dashboards.auth import dash_script_hashes

            hashes = dash_script_hashes(self.server) if self.server is not None else None
            self._dash_csp = DASH_CSP.format(scripts="".join(" " + h for h in hashes or ()))
        return self._dash_csp

    async def _send(self, scope: Scope, send: Send, answer: Answer, kind: str) -> None:
        names = {k for k, _ in answer.headers}
        content_type = next((v for k, v in answer.headers if k == "content-type"), "")
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        raw += [(k.encode(), v.encode()) for k, v in self.security_headers(content_type, kind) if k not in names]
        raw.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else answer.body})

    def _wrap(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers") or [])
                names = {k.decode("latin-1").lower() for k, _ in raw}
                content_type = next((v.decode("latin-1") for k, v in raw if k.lower() == b"content-type"), "")
                raw += [(k.encode(), v.encode()) for k, v in self.security_headers(content_type, "other")
                        if k not in names]
                message = {**message, "headers": raw}
            await send(message)

        return wrapped


# --- the app -----------------------------------------------------------------------------------------

#: Routes Dash adds that could change state or run code on request: none are needed (no callbacks).
_DASH_WRITE_PATHS = ("/_dash-update-component", "/_dash-ws-callback")


def _strip_write_routes(server: FastAPI) -> None:
    server.router.routes[:] = [r for r in server.router.routes
                               if getattr(r, "path", None) not in _DASH_WRITE_PATHS
                               and not ({"POST", "PUT", "PATCH", "DELETE"} & set(getattr(r, "methods", None) or ()))]


def redis_fetch(url: str) -> Callable[[], bytes | None]:
    """A fetch of the public document from Redis at ``url`` (short timeouts; one ``GET``)."""
    from core.redis_server import connect

    client = connect(url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S,
                     retry_on_timeout=False, health_check_interval=0)

    def fetch() -> bytes | None:
        return client.get(keys.PUBLIC_INDICATORS)

    return fetch


def create_public_app(settings: Settings, ctx: Any = None, *, fetch: Callable[[], bytes | None] | None = None,
                      pack: Any = None, clock: Callable[[], float] = time.monotonic) -> Dash:
    """Build the public app. ``fetch`` replaces the Redis read (tests); ``ctx`` is accepted for
    compatibility and not used: the app holds no connection but its own read-only one."""
    from core.citypack import load_pack

    pack = pack or load_pack(settings.city_pack if str(settings.city_pack) not in ("", ".") else None)
    cache = DocumentCache(fetch or redis_fetch(settings.redis_url), settings.public_cache_s, clock=clock)
    shape = CityShape.of(pack)
    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app = Dash(__name__, server=server, assets_folder=str(ASSETS), title="City indicators", update_title=None,
               serve_locally=True, assets_ignore=".*")
    front = PublicFront(None, cache, shape, server=server)

    def layout() -> Any:
        from dashboards import context

        lang = context.lang()
        snap = cache.state  # what the front holds; Dash also calls this at start-up, before any request
        return not_ready_layout(lang) if snap is None else front.tree(snap, lang)

    app.layout = layout
    _strip_write_routes(server)
    build = server.build_middleware_stack

    def build_with_front() -> Any:
        _strip_write_routes(server)  # Dash may add routes at start-up
        front.app = build()
        return front

    server.build_middleware_stack = build_with_front  # type: ignore[method-assign]
    server.state.sc_public = front
    app.sc_front = front  # type: ignore[attr-defined]
    return app
