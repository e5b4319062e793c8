"""The public indicators builder: delay, hours, suppression (primary and complementary), nothing personal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from workers import public
from workers.public import CITY, NO_DATA, OK, SUPPRESSED, Area, ambulance_counts, build, period, suppress

ZONE = ZoneInfo("Asia/Almaty")
AREAS = [Area(CITY, "city", {"kk": "Алматы", "ru": "Алматы", "en": "Almaty"}, 1000),
         *(Area(d, "district", {"kk": d, "ru": d, "en": d}, 100) for d in ("a", "b", "c", "d"))]
NOW = datetime(2026, 11, 22, 9, 35, tzinfo=UTC)  # 14:35 in Almaty


def entry(domain: str, at: datetime, values: dict) -> dict:
    return {"domain": domain, "version": int(at.timestamp() * 1000), "computed_at": at.isoformat(), "values": values}


def appeals(at: datetime, per_area: dict[str, tuple[int, int, int]]) -> dict:
    """per_area: area -> (open, new_last_hour, overdue)."""
    return entry("appeals", at, {a: {"appeals.open": o, "appeals.new_last_hour": n, "appeals.overdue": d,
                                     "appeals.top_categories": {"roads": 3}} for a, (o, n, d) in per_area.items()})


# --- time ---------------------------------------------------------------------------------------


def test_period_is_delayed_and_made_of_completed_hours():
    hours = period(NOW, ZONE, delay_min=60, hours=24)
    assert len(hours) == 24
    assert hours[-1] == (datetime(2026, 11, 22, 7, tzinfo=UTC), datetime(2026, 11, 22, 8, tzinfo=UTC))
    assert all(e - s == timedelta(hours=1) for s, e in hours)
    assert all(hours[i][1] == hours[i + 1][0] for i in range(23))
    # the newest hour ended at least the delay before now
    assert NOW - hours[-1][1] >= timedelta(minutes=60)
    # exactly on the boundary: the hour that just ended an hour ago is in
    assert period(datetime(2026, 11, 22, 9, 0, tzinfo=UTC), ZONE, delay_min=60)[-1][1] == datetime(2026, 11, 22, 8,
                                                                                                     tzinfo=UTC)
    assert period(NOW, ZONE, delay_min=150)[-1][1] == datetime(2026, 11, 22, 7, tzinfo=UTC)


def test_snapshots_newer_than_the_delay_are_not_published():
    fresh = NOW - timedelta(minutes=10)
    doc = build(history={"air": [entry("air", fresh, {CITY: {"air.aqi": 400, "air.aqi_category": "hazardous"}})]},
                ambulance=None, areas=AREAS, now=NOW, zone=ZONE)
    assert all(h["values"][CITY]["aqi"]["flag"] == NO_DATA for h in doc["hours"])
    assert doc["period"]["latest_hour"]["end"] == "2026-11-22T08:00:00Z"


def test_hour_values_are_the_last_snapshot_in_the_hour():
    h_start = datetime(2026, 11, 22, 7, tzinfo=UTC)
    air = [entry("air", h_start + timedelta(minutes=10), {CITY: {"air.aqi": 40}, "a": {"air.aqi": 30}}),
           entry("air", h_start + timedelta(minutes=59), {CITY: {"air.aqi": 160, "air.aqi_category": "unhealthy"},
                                                          "a": {"air.aqi": 120}}),
           entry("air", h_start + timedelta(minutes=60), {CITY: {"air.aqi": 999}})]
    traffic = [entry("traffic", h_start + timedelta(minutes=58), {CITY: {"traffic.score": {"2gis": 6.0,
                                                                                            "yandex": 5.0}}})]
    doc = build(history={"air": air, "traffic": traffic}, ambulance=None, areas=AREAS, now=NOW, zone=ZONE)
    last = doc["hours"][-1]["values"]
    assert last[CITY]["aqi"] == {"value": 160, "flag": OK, "category": "unhealthy"}
    assert last["a"]["aqi"] == {"value": 120, "flag": OK, "category": "usg"}  # category derived when missing
    assert last["b"]["aqi"]["flag"] == NO_DATA  # no station there
    assert last[CITY]["traffic_score"] == {"value": 5.0, "flag": OK, "provider": "yandex"}
    assert "traffic_score" not in last["a"]


# --- appeals and ambulance ---------------------------------------------------------------------


def test_appeals_new_resolved_overdue_from_two_snapshots_an_hour_apart():
    end = datetime(2026, 11, 22, 7, 59, tzinfo=UTC)
    history = [appeals(end - timedelta(hours=1), {CITY: (40, 10, 0), "a": (20, 5, 0), "b": (20, 5, 0)}),
               appeals(end, {CITY: (38, 12, 7), "a": (15, 6, 7), "b": (23, 6, 0)})]
    doc = build(history={"appeals": history}, ambulance=None, areas=AREAS, now=NOW, zone=ZONE, min_count=5)
    v = doc["hours"][-1]["values"]
    assert v[CITY]["appeals_new"] == {"value": 12, "flag": OK}
    assert v[CITY]["appeals_resolved"] == {"value": 14, "flag": OK}  # 40 + 12 - 38
    assert v["a"]["appeals_resolved"]["value"] == 11  # 20 + 6 - 15
    assert v["a"]["appeals_overdue"]["value"] == 7
    # b: 20 + 6 - 23 = 3 < 5: suppressed, and its complement too (c, d have 0 and are published: 0 discloses nobody)
    assert v["b"]["appeals_resolved"] == {"value": None, "flag": SUPPRESSED}
    assert v["c"]["appeals_new"] == {"value": 0, "flag": OK}
    # the hour before has no start snapshot: resolved unknown, new and overdue known
    before = doc["hours"][-2]["values"]
    assert before[CITY]["appeals_resolved"]["flag"] == NO_DATA
    assert before[CITY]["appeals_new"]["value"] == 10


def test_ambulance_counts_use_the_kpi_definitions():
    hours = period(NOW, ZONE, hours=2)
    s = hours[-1][0]

    def call(cid, district, category, received_min, arrived_min, **extra):
        times = {"call_received": (s + timedelta(minutes=received_min)).isoformat()}
        if arrived_min is not None:
            times["on_scene"] = (s + timedelta(minutes=arrived_min)).isoformat()
        times.update(extra)
        return {"call_id": cid, "district": district, "category": category, "lat": 43.2, "lon": 76.9,
                "complaint": "chest pain", "times": times}

    calls = [call("1", "a", 1, 0, 8), call("2", "a", 1, 0, 12), call("3", "a", 4, 5, 50), call("4", "b", 2, 10, 30),
             call("5", None, 3, 1, 20), call("6", "a", 1, 0, None),  # not arrived
             call("7", "a", 1, 0, 5, cancelled=(s + timedelta(minutes=6)).isoformat()),  # cancelled
             call("8", "a", None, 0, 5),  # no category
             call("9", "a", 1, -50, -45)]  # arrived in the hour before
    counts = ambulance_counts(calls, norms_min={1: 10, 2: 15, 3: 30, 4: 60}, hours=hours)
    last = counts[public.iso(s)]
    assert last["a"] == [3, 2]
    assert last["b"] == [1, 0]
    assert last[CITY] == [5, 3]
    assert counts[public.iso(hours[0][0])][CITY] == [1, 1]
    assert "lat" not in orjson.dumps(counts).decode()


def test_ambulance_share_rests_on_its_count_and_is_suppressed_when_few():
    s = period(NOW, ZONE)[-1][0]
    counts = {public.iso(s): {CITY: [30, 27], "a": [20, 19], "b": [6, 5], "c": [4, 3], "d": [0, 0]}}
    doc = build(history={}, ambulance=counts, areas=AREAS, now=NOW, zone=ZONE, min_count=5)
    v = doc["hours"][-1]["values"]
    assert v[CITY]["ambulance_within_norm"] == {"value": 90.0, "flag": OK, "n": 30}
    assert v["a"]["ambulance_within_norm"] == {"value": 95.0, "flag": OK, "n": 20}
    assert v["c"]["ambulance_within_norm"] == {"value": None, "flag": SUPPRESSED, "n": None}
    # complementary: c alone would be city − a − b; the smallest other one (b) goes too
    assert v["b"]["ambulance_within_norm"] == {"value": None, "flag": SUPPRESSED, "n": None}
    assert v["d"]["ambulance_within_norm"] == {"value": None, "flag": NO_DATA, "n": 0}


# --- suppression --------------------------------------------------------------------------------


def cells(values: dict[str, int | None], key: str = "appeals_new") -> dict:
    return {a: {key: {"value": v, "flag": OK if v is not None else NO_DATA}} for a, v in values.items()}


def test_primary_suppression_hides_small_counts_but_not_zero():
    v = cells({CITY: 20, "a": 4, "b": 1, "c": 0, "d": 15})
    hidden = suppress(v, AREAS, min_count=5)
    assert hidden == 2
    assert [v[a]["appeals_new"]["flag"] for a in ("a", "b", "c", "d")] == [SUPPRESSED, SUPPRESSED, OK, OK]
    assert v["a"]["appeals_new"]["value"] is None and v["c"]["appeals_new"]["value"] == 0
    assert v[CITY]["appeals_new"]["value"] == 20


def test_complementary_suppression_protects_a_lone_suppressed_district():
    v = cells({CITY: 30, "a": 3, "b": 12, "c": 8, "d": 7})
    suppress(v, AREAS, min_count=5)
    flags = {a: v[a]["appeals_new"]["flag"] for a in ("a", "b", "c", "d")}
    assert flags == {"a": SUPPRESSED, "b": OK, "c": OK, "d": SUPPRESSED}  # d: the smallest other
    published = [v[a]["appeals_new"]["value"] for a in ("b", "c")]
    # what a reader can work out: a + d = 30 − 20 = 10, not a alone
    assert v[CITY]["appeals_new"]["value"] - sum(published) == 10


def test_complementary_suppression_falls_back_to_the_city_total():
    v = cells({CITY: 9, "a": 3, "b": None, "c": None, "d": None})
    suppress(v, AREAS, min_count=5)
    assert v["a"]["appeals_new"]["flag"] == SUPPRESSED
    assert v[CITY]["appeals_new"]["flag"] == SUPPRESSED


@pytest.mark.parametrize("seed", range(30))
def test_no_suppressed_district_can_be_recovered_from_the_total(seed):
    import random

    rng = random.Random(seed)
    values = {a: rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 9, 20]) for a in ("a", "b", "c", "d")}
    v = cells({CITY: sum(values.values()) + rng.choice([0, 0, 2]), **values})
    suppress(v, AREAS, min_count=5)
    down = [a for a in values if v[a]["appeals_new"]["flag"] == SUPPRESSED]
    city_shown = v[CITY]["appeals_new"]["flag"] == OK
    assert len(down) != 1 or not city_shown
    for a, value in values.items():
        if 0 < value < 5:
            assert v[a]["appeals_new"]["flag"] == SUPPRESSED


# --- the whole document -------------------------------------------------------------------------

PERSONAL = ("lat", "lon", "latitude", "longitude", "description", "address", "call_id", "unit_id", "request_id",
            "complaint", "station", "aqi_station", "coordinates", "phone", "email")


def _keys(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from _keys(v)


def test_the_document_holds_nothing_personal_and_is_complete():
    end = datetime(2026, 11, 22, 7, 59, tzinfo=UTC)
    air = [entry("air", end, {CITY: {"air.aqi": 90, "air.aqi_category": "moderate", "air.aqi_station": "ALM-04",
                                     "air.stations": [{"station_id": "ALM-04", "lat": 43.2, "lon": 76.9}]}})]
    appeal_history = [appeals(end - timedelta(hours=1), {CITY: (9, 1, 0)}), appeals(end, {CITY: (9, 1, 0)})]
    calls = [{"call_id": "EMS-1", "district": "a", "category": 1, "lat": 43.2, "lon": 76.9, "complaint": "x",
              "times": {"call_received": (end - timedelta(minutes=20)).isoformat(),
                        "on_scene": (end - timedelta(minutes=12)).isoformat()}}]
    slots = period(NOW, ZONE)
    doc = build(history={"air": air, "appeals": appeal_history}, areas=AREAS, now=NOW, zone=ZONE,
                ambulance=ambulance_counts(calls, norms_min={1: 10}, hours=slots), norms_min={1: 10},
                city={"id": "almaty", "names": {"en": "Almaty"}, "timezone": "Asia/Almaty"})
    keys = set(_keys(doc))
    assert not keys & set(PERSONAL)
    text = orjson.dumps(doc).decode()
    for needle in ("ALM-04", "EMS-1", "43.2", "76.9", "complaint"):
        assert needle not in text
    assert doc["schema_version"] == 1 and doc["version"] == int(NOW.timestamp() * 1000)
    assert doc["generated_at"] == "2026-11-22T09:35:00Z"
    assert doc["period"] == {"start": "2026-11-21T08:00:00Z", "end": "2026-11-22T08:00:00Z", "hours": 24,
                             "delay_min": 60, "timezone": "Asia/Almaty",
                             "latest_hour": {"start": "2026-11-22T07:00:00Z", "end": "2026-11-22T08:00:00Z"}}
    assert doc["licence"]["name"] and doc["licence"]["url"].startswith("https://")
    assert [i["key"] for i in doc["indicators"]] == [i.key for i in public.INDICATORS]
    assert {a["id"] for a in doc["areas"]} == {CITY, "a", "b", "c", "d"}
    last = doc["hours"][-1]["values"]
    # one arrival in a: suppressed, and the city total rests on the same one: suppressed as the complement
    assert last["a"]["ambulance_within_norm"]["flag"] == SUPPRESSED
    assert last[CITY]["ambulance_within_norm"]["flag"] == SUPPRESSED
    assert last[CITY]["appeals_new"]["flag"] == SUPPRESSED  # 1 < 5
    for hour in doc["hours"]:
        for area in AREAS:
            assert set(hour["values"][area.id]) >= {"aqi", "appeals_new", "appeals_resolved", "appeals_overdue",
                                                    "ambulance_within_norm"}
            for cell in hour["values"][area.id].values():
                assert cell["flag"] in (OK, SUPPRESSED, NO_DATA)
                assert (cell["value"] is None) == (cell["flag"] != OK)


def test_build_from_redis_reads_the_history_and_writes_the_document(redis):
    from core import keys
    from core.citypack import load_pack

    pack = load_pack(None)
    end = datetime(2026, 11, 22, 7, 59, tzinfo=UTC)
    for at, (o, n) in ((end - timedelta(hours=1), (30, 8)), (end - timedelta(minutes=30), (99, 99)), (end, (28, 9))):
        doc = appeals(at, {CITY: (o, n, 0)})
        redis.xadd(keys.kpi_history_key("appeals"), {"d": orjson.dumps(doc)}, id=f"{doc['version'] // 60000 * 60000}-0")
    doc = public.build_from_redis(redis, pack, NOW, calls=[])
    raw = public.write_document(redis, doc)
    assert orjson.loads(redis.get(keys.PUBLIC_INDICATORS)) == orjson.loads(raw)
    last = doc["hours"][-1]["values"]
    assert last[CITY]["appeals_new"]["value"] == 9
    assert last[CITY]["appeals_resolved"]["value"] == 11  # 30 + 9 - 28
    assert {a["id"] for a in doc["areas"]} == {CITY, *(d.id for d in pack.districts)}
    assert redis.hget(keys.VERSIONS, "public:indicators") == str(doc["version"]).encode()
