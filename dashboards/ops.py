"""The operations web app (port 8050): Dash pages plus the HTTP API on one FastAPI server.

The shell around every page: a top bar (navigation for the account's role, language, connection
state, the city's clock), the page, and the live channel: ``sc-live`` is a store holding the
hub's versions and connection state; pages take it as an ``Input`` and re-read only the topics
whose version moved (``docs/dashboards.md``).

The live channel has two transports (``SC_LIVE_CHANNEL``; measured in ``docs/decisions.md``,
"Dashboards"):

* ``ws`` (default): a persistent WebSocket callback per screen waits on the hub (no polling) and
  pushes ``sc-live`` with ``set_props`` when the hub's ``seq`` moves, and at least every
  :data:`LIVE_KEEPALIVE_S` (a heartbeat the screen's watchdog in ``assets/live.js`` relies on).
  Dash's SharedWorker reconnects on its own and restarts the callback; ``live.js`` reloads the
  page once the server answers again if the socket gave up.
* ``interval``: the earlier version-checked ``dcc.Interval`` (500 ms; an unchanged tick gets an
  empty answer), kept as the fallback for proxies that block WebSockets.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dash import ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update, page_container, set_props
from dash.exceptions import PreventUpdate
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from core.api import ApiContext, build_router, health_document
from core.errors import ConfigError
from core.settings import Settings
from dashboards import auth, context, data
from dashboards.i18n import LANG_NAMES, LANGS, t
from dashboards.live import Hub

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent / "assets"

#: Navigation: path, catalog key, lowest role that sees it (None: everyone signed in).
NAV: tuple[tuple[str, str, str | None], ...] = (
    ("/wall", "nav.wall", None),
    ("/brief", "nav.brief", "leadership"),
    ("/incidents", "nav.incidents", "leadership"),
    ("/traffic", "nav.traffic", None),
    ("/ambulance", "nav.ambulance", None),
    ("/air", "nav.air", None),
    ("/appeals", "nav.appeals", None),
    ("/health", "nav.health", None),
)
RANK = {"viewer": 0, "leadership": 1, "operator": 2}
LIVE_INTERVAL_MS = 500
#: Transports of the live channel; the default is the one the measurements chose.
LIVE_CHANNELS = ("ws", "interval")
DEFAULT_LIVE_CHANNEL = "ws"
#: The WebSocket channel pushes at least this often (a heartbeat for the screens' watchdog).
LIVE_KEEPALIVE_S = 5.0
_channel = DEFAULT_LIVE_CHANNEL


def live_channel(settings: Settings) -> str:
    """The transport chosen by ``SC_LIVE_CHANNEL`` (``ws`` or ``interval``).

    Raises:
        ConfigError: any other value.
    """
    value = settings.live_channel.strip().lower() or DEFAULT_LIVE_CHANNEL
    if value not in LIVE_CHANNELS:
        raise ConfigError(f"SC_LIVE_CHANNEL={settings.live_channel!r}: expected one of {', '.join(LIVE_CHANNELS)}")
    return value


def create_app(settings: Settings, ctx: ApiContext | None = None, hub: Hub | None = None, *,
               channel: str | None = None) -> Dash:
    """Build the operations app. The API routes are added before Dash's so pages never shadow them.

    ``channel``: the live channel's transport (default: ``SC_LIVE_CHANNEL``)."""
    global _channel
    ctx = ctx or ApiContext.create(settings)
    hub = hub or Hub(ctx.redis, health=lambda: health_document(ctx))
    hub.start()
    data.init(ctx, hub)
    _channel = channel or live_channel(settings)
    server = FastAPI(title="Situation Center", docs_url="/api/docs", openapi_url="/api/openapi.json")
    server.include_router(build_router(ctx))

    @server.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """The operations app opens on the wall (after sign-in)."""
        return RedirectResponse("/wall", status_code=302)

    auth.install(server, settings)
    app = Dash(__name__, server=server, use_pages=True, pages_folder=str(HERE / "pages"),
               assets_folder=str(ASSETS), title="Situation Center", update_title=None,
               suppress_callback_exceptions=True, websocket_inactivity_timeout=0)
    app.layout = shell
    if _channel == "ws":
        notifier = Notifier(hub)
        app.callback(persistent=True, websocket=True)(_push_loop(notifier))
    else:
        app.callback(Output("sc-live", "data"), Input("sc-live-tick", "n_intervals"),
                     State("sc-live", "data"))(live)
    # the screen's watchdog (assets/live.js) sees every sc-live value: connection state, data age
    app.clientside_callback(ClientsideFunction("scLive", "onData"), Output("sc-live-seen", "data"),
                            Input("sc-live", "data"))
    # Dash collects the assets (CSS, live.js, maps.js) on its first ``/_dash-*`` request, so the
    # first page served after a restart came without them: a wall reloading itself after an
    # outage landed on an unstyled page without live.js, and never recovered. Collect them now.
    setup = getattr(app, "_setup_server", None)
    if callable(setup):
        setup()
    return app


def visible(min_role: str | None, role: str | None) -> bool:
    """Whether a navigation entry needing ``min_role`` shows for ``role``."""
    return min_role is None or (role is not None and RANK.get(role, -1) >= RANK[min_role])


def shell(**_: Any) -> html.Div:
    """The frame of every page, in the request's language."""
    lang = context.lang()
    role = context.role()
    account = context.account()
    nav = [dcc.Link(t(key, lang), href=path, className="nav-link") for path, key, need in NAV if visible(need, role)]
    langs = [html.A(code.upper(), href=f"?lang={code}", title=LANG_NAMES[code],
                    className="lang-link" + (" active" if code == lang else "")) for code in LANGS]
    user = [html.Span(account.user, className="user"), html.A(t("nav.logout", lang), href="/logout",
                                                             className="nav-link")] if account else []
    return html.Div([
        html.Header([
            html.Span(t("app.title", lang), className="brand"),
            html.Nav(nav, className="nav"),
            html.Span(className="spacer"),
            html.Span(t("conn.live", lang), id="sc-conn", className="conn conn-live",
                      **{"data-offline": t("conn.offline", lang, since="{since}"), "data-live": t("conn.live", lang),
                         "data-reconnecting": t("conn.reconnecting", lang), "data-lang": lang,
                         "data-zone": data.context().pack.timezone, "data-channel": _channel,
                         "data-age-s": t("age.seconds", lang, n="{n}"), "data-age-m": t("age.minutes", lang, n="{n}"),
                         "data-age-h": t("age.hours", lang, n="{n}")}),
            html.Span(id="sc-clock", className="clock"),
            html.Span(langs, className="langs"),
            *user,
        ], className="topbar"),
        page_container,
        dcc.Store(id="sc-live", data=live_state()),
        dcc.Store(id="sc-live-seen"),
        dcc.Interval(id="sc-live-tick", interval=LIVE_INTERVAL_MS, disabled=_channel != "interval"),
    ], className="app", lang=lang)


def live_state() -> dict[str, Any]:
    """What ``sc-live`` holds: the hub's change counter, topic versions and connection state."""
    hub = data.hub()
    return {"seq": hub.seq, "versions": hub.versions(), **hub.status(),
            "server_time": datetime.now(UTC).isoformat()}


def live(_n: int | None, current: dict[str, Any] | None) -> Any:
    """Send the versions only when something moved (an unchanged tick answers 204, a few bytes)."""
    hub = data.hub()
    if current and current.get("seq") == hub.seq and current.get("connected") == hub.connected:
        return no_update
    return live_state()


class Notifier:
    """Wakes asyncio waiters when the hub's ``seq`` moves: one thread per process blocks on
    :meth:`Hub.wait` and resolves the waiting futures on their event loops, so a thousand
    screens cost one thread and no polling."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._thread = threading.Thread(target=self._run, name="live-notifier", daemon=True)
        self._thread.start()

    async def wait(self, seq: int, timeout: float) -> int:
        """Return the hub's ``seq`` once it differs from ``seq``, or after ``timeout`` seconds."""
        if self.hub.seq != seq:
            return self.hub.seq
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            self._waiters.add(entry)
        try:
            if self.hub.seq == seq:  # a change between the first check and registering
                await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)
        return self.hub.seq

    def _run(self) -> None:
        seq = self.hub.seq
        while True:
            seq = self.hub.wait(seq, 30.0)
            with self._lock:
                waiters = list(self._waiters)
            for loop, future in waiters:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:  # that loop is closed
                    with self._lock:
                        self._waiters.discard((loop, future))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _push_loop(notifier: Notifier) -> Any:
    """The persistent WebSocket callback (no Input, no Output): pushes ``sc-live`` whenever the hub
    moves and every :data:`LIVE_KEEPALIVE_S`; ends when the socket closes (Dash restarts it on
    reconnect)."""

    async def sc_live_push() -> None:
        ws = ctx.websocket
        if ws is None:
            raise PreventUpdate
        seq = -1
        while not ws.is_shutdown:
            current = notifier.hub.seq
            if current == seq:
                current = await notifier.wait(seq, LIVE_KEEPALIVE_S)
            if ws.is_shutdown:
                break
            seq = current
            set_props("sc-live", {"data": live_state()})
        raise PreventUpdate

    return sc_live_push
