"""The leadership brief (``/brief``): the city on one tablet screen (1024×768 landscape, usable at 768×1024).

* Headline numbers (:data:`HEADLINES`): air (AQI and the Kazakh pollution level), ambulance
  category 1 within the arrival norm, appeals overdue, appeals closed in time, traffic (the score
  against its usual value, else the speed against free flow), open serious incidents; each with
  its target, a good/bad colour and the trend against :data:`TREND_H` hours ago (the KPI history).
* What changed in the last :data:`TREND_H` hours: incidents opened and resolved, and the KPIs that
  moved beyond their threshold (:data:`MOVES`).
* Open WARNING / CRITICAL incidents with their age, status and assignee.
* District drill-down: a list of districts (touch targets ≥ 44 px, no map: a slow link loads no
  tiles); touching one shows its numbers and incidents.

Light by construction: no figures, no map, no 1-second re-renders. One callback on ``sc-live``
compares the topic versions (and the minute, for the "3 h ago" values) with what it last drew and
sends only the parts whose content changed (tiles as ``Patch`` entries). Ages tick in the browser
(``assets/live.js``). The only Redis reads are the KPI history of 3 h ago and the incident index,
both cached per process (per minute / per incidents version), whatever the number of tablets.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from dash import ALL, Input, Output, Patch, State, callback, ctx, dcc, html, no_update, register_page
from dash.exceptions import PreventUpdate

from dashboards import context, data
from dashboards.i18n import LANGS, has, lang_of, names, number, t

register_page(__name__, path="/brief", name="Brief", title="Situation Center — brief", order=2)

#: Hours back for trends and "what changed".
TREND_H = 3
#: How close to ``now - TREND_H`` a history minute must be.
HISTORY_SLACK = timedelta(minutes=15)
#: Open serious incidents listed (then "N more").
INCIDENT_ROWS = 6
#: Incidents opened in the window listed by name.
OPENED_ROWS = 4
UNRESOLVED = ("open", "acknowledged", "assigned")
KPI_DOMAINS = ("air", "ambulance", "appeals", "traffic")


class Headline(NamedTuple):
    """One headline number (a NamedTuple: Dash imports page modules outside ``sys.modules``).

    ``kpi``: the KPI key (``incidents.serious`` is computed here); ``scale`` multiplies for
    display; ``unit`` follows the value; ``target``/``good`` override the KPI definition's."""

    id: str
    domain: str
    kpi: str
    digits: int = 0
    scale: float = 1.0
    unit: str = ""
    secondary: str = ""
    secondary_digits: int = 0
    secondary_unit: str = ""


HEADLINES: tuple[Headline, ...] = (
    Headline("air", "air", "air.aqi", unit="AQI", secondary="air.pollution_level"),
    Headline("ambulance", "ambulance", "ambulance.within_norm_pct_c1", unit="%", secondary="ambulance.response_p90_c1",
             secondary_digits=1, secondary_unit="unit.min"),
    Headline("overdue", "appeals", "appeals.overdue", secondary="appeals.open"),
    Headline("closed", "appeals", "appeals.closed_within_deadline", unit="%",
             secondary="appeals.time_to_close_median", secondary_digits=1, secondary_unit="unit.h"),
    Headline("traffic", "traffic", "traffic.score", digits=1, secondary="traffic.score_baseline", secondary_digits=1),
    Headline("incidents", "incidents", "incidents.serious", secondary="incidents.overdue"),
)
#: When ``traffic.score`` is missing (no score provider): the median speed against free flow.
TRAFFIC_FALLBACK = Headline("traffic", "traffic", "traffic.speed_ratio_median", scale=100.0, unit="%",
                            secondary="traffic.segments_congested")
#: KPI -> (smallest change worth a line in "what changed", digits, scale, unit).
MOVES: Mapping[str, tuple[float, int, float, str]] = {
    "air.aqi": (25, 0, 1.0, "AQI"), "air.pollution_level": (1, 0, 1.0, ""),
    "ambulance.within_norm_pct_c1": (5, 0, 1.0, "%"), "ambulance.within_norm_pct": (5, 0, 1.0, "%"),
    "ambulance.calls_waiting": (5, 0, 1.0, ""), "appeals.overdue": (3, 0, 1.0, ""), "appeals.open": (25, 0, 1.0, ""),
    "appeals.closed_within_deadline": (5, 0, 1.0, "%"), "traffic.score": (1, 1, 1.0, ""),
    "traffic.speed_ratio_median": (0.05, 0, 100.0, "%"), "traffic.segments_congested": (5, 0, 1.0, ""),
}
#: Numbers of a district: (domain, KPI key, digits, unit).
DISTRICT_KPIS: tuple[tuple[str, str, int, str], ...] = (
    ("air", "air.aqi", 0, "AQI"), ("air", "air.pollution_level", 0, ""),
    ("ambulance", "ambulance.within_norm_pct", 0, "%"), ("ambulance", "ambulance.within_norm_pct_c1", 0, "%"),
    ("ambulance", "ambulance.calls_waiting", 0, ""), ("appeals", "appeals.open", 0, ""),
    ("appeals", "appeals.overdue", 0, ""),
)
#: Built-in definitions of the numbers computed here (not in the KPI tables).
_LOCAL = {"incidents.serious": (0.0, "down"), "incidents.overdue": (0.0, "down")}


# --- KPI definitions ---------------------------------------------------------------------------

_DEFINITIONS: dict[str, Any] = {}


def definition(key: str) -> Any:
    """The KPI definition of ``key`` (``workers.kpi.definitions.KpiDefinition``), or None."""
    if not _DEFINITIONS:
        from workers.kpi import air, ambulance, appeals, traffic

        try:
            norms = data.context().pack.norms
        except RuntimeError:
            norms = None
        rows = [*air.KPIS, *traffic.KPIS, *appeals.KPIS,
                *(ambulance.definitions(norms) if norms is not None else ambulance.KPIS)]
        _DEFINITIONS.update({row.key: row for row in rows})
    return _DEFINITIONS.get(key)


def target_of(key: str) -> tuple[float | None, str]:
    """``(target, good direction)`` of a number."""
    if key in _LOCAL:
        return _LOCAL[key]
    row = definition(key)
    return (None, "down") if row is None else (row.target, row.good)


def kpi_name(key: str, lang: str) -> str:
    """A number's name in ``lang`` (this page's catalog first, then the KPI table's names)."""
    local = f"brief.kpi.{key}"
    if has(local):
        return t(local, lang)
    row = definition(key)
    return row.names.get(lang, key) if row is not None else key


# --- pure builders --------------------------------------------------------------------------------


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def meets(key: str, value: Any, *, baseline: Any = None) -> bool | None:
    """Whether a number meets its target (None: no target or no value). The traffic score is
    judged against its usual value for the time (``baseline``)."""
    if not _is_number(value):
        return None
    if key == "traffic.score":
        return None if not _is_number(baseline) else value <= baseline
    target, good = target_of(key)
    if target is None:
        return None
    return value >= target if good == "up" else value <= target


def trend(key: str, value: Any, before: Any) -> tuple[str, str]:
    """``(arrow, class)`` of a number against :data:`TREND_H` hours ago: ▲/▼ with ``better`` or
    ``worse`` by the number's good direction, ▶ ``flat`` under 1 % of the old value, ``("", "")``
    without both values."""
    if not _is_number(value) or not _is_number(before):
        return "", ""
    delta = value - before
    if abs(delta) <= 0.01 * max(abs(before), 1e-9):
        return "▶", "flat"
    _, good = target_of(key)
    rising = delta > 0
    return ("▲" if rising else "▼"), ("better" if rising == (good == "up") else "worse")


def incident_counts(incidents: Iterable[Mapping[str, Any]], at: float) -> dict[str, int]:
    """Serious (WARNING or CRITICAL) incidents open at ``at`` (epoch s), and how many of them were
    past an SLA clock then: ``{"incidents.serious", "incidents.overdue"}``. From documents as they
    are now: an incident counts if it was detected by then and not closed by then."""
    serious = overdue = 0
    for inc in incidents:
        detected = _epoch(inc.get("detected_at"))
        closed = _epoch(inc.get("resolved_at")) or _epoch(inc.get("merged_at"))
        if inc.get("status") not in UNRESOLVED and closed is None:
            continue
        if detected is None or detected > at or (closed is not None and closed <= at):
            continue
        if int(inc.get("severity") or 0) < 2:
            continue
        serious += 1
        sla = inc.get("sla") or {}
        ack_due, resolve_due = _epoch(sla.get("ack_due")), _epoch(sla.get("resolve_due"))
        acked = _epoch(inc.get("acknowledged_at"))
        if (ack_due is not None and ack_due < at and (acked is None or acked > ack_due)) or (
                resolve_due is not None and resolve_due < at):
            overdue += 1
    return {"incidents.serious": serious, "incidents.overdue": overdue}


def headline_spec(spec: Headline, values: Mapping[str, Any]) -> Headline:
    """The traffic headline falls back to the speed ratio when no score is reported."""
    if spec.id == "traffic" and not _is_number(values.get("traffic.score")):
        return TRAFFIC_FALLBACK
    return spec


def headline(spec: Headline, now: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """One headline as data: ``key, value, before, target, good, meets, arrow, trend, secondary,
    secondary_value, baseline`` (``now`` / ``before``: KPI key -> value, incidents included)."""
    spec = headline_spec(spec, now)
    value, old = now.get(spec.kpi), before.get(spec.kpi)
    target, good = target_of(spec.kpi)
    baseline = now.get("traffic.score_baseline") if spec.kpi == "traffic.score" else None
    arrow, cls = trend(spec.kpi, value, old)
    return {"id": spec.id, "key": spec.kpi, "domain": spec.domain, "value": value, "before": old, "target": target,
            "good": good, "meets": meets(spec.kpi, value, baseline=baseline), "arrow": arrow, "trend": cls,
            "secondary": spec.secondary, "secondary_value": now.get(spec.secondary), "baseline": baseline,
            "digits": spec.digits, "scale": spec.scale, "unit": spec.unit,
            "secondary_digits": spec.secondary_digits, "secondary_unit": spec.secondary_unit}


def _shown(value: Any, lang: str, digits: int = 0, scale: float = 1.0) -> str:
    return number(value * scale, lang, digits) if _is_number(value) else "—"


def level_name(level: Any, lang: str) -> str:
    """The Kazakh pollution level (1..4) as ``IV, very high``."""
    key = f"brief.level.{int(level)}" if _is_number(level) else ""
    return t(key, lang) if key and has(key) else "—"


def kpi_moves(now: Mapping[str, Any], before: Mapping[str, Any]) -> list[dict[str, Any]]:
    """KPIs that moved at least their :data:`MOVES` threshold: ``key, from, to, arrow, trend``,
    biggest relative move first."""
    out = []
    for key, (threshold, _digits, _scale, _unit) in MOVES.items():
        a, b = before.get(key), now.get(key)
        if not (_is_number(a) and _is_number(b)) or abs(b - a) < threshold:
            continue
        arrow, cls = trend(key, b, a)
        out.append({"key": key, "from": a, "to": b, "arrow": arrow, "trend": cls,
                    "size": abs(b - a) / threshold})
    return sorted(out, key=lambda m: -m["size"])


def changes(incidents: Iterable[Mapping[str, Any]], now: float, hours: float = TREND_H) -> dict[str, Any]:
    """Incidents opened and resolved in the last ``hours``: ``{"opened": [...], "resolved": [...]}``
    (documents, newest first)."""
    since = now - hours * 3600
    opened, resolved = [], []
    for inc in incidents:
        detected = _epoch(inc.get("detected_at"))
        if detected is not None and since <= detected <= now and inc.get("status") != "merged":
            opened.append(inc)
        closed = _epoch(inc.get("resolved_at"))
        if inc.get("status") == "resolved" and closed is not None and since <= closed <= now:
            resolved.append(inc)
    opened.sort(key=lambda i: -(_epoch(i.get("detected_at")) or 0))
    resolved.sort(key=lambda i: -(_epoch(i.get("resolved_at")) or 0))
    return {"opened": opened, "resolved": resolved}


def serious(incidents: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Unresolved WARNING / CRITICAL incidents, most severe then oldest first."""
    rows = [i for i in incidents if i.get("status") in UNRESOLVED and int(i.get("severity") or 0) >= 2]
    return sorted(rows, key=lambda i: (-int(i.get("severity") or 0), _epoch(i.get("detected_at")) or 0))


def district_numbers(kpi_docs: Mapping[str, Any], incidents: Iterable[Mapping[str, Any]],
                     district: str) -> dict[str, Any]:
    """A district's numbers (:data:`DISTRICT_KPIS`) and its unresolved incidents."""
    values: dict[str, Any] = {}
    for domain, key, _digits, _unit in DISTRICT_KPIS:
        doc = kpi_docs.get(domain) or {}
        values[key] = ((doc.get("values") or {}).get(district) or {}).get(key)
    mine = [i for i in incidents if i.get("status") in UNRESOLVED
            and (i.get("district") == district or district in (i.get("districts") or []))]
    return {"values": values, "incidents": sorted(mine, key=lambda i: -int(i.get("severity") or 0))}


def district_state(numbers: Mapping[str, Any]) -> str:
    """``bad``, ``warn`` or ``ok`` for a district's dot: an open serious incident or a value off
    target is bad; any open incident or a missed secondary target is warn."""
    values = numbers.get("values") or {}
    incs = numbers.get("incidents") or []
    if any(int(i.get("severity") or 0) >= 2 for i in incs):
        return "bad"
    off = [key for key, value in values.items() if meets(key, value) is False]
    if "air.aqi" in off and (values.get("air.aqi") or 0) > 150:
        return "bad"
    return "warn" if off or incs else "ok"


# --- reading -----------------------------------------------------------------------------------

_CACHE_LOCK = threading.Lock()
_HISTORY: dict[str, tuple[int, dict[str, Any]]] = {}
_ALL: dict[str, Any] = {"version": None, "docs": []}


def history_values(domain: str, *, now: datetime | None = None, hours: float = TREND_H) -> dict[str, Any]:
    """The city values of ``domain`` in the KPI history nearest ``now - hours`` (within
    :data:`HISTORY_SLACK`), or ``{}``. Cached per minute and process."""
    from workers.snapshots import read_history

    now = now or datetime.now(UTC)
    minute = int(now.timestamp() // 60)
    with _CACHE_LOCK:
        cached = _HISTORY.get(domain)
    if cached is not None and cached[0] == minute:
        return cached[1]
    values: dict[str, Any] = {}
    try:
        target = now - timedelta(hours=hours)
        entries = read_history(data.context().redis, domain, target - HISTORY_SLACK, target + HISTORY_SLACK)
        if entries:
            best = min(entries, key=lambda e: abs(int(e.get("version") or 0) / 1000 - target.timestamp()))
            values = (best.get("values") or {}).get("city") or {}
    except Exception:  # noqa: BLE001 - no trend is better than a broken brief
        values = {}
    with _CACHE_LOCK:
        _HISTORY[domain] = (minute, values)
    return values


def all_incidents(version: Any) -> list[dict[str, Any]]:
    """Every incident (resolved ones too, newest 500), re-read only when the incidents version moves."""
    with _CACHE_LOCK:
        if _ALL["version"] == version and _ALL["docs"]:
            return _ALL["docs"]
    try:
        from workers.incidents import IncidentStore

        docs = IncidentStore(data.context().redis, data.context().pack.zone).list(
            "all", now=datetime.now(UTC), limit=500)
    except Exception:  # noqa: BLE001 - fall back to the open ones from the hub
        docs = list(data.topic("incidents").doc or [])
    with _CACHE_LOCK:
        _ALL.update(version=version, docs=docs)
    return docs


def _kpi_docs() -> dict[str, Any]:
    return {d: data.topic(f"kpi:{d}").doc or {} for d in KPI_DOMAINS}


def snapshot(now: float | None = None) -> dict[str, Any]:
    """Everything the page shows, as data (no components): the basis of what is re-sent."""
    now = time.time() if now is None else now
    topic = data.topic("incidents")
    open_docs = list(topic.doc or [])
    everything = all_incidents(topic.version)
    docs = _kpi_docs()
    current: dict[str, Any] = {}
    before: dict[str, Any] = {}
    moment = datetime.fromtimestamp(now, UTC)
    for domain in KPI_DOMAINS:
        current.update(((docs[domain].get("values") or {}).get("city")) or {})
        before.update(history_values(domain, now=moment))
    current.update(incident_counts(open_docs, now))
    if everything:
        before.update(incident_counts(everything, now - TREND_H * 3600))
    current = {k: v for k, v in current.items() if not isinstance(v, list | dict)}
    return {"now": now, "current": current, "before": before, "open": open_docs, "all": everything, "docs": docs,
            "has_history": any(k in before for k in MOVES)}


# --- components --------------------------------------------------------------------------------


def _names() -> dict[str, Mapping[str, str]]:
    return {d.id: d.names.as_dict() for d in data.context().pack.districts}


def _place(inc: Mapping[str, Any], lang: str) -> str:
    district = inc.get("district")
    found = _names().get(str(district)) if district else None
    return names(found, lang) if found else (str(district) if district else t("wall.citywide", lang))


def _age(ts: float | None, now: float, lang: str) -> html.Span:
    if ts is None:
        text = t("age.none", lang)
    else:
        s = max(0, int(now - ts))
        text = (t("age.seconds", lang, n=s) if s < 60 else t("age.minutes", lang, n=s // 60) if s < 3600
                else t("age.hours", lang, n=s // 3600))
    return html.Span(text, className="sc-age", **{"data-ts": "" if ts is None else str(int(ts * 1000))})


def _target_text(item: Mapping[str, Any], lang: str) -> str:
    if item["key"] == "traffic.score":
        return t("brief.usual", lang, v=_shown(item["baseline"], lang, 1)) if _is_number(item["baseline"]) else ""
    if item["target"] is None:
        return ""
    v = _shown(item["target"], lang, 0, item["scale"]) + (f" {item['unit']}" if item["unit"] == "%" else "")
    return t("brief.target_le" if item["good"] == "down" else "brief.target_ge", lang, v=v)


def _secondary_text(item: Mapping[str, Any], lang: str) -> str:
    key, value = item["secondary"], item["secondary_value"]
    if not key or key == "traffic.score_baseline":
        return ""
    if key == "air.pollution_level":
        return t("brief.sec.pollution", lang, v=level_name(value, lang))
    unit = t(item["secondary_unit"], lang) if item["secondary_unit"] else ""
    shown = _shown(value, lang, item["secondary_digits"])
    return f"{kpi_name(key, lang)}: {shown}" + (f" {unit}" if unit and shown != "—" else "")


def tile(item: Mapping[str, Any], lang: str) -> html.Div:
    """One headline tile: domain, name, value (green / red by the target), target, trend vs 3 h ago."""
    meets_ = item["meets"]
    value_class = "brief-value" + ("" if meets_ is None else (" ok" if meets_ else " bad"))
    before = item["before"]
    ago = t("brief.ago", lang, h=TREND_H, v=_shown(before, lang, item["digits"], item["scale"])) if _is_number(
        before) else t("brief.ago_none", lang, h=TREND_H)
    return html.Div([
        html.Div(t(f"brief.domain.{item['domain']}", lang), className="brief-domain"),
        html.Div(kpi_name(item["key"], lang), className="brief-name"),
        html.Div([html.Span(_shown(item["value"], lang, item["digits"], item["scale"]), className=value_class,
                            id=f"brief-value-{item['id']}"),
                  html.Span(item["unit"], className="brief-unit")], className="brief-value-row"),
        html.Div(_target_text(item, lang), className="brief-target"),
        html.Div([html.Span(item["arrow"], className=f"brief-trend {item['trend']}") if item["arrow"] else None, ago],
                 className="brief-ago"),
        html.Div(_secondary_text(item, lang), className="brief-secondary"),
    ], className=f"brief-tile tile-{item['id']}" + ("" if meets_ is None else (" ok" if meets_ else " bad")),
        id=f"brief-tile-{item['id']}")


def _move_text(move: Mapping[str, Any], lang: str) -> list[Any]:
    _threshold, digits, scale, unit = MOVES[move["key"]]
    if move["key"] == "air.pollution_level":
        a, b = level_name(move["from"], lang), level_name(move["to"], lang)
    else:
        a, b = _shown(move["from"], lang, digits, scale), _shown(move["to"], lang, digits, scale)
        if unit:
            b = f"{b} {unit}"
    return [html.Span(kpi_name(move["key"], lang), className="what"),
            html.Span(f"{a} → {b}", className="fromto"),
            html.Span(move["arrow"], className=f"brief-trend {move['trend']}")]


def changes_block(snap: Mapping[str, Any], lang: str) -> list[Any]:
    """"What changed": incidents opened / resolved in the window, then the KPI moves."""
    found = changes(snap["all"], snap["now"])
    opened, resolved = found["opened"], found["resolved"]
    out: list[Any] = [html.Div([
        html.Div([html.Span(number(len(opened), lang), className="big"), t("brief.opened", lang)], className="count"),
        html.Div([html.Span(number(len(resolved), lang), className="big"), t("brief.resolved", lang)],
                 className="count"),
    ], className="brief-counts")]
    for inc in opened[:OPENED_ROWS]:
        severity = int(inc.get("severity") or 1)
        out.append(html.Div([html.Span(t(f"wall.severity.{severity}", lang), className=f"brief-sev sev-{severity}"),
                             html.Span(_type(inc.get("type"), lang), className="what"),
                             html.Span(_place(inc, lang), className="where"),
                             _age(_epoch(inc.get("detected_at")), snap["now"], lang)], className="brief-line"))
    moves = kpi_moves(snap["current"], snap["before"])
    if moves:
        out.append(html.Div(t("brief.moves", lang), className="brief-subhead"))
        out += [html.Div(_move_text(m, lang), className="brief-line move") for m in moves[:5]]
    else:
        key = "brief.no_moves" if snap.get("has_history") else "brief.no_history"
        out.append(html.Div(t(key, lang, h=TREND_H), className="brief-muted"))
    return out


def _type(kind: Any, lang: str) -> str:
    key = f"wall.type.{kind}"
    return t(key, lang) if kind and has(key) else str(kind or "—")


def incidents_block(snap: Mapping[str, Any], lang: str) -> list[Any]:
    """Open WARNING / CRITICAL incidents: severity, type, district, age, status, assignee."""
    rows = serious(snap["open"])
    if not rows:
        return [html.Div(t("brief.no_incidents", lang), className="brief-muted")]
    out: list[Any] = []
    for inc in rows[:INCIDENT_ROWS]:
        severity = int(inc.get("severity") or 2)
        status = inc.get("status")
        out.append(html.Div([
            html.Span(t(f"wall.severity.{severity}", lang), className=f"brief-sev sev-{severity}"),
            html.Div([
                html.Div([html.Span(_type(inc.get("type"), lang), className="what"),
                          html.Span(_place(inc, lang), className="where")], className="l1"),
                html.Div([_age(_epoch(inc.get("detected_at")), snap["now"], lang),
                          html.Span(t(f"wall.status.{status}", lang) if has(f"wall.status.{status}") else str(status),
                                    className=f"status st-{status}"),
                          html.Span(str(inc.get("assignee")), className="assignee") if inc.get("assignee") else None],
                         className="l2"),
            ], className="body"),
        ], className=f"brief-inc sev-{severity}", **{"data-id": str(inc.get("id"))}))
    if len(rows) > INCIDENT_ROWS:
        out.append(html.Div(t("wall.more", lang, n=len(rows) - INCIDENT_ROWS), className="brief-muted"))
    return out


def district_buttons(snap: Mapping[str, Any], lang: str, selected: str | None) -> list[Any]:
    """One button per district (≥ 44 px), with a dot for its state."""
    out = []
    for d in data.context().pack.districts:
        state = district_state(district_numbers(snap["docs"], snap["open"], d.id))
        out.append(html.Button([html.I(className=f"dot {state}"), names(d.names.as_dict(), lang)],
                               id={"type": "brief-d", "id": d.id}, n_clicks=0,
                               className="brief-dbtn" + (" selected" if d.id == selected else "")))
    return out


def district_panel(snap: Mapping[str, Any], lang: str, district: str | None) -> list[Any]:
    """The selected district's numbers and incidents."""
    if not district:
        return [html.Div(t("brief.pick", lang), className="brief-muted")]
    found = _names().get(district)
    numbers = district_numbers(snap["docs"], snap["open"], district)
    cells = []
    for _domain, key, digits, unit in DISTRICT_KPIS:
        value = numbers["values"].get(key)
        shown = level_name(value, lang) if key == "air.pollution_level" else _shown(value, lang, digits)
        ok = meets(key, value)
        cells.append(html.Div([html.Div(kpi_name(key, lang), className="n"),
                               html.Div([html.Span(shown, className="v" + ("" if ok is None else (" ok" if ok else
                                                                                                  " bad"))),
                                         html.Span(unit if shown != "—" and key != "air.pollution_level" else "",
                                                   className="u")])], className="brief-dcell"))
    incs = numbers["incidents"]
    inc_part = [html.Div(t("brief.district_incidents", lang, n=len(incs)), className="brief-subhead")]
    inc_part += [html.Div([html.Span(t(f"wall.severity.{int(i.get('severity') or 1)}", lang),
                                     className=f"brief-sev sev-{int(i.get('severity') or 1)}"),
                           html.Span(_type(i.get("type"), lang), className="what"),
                           _age(_epoch(i.get("detected_at")), snap["now"], lang)], className="brief-line")
                 for i in incs[:4]]
    return [html.Div(names(found, lang) if found else district, className="brief-dname", id="brief-dname"),
            html.Div(cells, className="brief-dcells"), html.Div(inc_part, className="brief-dincs")]


def _default_district(snap: Mapping[str, Any]) -> str | None:
    """The district to show first: the one with most serious incidents, else the worst AQI."""
    districts = [d.id for d in data.context().pack.districts]
    if not districts:
        return None

    def score(d: str) -> tuple[int, float]:
        nums = district_numbers(snap["docs"], snap["open"], d)
        aqi = nums["values"].get("air.aqi")
        return (sum(1 for i in nums["incidents"] if int(i.get("severity") or 0) >= 2),
                float(aqi) if _is_number(aqi) else -1.0)

    return max(districts, key=score)


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _parts(snap: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The headlines as data and a digest of each section's data (what decides a re-send)."""
    items = [headline(spec, snap["current"], snap["before"]) for spec in HEADLINES]
    minute = int(snap["now"] // 60)
    found = changes(snap["all"], snap["now"])
    keys = {
        "tiles": _digest([_digest(i) for i in items]),
        "changes": _digest([[i.get("id") for i in found["opened"]], [i.get("id") for i in found["resolved"]],
                            kpi_moves(snap["current"], snap["before"]), minute // 5]),
        "incidents": _digest([[i.get("id"), i.get("status"), i.get("severity"), i.get("assignee")]
                              for i in serious(snap["open"])]),
        "districts": _digest([snap["docs"].get(d, {}).get("version") for d in KPI_DOMAINS]
                             + [[i.get("id"), i.get("status"), i.get("severity")] for i in snap["open"]]),
    }
    return items, keys


# --- the page -----------------------------------------------------------------------------------


def layout(lang: str | None = None, district: str | None = None, **_query: Any) -> html.Div:
    """The brief, drawn from the hub's documents (usable before any update)."""
    lang = lang_of(lang) if lang else context.lang()
    snap = snapshot()
    items, keys = _parts(snap)
    known = {d.id for d in data.context().pack.districts}
    selected = district if district in known else _default_district(snap)
    seen = {"tiles": [_digest(i) for i in items], **keys, "selected": selected, "minute": int(snap["now"] // 60),
            "mark": [data.topic(name).version for name in ("incidents", *(f"kpi:{d}" for d in KPI_DOMAINS))]}
    return html.Div([
        html.Div([tile(item, lang) for item in items], id="brief-tiles", className="brief-tiles"),
        html.Div([
            html.Section([html.H2(t("brief.changes", lang, h=TREND_H)),
                          html.Div(changes_block(snap, lang), id="brief-changes")], className="brief-card"),
            html.Section([html.H2(t("brief.incidents", lang)),
                          html.Div(incidents_block(snap, lang), id="brief-incidents")], className="brief-card"),
        ], className="brief-row"),
        html.Section([
            html.H2(t("brief.districts", lang)),
            html.Div([html.Div(district_buttons(snap, lang, selected), id="brief-districts", className="brief-dlist"),
                      html.Div(district_panel(snap, lang, selected), id="brief-district", className="brief-dpanel")],
                     className="brief-drill"),
        ], className="brief-card"),
        dcc.Store(id="brief-seen", data=seen),
        dcc.Store(id="brief-cfg", data={"lang": lang}),
        dcc.Store(id="brief-sel", data=selected),
    ], className="brief", id="brief-page", lang=lang)


@callback(Output("brief-tiles", "children"), Output("brief-changes", "children"), Output("brief-incidents", "children"),
          Output("brief-districts", "children"), Output("brief-district", "children"), Output("brief-seen", "data"),
          Input("sc-live", "data"), Input("brief-sel", "data"), State("brief-seen", "data"), State("brief-cfg", "data"),
          prevent_initial_call=True)
def update(live: Any, selected: str | None, seen: dict[str, Any] | None, cfg: dict[str, Any] | None) -> tuple[Any, ...]:
    """Send only the sections whose content changed (tiles one by one), nothing on a quiet tick."""
    lang = (cfg or {}).get("lang") if (cfg or {}).get("lang") in LANGS else context.lang()
    seen = dict(seen or {})
    versions = (live or {}).get("versions") or {}
    mark = [versions.get(name) for name in ("incidents", *(f"kpi:{d}" for d in KPI_DOMAINS))]
    minute = int(time.time() // 60)
    picked = ctx.triggered_id == "brief-sel"
    if not picked and mark == seen.get("mark") and minute == seen.get("minute"):
        raise PreventUpdate
    snap = snapshot()
    items, keys = _parts(snap)
    out: list[Any] = [no_update] * 6
    tiles_before = seen.get("tiles") or []
    digests = [_digest(i) for i in items]
    if digests != tiles_before:
        patch = Patch()
        for i, (item, digest) in enumerate(zip(items, digests, strict=True)):
            if i >= len(tiles_before) or digest != tiles_before[i]:
                patch[i] = tile(item, lang)
        out[0] = patch
    if keys["changes"] != seen.get("changes"):
        out[1] = changes_block(snap, lang)
    if keys["incidents"] != seen.get("incidents"):
        out[2] = incidents_block(snap, lang)
    if picked or keys["districts"] != seen.get("districts") or selected != seen.get("selected"):
        out[3] = district_buttons(snap, lang, selected)
        out[4] = district_panel(snap, lang, selected)
    seen.update(keys, tiles=digests, mark=mark, minute=minute, selected=selected)
    out[5] = seen
    return tuple(out)


@callback(Output("brief-sel", "data"), Input({"type": "brief-d", "id": ALL}, "n_clicks"), prevent_initial_call=True)
def pick(_clicks: Sequence[int | None]) -> Any:
    """Touching a district shows its numbers."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not any(item.get("value") for item in ctx.triggered):
        raise PreventUpdate
    return trigger["id"]
