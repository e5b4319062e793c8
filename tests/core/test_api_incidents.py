"""The incident API against a real Redis: list, read with audit, act with and without the operator token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.api import ApiContext, build_router
from workers.incidents import IncidentStore
from workers.rules.base import CRITICAL, WARNING, Event

pytestmark = pytest.mark.redis

TOKEN = "s3cret-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(settings, redis) -> TestClient:
    app = FastAPI()
    app.include_router(build_router(ApiContext.create(settings, redis)))
    return TestClient(app)


@pytest.fixture
def client(settings, redis) -> TestClient:
    return _client(settings.with_(operator_token=TOKEN), redis)


@pytest.fixture
def inc(redis) -> IncidentStore:
    return IncidentStore(redis, "Asia/Almaty")


def ev(key: str, *, severity: int = WARNING, minutes_ago: float = 10, signal: str = "traffic.drop") -> Event:
    # incidents are read against the wall clock by the API: place them in the recent past
    now = datetime.now(UTC).replace(microsecond=0)
    onset = now - timedelta(minutes=minutes_ago + 5)
    return Event(id=f"det:{key}:{int(onset.timestamp())}", detector="det", signal=signal, key=key, phase="open",
                 onset=onset, detected_at=now - timedelta(minutes=minutes_ago), at=now - timedelta(minutes=minutes_ago),
                 severity=severity, district="almaly", lat=43.25, lon=76.92, evidence={"value": 1})


def _create(inc: IncidentStore, kind: str, key: str, *, minutes_ago: float = 10, severity: int = WARNING) -> dict:
    now = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return inc.create({"type": kind, "rule": "single", "score": 1.0},
                      [ev(key, severity=severity, minutes_ago=minutes_ago)], [], now)


def test_list_defaults_to_unresolved_newest_first_with_sla(client, inc):
    old = _create(inc, "smog", "st-1", minutes_ago=30)                    # warning: ack overdue by 15 min
    mid = _create(inc, "road_crash", "seg-1", minutes_ago=3, severity=CRITICAL)  # critical: 2 min left to ack
    done = _create(inc, "water_outage", "w-1", minutes_ago=1)
    inc.act(done["id"], "resolve", "op1", datetime.now(UTC), text="fixed")
    r = client.get("/api/v1/incidents")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "unresolved" and body["count"] == 2
    assert [d["id"] for d in body["incidents"]] == [mid["id"], old["id"]]
    first, second = body["incidents"]
    assert first["type"] == "road_crash" and first["severity"] == CRITICAL and first["severity_name"] == "critical"
    assert first["sla"]["ack_breached"] is False and 60 < first["sla"]["ack_left_s"] <= 120
    assert second["sla"]["ack_breached"] is True and -15 * 60 - 5 < second["sla"]["ack_left_s"] <= -15 * 60
    assert [e["key"] for e in second["events"].values()] == ["st-1"]
    assert [d["id"] for d in client.get("/api/v1/incidents?status=resolved").json()["incidents"]] == [done["id"]]
    assert client.get("/api/v1/incidents?status=all").json()["count"] == 3
    assert [d["id"] for d in client.get("/api/v1/incidents?status=all&limit=1").json()["incidents"]] == [done["id"]]
    assert client.get("/api/v1/incidents?status=open").json()["count"] == 2
    assert client.get("/api/v1/incidents?status=merged").json() == {"status": "merged", "count": 0, "incidents": []}


def test_list_errors(client):
    r = client.get("/api/v1/incidents?status=closed")
    assert r.status_code == 400
    assert "unknown status 'closed'" in r.json()["error"] and "acknowledged" in r.json()["statuses"]
    assert client.get("/api/v1/incidents?limit=0").status_code == 422
    assert client.get("/api/v1/incidents?limit=5000").status_code == 422


def test_get_returns_the_document_with_its_audit(client, inc):
    doc = _create(inc, "smog", "st-1")
    inc.act(doc["id"], "note", "op1", datetime.now(UTC), text="masks handed out")
    r = client.get(f"/api/v1/incidents/{doc['id']}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == doc["id"] and body["version"] == 2 and body["notes_count"] == 1
    assert [(e["actor"], e["action"]) for e in body["audit"]] == [("system", "create"), ("op1", "note")]
    assert body["audit"][1]["detail"] == {"text": "masks handed out"}
    assert set(body["sla"]) == {"ack_due", "resolve_due", "ack_breached", "resolve_breached", "ack_left_s",
                                "resolve_left_s"}
    r = client.get("/api/v1/incidents/INC-20261122-9999")
    assert r.status_code == 404 and r.json() == {"error": "no incident 'INC-20261122-9999'"}
    assert client.get("/api/v1/incidents/bad:id").status_code == 404


def test_actions_are_disabled_without_a_token(settings, redis, inc):
    doc = _create(inc, "smog", "st-1")
    client = _client(settings, redis)  # SC_OPERATOR_TOKEN empty: the default
    r = client.post(f"/api/v1/incidents/{doc['id']}/actions", json={"action": "acknowledge", "actor": "op1"},
                    headers=AUTH)
    assert r.status_code == 403
    assert "incident actions are disabled" in r.json()["error"] and "SC_OPERATOR_TOKEN" in r.json()["error"]
    assert inc.get(doc["id"], datetime.now(UTC))["status"] == "open"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}])
def test_a_wrong_or_missing_token_is_401(client, inc, headers):
    doc = _create(inc, "smog", "st-1")
    r = client.post(f"/api/v1/incidents/{doc['id']}/actions", json={"action": "acknowledge", "actor": "op1"},
                    headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert inc.get(doc["id"], datetime.now(UTC))["version"] == 1


def test_actions_with_the_token_update_and_audit(client, inc):
    doc = _create(inc, "road_crash", "seg-1")
    url = f"/api/v1/incidents/{doc['id']}/actions"
    r = client.post(url, json={"action": "acknowledge", "actor": "aigerim"}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"] == "aigerim"
    r = client.post(url, json={"action": "assign", "actor": "aigerim", "agency": "Road police"}, headers=AUTH)
    assert r.json()["assignee"] == "Road police" and r.json()["status"] == "assigned"
    r = client.post(url, json={"action": "escalate", "actor": "daniyar", "text": "bus involved"}, headers=AUTH)
    assert r.json()["severity"] == CRITICAL and r.json()["escalation"] == 1
    r = client.post(url, json={"action": "note", "actor": "daniyar", "text": "<img src=x onerror=alert(1)>"},
                    headers=AUTH)
    assert r.json()["notes_count"] == 1
    r = client.post(url, json={"action": "resolve", "actor": "aigerim", "text": "towed"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "resolved" and r.json()["resolution"] == "towed"
    assert r.json()["version"] == 6
    audit = client.get(f"/api/v1/incidents/{doc['id']}").json()["audit"]
    assert [(e["actor"], e["action"]) for e in audit] == [
        ("system", "create"), ("aigerim", "acknowledge"), ("aigerim", "assign"), ("daniyar", "escalate"),
        ("daniyar", "note"), ("aigerim", "resolve")]
    assert audit[4]["detail"]["text"] == "<img src=x onerror=alert(1)>"  # stored as given, as data
    r = client.post(url, json={"action": "reopen", "actor": "aigerim"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "open"


def test_merge_and_split_through_the_api(client, inc):
    target = _create(inc, "road_crash", "seg-1")
    source = _create(inc, "road_crash", "seg-2", minutes_ago=5)
    r = client.post(f"/api/v1/incidents/{target['id']}/actions",
                    json={"action": "merge", "actor": "op1", "source": source["id"]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["event_count"] == 2 and r.json()["merged_from"] == [source["id"]]
    assert client.get(f"/api/v1/incidents/{source['id']}").json()["status"] == "merged"
    [moved] = source["events"]
    r = client.post(f"/api/v1/incidents/{target['id']}/actions",
                    json={"action": "split", "actor": "op1", "events": [moved], "type": "traffic_incident"},
                    headers=AUTH)
    assert r.status_code == 200 and r.json()["event_count"] == 1
    [new_id] = r.json()["split_into"]
    new = client.get(f"/api/v1/incidents/{new_id}").json()
    assert new["type"] == "traffic_incident" and list(new["events"]) == [moved] and new["split_from"] == target["id"]
    assert new["audit"][0]["actor"] == "op1"


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "body is not JSON"),
    (b"[1, 2]", 400, "body must be a JSON object"),
    (b'{"action": "delete", "actor": "op1"}', 400, "unknown action 'delete'"),
    (b'{"actor": "op1"}', 400, "unknown action None"),
    (b'{"action": "note", "actor": "op1", "reason": "x"}', 422, "unknown field(s) ['reason']"),
    (b'{"action": "note", "actor": "op1"}', 422, "text is required"),
    (b'{"action": "assign", "actor": "op1", "agency": ""}', 422, "agency is required"),
    (b'{"action": "note", "text": "hi"}', 422, "actor is required"),
    (b'{"action": "note", "actor": 5, "text": "hi"}', 422, "actor is required"),
    (b'{"action": "split", "actor": "op1", "events": "x"}', 422, "non-empty list"),
    (b'{"action": "reopen", "actor": "op1"}', 409, "cannot reopen"),
])
def test_action_errors(client, inc, body, status, message):
    doc = _create(inc, "smog", "st-1")
    r = client.post(f"/api/v1/incidents/{doc['id']}/actions", content=body,
                    headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]
    assert inc.get(doc["id"], datetime.now(UTC))["version"] == 1


def test_action_text_over_the_limit_is_422_and_unknown_incident_404(client, inc):
    doc = _create(inc, "smog", "st-1")
    r = client.post(f"/api/v1/incidents/{doc['id']}/actions",
                    json={"action": "note", "actor": "op1", "text": "x" * 2001}, headers=AUTH)
    assert r.status_code == 422 and r.json() == {"error": "text is 2001 characters long; at most 2000"}
    r = client.post("/api/v1/incidents/INC-20261122-9999/actions", json={"action": "acknowledge", "actor": "op1"},
                    headers=AUTH)
    assert r.status_code == 404 and r.json() == {"error": "no incident 'INC-20261122-9999'"}
    r = client.post(f"/api/v1/incidents/{doc['id']}/actions", content=b"x" * (65 * 1024), headers=AUTH)
    assert r.status_code == 413


def test_acknowledging_a_resolved_incident_is_409(client, inc):
    doc = _create(inc, "smog", "st-1")
    inc.act(doc["id"], "resolve", "op1", datetime.now(UTC), text="done")
    r = client.post(f"/api/v1/incidents/{doc['id']}/actions", json={"action": "acknowledge", "actor": "op1"},
                    headers=AUTH)
    assert r.status_code == 409
    assert r.json()["error"] == (f"cannot acknowledge incident {doc['id']}: it is resolved (reopen it first); "
                                 f"acknowledge needs status open")
