"""The operations web app (port 8050): Dash pages plus the HTTP API on one FastAPI server.

The shell around every page: a top bar (navigation for the account's role, language, connection
state, the city's clock), the page, and the live channel: ``sc-live`` is a store holding the
hub's versions and connection state; pages take it as an ``Input`` and re-read only the topics
whose version moved (``docs/dashboards.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update, page_container
from fastapi import FastAPI

from core.api import ApiContext, build_router, health_document
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


def create_app(settings: Settings, ctx: ApiContext | None = None, hub: Hub | None = None) -> Dash:
    """Build the operations app. The API routes are added before Dash's so pages never shadow them."""
    ctx = ctx or ApiContext.create(settings)
    hub = hub or Hub(ctx.redis, health=lambda: health_document(ctx))
    hub.start()
    data.init(ctx, hub)
    server = FastAPI(title="Situation Center", docs_url="/api/docs", openapi_url="/api/openapi.json")
    server.include_router(build_router(ctx))
    auth.install(server, settings)
    app = Dash(__name__, server=server, use_pages=True, pages_folder=str(HERE / "pages"),
               assets_folder=str(ASSETS), title="Situation Center", update_title=None,
               suppress_callback_exceptions=True)
    app.layout = shell
    app.callback(Output("sc-live", "data"), Input("sc-live-tick", "n_intervals"), State("sc-live", "data"))(live)
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
                         "data-lang": lang}),
            html.Span(id="sc-clock", className="clock"),
            html.Span(langs, className="langs"),
            *user,
        ], className="topbar"),
        page_container,
        dcc.Store(id="sc-live", data=live_state()),
        dcc.Interval(id="sc-live-tick", interval=LIVE_INTERVAL_MS),
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
