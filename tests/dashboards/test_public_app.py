"""The public app on a real Redis: open data (JSON, CSV), HTTP caching, CORS, read-only routes,
the per-process document cache (Redis read at most once per period) and Redis outages."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from starlette.testclient import TestClient

from core import keys
from dashboards import public as app_module
from dashboards.public import API_PATH, CSV_COLUMNS, CSV_PATH, DocumentCache, create_public_app
from workers.public import CITY, INDICATORS, Area, ambulance_counts, build, period

ZONE = ZoneInfo("Asia/Almaty")
NOW = datetime(2026, 11, 22, 9, 35, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_doc(now: datetime = NOW) -> dict:
    from core.citypack import load_pack

    pack = load_pack(None)
    areas = [Area(CITY, "city", dict(pack.name), 2_300_000),
             *(Area(d.id, "district", d.names.as_dict(), d.population) for d in pack.districts)]
    end = period(now, ZONE)[-1][1] - timedelta(minutes=1)
    ids = [d.id for d in pack.districts]

    def entry(domain, at, values):
        return {"domain": domain, "version": int(at.timestamp() * 1000), "computed_at": at.isoformat(),
                "values": values}

    air = [entry("air", end, {CITY: {"air.aqi": 1234, "air.aqi_category": "hazardous"},
                              **{d: {"air.aqi": 40 + 20 * i} for i, d in enumerate(ids)}})]
    appeals = [entry("appeals", end - timedelta(hours=1), {CITY: {"appeals.open": 60, "appeals.new_last_hour": 9}}),
               entry("appeals", end, {CITY: {"appeals.open": 50, "appeals.new_last_hour": 12, "appeals.overdue": 3},
                                      ids[0]: {"appeals.open": 10, "appeals.new_last_hour": 12,
                                               "appeals.overdue": 3}})]
    traffic = [entry("traffic", end, {CITY: {"traffic.score": {"yandex": 6.0}}})]
    s = period(now, ZONE)[-1][0]
    calls = [{"call_id": f"c{i}", "district": ids[i % 3], "category": 2,
              "times": {"call_received": (s + timedelta(minutes=i)).isoformat(),
                        "on_scene": (s + timedelta(minutes=i + 9 + i % 10)).isoformat()}} for i in range(40)]
    return build(history={"air": air, "appeals": appeals, "traffic": traffic}, areas=areas, now=now, zone=ZONE,
                 ambulance=ambulance_counts(calls, norms_min={2: 15}, hours=period(now, ZONE)), norms_min={2: 15},
                 city={"id": pack.id, "names": dict(pack.name), "timezone": pack.timezone})


@pytest.fixture
def doc(redis):
    d = make_doc()
    redis.set(keys.PUBLIC_INDICATORS, orjson.dumps(d))
    return d


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(settings, clock):
    return create_public_app(settings, clock=clock)


@pytest.fixture
def client(app):
    with TestClient(app.server) as c:
        yield c


def gets(redis) -> int:
    return int(redis.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


# --- open data ----------------------------------------------------------------------------------


def test_json_is_the_document_with_cache_headers_and_cors(client, doc):
    r = client.get(API_PATH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == orjson.loads(orjson.dumps(doc))
    assert r.headers["cache-control"] == "public, max-age=60"
    assert r.headers["etag"].startswith('"') and not r.headers["etag"].startswith("W/")
    assert r.headers["last-modified"] == "Sun, 22 Nov 2026 09:35:00 GMT"
    assert r.headers["access-control-allow-origin"] == "*"
    assert "ETag" in r.headers["access-control-expose-headers"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.json()["licence"]["name"] == "CC BY 4.0"


def test_csv_has_one_row_per_hour_area_indicator(client, doc):
    r = client.get(CSV_PATH)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["cache-control"] == "public, max-age=60"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    city_rows = len(INDICATORS)  # traffic only for the city
    assert len(rows) == 24 * (city_rows + (len(doc["areas"]) - 1) * (len(INDICATORS) - 1))
    last = {(row["area_id"], row["indicator"]): row for row in rows if row["hour_end"] == "2026-11-22T08:00:00Z"}
    assert last[(CITY, "aqi")]["value"] == "1234" and last[(CITY, "aqi")]["category"] == "hazardous"
    assert last[(CITY, "aqi")]["hour_start_local"] == "2026-11-22T12:00:00+05:00"
    assert last[(CITY, "appeals_overdue")]["flag"] == "suppressed" and last[(CITY, "appeals_overdue")]["value"] == ""
    assert last[(CITY, "traffic_score")]["provider"] == "yandex"
    assert last[(CITY, "ambulance_within_norm")]["n"] == "40"
    # ?format=csv is the same representation
    again = client.get(API_PATH, params={"format": "csv"})
    assert again.content == r.content and again.headers["etag"] == r.headers["etag"]


@pytest.mark.parametrize("path", [API_PATH, CSV_PATH, "/"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_etag_gives_304(client, doc, path, encoding):
    headers = {"accept-encoding": encoding}
    first = client.get(path, headers=headers)
    assert first.status_code == 200
    etag = first.headers["etag"]
    second = client.get(path, headers={**headers, "if-none-match": etag})
    assert second.status_code == 304 and second.content == b""
    assert second.headers["etag"] == etag
    assert client.get(path, headers={**headers, "if-none-match": '"other"'}).status_code == 200
    assert client.get(path, headers={**headers, "if-none-match": f'"x", W/{etag}'}).status_code == 304


def test_if_modified_since_gives_304(client, doc):
    r = client.get(API_PATH, headers={"if-modified-since": "Sun, 22 Nov 2026 10:00:00 GMT"})
    assert r.status_code == 304
    assert client.get(API_PATH, headers={"if-modified-since": "Sun, 22 Nov 2026 09:00:00 GMT"}).status_code == 200


def test_cors_preflight(client, doc):
    r = client.options(API_PATH, headers={"origin": "https://example.org", "access-control-request-method": "GET",
                                          "access-control-request-headers": "if-none-match"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "GET" in r.headers["access-control-allow-methods"]
    assert "If-None-Match" in r.headers["access-control-allow-headers"]


def test_head_has_headers_and_no_body(client, doc):
    r = client.head(API_PATH)
    assert r.status_code == 200 and r.content == b"" and r.headers["etag"]


# --- read-only -------------------------------------------------------------------------------------


def test_no_write_routes_no_websockets_no_query_endpoint(app, client, doc):
    from starlette.routing import WebSocketRoute

    routes = app.server.routes
    for route in routes:
        methods = set(getattr(route, "methods", None) or ())
        assert not methods & {"POST", "PUT", "PATCH", "DELETE"}, route.path
        assert not isinstance(route, WebSocketRoute), route.path
        words = ("query", "sql", "search", "update", "ingest")
        assert not any(word in route.path.lower() for word in words), route.path
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/", API_PATH, "/_dash-update-component", "/api/v1/ingest/air", "/anything"):
            assert client.request(method, path).status_code == 405, (method, path)
    # the API takes no filters: any other parameter is ignored, the representation is the same
    plain = client.get(API_PATH)
    filtered = client.get(API_PATH, params={"district": "medeu", "sql": "select 1", "q": "x"})
    assert filtered.content == plain.content and filtered.headers["etag"] == plain.headers["etag"]


def test_page_has_security_headers_and_no_script(client, doc):
    r = client.get("/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in r.text.lower()


# --- languages -----------------------------------------------------------------------------------


def test_language_from_query_cookie_accept_language_default_russian(client, doc):
    r = client.get("/", headers={"accept-language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in r.text and "Data as of 22 November, 13:00 (delayed 1 h)" in r.text
    assert r.headers["cache-control"] == "public, max-age=60"
    client.cookies.clear()
    r = client.get("/", headers={"accept-language": "de-DE,de"})
    assert '<html lang="ru">' in r.text and "Данные на 22 ноября, 13:00 (с задержкой 1 ч)" in r.text
    r = client.get("/?lang=kk", headers={"accept-language": "en"})
    assert '<html lang="kk">' in r.text and "sc_lang=kk" in r.headers["set-cookie"]
    assert r.headers["cache-control"].startswith("private")
    r = client.get("/", headers={"accept-language": "en"})  # the cookie wins now
    assert '<html lang="kk">' in r.text
    assert "1\xa0234" in r.text or "1 234" in r.text  # Kazakh thousands separator


def test_page_shows_the_document(client, doc):
    text = client.get("/?lang=en").text
    assert "1,234" in text and "Hazardous" in text  # city AQI, grouped per locale
    assert "6 out of 10" in text  # traffic
    assert "hidden" in text  # suppressed overdue appeals
    assert "of 40 arrivals" in text
    assert 'href="/api/v1/public/indicators.csv"' in text
    ru = client.get("/?lang=ru").text
    assert "1\xa0234" in ru and "Опасно" in ru and "6 из 10 баллов" in ru


# --- the cache -----------------------------------------------------------------------------------


def test_redis_is_read_at_most_once_per_period(client, doc, redis, clock, app):
    before = gets(redis)
    paths = ["/", "/?lang=kk", "/?lang=en", API_PATH, CSV_PATH, API_PATH + "?format=csv"]
    for i in range(200):
        assert client.get(paths[i % len(paths)], headers={"accept-encoding": "gzip" if i % 2 else "identity"}
                          ).status_code == 200
    assert gets(redis) - before == 1
    front = app.server.state.sc_public
    assert front.cache.reads == 1
    clock.t += 29.9
    client.get(API_PATH)
    assert gets(redis) - before == 1
    clock.t += 0.2  # the period is over: one more read, however many requests
    for _ in range(50):
        client.get("/")
    assert gets(redis) - before == 2


def test_a_new_document_is_picked_up_after_the_period(client, doc, redis, clock):
    first = client.get(API_PATH)
    newer = make_doc(NOW + timedelta(hours=1))
    redis.set(keys.PUBLIC_INDICATORS, orjson.dumps(newer))
    assert client.get(API_PATH).headers["etag"] == first.headers["etag"]
    clock.t += 31
    r = client.get(API_PATH)
    assert r.headers["etag"] != first.headers["etag"] and r.json()["version"] == newer["version"]
    assert "14:00" in client.get("/?lang=en").text


def test_redis_down_serves_the_last_good_document(settings, doc, clock):
    calls = {"n": 0}
    real = app_module.redis_fetch(settings.redis_url)

    def flaky():
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("redis is down")
        return real()

    app = create_public_app(settings, fetch=flaky, clock=clock)
    with TestClient(app.server) as client:
        good = client.get(API_PATH)
        page = client.get("/?lang=en")
        clock.t += 60
        again = client.get(API_PATH)
        assert again.status_code == 200 and again.content == good.content
        later = client.get("/?lang=en")
        assert later.status_code == 200 and later.content == page.content  # with its own (older) time
        assert "Data as of 22 November, 13:00" in later.text
        clock.t += 60
        client.get(API_PATH)
        assert calls["n"] == 3  # one attempt per period, not per request


def test_no_document_yet_is_a_friendly_page_and_503(settings, redis, clock):
    app = create_public_app(settings, clock=clock)
    with TestClient(app.server) as client:
        page = client.get("/?lang=ru")
        assert page.status_code == 200 and "Данные пока не готовы" in page.text
        assert "Traceback" not in page.text
        api = client.get(API_PATH)
        assert api.status_code == 503 and api.json()["error"] == "not_available"
        assert api.headers["access-control-allow-origin"] == "*"


def test_redis_unreachable_from_the_start_is_never_a_traceback(settings, clock):
    app = create_public_app(settings.with_(redis_url="redis://127.0.0.1:1/0"), clock=clock)
    with TestClient(app.server, raise_server_exceptions=False) as client:
        page = client.get("/?lang=kk")
        assert page.status_code == 200 and "Деректер әлі дайын емес" in page.text
        assert client.get(CSV_PATH).status_code == 503


def test_single_flight_under_concurrency():
    started = threading.Event()
    count = {"n": 0}

    def slow_fetch():
        count["n"] += 1
        started.set()
        time.sleep(0.2)
        return orjson.dumps({"generated_at": "2026-11-22T09:35:00Z", "hours": []})

    cache = DocumentCache(slow_fetch, ttl_s=30)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.current())) for _ in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert count["n"] == 1
    assert all(r is results[0] and r is not None for r in results)
