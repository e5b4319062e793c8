"""The operations web app (port 8050): Dash pages plus the HTTP API on one FastAPI server."""

from __future__ import annotations

from pathlib import Path

from dash import Dash, dcc, html, page_container, page_registry
from fastapi import FastAPI

from core.api import ApiContext, build_router
from core.settings import Settings
from dashboards import data

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent / "assets"


def create_app(settings: Settings, ctx: ApiContext | None = None) -> Dash:
    """Build the operations app. The API routes are added before Dash's so pages never shadow them."""
    ctx = ctx or ApiContext.create(settings)
    data.init(ctx)
    server = FastAPI(title="Situation Center", docs_url="/api/docs", openapi_url="/api/openapi.json")
    server.include_router(build_router(ctx))
    app = Dash(__name__, server=server, use_pages=True, pages_folder=str(HERE / "pages"),
               assets_folder=str(ASSETS), title="Situation Center", update_title=None,
               suppress_callback_exceptions=True)
    app.layout = html.Div([
        html.Header([
            html.Span("Situation Center", className="brand"),
            html.Nav([dcc.Link(page["name"], href=page["relative_path"], className="nav-link")
                      for page in page_registry.values()]),
        ], className="topbar"),
        page_container,
    ], className="app")
    return app
