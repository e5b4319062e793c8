"""Generated garbage through the whole HTTP ingest path: never a 500, every item accounted for."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.api import ApiContext, build_router
from feeds import REGISTRY

pytestmark = pytest.mark.redis

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
FEED_KEYS = ["station_id", "lat", "lon", "parameter", "value", "unit", "observed_at", "service_request_id",
             "status", "requested_datetime", "updated_datetime", "provider", "score", "call_id", "category",
             "times", "id", "type", "location", "dateObserved"]
ITEM = st.dictionaries(st.sampled_from(FEED_KEYS), JSON, max_size=8)


@pytest.fixture(scope="module")
def client(redis_server, tmp_path_factory):
    from core.redis_server import connect
    from core.settings import Settings

    redis = connect(redis_server.url)
    settings = Settings.from_env({}, redis_url=redis_server.url, data_dir=tmp_path_factory.mktemp("var"))
    app = FastAPI()
    app.include_router(build_router(ApiContext.create(settings, redis)))
    yield TestClient(app)
    redis.flushall()


def _check(response) -> None:
    assert response.status_code in (202, 400), response.text
    body = response.json()
    assert body["rejected"] == len(body["errors"])
    assert all(e["error"].strip() and e["code"] for e in body["errors"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feed=st.sampled_from(sorted(REGISTRY)), payload=st.binary(max_size=2000))
def test_random_bytes_never_crash(client, feed, payload):
    fmt = REGISTRY[feed].formats[0]
    _check(client.post(f"/api/v1/ingest/{feed}?format={fmt.name}", content=payload))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(feed=st.sampled_from(sorted(REGISTRY)), items=st.lists(ITEM, min_size=1, max_size=6))
def test_random_items_are_each_accepted_or_rejected(client, feed, items):
    fmt = REGISTRY[feed].formats[0]
    response = client.post(f"/api/v1/ingest/{feed}?format={fmt.name}", content=json.dumps(items))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] + body["rejected"] + body["ignored"] == len(items)
    assert body["rejected"] == len(body["errors"])
    assert all(e["error"].strip() and e["code"] for e in body["errors"])
    assert sorted(e["index"] for e in body["errors"]) == sorted({e["index"] for e in body["errors"]})
