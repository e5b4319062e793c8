"""The incidents console's pure builders (``dashboards/pages/incidents.py``) on small fixture
documents, no server: SLA clocks and their texts, evidence tables per signal, links, the audit
log, action validation and the store's refusals in the operator's language, and the actions on a
real incident store with the role check."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.citypack import load_pack
from dashboards import context, data
from dashboards.i18n import LANGS, catalog, t

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
XSS = "<img src=x onerror=alert(1)>"


def load_page(name: str):
    """Import ``dashboards/pages/<name>.py`` as Dash pages do (it registers itself), then restore
    Dash's global registries so other tests' apps are not affected."""
    import dash
    import dash._callback as cb
    import dash._get_app as get_app

    saved = (list(cb.GLOBAL_CALLBACK_LIST), dict(cb.GLOBAL_CALLBACK_MAP), list(cb.GLOBAL_INLINE_SCRIPTS),
             dict(dash.page_registry), get_app.APP)
    dash.Dash(__name__, use_pages=True, pages_folder="")
    spec = importlib.util.spec_from_file_location(f"test_pages_{name}", ROOT / "dashboards" / "pages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def restore() -> None:
        cb.GLOBAL_CALLBACK_LIST[:] = saved[0]
        cb.GLOBAL_CALLBACK_MAP.clear()
        cb.GLOBAL_CALLBACK_MAP.update(saved[1])
        cb.GLOBAL_INLINE_SCRIPTS[:] = saved[2]
        dash.page_registry.clear()
        dash.page_registry.update(saved[3])
        get_app.APP = saved[4]

    return module, restore


@pytest.fixture(scope="module")
def page():
    module, restore = load_page("incidents")
    yield module
    restore()


@pytest.fixture(scope="module", autouse=True)
def city_context():
    """A data context with the demo pack (no hub, no Redis unless a test sets one)."""
    old = (data._CTX, data._HUB)
    data._CTX = SimpleNamespace(pack=load_pack(None), redis=None)
    yield
    data._CTX, data._HUB = old


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def event(signal: str, evidence: dict, *, detector: str = "segment_drop", n: int = 1, severity: int = 2,
          district: str | None = "almaly", phase: str = "open", lat: float | None = 43.25) -> dict:
    onset = NOW - timedelta(minutes=40)
    return {"id": f"{detector}:k{n}:{int(onset.timestamp())}", "detector": detector, "signal": signal, "key": f"k{n}",
            "phase": phase, "onset": iso(onset + timedelta(minutes=n)), "detected_at": iso(onset), "at": iso(NOW),
            "severity": severity, "district": district, "lat": lat, "lon": 76.9 if lat else None, "radius_m": None,
            "evidence": evidence, "ended_at": iso(NOW) if phase == "closed" else None}


TRAFFIC = {"segment_id": "TOLEBI-01", "segment_name": "Tole bi Street", "speed_kmh": 9.3, "baseline_kmh": 34.2,
           "own_ratio": 0.27, "own_ratio_max": 0.6, "rel_ratio": 0.28, "rel_ratio_max": 0.6, "city_ratio": 0.97,
           "free_flow_kmh": 45, "segments": [{}, {}], "windows": 20, "unit": "km/h",
           "window_start": "2026-11-22T09:55:00Z", "window_end": "2026-11-22T10:00:00Z", "segment_middle": [43.2, 76.9]}
APPEALS = {"category": "water_supply", "count": 39, "expected": 0.8, "citywide_count": 53, "zone_share": 0.014,
           "p_value": 4.7e-11, "p_threshold": 1.3e-8, "llr": 22.6, "centre": [43.25, 76.9], "radius_m": 250,
           "window_min": 60, "window_start": "2026-11-22T09:00:00Z", "window_end": "2026-11-22T10:00:00Z",
           "first_case": "2026-11-22T09:05:00Z", "last_case": "2026-11-22T09:55:00Z", "unit": "appeals"}


def incident(**over) -> dict:
    events = [event("traffic.drop", TRAFFIC, n=1), event("appeals.burst", APPEALS, detector="appeal_hotspot", n=2)]
    doc = {"id": "INC-20261122-0001", "type": "road_crash", "title": None, "status": "open", "severity": 2,
           "active": True, "detected_at": iso(NOW - timedelta(minutes=10)), "district": "almaly",
           "districts": ["almaly"], "events": {e["id"]: e for e in events}, "links": [
               {"a": events[0]["id"], "b": events[1]["id"], "rule": "road_crash", "score": 0.71, "distance_m": 850,
                "dt_s": 720}],
           "assignee": None, "acknowledged_at": None, "resolved_at": None, "merged_at": None, "version": 3,
           "sla": {"ack_due": iso(NOW - timedelta(minutes=10) + timedelta(minutes=15)),
                   "resolve_due": iso(NOW - timedelta(minutes=10) + timedelta(hours=24))}}
    doc.update(over)
    return doc


# --- catalog -----------------------------------------------------------------------------------


def test_every_incidents_key_has_three_languages_and_the_placeholders_match():
    import json
    import re

    own = json.loads((ROOT / "dashboards/locales/incidents.json").read_text(encoding="utf-8"))
    assert own and set(own) <= set(catalog())
    for key, texts in own.items():
        assert set(texts) == set(LANGS), key
        marks = {lang: sorted(re.findall(r"{(\w+)}", texts[lang])) for lang in LANGS}
        assert marks["kk"] == marks["ru"] == marks["en"], key


def test_every_agency_signal_detector_and_rule_is_translated(page):
    from workers.correlate import RULES
    from workers.rules import detector_classes

    for code in page.AGENCIES:
        assert f"inc.agency.{code}" in catalog()
    for name, cls in detector_classes().items():
        assert f"inc.detector.{name}" in catalog(), name
        if getattr(cls, "signal", ""):
            assert f"inc.signal.{cls.signal}" in catalog(), cls.signal
    for rule in RULES:
        assert f"inc.rule.{rule.name}" in catalog(), rule.name


# --- SLA clocks --------------------------------------------------------------------------------


def test_sla_clock_text_counts_down_and_turns_breached(page):
    now = NOW.timestamp()
    doc = incident()
    early = now - 120
    ack, resolve = page.sla_clocks(doc, early)
    assert (ack["kind"], ack["state"]) == ("ack", "running")
    assert page.sla_text(ack, early, "en") == "acknowledge within 7:00"
    assert page.sla_text(ack, early, "ru") == "принять за 7:00"
    assert page.sla_text(resolve, early, "en") == "resolve within 23:52:00"
    assert page.sla_headline(doc, now)["kind"] == "ack"
    # close to due: amber; past due: breached, and the text says by how much
    assert page.sla_clocks(doc, now + 240)[0]["state"] == "due"
    late = page.sla_clocks(doc, now + 365)[0]
    assert late["state"] == "breached"
    assert page.sla_text(late, now + 365, "en") == "acknowledgement overdue by 1:05"
    assert page.sla_text(late, now + 365, "kk") == "қабылдау 1:05 кешікті"


def test_sla_clocks_stop_when_acknowledged_and_resolved(page):
    now = NOW.timestamp()
    acked = incident(status="acknowledged", acknowledged_at=iso(NOW + timedelta(minutes=7)))
    ack, resolve = page.sla_clocks(acked, now + 3600)
    assert ack["state"] == "late"  # acknowledged 2 min after the 15-minute due time
    assert page.sla_text(ack, now, "en") == "acknowledged 2 min late"
    assert page.sla_headline(acked, now + 3600)["kind"] == "resolve"
    done = incident(status="resolved", acknowledged_at=iso(NOW), resolved_at=iso(NOW + timedelta(hours=1)))
    clocks = page.sla_clocks(done, now + 10 * 3600)
    assert [c["state"] for c in clocks] == ["met", "met"]
    assert page.sla_text(clocks[1], now, "ru") == "решён в срок"
    # a running clock carries its due time for the browser; a stopped one does not
    running = page.sla_span(page.sla_headline(incident(), now), now, "en")
    assert running.to_plotly_json()["props"]["data-due"] == str(int(page.sla_clocks(incident(), now)[0]["due"] * 1000))
    stopped = page.sla_span(clocks[1], now, "en").to_plotly_json()["props"]
    assert "data-due" not in stopped
    assert page.clock_text(59) == "0:59" and page.clock_text(3723) == "1:02:03"


def test_list_sorts_by_severity_and_breach_and_filters(page):
    now = NOW.timestamp()
    a = incident(id="A", severity=2)
    b = incident(id="B", severity=3)
    c = incident(id="C", severity=2, sla={"ack_due": iso(NOW - timedelta(minutes=1)), "resolve_due": iso(NOW)})
    r = incident(id="R", status="resolved", resolved_at=iso(NOW))
    assert [i["id"] for i in sorted([a, b, c], key=lambda i: page.urgency(i, now))] == ["B", "C", "A"]
    assert [i["id"] for i in page.filter_incidents([a, b, c, r])] == ["A", "B", "C"]
    assert [i["id"] for i in page.filter_incidents([a, b, c, r], resolved=True)] == ["A", "B", "C", "R"]
    assert [i["id"] for i in page.filter_incidents([a, b, c], severities=[3])] == ["B"]
    assert page.filter_incidents([a, b], statuses=["acknowledged"]) == []
    assert page.filter_incidents([a], types=["smog"]) == []


# --- evidence, links, audit ---------------------------------------------------------------------


def test_traffic_evidence_reads_value_against_baseline_and_threshold(page):
    rows, other = page.evidence_rows(event("traffic.drop", TRAFFIC), "en")
    table = {what: (value, ref) for what, value, ref in rows}
    assert table["Road segment"] == ("Tole bi Street · TOLEBI-01", "")
    assert table["Speed"] == ("9.3 km/h", "usual 34.2 km/h")
    assert table["Speed / usual"] == ("27 %", "threshold ≤ 60 %")
    assert table["Segments affected"] == ("2", "")
    assert other == []  # every field the detector writes is in the table
    ru = {what: value for what, value, _ in page.evidence_rows(event("traffic.drop", TRAFFIC), "ru")[0]}
    assert ru["Скорость"] == "9,3 км/ч"


def test_scan_evidence_shows_counts_expected_and_p_values(page):
    rows, _ = page.evidence_rows(event("appeals.burst", APPEALS, detector="appeal_hotspot"), "en")
    table = {what: (value, ref) for what, value, ref in rows}
    assert table["Category"] == ("Water supply", "")
    assert table["Cases in the zone"] == ("39 appeals", "expected 0.80")
    assert table["p-value"] == ("4.7·10⁻¹¹", "threshold ≤ 1.3·10⁻⁸")
    assert table["Zone radius"] == ("250 m", "")
    assert page.p_text(0.0123, "ru") == "0,012"


def test_air_response_and_source_evidence(page):
    air = {"station_id": "ALM-01", "aqi": 212, "category": "very_unhealthy", "dominant": "pm25", "averaging": "24h",
           "concentration": 0.162, "unit": "mg/m3", "si": 12.4, "si_pollutant": "pm25", "pollution_level": "very_high",
           "limit_multiples": {"pm25": 12.4, "no2": 1.1},
           "thresholds": {"advisory_aqi": 151, "warning_aqi": 0, "advisory_si": 4, "warning_si": 10, "critical_si": 20}}
    table = {w: (v, r) for w, v, r in page.evidence_rows(event("air.aqi", air, detector="air_quality"), "en")[0]}
    assert table["Station"][0] == "Post ALM-01, City centre"
    assert table["AQI (NowCast)"] == ("212 · very unhealthy", "advisory ≥ 151")
    assert table["Standard index (SI)"] == ("12.4 × MPC (PM2.5)", "warning > 10; critical > 20")
    assert table["Pollution level"][0] == "IV, very high"
    response = {"calls": 25, "breaches": 12, "share": 0.48, "arrived_late": 9, "still_waiting": 3,
                "window_start": iso(NOW - timedelta(hours=1)), "window_end": iso(NOW),
                "per_category": {"1": {"norm_min": 10, "calls": 5, "breaches": 4}},
                "worst": [{"call_id": "C-1", "category": 1, "wait_min": 31.5, "norm_min": 10, "arrived": False}],
                "thresholds": {"min_breaches": 10, "warning_share": 0.4, "critical_share": 0.6,
                               "critical_min_breaches": 12}}
    ev = event("ambulance.response_time", response, detector="response_sla")
    table = {w: (v, r) for w, v, r in page.evidence_rows(ev, "en")[0]}
    assert table["Share past the norm"] == ("48 %", "warning ≥ 40 %, critical ≥ 60 %")
    assert len(page.sub_tables(ev, "en")) == 2
    silent = {"feed": "traffic", "last_delivery": "2026-11-22T09:02:52Z", "expected_gap_s": 600.0,
              "cadence_learnt": False, "silent_for_s": 2780.0, "threshold_s": 1800.0, "gap_quantile": 0.95}
    table = {w: (v, r) for w, v, r in page.evidence_rows(event("feed.outage", silent, detector="feed_outage"), "en")[0]}
    assert table["Silent for"] == ("46 min", "threshold > 30 min")
    assert table["Expected cadence"] == ("10 min", "default")


def test_unknown_fields_and_signals_are_never_hidden_and_stay_text(page):
    rows, other = page.evidence_rows(event("traffic.drop", {**TRAFFIC, "new_field": XSS}), "en")
    assert ("new_field", XSS) in other
    rows, other = page.evidence_rows(event("weather.storm", {"wind_ms": 31.5, "note": XSS}, detector="x"), "en")
    assert rows == [] and ("note", XSS) in other
    card = page.event_card(1, event("weather.storm", {"note": XSS}, detector="x"), "en")
    assert XSS in str(card)  # a text child (Dash escapes it); nothing is marked up
    assert "dangerouslySetInnerHTML" not in str(card.to_plotly_json())
    # the map's tooltips go through maps.tip (escaped)
    doc = incident()
    doc["events"][next(iter(doc["events"]))]["evidence"]["segment_name"] = XSS
    tips = " ".join(f["properties"]["tooltip"] for f in page.event_points(doc, "en")["features"])
    assert "<img" not in tips and "&lt;img" in tips


def test_links_explain_rule_score_distance_and_gap(page):
    assert page.link_rows(incident(), "en") == [
        ("1 → 2", "road crash: traffic drop, calls and road appeals nearby", "0.71", "850 m", "12 min")]
    citywide = incident(links=[{"a": "x", "b": "y", "rule": "smog_health", "score": 0.5, "distance_m": None,
                                "dt_s": 0}])
    assert page.link_rows(citywide, "ru")[0][3:] == ("весь город", "одновременно")


def test_audit_rows_name_who_did_what_newest_first(page):
    doc = incident()
    first = next(iter(doc["events"]))
    entries = [
        {"at": iso(NOW), "actor": "system", "action": "create", "detail": {"type": "road_crash", "events": [first],
                                                                           "rule": None, "score": None, "severity": 2}},
        {"at": iso(NOW + timedelta(minutes=1)), "actor": "system", "action": "events",
         "detail": {"events": {first: "closed"}, "links": 1, "severity": {"from": 2, "to": 3}}},
        {"at": iso(NOW + timedelta(minutes=2)), "actor": "olga", "action": "assign",
         "detail": {"agency": "Дорожная полиция", "previous": None, "text": XSS}},
    ]
    numbers = {first: 1}
    rows = page.audit_rows(entries, "en", numbers)
    assert rows[0][1:3] == ("olga", "assigned")
    assert rows[0][3] == f"Road police · «{XSS}»"  # the catalog agency in the reader's language, notes as written
    assert rows[1][3] == "1: closed · links: +1 · warning → critical"
    assert rows[2][1:3] == ("system", "created")
    assert rows[0][0] == "22 Nov 15:02:00"  # the city's zone (Asia/Almaty, UTC+5)
    # an event re-emitted again and again is one row
    repeated = [{"at": iso(NOW + timedelta(minutes=15 * i)), "actor": "system", "action": "events",
                 "detail": {"events": {first: "update"}, "links": 0}} for i in range(4)]
    rows = page.audit_rows(entries[:1] + repeated, "en", numbers)
    assert [r[3] for r in rows] == ["1: updated (×4 since 15:00)", "Road crash · events: 1 · warning"]


# --- actions ------------------------------------------------------------------------------------


def test_validation_messages_in_the_operators_language(page):
    assert page.validate("assign", {}, "en") == "Choose an agency or type its name"
    assert page.validate("assign", {"agency": "road_police"}, "en") is None
    assert page.validate("assign", {"agency_free": "x" * 129}, "ru") == "Слишком длинно: 129 символов, не больше 128"
    assert page.validate("resolve", {"text": "  "}, "kk") == t("inc.err.resolve_required", "kk")
    assert page.validate("note", {"text": "ok"}, "en") is None
    assert page.validate("note", {"text": "x" * 2001}, "en") == "Too long: 2001 characters, at most 2000"
    assert page.validate("merge", {}, "en") == "Choose the incident to merge into this one"
    assert page.validate("split", {"events": []}, "en") == "Choose the events to move out"
    assert page.agency_of("road_police", "", "ru") == "Дорожная полиция"
    assert page.agency_of("road_police", " Patrol 12 ", "ru") == "Patrol 12"


def test_store_refusals_are_translated(page):
    from workers.incidents import IncidentError

    cases = [
        (IncidentError("cannot acknowledge incident INC-1: it is assigned; acknowledge needs status open", code=409),
         "acknowledge", "ru", "Сейчас невозможно: инцидент назначен (Принять)"),
        (IncidentError("cannot assign incident INC-1: it is resolved (reopen it first); assign needs status open",
                       code=409), "assign", "en", "The incident is resolved: reopen it first"),
        (IncidentError("cannot escalate incident INC-1: it is already critical", code=409), "escalate", "en",
         "Already critical: it cannot be escalated further"),
        (IncidentError("cannot note incident INC-1: it was merged into INC-2; act on that one; note needs status x",
                       code=409), "note", "kk", "Бұл оқиға INC-2 оқиғасына біріктірілген: соны өңдеңіз"),
        (IncidentError("agency is required: a non-empty name of at most 128 characters"), "assign", "en",
         "Choose an agency or type its name"),
        (IncidentError("cannot split every event out of INC-1; split some, or merge instead"), "split", "en",
         "Not every event: leave at least one (or merge instead)"),
        (IncidentError("something new", code=422), "note", "en", "Refused (422): something new"),
    ]
    for err, action, lang, expected in cases:
        assert page.error_message(err, lang, action=action) == expected


def test_perform_acts_as_the_signed_in_operator_and_refuses_other_roles(page, redis):
    from dashboards.auth import Principal
    from workers.incidents import IncidentStore

    pack = load_pack(None)
    data._CTX = SimpleNamespace(pack=pack, redis=redis)
    store = IncidentStore(redis, pack.zone)
    doc = store.create({"type": "road_crash"}, [event("traffic.drop", TRAFFIC)], now=NOW)
    token = context.ACCOUNT.set(Principal("lev", "leadership"))
    try:
        done, message, _ = page.perform(doc["id"], "acknowledge", {}, "en", NOW)
        assert (done, message) == (False, "Only an operator can act on incidents")
        assert store.get(doc["id"], NOW)["status"] == "open"
    finally:
        context.ACCOUNT.reset(token)
    token = context.ACCOUNT.set(Principal("olga", "operator"))
    try:
        done, message, updated = page.perform(doc["id"], "acknowledge", {}, "en", NOW)
        assert done and message == f"{doc['id']} acknowledged by olga"
        assert updated["acknowledged_by"] == "olga"
        done, message, _ = page.perform(doc["id"], "acknowledge", {}, "ru", NOW)
        assert not done and message == "Сейчас невозможно: инцидент принят (Принять)"
        done, message, updated = page.perform(doc["id"], "assign", {"agency": "road_police", "text": XSS}, "en", NOW)
        assert done and updated["assignee"] == "Road police"
        done, _, _ = page.perform(doc["id"], "note", {"text": "patrol on site"}, "en", NOW)
        done, message, _ = page.perform(doc["id"], "resolve", {"text": ""}, "en", NOW)
        assert not done and message == "Describe the resolution: what was done"
        done, _, updated = page.perform(doc["id"], "resolve", {"text": "cleared"}, "en", NOW)
        assert done and updated["status"] == "resolved" and updated["resolved_by"] == "olga"
        actions = [(e["actor"], e["action"]) for e in store.audit(doc["id"])]
        assert actions == [("system", "create"), ("olga", "acknowledge"), ("olga", "assign"), ("olga", "note"),
                           ("olga", "resolve")]
        assert page.buttons_state(updated) == {"acknowledge": False, "assign": False, "escalate": False,
                                               "resolve": False, "note": True, "reopen": True, "merge": False,
                                               "split": False}
    finally:
        context.ACCOUNT.reset(token)
        data._CTX = SimpleNamespace(pack=pack, redis=None)
