"""The incidents console (``/incidents``): open situations, why they were joined, and the operator's actions.

* Left: the unresolved incidents (hub topic ``incidents``), most severe and most overdue first, with
  severity, type, district, age, status, assignee and the running SLA clock (counting down in the
  browser every second, red once breached); filters by status, severity and type; resolved ones
  on demand (read from the incident store).
* Right: the selected incident: its SLA clocks, a small map of its events, each event with its
  signal, detector, place, time window and its evidence as a readable table (value against the
  baseline or threshold, counts, p-values, units), the links that explain why the events were
  joined (rule, score, distance, time gap), the audit log, and for an operator the actions
  (acknowledge, assign, escalate, resolve, note, reopen, merge, split).

Actions call :class:`workers.incidents.IncidentStore` directly after ``auth.require("operator")``
with ``context.account().user`` as the actor; leadership sees everything read-only (no action
panel, and the callback refuses when forced). Refusals (``IncidentError`` 409/422) are shown in
the operator's language (:func:`error_message`).

Live: one callback on ``sc-live`` re-draws the list when the ``incidents`` version moved and the
selected incident's panel only when that incident's own ``version`` moved, so the selection, the
map's zoom and a half-typed note survive every update. Everything a feed or an operator wrote
(evidence values, segment and station names, agencies, notes) is rendered as text children.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dash_leaflet as dl
import redis as redis_lib
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update, register_page
from dash.exceptions import PreventUpdate

from dashboards import auth, context, data, maps
from dashboards.i18n import LANGS, catalog, has, lang_of, names, number, t, when

register_page(__name__, path="/incidents", name="Incidents", title="Situation Center — incidents", order=3)

#: Unresolved statuses (the filter's choices) and every status.
UNRESOLVED = ("open", "acknowledged", "assigned")
STATUSES = ("open", "acknowledged", "assigned", "resolved", "merged")
SEVERITIES = (3, 2, 1)
#: Agencies an operator may pick (``inc.agency.<code>`` in the catalog); free text is allowed too.
AGENCIES: tuple[str, ...] = ("police", "road_police", "emergency", "ambulance", "fire", "water", "heating",
                             "power", "gas", "roads", "transport", "sanitation", "ecology", "hydromet", "akimat")
#: Actions that open the form (acknowledge acts at once).
FORM_ACTIONS: tuple[str, ...] = ("assign", "escalate", "resolve", "note", "reopen", "merge", "split")
#: Mirrors of ``workers.incidents`` limits, checked before the store is asked (same messages).
TEXT_MAX = 2_000
AGENCY_MAX = 128
#: A running clock turns amber this many seconds before it is due.
WARN_S = {"ack": 300.0, "resolve": 1800.0}
#: Resolved incidents shown on demand.
RESOLVED_LIMIT = 50

_EVENT_COLOURS = {1: maps.SEVERITY_COLOURS[1], 2: maps.SEVERITY_COLOURS[2], 3: maps.SEVERITY_COLOURS[3]}


# --- small formatting helpers -----------------------------------------------------------------


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def clock_text(seconds: float) -> str:
    """A countdown: ``4:05`` under an hour, ``1:02:03`` from an hour on (``assets`` JS does the same)."""
    s = int(abs(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def duration(seconds: float | None, lang: str) -> str:
    """``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h``."""
    if seconds is None:
        return "—"
    s = abs(float(seconds))
    if s < 60:
        return f"{int(round(s))} {t('inc.unit.s', lang)}"
    minutes = int(s // 60)
    if minutes < 60:
        return f"{minutes} {t('unit.min', lang)}"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} {t('unit.h', lang)}" + (f" {rest} {t('unit.min', lang)}" if rest else "")
    days, hours = divmod(hours, 24)
    return f"{days} {t('inc.unit.d', lang)}" + (f" {hours} {t('unit.h', lang)}" if hours else "")


def _zone() -> Any:
    return data.context().pack.zone


def _time(value: Any, lang: str, pattern: str = "d MMM HH:mm") -> str:
    if not value:
        return "—"
    try:
        return when(value, lang, _zone(), pattern)
    except (ValueError, TypeError):
        return str(value)


def _num(value: Any, lang: str, digits: int = 0) -> str:
    if isinstance(value, bool):
        return t("inc.yes", lang) if value else t("inc.no", lang)
    if isinstance(value, int | float) and math.isfinite(value):
        return number(value, lang, digits)
    return "—" if value is None else str(value)


def _smart(value: Any, lang: str) -> str:
    """A small expected count readably: ``0,04``, ``0,8``, ``12``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    size = abs(value)
    return number(value, lang, 2 if 0 < size < 1 else (1 if size < 10 else 0))


def _pct(share: Any, lang: str, digits: int = 0) -> str:
    """A share 0..1 as ``42 %``."""
    if not isinstance(share, int | float) or isinstance(share, bool):
        return "—"
    return f"{number(100 * share, lang, digits)} %"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def p_text(value: Any, lang: str) -> str:
    """A p-value: ``0,012`` or ``3,2·10⁻⁷`` (never a bare ``0``)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    if value <= 0:
        return "< 10⁻³⁰⁰"
    if value >= 0.001:
        return number(value, lang, 3)
    exponent = math.floor(math.log10(value))
    mantissa = value / 10 ** exponent
    return f"{number(mantissa, lang, 1)}·10{str(exponent).translate(_SUPERSCRIPT)}"


def _district_name(district: Any, lang: str) -> str:
    if not district:
        return ""
    try:
        return names(data.context().pack.district(str(district)).names.as_dict(), lang)
    except (KeyError, AttributeError, RuntimeError):
        return str(district)


def _station_name(station_id: Any, lang: str) -> str:
    try:
        for station in data.context().pack.stations:
            if station.id == station_id:
                return names(station.names.as_dict(), lang)
    except (AttributeError, RuntimeError):
        pass
    return str(station_id)


def type_label(kind: Any, lang: str) -> str:
    """The incident type in ``lang`` (the wall's catalog), else the type as given."""
    return maps.incident_label(kind, lang)


def status_label(status: Any, lang: str) -> str:
    key = f"inc.status.{status}"
    return t(key, lang) if has(key) else str(status or "—")


def severity_label(severity: Any, lang: str) -> str:
    key = f"wall.severity.{severity}"
    return t(key, lang) if has(key) else str(severity)


def signal_label(signal: Any, lang: str) -> str:
    """An event's signal in ``lang``: ``traffic.drop`` -> "Traffic speed drop"."""
    key = f"inc.signal.{signal}"
    if has(key):
        return t(key, lang)
    if isinstance(signal, str) and signal.startswith("ambulance.") and signal.endswith("_calls"):
        return t("inc.signal.ambulance.group_calls", lang, group=signal[len("ambulance."):-len("_calls")])
    return str(signal)


def detector_label(detector: Any, lang: str) -> str:
    key = f"inc.detector.{detector}"
    return t(key, lang) if has(key) else str(detector)


def rule_label(rule: Any, lang: str) -> str:
    key = f"inc.rule.{rule}"
    return t(key, lang) if has(key) else str(rule or "—")


def agency_label(assignee: Any, lang: str) -> str:
    """An assignee in ``lang`` when it is one of the catalog's agencies (in any language), else as written."""
    if not assignee:
        return "—"
    text = str(assignee)
    for code in AGENCIES:
        texts = catalog().get(f"inc.agency.{code}") or {}
        if text.casefold() in {v.casefold() for v in texts.values()} or text == code:
            return t(f"inc.agency.{code}", lang)
    return text


# --- SLA clocks ------------------------------------------------------------------------------


def sla_clocks(incident: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """Both SLA clocks of an incident at ``now`` (epoch s): ``kind`` (``ack``/``resolve``), ``due``
    (epoch s), ``state``: ``running`` / ``due`` (amber: close) / ``breached`` (running, past due) /
    ``met`` / ``late`` (stopped in time or after the due time), ``stopped_at``."""
    sla = incident.get("sla") or {}
    closed = incident.get("resolved_at") or incident.get("merged_at")
    out = []
    for kind, due_key, stop in (("ack", "ack_due", incident.get("acknowledged_at") or closed),
                                ("resolve", "resolve_due", closed)):
        due = _epoch(sla.get(due_key))
        if due is None:
            continue
        stopped = _epoch(stop)
        if stopped is not None:
            state = "late" if stopped > due else "met"
        elif now > due:
            state = "breached"
        elif due - now <= WARN_S[kind]:
            state = "due"
        else:
            state = "running"
        out.append({"kind": kind, "due": due, "state": state, "stopped_at": stopped})
    return out


def sla_text(clock: Mapping[str, Any], now: float, lang: str) -> str:
    """The text of one clock: "Acknowledge within 4:05", "Resolution overdue by 1:02:03",
    "Acknowledged in time", "Resolved 12 min late"."""
    kind, state = clock["kind"], clock["state"]
    if state in ("met", "late"):
        late = (clock["stopped_at"] or 0) - clock["due"]
        if state == "late":
            return t(f"inc.sla.{kind}_late", lang, t=duration(late, lang))
        return t(f"inc.sla.{kind}_met", lang)
    left = clock["due"] - now
    return t(f"inc.sla.{kind}_{'over' if left < 0 else 'in'}", lang, t=clock_text(left))


def sla_headline(incident: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """The clock a list row shows: acknowledgement until acknowledged, then resolution; a
    stopped resolution clock once closed."""
    clocks = sla_clocks(incident, now)
    running = [c for c in clocks if c["state"] in ("running", "due", "breached")]
    if running:
        return running[0]
    return clocks[-1] if clocks else None


def sla_span(clock: Mapping[str, Any] | None, now: float, lang: str, **attrs: Any) -> html.Span:
    """A clock as a span the browser keeps counting (``data-due`` in epoch ms) while it runs."""
    if clock is None:
        return html.Span("", className="inc-sla")
    running = clock["state"] in ("running", "due", "breached")
    extra = {"data-due": str(int(clock["due"] * 1000)), "data-kind": clock["kind"],
             "data-warn": str(int(WARN_S[clock["kind"]]))} if running else {}
    return html.Span(sla_text(clock, now, lang), className=f"inc-sla {clock['state']}", **extra, **attrs)


# --- the list --------------------------------------------------------------------------------


def urgency(incident: Mapping[str, Any], now: float) -> tuple[Any, ...]:
    """Sort key: unresolved first, most severe, a breached clock, then newest."""
    headline = sla_headline(incident, now)
    return (incident.get("status") not in UNRESOLVED, -int(incident.get("severity") or 0),
            not (headline and headline["state"] == "breached"), -(_epoch(incident.get("detected_at")) or 0))


def filter_incidents(incidents: Iterable[Mapping[str, Any]], *, statuses: Sequence[str] | None = None,
                     severities: Sequence[int | str] | None = None, types: Sequence[str] | None = None,
                     resolved: bool = False) -> list[Mapping[str, Any]]:
    """The incidents a filter keeps (empty or None choices: no restriction; resolved and merged
    ones only with ``resolved``)."""
    wanted_status = set(statuses or ())
    wanted_severity = {int(s) for s in severities or ()}
    wanted_type = set(types or ())
    out = []
    for inc in incidents:
        status = inc.get("status")
        if status in UNRESOLVED:
            if wanted_status and status not in wanted_status:
                continue
        elif not resolved:
            continue
        if wanted_severity and int(inc.get("severity") or 0) not in wanted_severity:
            continue
        if wanted_type and inc.get("type") not in wanted_type:
            continue
        out.append(inc)
    return out


def incident_row(inc: Mapping[str, Any], lang: str, now: float, *, selected: bool = False) -> html.Button:
    """One row of the list: severity, type, district, age, status, assignee, SLA clock."""
    severity = int(inc.get("severity") or 2)
    detected = _epoch(inc.get("detected_at"))
    place = _district_name(inc.get("district"), lang) or t("wall.citywide", lang)
    status = inc.get("status")
    assignee = inc.get("assignee")
    return html.Button([
        html.Span(severity_label(severity, lang), className=f"inc-sev sev-{severity}"),
        html.Span([
            html.Span([html.Span(type_label(inc.get("type"), lang), className="inc-kind"),
                       html.Span(place, className="inc-place")], className="inc-line1"),
            html.Span([html.Span(str(inc.get("id")), className="inc-id"),
                       html.Span(_age(detected, now, lang), className="sc-age inc-age",
                                 **{"data-ts": "" if detected is None else str(int(detected * 1000))}),
                       html.Span(status_label(status, lang), className=f"inc-status st-{status}"),
                       html.Span(agency_label(assignee, lang), className="inc-assignee") if assignee else None,
                       ], className="inc-line2"),
            html.Span(sla_span(sla_headline(inc, now), now, lang), className="inc-line3"),
        ], className="inc-row-body"),
    ], id={"type": "inc-row", "id": str(inc.get("id"))},
        className=f"inc-row sev-{severity}" + (" selected" if selected else "") + (
            "" if status in UNRESOLVED else " closed"), n_clicks=0, **{"data-id": str(inc.get("id"))})


def _age(ts: float | None, now: float, lang: str) -> str:
    if ts is None:
        return t("age.none", lang)
    s = max(0, int(now - ts))
    if s < 60:
        return t("age.seconds", lang, n=s)
    if s < 3600:
        return t("age.minutes", lang, n=s // 60)
    return t("age.hours", lang, n=s // 3600)


def incident_list(incidents: Sequence[Mapping[str, Any]], lang: str, now: float,
                  selected: str | None) -> list[Any]:
    """The list's rows (sorted by :func:`urgency`), or the "nothing matches" line."""
    if not incidents:
        return [html.Div(t("inc.none", lang), className="inc-empty")]
    ranked = sorted(incidents, key=lambda i: urgency(i, now))
    return [incident_row(inc, lang, now, selected=str(inc.get("id")) == selected) for inc in ranked]


# --- the evidence, per signal ----------------------------------------------------------------

Row = tuple[str, str, str]
"""One evidence row: what, its value, what it is compared with (baseline or threshold; may be "")."""


def _u(unit: str, lang: str) -> str:
    key = f"inc.u.{unit}"
    return t(key, lang) if has(key) else unit


def _with_unit(value: Any, unit: str, lang: str, digits: int = 0) -> str:
    text = _num(value, lang, digits)
    return text if text == "—" or not unit else f"{text} {unit}"


def _span(start: Any, end: Any, lang: str) -> str:
    return f"{_time(start, lang, 'd MMM HH:mm')} – {_time(end, lang, 'HH:mm')}"


def _traffic(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    kmh = t("unit.kmh", lang)
    segments = ev.get("segments") if isinstance(ev.get("segments"), list) else []
    rows = [
        (t("inc.evd.segment", lang), " · ".join(str(v) for v in (ev.get("segment_name"), ev.get("segment_id")) if v),
         ""),
        (t("inc.evd.speed", lang), _with_unit(ev.get("speed_kmh"), kmh, lang, 1),
         t("inc.ref.usual", lang, v=_with_unit(ev.get("baseline_kmh"), kmh, lang, 1))),
        (t("inc.evd.own_ratio", lang), _pct(ev.get("own_ratio"), lang),
         t("inc.ref.le", lang, v=_pct(ev.get("own_ratio_max"), lang))),
        (t("inc.evd.rel_ratio", lang), _pct(ev.get("rel_ratio"), lang),
         t("inc.ref.le", lang, v=_pct(ev.get("rel_ratio_max"), lang))),
        (t("inc.evd.city_ratio", lang), _pct(ev.get("city_ratio"), lang), ""),
        (t("inc.evd.free_flow", lang), _with_unit(ev.get("free_flow_kmh"), kmh, lang), ""),
        (t("inc.evd.segments", lang), _num(len(segments), lang), ""),
        (t("inc.evd.windows", lang), _num(ev.get("windows"), lang), ""),
        (t("inc.evd.window", lang), _span(ev.get("window_start"), ev.get("window_end"), lang), ""),
    ]
    used = {"segment_name", "segment_id", "speed_kmh", "baseline_kmh", "own_ratio", "own_ratio_max", "rel_ratio",
            "rel_ratio_max", "city_ratio", "free_flow_kmh", "segments", "windows", "window_start", "window_end",
            "unit", "segment_middle"}
    return rows, used


_LEVELS = {"low": "inc.level.low", "elevated": "inc.level.elevated", "high": "inc.level.high",
           "very_high": "inc.level.very_high"}


def _air_aqi(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    th = ev.get("thresholds") if isinstance(ev.get("thresholds"), Mapping) else {}
    category = ev.get("category")
    cat_key = f"inc.aqi.{category}"
    aqi_ref = [t("inc.ref.advisory_ge", lang, v=_num(th.get("advisory_aqi"), lang))]
    if th.get("warning_aqi"):
        aqi_ref.append(t("inc.ref.warning_ge", lang, v=_num(th.get("warning_aqi"), lang)))
    multiples = ev.get("limit_multiples") if isinstance(ev.get("limit_multiples"), Mapping) else {}
    pollutant = ev.get("dominant")
    level = ev.get("pollution_level")
    rows = [
        (t("inc.evd.station", lang), f"{_station_name(ev.get('station_id'), lang)}", ""),
        (t("inc.evd.aqi", lang), _num(ev.get("aqi"), lang) + (f" · {t(cat_key, lang)}" if has(cat_key) else
                                                             (f" · {category}" if category else "")),
         "; ".join(aqi_ref)),
        (t("inc.evd.dominant", lang), " · ".join(str(v) for v in (_pollutant(pollutant, lang), ev.get("averaging"))
                                                 if v), ""),
        (t("inc.evd.concentration", lang), _with_unit(ev.get("concentration"), str(ev.get("unit") or ""), lang, 3),
         ""),
        (t("inc.evd.si", lang), f"{_num(ev.get('si'), lang, 1)} × " + t("inc.u.pdk", lang)
         + (f" ({_pollutant(ev.get('si_pollutant'), lang)})" if ev.get("si_pollutant") else ""),
         "; ".join([t("inc.ref.warning_gt", lang, v=_num(th.get("warning_si"), lang, 0)),
                    t("inc.ref.critical_gt", lang, v=_num(th.get("critical_si"), lang, 0))])),
        (t("inc.evd.level", lang), t(_LEVELS[level], lang) if level in _LEVELS else str(level or "—"), ""),
        (t("inc.evd.multiples", lang), ", ".join(f"{_pollutant(p, lang)} ×{_num(v, lang, 1)}"
                                                 for p, v in sorted(multiples.items(), key=lambda i: -_f(i[1]))), ""),
    ]
    used = {"station_id", "aqi", "category", "category_name", "thresholds", "dominant", "averaging", "concentration",
            "unit", "si", "si_pollutant", "pollution_level", "limit_multiples", "pdk_multiple", "sub_indices"}
    return rows, used


def _f(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _pollutant(code: Any, lang: str) -> str:
    key = f"inc.pollutant.{code}"
    return t(key, lang) if has(key) else str(code or "")


def _air_rise(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    ug = "µg/m³"
    baseline = ev.get("baseline")
    rows = [
        (t("inc.evd.rise", lang), f"×{_num(ev.get('rise'), lang, 2)}",
         t("inc.ref.rise", lang, open=_num(ev.get("rise_factor"), lang, 1), stay=_num(ev.get("stay_factor"), lang, 1))),
        (t("inc.evd.peak_rise", lang), f"×{_num(ev.get('peak_rise'), lang, 2)}", ""),
        (t("inc.evd.stations_rising", lang), t("inc.of", lang, a=_num(ev.get("stations_rising"), lang),
                                                 b=_num(ev.get("stations"), lang)), ""),
        (t("inc.evd.median_level", lang), _with_unit(ev.get("median_level"), ug, lang, 1),
         t("inc.ref.reference", lang, v=_with_unit(ev.get("median_reference"), ug, lang, 1))
         + (f" ({t('inc.baseline.frozen', lang) if baseline == 'frozen at onset' else t('inc.baseline.3h', lang)})"
            if baseline else "")),
        (t("inc.evd.window_end", lang), _time(ev.get("window_end"), lang), ""),
    ]
    used = {"parameter", "rise", "peak_rise", "stations", "stations_rising", "median_level", "median_reference",
            "ratios", "rise_factor", "stay_factor", "window_end", "baseline"}
    return rows, used


def _response(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    th = ev.get("thresholds") if isinstance(ev.get("thresholds"), Mapping) else {}
    rows = [
        (t("inc.evd.calls_decided", lang), _num(ev.get("calls"), lang), ""),
        (t("inc.evd.breaches", lang), _num(ev.get("breaches"), lang),
         t("inc.ref.ge_crit", lang, v=_num(th.get("min_breaches"), lang),
           c=_num(th.get("critical_min_breaches"), lang))),
        (t("inc.evd.breach_share", lang), _pct(ev.get("share"), lang),
         t("inc.ref.ge_crit", lang, v=_pct(th.get("warning_share"), lang), c=_pct(th.get("critical_share"), lang))),
        (t("inc.evd.arrived_late", lang), _num(ev.get("arrived_late"), lang), ""),
        (t("inc.evd.still_waiting", lang), _num(ev.get("still_waiting"), lang), ""),
        (t("inc.evd.window", lang), _span(ev.get("window_start"), ev.get("window_end"), lang), ""),
    ]
    used = {"district", "window_s", "window_start", "window_end", "calls", "breaches", "share", "arrived_late",
            "still_waiting", "per_category", "worst", "thresholds"}
    return rows, used


def _scan(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    unit_key = str(ev.get("unit") or "cases")
    unit = _u(unit_key, lang)
    category = ev.get("category", ev.get("group"))
    cat_key = f"wall.category.{category}"
    rows = [
        (t("inc.evd.category", lang), t(cat_key, lang) if has(cat_key) else str(category or "—"), ""),
        (t("inc.evd.count_zone", lang), _with_unit(ev.get("count"), unit, lang),
         t("inc.ref.expected", lang, v=_smart(ev.get("expected"), lang))),
        (t("inc.evd.citywide", lang), _with_unit(ev.get("citywide_count"), unit, lang),
         t("inc.ref.zone_share", lang, v=_pct(ev.get("zone_share"), lang, 1))),
        (t("inc.evd.p_value", lang), p_text(ev.get("p_value"), lang),
         t("inc.ref.le", lang, v=p_text(ev.get("p_threshold"), lang))),
        (t("inc.evd.llr", lang), _num(ev.get("llr"), lang, 1), ""),
        (t("inc.evd.radius", lang), _with_unit(ev.get("radius_m"), t("inc.u.m", lang), lang), ""),
        (t("inc.evd.window", lang), f"{_with_unit(ev.get('window_min'), t('unit.min', lang), lang)}: "
         + _span(ev.get("window_start"), ev.get("window_end"), lang), ""),
        (t("inc.evd.cases", lang), _span(ev.get("first_case"), ev.get("last_case"), lang), ""),
    ]
    used = {"category", "group", "count", "expected", "citywide_count", "zone_share", "p_value", "p_threshold", "llr",
            "centre", "radius_m", "window_min", "window_start", "window_end", "first_case", "last_case", "unit"}
    return rows, used


def _surge(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    group = ev.get("group")
    complaints = ev.get("complaints") if isinstance(ev.get("complaints"), list) else []
    rows = [
        (t("inc.evd.group", lang), str(group or "—") + (f" ({', '.join(str(c) for c in complaints)})"
                                                        if complaints and complaints != [group] else ""), ""),
        (t("inc.evd.group_calls", lang),
         t("inc.of", lang, a=_num(ev.get("count"), lang), b=_num(ev.get("calls"), lang)),
         t("inc.ref.expected", lang, v=_smart(ev.get("expected"), lang))),
        (t("inc.evd.share", lang), _pct(ev.get("share"), lang, 1),
         t("inc.ref.usual", lang, v=_pct(ev.get("baseline_share"), lang, 1))),
        (t("inc.evd.ratio", lang), f"×{_num(ev.get('ratio'), lang, 2)}", ""),
        (t("inc.evd.p_value", lang), p_text(ev.get("p_value"), lang),
         t("inc.ref.le", lang, v=p_text(ev.get("p_threshold"), lang))),
        (t("inc.evd.z", lang), _num(ev.get("z"), lang, 1), ""),
        (t("inc.evd.window", lang), f"{_with_unit(ev.get('window_min'), t('unit.min', lang), lang)}: "
         + _span(ev.get("window_start"), ev.get("window_end"), lang), ""),
        (t("inc.evd.baseline", lang), t("inc.ref.baseline_h", lang, h=_num(ev.get("baseline_h"), lang),
                                        a=_num(ev.get("baseline_count"), lang), b=_num(ev.get("baseline_calls"), lang)),
         ""),
    ]
    used = {"group", "complaints", "count", "calls", "share", "baseline_share", "ratio", "expected", "p_value",
            "p_threshold", "z", "baseline_count", "baseline_calls", "window_min", "window_start", "window_end",
            "baseline_h"}
    return rows, used


def _silent(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    rows = [
        (t("inc.evd.feed", lang), str(ev.get("feed")), "") if ev.get("feed") else None,
        (t("inc.evd.last_seen", lang), _time(ev.get("last_seen") or ev.get("last_delivery"), lang, "d MMM HH:mm:ss"),
         ""),
        (t("inc.evd.silent_for", lang), duration(ev.get("silent_for_s"), lang),
         t("inc.ref.gt", lang, v=duration(ev.get("threshold_s"), lang))),
        (t("inc.evd.cadence", lang), duration(ev.get("expected_cadence_s", ev.get("expected_gap_s")), lang),
         t("inc.cadence.learnt", lang) if ev.get("cadence_learnt") else t("inc.cadence.default", lang)),
    ]
    used = {"feed", "last_seen", "last_observed", "last_delivery", "silent_for_s", "threshold_s", "expected_cadence_s",
            "expected_gap_s", "cadence_learnt", "factor", "gap_quantile"}
    return [r for r in rows if r is not None], used


def _stuck(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    params = ev.get("parameters") if isinstance(ev.get("parameters"), Mapping) else {}
    rows = [
        (t("inc.evd.parameter", lang), _pollutant(ev.get("parameter"), lang), ""),
        (t("inc.evd.value", lang), _with_unit(ev.get("value"), str(ev.get("unit") or ""), lang, 3), ""),
        (t("inc.evd.repeats", lang), _num(ev.get("count"), lang), t("inc.ref.ge", lang, v=_num(ev.get("min_repeats"),
                                                                                              lang))),
        (t("inc.evd.since", lang), _time(ev.get("since"), lang), ""),
        (t("inc.evd.stuck_params", lang), ", ".join(
            f"{_pollutant(p, lang)} = {_with_unit(v.get('value'), str(v.get('unit') or ''), lang, 3)} ×{v.get('count')}"
            for p, v in sorted(params.items()) if isinstance(v, Mapping)), ""),
    ]
    return rows, {"parameter", "value", "unit", "count", "since", "min_repeats", "floor", "parameters"}


def _series(ev: Mapping[str, Any], lang: str) -> tuple[list[Row], set[str]]:
    direction = ev.get("direction")
    rows = [
        (t("inc.evd.series", lang), str(ev.get("series") or "—"), ""),
        (t("inc.evd.value", lang), _num(ev.get("value"), lang, 1),
         t("inc.ref.expected", lang, v=_smart(ev.get("expected"), lang))),
        (t("inc.evd.z", lang), _num(ev.get("z"), lang, 1), ""),
        (t("inc.evd.statistic", lang), _num(ev.get("statistic"), lang, 1),
         t("inc.ref.ge", lang, v=_num(ev.get("threshold"), lang, 1))),
        (t("inc.evd.direction", lang), t(f"inc.dir.{direction}", lang) if direction in ("up", "down") else "—", ""),
        (t("inc.evd.slot", lang), str(ev.get("slot") or "—"), ""),
        (t("inc.evd.bin", lang), _with_unit(ev.get("bin_min"), t("unit.min", lang), lang), ""),
    ]
    return rows, {"at", "value", "expected", "scale", "z", "statistic", "threshold", "direction", "slot", "rule",
                  "series", "bin_min"}


_EVIDENCE = {
    "traffic.drop": _traffic, "air.aqi": _air_aqi, "air.pm_rise": _air_rise, "ambulance.response_time": _response,
    "appeals.burst": _scan, "ambulance.calls": _scan, "source.silent": _silent, "feed.outage": _silent,
    "source.stuck": _stuck, "traffic.city_score": _series, "ambulance.volume": _series, "appeals.volume": _series,
}


def evidence_rows(event: Mapping[str, Any], lang: str) -> tuple[list[Row], list[tuple[str, str]]]:
    """An event's evidence for people: ``(rows, other)``. ``rows`` are ``(what, value, compared
    with)`` for the fields its detector is known to write; ``other`` lists every remaining field
    as ``(name, value)`` text (a new field is never hidden)."""
    evidence = event.get("evidence") if isinstance(event.get("evidence"), Mapping) else {}
    signal = str(event.get("signal") or "")
    builder = _EVIDENCE.get(signal)
    if builder is None and signal.startswith("ambulance.") and signal.endswith("_calls"):
        builder = _surge
    rows: list[Row] = []
    used: set[str] = set()
    if builder is not None:
        try:
            rows, used = builder(evidence, lang)
        except (TypeError, ValueError, KeyError, AttributeError):  # odd evidence: show it raw below
            rows, used = [], set()
        rows = [r for r in rows if r[1] not in ("", "—", "— – —") or r[2]]
    other = [(str(k), _raw(v, lang)) for k, v in evidence.items() if k not in used]
    return rows, other


def _raw(value: Any, lang: str) -> str:
    if isinstance(value, bool) or isinstance(value, int | float):
        return _num(value, lang, 0 if isinstance(value, int) else 3)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_raw(v, lang)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "; ".join(_raw(v, lang) for v in value)
    return "—" if value is None else str(value)


def sub_tables(event: Mapping[str, Any], lang: str) -> list[Any]:
    """Extra tables some evidence carries (the ambulance breaches per category and the worst calls)."""
    ev = event.get("evidence") if isinstance(event.get("evidence"), Mapping) else {}
    out: list[Any] = []
    per_category = ev.get("per_category")
    if event.get("signal") == "ambulance.response_time" and isinstance(per_category, Mapping):
        head = [t("inc.col.category", lang), t("inc.col.norm", lang), t("inc.col.calls", lang),
                t("inc.col.breaches", lang)]
        body = [[str(c), _with_unit(v.get("norm_min"), t("unit.min", lang), lang), _num(v.get("calls"), lang),
                 _num(v.get("breaches"), lang)] for c, v in sorted(per_category.items()) if isinstance(v, Mapping)]
        out.append(_table(head, body, "inc-sub"))
    worst = ev.get("worst")
    if event.get("signal") == "ambulance.response_time" and isinstance(worst, list) and worst:
        head = [t("inc.col.call", lang), t("inc.col.category", lang), t("inc.col.wait", lang), t("inc.col.norm", lang),
                t("inc.col.arrived", lang)]
        body = [[str(w.get("call_id")), str(w.get("category")),
                 _with_unit(w.get("wait_min"), t("unit.min", lang), lang, 1),
                 _with_unit(w.get("norm_min"), t("unit.min", lang), lang), _num(bool(w.get("arrived")), lang)]
                for w in worst if isinstance(w, Mapping)]
        out.append(_table(head, body, "inc-sub"))
    return out


def _table(head: Sequence[str], body: Sequence[Sequence[str]], cls: str) -> html.Table:
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])),
                       html.Tbody([html.Tr([html.Td(c) for c in row]) for row in body])], className=cls)


def event_place(event: Mapping[str, Any], lang: str) -> str:
    """Where an event is: district, and the thing it is about (station, segment, feed)."""
    ev = event.get("evidence") if isinstance(event.get("evidence"), Mapping) else {}
    parts = [_district_name(event.get("district"), lang)]
    signal = event.get("signal")
    if signal == "air.aqi" or signal == "source.stuck" or signal == "source.silent":
        parts.append(_station_name(ev.get("station_id") or event.get("key"), lang))
    elif signal == "traffic.drop":
        parts.append(str(ev.get("segment_name") or event.get("key") or ""))
    elif signal == "feed.outage":
        parts.append(t("inc.feed", lang, name=str(ev.get("feed") or event.get("key"))))
    place = [p for p in parts if p]
    return " · ".join(place) if place else t("wall.citywide", lang)


def event_window(event: Mapping[str, Any], lang: str) -> str:
    """``22 Nov 14:05 – 14:40`` or ``22 Nov 14:05 – ongoing``."""
    end = event.get("ended_at")
    tail = _time(end, lang, "HH:mm") if end else t("inc.ongoing", lang)
    return f"{_time(event.get('onset'), lang)} – {tail}"


def ordered_events(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """An incident's events, first onset first (their numbers on the map and in the links)."""
    events = list((doc.get("events") or {}).values())
    return sorted(events, key=lambda e: (_epoch(e.get("onset")) or 0, str(e.get("id"))))


def event_card(index: int, event: Mapping[str, Any], lang: str) -> html.Div:
    """One event: number, signal, detector, place, time window, severity, and its evidence table."""
    rows, other = evidence_rows(event, lang)
    severity = int(event.get("severity") or 1)
    phase = event.get("phase")
    table = html.Table([
        html.Thead(html.Tr([html.Th(t("inc.col.measure", lang)), html.Th(t("inc.col.value", lang)),
                            html.Th(t("inc.col.reference", lang))])),
        html.Tbody([html.Tr([html.Td(a), html.Td(b, className="v"), html.Td(c, className="ref")]) for a, b, c in rows]),
    ], className="inc-evidence") if rows else None
    more = html.Details([html.Summary(t("inc.all_fields", lang, n=len(other))),
                         html.Table(html.Tbody([html.Tr([html.Td(k), html.Td(v)]) for k, v in other]),
                                    className="inc-raw")], className="inc-more") if other else None
    return html.Div([
        html.Div([
            html.Span(str(index), className=f"inc-num sev-{severity}"),
            html.Span(signal_label(event.get("signal"), lang), className="inc-signal"),
            html.Span(severity_label(severity, lang), className=f"inc-sev small sev-{severity}"),
            html.Span(t(f"inc.phase.{phase}", lang) if has(f"inc.phase.{phase}") else str(phase),
                      className="inc-phase"),
        ], className="inc-event-head"),
        html.Div([
            html.Span([html.B(t("inc.ev.detector", lang) + ": "), detector_label(event.get("detector"), lang)]),
            html.Span([html.B(t("inc.ev.place", lang) + ": "), event_place(event, lang)]),
            html.Span([html.B(t("inc.ev.window", lang) + ": "), event_window(event, lang)]),
        ], className="inc-event-meta"),
        table, *sub_tables(event, lang), more,
    ], className=f"inc-event sev-{severity}", **{"data-event": str(event.get("id"))})


# --- links and audit ---------------------------------------------------------------------------


def link_rows(doc: Mapping[str, Any], lang: str) -> list[tuple[str, str, str, str, str]]:
    """Why the events were joined: ``(events "1 → 2", rule, score, distance, time gap)`` per link."""
    numbers = {str(e.get("id")): i for i, e in enumerate(ordered_events(doc), start=1)}
    out = []
    for link in doc.get("links") or []:
        a, b = numbers.get(str(link.get("a"))), numbers.get(str(link.get("b")))
        pair = f"{a or '?'} → {b or '?'}"
        distance = link.get("distance_m")
        if distance is None:
            where = t("inc.link.citywide", lang)
        elif distance >= 1000:
            where = f"{number(distance / 1000, lang, 1)} {t('inc.u.km', lang)}"
        else:
            where = f"{number(distance, lang)} {t('inc.u.m', lang)}"
        gap = link.get("dt_s")
        out.append((pair, rule_label(link.get("rule"), lang), _num(link.get("score"), lang, 2), where,
                    t("inc.link.overlap", lang) if not gap else duration(gap, lang)))
    return out


_SEVERITY_NAME = {1: "wall.severity.1", 2: "wall.severity.2", 3: "wall.severity.3"}


def audit_detail(entry: Mapping[str, Any], lang: str, numbers: Mapping[str, int] | None = None) -> str:
    """An audit entry's detail as one readable line (texts written by operators stay as written);
    ``numbers``: event id -> its number in the panel (events no longer in it show as ``?``)."""
    numbers = numbers or {}
    action = entry.get("action")
    d = entry.get("detail") if isinstance(entry.get("detail"), Mapping) else {}
    parts: list[str] = []

    def sev(value: Any) -> str:
        return t(_SEVERITY_NAME[value], lang) if value in _SEVERITY_NAME else str(value)

    if action == "create":
        if d.get("type"):
            parts.append(type_label(d.get("type"), lang))
        if d.get("split_from"):
            parts.append(t("inc.audit.split_from", lang, id=str(d["split_from"])))
        if isinstance(d.get("events"), list):
            parts.append(t("inc.audit.n_events", lang, n=len(d["events"])))
        if d.get("rule"):
            parts.append(rule_label(d.get("rule"), lang))
        if d.get("severity"):
            parts.append(sev(d.get("severity")))
    elif action == "events":
        events = d.get("events") if isinstance(d.get("events"), Mapping) else {}
        if events:
            parts.append(", ".join(f"{numbers.get(str(e), '?')}: "
                                   f"{t(f'inc.phase.{p}', lang) if has(f'inc.phase.{p}') else p}"
                                   for e, p in sorted(events.items(), key=lambda i: numbers.get(str(i[0]), 999))))
        if d.get("links"):
            parts.append(t("inc.audit.links", lang, n=d["links"]))
        if isinstance(d.get("severity"), Mapping):
            parts.append(f"{sev(d['severity'].get('from'))} → {sev(d['severity'].get('to'))}")
        if isinstance(d.get("type"), Mapping):
            parts.append(f"{type_label(d['type'].get('from'), lang)} → {type_label(d['type'].get('to'), lang)}")
        if "active" in d:
            parts.append(t("inc.audit.active" if d["active"] else "inc.audit.cleared", lang))
    elif action == "assign":
        parts.append(agency_label(d.get("agency"), lang))
        if d.get("previous"):
            parts.append(t("inc.audit.previous", lang, v=agency_label(d.get("previous"), lang)))
    elif action == "escalate":
        parts.append(f"{sev(d.get('from'))} → {sev(d.get('to'))}")
    elif action in ("merge", "merged"):
        other = d.get("source") if action == "merge" else d.get("into")
        parts.append(t(f"inc.audit.{action}_detail", lang, id=str(other)))
        if isinstance(d.get("events"), list):
            parts.append(t("inc.audit.n_events", lang, n=len(d["events"])))
    elif action == "split":
        parts.append(t("inc.audit.split_detail", lang, id=str(d.get("into"))))
        if isinstance(d.get("events"), list):
            parts.append(t("inc.audit.n_events", lang, n=len(d["events"])))
        if d.get("dropped_links"):
            parts.append(t("inc.audit.dropped", lang, n=d["dropped_links"]))
    for key in ("text", "resolution", "reason"):
        if d.get(key):
            parts.append(f"«{d[key]}»")
    return " · ".join(p for p in parts if p)


def audit_rows(entries: Sequence[Mapping[str, Any]], lang: str,
               numbers: Mapping[str, int] | None = None) -> list[tuple[str, str, str, str]]:
    """The audit log, newest first: ``(when, who, what, detail)``. Runs of identical system
    updates (an event re-emitted every 15 min) are one row: "… (×12 since 16:51)"."""
    out: list[tuple[str, str, str, str]] = []
    run: list[Any] = []  # [row, count, oldest time] of the current run of identical system rows
    for entry in reversed(list(entries)):
        action = entry.get("action")
        who = entry.get("actor")
        row = (_time(entry.get("at"), lang, "d MMM HH:mm:ss"),
               t("inc.system", lang) if who == "system" else str(who or "—"),
               t(f"inc.audit.{action}", lang) if has(f"inc.audit.{action}") else str(action),
               audit_detail(entry, lang, numbers))
        if run and who == "system" and action == "events" and run[0][1:] == row[1:]:
            run[1] += 1
            run[2] = entry.get("at")
            continue
        if run:
            out.append(_collapsed(run, lang))
        run = [row, 1, entry.get("at")] if who == "system" and action == "events" else []
        if not run:
            out.append(row)
    if run:
        out.append(_collapsed(run, lang))
    return out


def _collapsed(run: list[Any], lang: str) -> tuple[str, str, str, str]:
    row, count, oldest = run
    if count == 1:
        return row
    return (row[0], row[1], row[2], f"{row[3]} " + t("inc.audit.repeated", lang, n=count,
                                                       since=_time(oldest, lang, "HH:mm")))


# --- actions: validation and the store's refusals in the operator's language --------------------


def agency_of(choice: Any, free: Any, lang: str) -> str | None:
    """The agency an assignment names: the free text when given, else the catalog choice in ``lang``."""
    if isinstance(free, str) and free.strip():
        return free.strip()
    if isinstance(choice, str) and choice in AGENCIES:
        return t(f"inc.agency.{choice}", lang)
    return None


def validate(action: str, form: Mapping[str, Any], lang: str) -> str | None:
    """The operator's mistake in ``lang`` before the store is asked (None: nothing to say)."""
    text = form.get("text")
    text = text.strip() if isinstance(text, str) else ""
    if action == "assign":
        agency = agency_of(form.get("agency"), form.get("agency_free"), lang)
        if not agency:
            return t("inc.err.agency_required", lang)
        if len(agency) > AGENCY_MAX:
            return t("inc.err.too_long", lang, n=len(agency), max=AGENCY_MAX)
        if any(c in agency for c in "\r\n\t"):
            return t("inc.err.one_line", lang)
    if action in ("resolve", "note") and not text:
        return t(f"inc.err.{action}_required", lang)
    if len(text) > TEXT_MAX:
        return t("inc.err.too_long", lang, n=len(text), max=TEXT_MAX)
    if action == "merge" and not form.get("source"):
        return t("inc.err.merge_pick", lang)
    if action == "split" and not form.get("events"):
        return t("inc.err.split_pick", lang)
    return None


#: ``IncidentError`` messages (English, for logs and the API) -> catalog keys, first match wins.
_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"already critical"), "inc.err.critical"),
    (re.compile(r"merged into (?P<into>\S+?)(;|$)"), "inc.err.merged"),
    (re.compile(r"was already merged into (?P<into>\S+)"), "inc.err.merged"),
    (re.compile(r"it is resolved"), "inc.err.resolved"),
    (re.compile(r"cannot split \S+: it is (?P<status>\w+)"), "inc.err.status"),
    (re.compile(r"it is (?P<status>open|acknowledged|assigned)"), "inc.err.status"),
    (re.compile(r"^no incident"), "inc.err.not_found"),
    (re.compile(r"^agency is required"), "inc.err.agency_required"),
    (re.compile(r"^text is required"), "inc.err.text_required"),
    (re.compile(r"is (?P<n>\d+) characters long; at most (?P<max>\d+)"), "inc.err.too_long"),
    (re.compile(r"one line|control characters"), "inc.err.one_line"),
    (re.compile(r"into itself"), "inc.err.merge_self"),
    (re.compile(r"^merge needs"), "inc.err.merge_pick"),
    (re.compile(r"^split needs"), "inc.err.split_pick"),
    (re.compile(r"are not in incident"), "inc.err.split_missing"),
    (re.compile(r"cannot split every event"), "inc.err.split_all"),
)


def error_message(err: Exception, lang: str, *, action: str = "") -> str:
    """An ``IncidentError`` (or a refusal of the role) in ``lang``; unknown ones keep the code and
    the store's own words."""
    if isinstance(err, auth.AccessDenied):
        return t("inc.err.forbidden", lang)
    message = str(err)
    code = getattr(err, "code", 422)
    for pattern, key in _ERRORS:
        found = pattern.search(message)
        if found:
            values = {k: v for k, v in found.groupdict().items() if v is not None}
            if "status" in values:
                values["status"] = status_label(values["status"], lang)
            values.setdefault("action", t(f"inc.act.{action}", lang) if has(f"inc.act.{action}") else action)
            return t(key, lang, **{"into": "", "status": "", "n": "", "max": "", **values})
    return t("inc.err.other", lang, code=code, message=message)


def perform(incident_id: str, action: str, form: Mapping[str, Any], lang: str,
            now: datetime | None = None) -> tuple[bool, str, dict[str, Any] | None]:
    """Do an operator's action: ``(done, message in lang, updated document)``.

    The role is checked first (``auth.require("operator")``: leadership and viewers are refused
    here, whatever the page showed them); the actor is the signed-in account."""
    from workers.incidents import IncidentError, IncidentStore

    try:
        account = auth.require("operator")
    except auth.AccessDenied as err:
        return False, error_message(err, lang), None
    if not incident_id:
        return False, t("inc.err.select", lang), None
    problem = validate(action, form, lang)
    if problem:
        return False, problem, None
    store = IncidentStore(data.context().redis, _zone())
    now = now or datetime.now(UTC)
    text = form.get("text") if isinstance(form.get("text"), str) and form.get("text").strip() else None
    try:
        if action == "acknowledge":
            doc = store.act(incident_id, "acknowledge", account.user, now)
        elif action == "assign":
            doc = store.act(incident_id, "assign", account.user, now,
                            agency=agency_of(form.get("agency"), form.get("agency_free"), lang), text=text)
        elif action in ("escalate", "resolve", "note", "reopen"):
            doc = store.act(incident_id, action, account.user, now, text=text)
        elif action == "merge":
            doc = store.act(incident_id, "merge", account.user, now, source=str(form.get("source")))
        elif action == "split":
            doc = store.act(incident_id, "split", account.user, now, events=list(form.get("events") or []))
        else:
            return False, t("inc.err.other", lang, code=400, message=action), None
    except IncidentError as err:
        return False, error_message(err, lang, action=action), None
    except (redis_lib.RedisError, OSError):
        return False, t("inc.err.redis", lang), None
    extra = {"id": incident_id, "user": account.user, "agency": agency_label(doc.get("assignee"), lang),
             "into": (doc.get("split_into") or ["?"])[-1], "source": str(form.get("source") or "")}
    return True, t(f"inc.ok.{action}", lang, **extra), doc


def buttons_state(doc: Mapping[str, Any] | None) -> dict[str, bool]:
    """Which actions the incident's status allows (True: enabled), as the store checks them."""
    if not doc:
        return dict.fromkeys(("acknowledge", *FORM_ACTIONS), False)
    status = doc.get("status")
    unresolved = status in UNRESOLVED
    return {"acknowledge": status == "open", "assign": unresolved,
            "escalate": unresolved and int(doc.get("severity") or 0) < 3, "resolve": unresolved,
            "note": status in (*UNRESOLVED, "resolved"), "reopen": status == "resolved", "merge": unresolved,
            "split": unresolved and len(doc.get("events") or {}) > 1}


# --- the selected incident -----------------------------------------------------------------------


def head(doc: Mapping[str, Any] | None, lang: str, now: float) -> list[Any]:
    """The selected incident's header: type, id, severity, status, place, times, assignee, SLA clocks."""
    if not doc:
        return [html.Div(t("inc.select", lang), className="inc-placeholder")]
    severity = int(doc.get("severity") or 2)
    status = doc.get("status")
    places = [_district_name(d, lang) for d in doc.get("districts") or []]
    facts = [
        (t("inc.f.status", lang), status_label(status, lang)),
        (t("inc.f.place", lang), ", ".join(places) if places else t("wall.citywide", lang)),
        (t("inc.f.detected", lang), _time(doc.get("detected_at"), lang)),
        (t("inc.f.last_event", lang), _time(doc.get("last_event_at"), lang)),
        (t("inc.f.assignee", lang), agency_label(doc.get("assignee"), lang)),
        (t("inc.f.acknowledged", lang), f"{doc.get('acknowledged_by')} · {_time(doc.get('acknowledged_at'), lang)}"
         if doc.get("acknowledged_at") else "—"),
    ]
    if doc.get("resolution"):
        facts.append((t("inc.f.resolution", lang), str(doc.get("resolution"))))
    if doc.get("merged_into"):
        facts.append((t("inc.f.merged_into", lang), str(doc.get("merged_into"))))
    if doc.get("rule"):
        facts.append((t("inc.f.rule", lang), f"{rule_label(doc.get('rule'), lang)}"
                      + (f" · {_num(doc.get('score'), lang, 2)}" if doc.get("score") is not None else "")))
    clocks = [html.Div([html.Span(t(f"inc.sla.{c['kind']}", lang), className="inc-clock-name"),
                        sla_span(c, now, lang)], className=f"inc-clock {c['state']}")
              for c in sla_clocks(doc, now)]
    return [
        html.Div([
            html.Span(severity_label(severity, lang), className=f"inc-sev sev-{severity}"),
            html.H2(type_label(doc.get("type"), lang), className="inc-title"),
            html.Span(str(doc.get("id")), className="inc-id", id="inc-head-id"),
            html.Span(str(doc.get("title")), className="inc-subtitle") if doc.get("title") else None,
            html.Span(t("inc.active", lang) if doc.get("active") else t("inc.cleared", lang),
                      className="inc-active" + ("" if doc.get("active") else " off")),
        ], className="inc-head-line"),
        html.Div([
            html.Dl([x for k, v in facts for x in (html.Dt(k), html.Dd(v))], className="inc-facts"),
            html.Div(clocks, className="inc-clocks"),
        ], className="inc-head-body"),
    ]


def body(doc: Mapping[str, Any] | None, audit: Sequence[Mapping[str, Any]], lang: str) -> list[Any]:
    """Events with their evidence (left column of the panel)."""
    if not doc:
        return []
    events = ordered_events(doc)
    return [html.H3(t("inc.events", lang, n=len(events))),
            *[event_card(i, e, lang) for i, e in enumerate(events, start=1)]]


def side(doc: Mapping[str, Any] | None, audit: Sequence[Mapping[str, Any]], lang: str) -> list[Any]:
    """Links and the audit log (right column, under the map)."""
    if not doc:
        return []
    links = link_rows(doc, lang)
    link_part: Any
    if links:
        link_part = _table([t("inc.col.events", lang), t("inc.col.rule", lang), t("inc.col.score", lang),
                            t("inc.col.distance", lang), t("inc.col.gap", lang)], links, "inc-links")
    else:
        link_part = html.Div(t("inc.no_links", lang) if len(doc.get("events") or {}) > 1 else t("inc.single", lang),
                             className="inc-muted")
    numbers = {str(e.get("id")): i for i, e in enumerate(ordered_events(doc), start=1)}
    rows = audit_rows(audit, lang, numbers)
    return [
        html.H3(t("inc.links", lang)), link_part,
        html.H3(t("inc.audit", lang, n=len(audit))),
        html.Table([html.Thead(html.Tr([html.Th(t("inc.col.when", lang)), html.Th(t("inc.col.who", lang)),
                                        html.Th(t("inc.col.what", lang)), html.Th(t("inc.col.detail", lang))])),
                    html.Tbody([html.Tr([html.Td(a, className="nowrap"), html.Td(b), html.Td(c), html.Td(d)])
                                for a, b, c, d in rows])], className="inc-audit", id="inc-audit"),
    ]


def event_points(doc: Mapping[str, Any] | None, lang: str) -> dict[str, Any]:
    """The map's GeoJSON: one numbered disc per event with a place, coloured by severity; tooltip
    escaped (:func:`maps.tip`)."""
    features = []
    if doc:
        for i, e in enumerate(ordered_events(doc), start=1):
            if e.get("lat") is None or e.get("lon") is None:
                continue
            severity = int(e.get("severity") or 1)
            features.append({"type": "Feature",
                             "geometry": {"type": "Point", "coordinates": [round(float(e["lon"]), 6),
                                                                           round(float(e["lat"]), 6)]},
                             "properties": {"label": str(i), "colour": _EVENT_COLOURS.get(severity, "#4aa3ff"),
                                            "tooltip": maps.tip(f"{i}. {signal_label(e.get('signal'), lang)}",
                                                                event_place(e, lang), event_window(e, lang))}})
    return maps.collection(features)


def viewport(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where the map flies for an incident: around its events, else its district, else the city."""
    points = [(float(e["lat"]), float(e["lon"])) for e in (doc or {}).get("events", {}).values()
              if e.get("lat") is not None and e.get("lon") is not None]
    if points:
        pad = 0.025
        s, n = min(p[0] for p in points) - pad, max(p[0] for p in points) + pad
        w, e = min(p[1] for p in points) - pad, max(p[1] for p in points) + pad
        return {"bounds": [[s, w], [n, e]], "transition": "flyToBounds", "options": {"padding": [30, 30],
                                                                                       "maxZoom": 13}}
    try:
        return maps.view_of((doc or {}).get("district"))
    except (KeyError, AttributeError):
        return maps.view_of(None)


def current(doc: Mapping[str, Any] | None, open_docs: Sequence[Mapping[str, Any]], lang: str) -> dict[str, Any]:
    """What the operator's controls need: the id, version, allowed actions, merge candidates, events."""
    if not doc:
        return {"id": None, "version": None, "allowed": buttons_state(None), "merge": [], "split": []}
    my_id = str(doc.get("id"))
    merge = [{"label": f"{o.get('id')} · {type_label(o.get('type'), lang)} · "
                       f"{_district_name(o.get('district'), lang) or t('wall.citywide', lang)}",
              "value": str(o.get("id"))} for o in open_docs if str(o.get("id")) != my_id]
    split = [{"label": f"{i}. {signal_label(e.get('signal'), lang)} · {event_place(e, lang)}",
              "value": str(e.get("id"))}
             for i, e in enumerate(ordered_events(doc), start=1)]
    return {"id": my_id, "version": doc.get("version"), "allowed": buttons_state(doc), "merge": merge, "split": split}


# --- reading ------------------------------------------------------------------------------------


def _store() -> Any:
    from workers.incidents import IncidentStore

    return IncidentStore(data.context().redis, _zone())


def _open_docs() -> list[dict[str, Any]]:
    return list(data.topic("incidents").doc or [])


def _load(incident_id: str | None, *, with_audit: bool = True,
          unless_version: Any = None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The incident (with its SLA state now) and its audit log, read from the store; the audit
    is skipped (``[]``) when ``with_audit`` is false and the version is still ``unless_version``."""
    if not incident_id:
        return None, []
    try:
        store = _store()
        doc = store.get(str(incident_id), datetime.now(UTC))
        if doc is None or (not with_audit and doc.get("version") == unless_version):
            return doc, []
        return doc, store.audit(str(incident_id))
    except (redis_lib.RedisError, OSError):
        return None, []


def _resolved_docs() -> list[dict[str, Any]]:
    try:
        store = _store()
        now = datetime.now(UTC)
        return store.list("resolved", now=now, limit=RESOLVED_LIMIT) + store.list("merged", now=now, limit=20)
    except (redis_lib.RedisError, OSError):
        return []


def _type_options(docs: Iterable[Mapping[str, Any]], lang: str) -> list[dict[str, str]]:
    kinds = sorted({str(d.get("type")) for d in docs if d.get("type")}, key=lambda k: type_label(k, lang))
    return [{"label": type_label(k, lang), "value": k} for k in kinds]


# --- the page -----------------------------------------------------------------------------------


def _chips(id_: str, options: list[dict[str, Any]], value: list[Any]) -> dcc.Checklist:
    return dcc.Checklist(id=id_, options=options, value=value, inline=True, className="inc-chips")


def _templates(lang: str) -> dict[str, str]:
    """The countdown texts the browser fills (``{t}`` = ``4:05``)."""
    return {f"data-{kind}-{when_}": t(f"inc.sla.{kind}_{when_}", lang, t="{t}")
            for kind in ("ack", "resolve") for when_ in ("in", "over")}


def actions_panel(lang: str) -> html.Div:
    """The operator's actions: acknowledge at once; the others open a small form."""
    buttons = [html.Button(t("inc.act.acknowledge", lang), id="inc-do-ack", className="inc-btn primary",
                           n_clicks=0, disabled=True)]
    buttons += [html.Button(t(f"inc.act.{a}", lang), id=f"inc-open-{a}", className="inc-btn", n_clicks=0,
                            disabled=True) for a in FORM_ACTIONS]
    agencies = [{"label": t(f"inc.agency.{a}", lang), "value": a} for a in AGENCIES]
    return html.Div([
        html.Div(buttons, className="inc-actions"),
        html.Div([
            html.Div(id="inc-form-title", className="inc-form-title"),
            html.Div([dcc.Dropdown(id="inc-agency", options=agencies, placeholder=t("inc.form.agency", lang),
                                   clearable=True, className="inc-dd"),
                      dcc.Input(id="inc-agency-free", type="text", maxLength=AGENCY_MAX, debounce=False,
                                placeholder=t("inc.form.agency_free", lang), className="inc-input")],
                     id="inc-form-agency", className="inc-form-row", style={"display": "none"}),
            html.Div(dcc.Dropdown(id="inc-merge", options=[], placeholder=t("inc.form.merge", lang),
                                  className="inc-dd"), id="inc-form-merge", className="inc-form-row",
                     style={"display": "none"}),
            html.Div(dcc.Checklist(id="inc-split", options=[], value=[], className="inc-split",
                                   labelClassName="inc-split-item"),
                     id="inc-form-split", className="inc-form-row", style={"display": "none"}),
            html.Div(dcc.Textarea(id="inc-text", maxLength=TEXT_MAX, className="inc-textarea"),
                     id="inc-form-text", className="inc-form-row", style={"display": "none"}),
            html.Div([html.Button(t("inc.form.confirm", lang), id="inc-confirm", className="inc-btn primary",
                                  n_clicks=0),
                      html.Button(t("inc.form.cancel", lang), id="inc-cancel", className="inc-btn", n_clicks=0)],
                     className="inc-form-buttons"),
        ], id="inc-form-box", className="inc-form", style={"display": "none"}),
    ], className="inc-operator")


def layout(lang: str | None = None, **query: Any) -> html.Div:
    """The console, drawn from the hub's incidents (the first one selected unless ``?id=``)."""
    lang = lang_of(lang) if lang else context.lang()
    account = context.account()
    can_act = bool(account is not None and account.at_least("operator"))
    now = time.time()
    docs = _open_docs()
    ranked = sorted(docs, key=lambda i: urgency(i, now))
    wanted = query.get("id")
    selected = str(wanted) if wanted else (str(ranked[0].get("id")) if ranked else None)
    doc, audit = _load(selected)
    if doc is None:
        selected = None
    status_opts = [{"label": status_label(s, lang), "value": s} for s in UNRESOLVED]
    sev_opts = [{"label": severity_label(s, lang), "value": s} for s in SEVERITIES]
    cfg = {"lang": lang}
    seen = {"v": data.topic("incidents").version, "sel": selected, "sel_v": doc.get("version") if doc else None}
    return html.Div([
        html.Aside([
            html.Div([
                html.Div([html.Span(t("inc.filter.status", lang), className="inc-filter-name"),
                          _chips("inc-f-status", status_opts, list(UNRESOLVED))], className="inc-filter"),
                html.Div([html.Span(t("inc.filter.severity", lang), className="inc-filter-name"),
                          _chips("inc-f-sev", sev_opts, list(SEVERITIES))], className="inc-filter"),
                html.Div([dcc.Dropdown(id="inc-f-type", options=_type_options(docs, lang), value=[], multi=True,
                                       placeholder=t("inc.filter.all_types", lang), className="inc-dd"),
                          _chips("inc-f-resolved", [{"label": t("inc.filter.resolved", lang), "value": "yes"}], [])],
                         className="inc-filter"),
            ], className="inc-filters"),
            html.Div(t("inc.count", lang, n=len(docs)), id="inc-count", className="inc-count"),
            html.Div(incident_list(docs, lang, now, selected), id="inc-list", className="inc-list"),
        ], className="inc-side"),
        html.Section([
            html.Div(head(doc, lang, now), id="inc-head", className="inc-head"),
            actions_panel(lang) if can_act else html.Div(t("inc.readonly", lang), className="inc-readonly",
                                                         id="inc-readonly"),
            html.Div(id="inc-msg", className="inc-msg", role="status"),
            html.Div([
                html.Div(body(doc, audit, lang), id="inc-body", className="inc-body"),
                html.Div([
                    html.Div(maps.base_map("inc-map", lang, [
                        maps.district_layer({}, lang=lang, id="inc-districts", scale=maps.AQI_SCALE),
                        dl.GeoJSON(id="inc-events", data=event_points(doc, lang),
                                   pointToLayer={"variable": "scMaps.stationPoint"}),
                    ], zoomControl=True, center=tuple(data.context().pack.center), viewport=viewport(doc)),
                        className="inc-map"),
                    html.Div(side(doc, audit, lang), id="inc-side-body"),
                ], className="inc-aside"),
            ], className="inc-columns"),
        ], className="inc-main"),
        dcc.Store(id="inc-sel", data=selected),
        dcc.Store(id="inc-seen", data=seen),
        dcc.Store(id="inc-cfg", data=cfg),
        dcc.Store(id="inc-current", data=current(doc, docs, lang)),
        dcc.Store(id="inc-form", data=None),
        dcc.Store(id="inc-refresh", data=0),
        dcc.Store(id="inc-tick-out"),
        dcc.Interval(id="inc-tick", interval=1000),
    ], id="inc-page", className="inc-page" + ("" if can_act else " readonly"), lang=lang, **_templates(lang))


# --- callbacks ----------------------------------------------------------------------------------

# the SLA clocks count down in the browser (no server round trip): every second, each running
# clock's text is rewritten from its data-due, and it turns amber / red
clientside_callback(
    """
    function (n) {
      var root = document.getElementById("inc-page");
      if (!root) { return window.dash_clientside.no_update; }
      var skew = (window.scLive && window.scLive.state && window.scLive.state.skew) || 0;
      var now = Date.now() + skew;
      var els = root.querySelectorAll(".inc-sla[data-due]");
      for (var i = 0; i < els.length; i += 1) {
        var el = els[i];
        var left = (Number(el.getAttribute("data-due")) - now) / 1000;
        var kind = el.getAttribute("data-kind");
        var over = left < 0;
        var s = Math.floor(Math.abs(left));
        var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
        var clock = (h ? h + ":" + (m < 10 ? "0" : "") + m : String(m)) + ":" + (sec < 10 ? "0" : "") + sec;
        var tpl = root.getAttribute("data-" + kind + "-" + (over ? "over" : "in")) || "{t}";
        var text = tpl.replace("{t}", clock);
        var node = el.firstChild;
        if (node && node.nodeType === 3) { if (node.nodeValue !== text) { node.nodeValue = text; } }
        else { el.textContent = text; }
        var state = over ? "breached" : (left <= Number(el.getAttribute("data-warn") || 0) ? "due" : "running");
        if (!el.classList.contains(state)) {
          el.classList.remove("running", "due", "breached");
          el.classList.add(state);
          var box = el.closest(".inc-clock");
          if (box) { box.classList.remove("running", "due", "breached"); box.classList.add(state); }
        }
      }
      return window.dash_clientside.no_update;
    }
    """,
    Output("inc-tick-out", "data"), Input("inc-tick", "n_intervals"), prevent_initial_call=True)


@callback(Output("inc-sel", "data"), Input({"type": "inc-row", "id": ALL}, "n_clicks"), prevent_initial_call=True)
def select(_clicks: list[int | None]) -> Any:
    """A click on a row selects its incident."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(item.get("value") for item in ctx.triggered):
        raise PreventUpdate
    return trigger["id"]


@callback(Output("inc-list", "children"), Output("inc-count", "children"), Output("inc-f-type", "options"),
          Output("inc-head", "children"), Output("inc-body", "children"), Output("inc-side-body", "children"),
          Output("inc-events", "data"), Output("inc-map", "viewport"), Output("inc-current", "data"),
          Output("inc-seen", "data"),
          Input("sc-live", "data"), Input("inc-sel", "data"), Input("inc-f-status", "value"),
          Input("inc-f-sev", "value"), Input("inc-f-type", "value"), Input("inc-f-resolved", "value"),
          Input("inc-refresh", "data"), State("inc-seen", "data"), State("inc-cfg", "data"),
          prevent_initial_call=True)
def update(_live: Any, selected: str | None, statuses: list[str] | None, severities: list[int] | None,
           types: list[str] | None, resolved: list[str] | None, _refresh: Any, seen: dict[str, Any] | None,
           cfg: dict[str, Any] | None) -> tuple[Any, ...]:
    """Re-draw what moved: the list when the incidents (or the filters, or the selection) moved, the
    panel when the selection changed or the selected incident's version moved (the map flies only
    on a new selection)."""
    cfg = cfg or {}
    lang = cfg.get("lang") if cfg.get("lang") in LANGS else context.lang()
    seen = dict(seen or {})
    triggers = {item["prop_id"].split(".")[0] for item in ctx.triggered}
    topic = data.topic("incidents")
    moved = topic.version != seen.get("v")
    new_selection = selected != seen.get("sel")
    filters = bool(triggers & {"inc-f-status", "inc-f-sev", "inc-f-type", "inc-f-resolved"})
    refresh = "inc-refresh" in triggers
    if not (moved or new_selection or filters or refresh):
        return (no_update,) * 10
    now = time.time()
    docs = list(topic.doc or [])
    out: list[Any] = [no_update] * 10
    if moved or new_selection or filters or refresh:
        shown = docs + (_resolved_docs() if resolved else [])
        kept = filter_incidents(shown, statuses=statuses, severities=severities, types=types, resolved=bool(resolved))
        out[0] = incident_list(kept, lang, now, selected)
        out[1] = t("inc.count", lang, n=len(kept))
        out[2] = _type_options(shown, lang) if moved or filters else no_update
    doc = None
    if new_selection or refresh or moved:
        # the audit log is read only when the selected incident itself changed
        doc, audit = _load(selected, with_audit=new_selection or refresh, unless_version=seen.get("sel_v"))
        version = doc.get("version") if doc else None
        if new_selection or refresh or version != seen.get("sel_v"):
            out[3] = head(doc, lang, now)
            out[4] = body(doc, audit, lang)
            out[5] = side(doc, audit, lang)
            out[6] = event_points(doc, lang)
            out[8] = current(doc, docs, lang)
            seen["sel_v"] = version
        elif moved:
            out[8] = current(doc, docs, lang)  # the merge candidates follow the open incidents
        if new_selection and doc is not None:
            out[7] = viewport(doc)
    seen.update(v=topic.version, sel=selected)
    out[9] = seen
    return tuple(out)


# --- the operator's controls (absent for leadership: these callbacks then never fire) ------------

_OPEN_BUTTONS = [Input(f"inc-open-{a}", "n_clicks") for a in FORM_ACTIONS]


@callback(Output("inc-do-ack", "disabled"), *[Output(f"inc-open-{a}", "disabled") for a in FORM_ACTIONS],
          Output("inc-merge", "options"), Output("inc-split", "options"), Input("inc-current", "data"))
def controls(cur: dict[str, Any] | None) -> tuple[Any, ...]:
    """Enable the actions the selected incident's status allows; fill the merge and split choices."""
    cur = cur or {}
    allowed = cur.get("allowed") or buttons_state(None)
    return (not allowed.get("acknowledge"), *[not allowed.get(a) for a in FORM_ACTIONS],
            cur.get("merge") or [], cur.get("split") or [])


@callback(Output("inc-form", "data"), *_OPEN_BUTTONS, Input("inc-cancel", "n_clicks"), Input("inc-sel", "data"),
          State("inc-form", "data"), prevent_initial_call=True)
def open_form(*args: Any) -> Any:
    """An action button opens its form for the selected incident; cancel or another selection closes it."""
    selected = args[-2]
    trigger = ctx.triggered_id
    if isinstance(trigger, str) and trigger.startswith("inc-open-") and ctx.triggered[0].get("value"):
        return {"action": trigger[len("inc-open-"):], "id": selected}
    if trigger == "inc-sel" and not (args[-1] or {}).get("id") == selected:
        return None
    if trigger == "inc-cancel":
        return None
    raise PreventUpdate


@callback(Output("inc-form-box", "style"), Output("inc-form-title", "children"), Output("inc-form-agency", "style"),
          Output("inc-form-merge", "style"), Output("inc-form-split", "style"), Output("inc-form-text", "style"),
          Output("inc-text", "placeholder"), Input("inc-form", "data"), State("inc-cfg", "data"))
def show_form(form: dict[str, Any] | None, cfg: dict[str, Any] | None) -> tuple[Any, ...]:
    """Show the parts of the form the chosen action needs."""
    lang = (cfg or {}).get("lang") or context.lang()
    hidden, shown = {"display": "none"}, {}
    action = (form or {}).get("action")
    if action not in FORM_ACTIONS:
        return hidden, "", hidden, hidden, hidden, hidden, ""
    texts = action in ("assign", "escalate", "resolve", "note", "reopen")
    return (shown, t(f"inc.form.title.{action}", lang, id=str((form or {}).get("id"))),
            shown if action == "assign" else hidden, shown if action == "merge" else hidden,
            shown if action == "split" else hidden, shown if texts else hidden,
            t(f"inc.form.text.{action}", lang) if texts else "")


@callback(Output("inc-msg", "children"), Output("inc-msg", "className"), Output("inc-refresh", "data"),
          Output("inc-form", "data", allow_duplicate=True), Output("inc-text", "value"),
          Output("inc-agency-free", "value"),
          Input("inc-do-ack", "n_clicks"), Input("inc-confirm", "n_clicks"),
          State("inc-sel", "data"), State("inc-form", "data"), State("inc-agency", "value"),
          State("inc-agency-free", "value"), State("inc-text", "value"), State("inc-merge", "value"),
          State("inc-split", "value"), State("inc-cfg", "data"), State("inc-refresh", "data"),
          prevent_initial_call=True)
def act(_ack: Any, _confirm: Any, selected: str | None, form: dict[str, Any] | None, agency: Any, agency_free: Any,
        text: Any, source: Any, events: Any, cfg: dict[str, Any] | None, refresh: Any) -> tuple[Any, ...]:
    """Do the action (acknowledge, or the open form's) on the selected incident as the signed-in
    operator; anyone else is refused here, whatever the page showed."""
    lang = (cfg or {}).get("lang") if (cfg or {}).get("lang") in LANGS else context.lang()
    trigger = ctx.triggered_id
    if trigger == "inc-do-ack":
        action, target = "acknowledge", selected
    elif trigger == "inc-confirm" and (form or {}).get("action") in FORM_ACTIONS:
        action, target = form["action"], form.get("id") or selected
    else:
        raise PreventUpdate
    done, message, _doc = perform(str(target or ""), action, {"agency": agency, "agency_free": agency_free,
                                                             "text": text, "source": source, "events": events}, lang)
    if not done:
        return message, "inc-msg error", no_update, no_update, no_update, no_update
    return message, "inc-msg ok", int(refresh or 0) + 1, None, "", ""
