"""The public app (port 8051): a separate process with no write callbacks and no query endpoint.

The indicator pages come with the dashboards issue; until then it shows, in Kazakh, Russian
and English, which open data feeds are live, from the same pre-computed health document.
"""

from __future__ import annotations

from pathlib import Path

from dash import Dash, html
from fastapi import FastAPI

from core.api import ApiContext, health_document
from core.settings import Settings

ASSETS = Path(__file__).resolve().parent.parent / "assets"

LABELS = {
    "title": {"kk": "Қала көрсеткіштері", "ru": "Показатели города", "en": "City indicators"},
    "live": {"kk": "Деректер ағындары", "ru": "Потоки данных", "en": "Data feeds"},
}
FEEDS = {
    "air": {"kk": "Ауа сапасы", "ru": "Качество воздуха", "en": "Air quality"},
    "traffic": {"kk": "Көлік қозғалысы", "ru": "Дорожное движение", "en": "Road traffic"},
    "ambulance": {"kk": "Жедел жәрдем", "ru": "Скорая помощь", "en": "Ambulance"},
    "appeals": {"kk": "Азаматтардың өтініштері", "ru": "Обращения граждан", "en": "Citizens' appeals"},
}
STATUS = {"ok": {"kk": "жұмыс істейді", "ru": "работает", "en": "live"},
          "other": {"kk": "кідіріс", "ru": "задержка", "en": "delayed"}}


def create_public_app(settings: Settings, ctx: ApiContext | None = None) -> Dash:
    """Build the public app: layout computed per page load from the health document only."""
    ctx = ctx or ApiContext.create(settings)
    app = Dash(__name__, server=FastAPI(docs_url=None, redoc_url=None, openapi_url=None),
               assets_folder=str(ASSETS), title="Almaty — city indicators", update_title=None)

    def layout() -> html.Div:
        try:
            feeds = health_document(ctx)["feeds"]
        except Exception:  # noqa: BLE001 - public page: show the frame, never a traceback
            feeds = {}
        blocks = []
        for lang in ("kk", "ru", "en"):
            items = [html.Li(f"{FEEDS[name][lang]}: "
                             f"{STATUS['ok' if feeds.get(name, {}).get('status') == 'ok' else 'other'][lang]}")
                     for name in FEEDS]
            blocks.append(html.Section([html.H2(LABELS["live"][lang]), html.Ul(items)], lang=lang))
        return html.Div([html.H1(" · ".join(LABELS["title"][k] for k in ("kk", "ru", "en"))), *blocks],
                        className="page public")

    app.layout = layout
    return app
