"""HTTP API of the operations app: ingest, health, feeds, dead letters, KPIs and incidents.

A thin shell: it reads the request, calls the adapter's pure parser and the :class:`Sink`,
and maps outcomes to status codes. Mounted on the operations web app's FastAPI server (or
served alone by ``sitcen api``). Documented with examples in ``docs/api.md``.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis as redis_lib
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core import keys
from core.citypack import CityPack, load_pack
from core.errors import PayloadError, SchemaError
from core.health import feed_health
from core.redis_server import connect
from core.schemas import check_time
from core.settings import Settings
from core.store import Store
from feeds import REGISTRY
from feeds.base import FeedAdapter, Format
from feeds.sink import Sink

log = logging.getLogger(__name__)

API = "/api/v1"


@dataclass
class ApiContext:
    """What the API handlers share: one Redis client, the store, the sink, the settings."""

    settings: Settings
    redis: redis_lib.Redis
    store: Store
    sink: Sink
    pack: CityPack

    @classmethod
    def create(cls, settings: Settings, redis: redis_lib.Redis | None = None) -> ApiContext:
        """Connect to ``settings.redis_url`` (unless ``redis`` is given) and build the pieces."""
        client = redis if redis is not None else connect(settings.redis_url)
        pack = load_pack(settings.city_pack)
        store = Store.from_settings(client, settings)
        sink = Sink(store, bounds=pack.bounds, max_future_s=settings.max_future_s, batch_size=settings.batch_size)
        return cls(settings=settings, redis=client, store=store, sink=sink, pack=pack)

    def cadence(self, feed: str) -> float:
        """Expected cadence of ``feed``: the override from settings, else the adapter's own."""
        override = self.settings.cadence_s.get(feed)
        if override:
            return float(override)
        adapter = REGISTRY.get(feed)
        return float(adapter.expected_cadence_s) if adapter else 3600.0


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def build_router(ctx: ApiContext) -> APIRouter:
    """The ``/api/v1`` routes bound to ``ctx``."""
    router = APIRouter(prefix=API)

    @router.post("/ingest/{feed}", status_code=202)
    async def ingest(feed: str, request: Request, format: str | None = Query(default=None)) -> JSONResponse:  # noqa: A002
        """Ingest one JSON object, a JSON array, NDJSON, CSV or GTFS-realtime protobuf."""
        adapter = REGISTRY.get(feed)
        if adapter is None:
            return _error(404, f"unknown feed {feed!r}", feeds=sorted(REGISTRY))
        if not _authorised(ctx.settings.ingest_token, request.headers.get("authorization")):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        chosen = _choose_format(adapter, format, request.headers.get("content-type"))
        if isinstance(chosen, JSONResponse):
            return chosen
        body = await _read_capped(request, ctx.settings.ingest_max_bytes)
        if body is None:
            return _error(413, f"body larger than {ctx.settings.ingest_max_bytes} bytes (SC_INGEST_MAX_BYTES)")
        return await run_in_threadpool(_ingest_body, ctx, adapter, chosen, body)

    @router.get("/health")
    def health() -> JSONResponse:
        """Per-feed status against the expected cadence, plus Redis and worker state."""
        try:
            return JSONResponse(health_document(ctx))
        except redis_lib.RedisError as err:
            return _error(503, f"redis unavailable: {err}", status="error")

    @router.get("/kpis")
    def kpis(domain: str | None = Query(default=None), district: str | None = Query(default=None)) -> JSONResponse:
        """The latest KPI snapshots (all domains, or one), for the city and every district (or one)."""
        from workers.snapshots import DOMAINS, read_snapshot

        names = [domain] if domain else sorted(DOMAINS)
        unknown = [d for d in names if d not in DOMAINS]
        if unknown:
            return _error(404, f"no KPIs for domain {unknown[0]!r}", domains=sorted(DOMAINS))
        try:
            snapshots = {d: read_snapshot(ctx.redis, d) for d in names}
        except redis_lib.RedisError as err:
            return _error(503, f"redis unavailable: {err}")
        if district:
            snapshots = {d: snap and {**snap, "values": {district: snap["values"].get(district)}}
                         for d, snap in snapshots.items()}
        return JSONResponse({"kpis": snapshots, "definitions": _definitions(names)})

    @router.get("/kpis/history")
    def kpi_history(name: str, from_: str | None = Query(default=None, alias="from"),
                    to: str | None = Query(default=None), scope: str = Query(default="city")) -> JSONResponse:
        """One KPI per minute over ``[from, to]`` (default: the last 24 hours) for one scope."""
        from workers.snapshots import DOMAINS, read_history

        domain = name.split(".", 1)[0]
        if domain not in DOMAINS:
            return _error(404, f"no KPI {name!r}", domains=sorted(DOMAINS))
        now = datetime.now(UTC)
        try:
            end = check_time(to, "to") if to else now
            start = check_time(from_, "from") if from_ else end - timedelta(hours=24)
        except SchemaError as err:
            return _error(400, str(err))
        try:
            rows = read_history(ctx.redis, domain, start, end)  # type: ignore[arg-type]
        except redis_lib.RedisError as err:
            return _error(503, f"redis unavailable: {err}")
        points = [{"t": r["computed_at"], "value": (r["values"].get(scope) or {}).get(name)} for r in rows]
        return JSONResponse({"name": name, "scope": scope, "points": points})

    @router.get("/feeds")
    def feeds() -> dict[str, Any]:
        """The registered feeds and their formats."""
        return {"feeds": [{
            "name": a.name, "title": a.title, "expected_cadence_s": ctx.cadence(a.name),
            "formats": [{"name": f.name, "content_types": list(f.content_types), "description": f.description}
                        for f in a.formats],
        } for a in REGISTRY.values()]}

    @router.get("/feeds/{feed}/dead-letters")
    def dead_letters(feed: str, limit: int = Query(default=50, ge=1, le=1000)) -> JSONResponse:
        """The newest dead letters of ``feed``: reason, error, raw payload."""
        if feed not in REGISTRY:
            return _error(404, f"unknown feed {feed!r}", feeds=sorted(REGISTRY))
        try:
            return JSONResponse({"feed": feed, "dead_letters": ctx.store.dead_letters(feed, limit)})
        except redis_lib.RedisError as err:
            return _error(503, f"redis unavailable: {err}")

    _incident_routes(router, ctx)
    return router


#: Largest body of an incident action (a note is at most 2,000 characters).
ACTION_MAX_BYTES = 64 * 1024
_ACTION_FIELDS = frozenset({"action", "actor", "agency", "text", "source", "events", "type"})


def _incident_routes(router: APIRouter, ctx: ApiContext) -> None:
    """``/incidents``: list and read, act (an operator's session in the operations app, or ``SC_OPERATOR_TOKEN``)."""
    from workers.incidents import ACTIONS, STATUSES, IncidentError, IncidentStore

    incidents = IncidentStore(ctx.redis, ctx.pack.zone)

    @router.get("/incidents")
    def list_incidents(status: str | None = Query(default=None),
                       limit: int = Query(default=100, ge=1, le=1000)) -> JSONResponse:
        """Incidents, newest first, with their SLA state (default: every unresolved one)."""
        try:
            docs = incidents.list(status, now=datetime.now(UTC), limit=limit)
        except IncidentError as err:
            return _error(err.code, str(err), statuses=["unresolved", "all", *STATUSES])
        except redis_lib.RedisError as err:
            return _error(503, f"redis unavailable: {err}")
        return JSONResponse({"status": status or "unresolved", "count": len(docs), "incidents": docs})

    @router.get("/incidents/{incident_id}")
    def get_incident(incident_id: str) -> JSONResponse:
        """One incident: its document, events, links, SLA state and audit log."""
        try:
            doc = incidents.get(incident_id, datetime.now(UTC))
            if doc is None:
                return _error(404, f"no incident {incident_id!r}")
            return JSONResponse({**doc, "audit": incidents.audit(incident_id)})
        except redis_lib.RedisError as err:
            return _error(503, f"redis unavailable: {err}")

    @router.post("/incidents/{incident_id}/actions")
    async def incident_action(incident_id: str, request: Request) -> JSONResponse:
        """Acknowledge, assign, escalate, resolve, note, reopen, merge or split an incident."""
        # a browser session of the operations app (set by dashboards.auth): operators act as themselves
        session = getattr(request.state, "account", None)
        token = ctx.settings.operator_token
        if session is not None:
            if getattr(session, "kiosk", False) or not session.at_least("operator"):
                return _error(403, f"incident actions need the operator role; {session.user} is {session.role}")
        elif not token:
            return _error(403, "incident actions are disabled: set SC_OPERATOR_TOKEN to a secret and send it "
                               "as 'Authorization: Bearer <token>'")
        elif not _authorised(token, request.headers.get("authorization")):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        raw = await _read_capped(request, ACTION_MAX_BYTES)
        if raw is None:
            return _error(413, f"body larger than {ACTION_MAX_BYTES} bytes")
        body = _action_body(raw, ACTIONS)
        if isinstance(body, JSONResponse):
            return body

        def act() -> JSONResponse:
            args = {k: body.get(k) for k in ("agency", "text", "source", "events", "type")}
            try:
                actor = session.user if session is not None else body.get("actor")
                doc = incidents.act(incident_id, body["action"], actor, datetime.now(UTC), **args)
            except IncidentError as err:
                return _error(err.code, str(err))
            except redis_lib.RedisError as err:
                return _error(503, f"redis unavailable, nothing changed: {err}")
            return JSONResponse(doc)

        return await run_in_threadpool(act)


def _action_body(raw: bytes, actions: tuple[str, ...]) -> dict[str, Any] | JSONResponse:
    """The JSON object of an incident action, or the 400/422 answer saying what is wrong with it."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        return _error(400, f"body is not JSON: {err}")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object like {\"action\": \"acknowledge\", \"actor\": \"...\"}")
    if body.get("action") not in actions:
        return _error(400, f"unknown action {body.get('action')!r}; one of {', '.join(actions)}",
                      actions=list(actions))
    unknown = sorted(set(body) - _ACTION_FIELDS)
    if unknown:
        return _error(422, f"unknown field(s) {unknown}; known: {', '.join(sorted(_ACTION_FIELDS))}")
    return body


def _definitions(domains: list[str]) -> list[dict[str, Any]]:
    from workers.kpi import air, ambulance, appeals, traffic

    table = {"ambulance": ambulance.KPIS, "appeals": appeals.KPIS, "air": air.KPIS, "traffic": traffic.KPIS}
    return [{"key": k.key, "domain": k.domain, "unit": k.unit, "formula": k.formula, "target": k.target,
             "good": k.good, "names": dict(k.names)} for d in domains for k in table.get(d, ())]


def _authorised(token: str, header: str | None) -> bool:
    if not token:
        return True
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def _choose_format(adapter: type[FeedAdapter], name: str | None, content_type: str | None) -> Format | JSONResponse:
    if name:
        try:
            return adapter.format(name)
        except KeyError as err:
            return _error(400, str(err.args[0]))
    base = (content_type or "").split(";")[0].strip().lower()
    if not base:
        return adapter.format()
    if base not in adapter.content_types():
        return _error(415, f"content type {base!r} is not accepted by feed {adapter.name!r}; use one of "
                           f"{sorted(adapter.content_types())} or name a format with ?format=",
                      formats=[f.name for f in adapter.formats])
    return adapter.format(content_type=base)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _ingest_body(ctx: ApiContext, adapter: type[FeedAdapter], fmt: Format, body: bytes) -> JSONResponse:
    try:
        parsed = fmt.parse(body)
    except PayloadError as err:
        result = ctx.sink.reject_payload(adapter.name, err, body, transport="http")
        return JSONResponse({"error": str(err), **result.as_json()}, status_code=400)
    try:
        result = ctx.sink.write(adapter.name, parsed, transport="http")
    except redis_lib.RedisError as err:
        log.warning("ingest of %s failed on redis: %s", adapter.name, err)
        return _error(503, f"redis unavailable, nothing stored: {err}")
    return JSONResponse(result.as_json(), status_code=202)


def health_document(ctx: ApiContext) -> dict[str, Any]:
    """The document of ``GET /api/v1/health`` (also read by the pages)."""
    now = datetime.now(UTC)
    info = ctx.redis.info()
    names = sorted(set(REGISTRY) | {n.decode() if isinstance(n, bytes) else n
                                    for n in ctx.redis.smembers(keys.FEEDS_SEEN)})
    feeds = {name: feed_health(ctx.store.health_raw(name), cadence_s=ctx.cadence(name), now=now) for name in names}
    workers = _workers(ctx.redis)
    worst = "ok" if all(f["status"] == "ok" for f in feeds.values()) else "degraded"
    return {
        "status": worst,
        "checked_at": now.isoformat().replace("+00:00", "Z"),
        "feeds": feeds,
        "redis": {"status": "ok", "version": info.get("redis_version"),
                  "used_memory_bytes": info.get("used_memory"), "connected_clients": info.get("connected_clients"),
                  "uptime_s": info.get("uptime_in_seconds"), "aof_enabled": bool(info.get("aof_enabled"))},
        "workers": workers,
    }


def _workers(redis: redis_lib.Redis) -> dict[str, Any]:
    from rq import Worker

    rows = []
    for worker in Worker.all(connection=redis):
        beat = worker.last_heartbeat
        rows.append({"name": worker.name, "state": str(worker.get_state()),
                     "queues": worker.queue_names(),
                     "last_heartbeat": beat.replace(tzinfo=UTC).isoformat() if beat and beat.tzinfo is None
                     else (beat.isoformat() if beat else None),
                     "successful_jobs": worker.successful_job_count, "failed_jobs": worker.failed_job_count})
    return {"count": len(rows), "workers": rows, "status": "ok" if rows else "none"}


def create_api_app(settings: Settings) -> FastAPI:
    """A FastAPI app serving only the API (``sitcen api``)."""
    app = FastAPI(title="Situation Center API", version="1")
    app.include_router(build_router(ApiContext.create(settings)))
    return app
