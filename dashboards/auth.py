"""Access to the operations app (stub until the access module lands: no accounts, no checks).

``install(server, settings)`` adds the middleware that sets :mod:`dashboards.context` for each
request; this stub only sets the language from ``?lang=`` or the ``sc_lang`` cookie.
"""

from __future__ import annotations

from typing import Any

from dashboards import context
from dashboards.i18n import lang_of


def install(server: Any, settings: Any) -> None:  # noqa: ARG001
    """Add the request middleware to the FastAPI ``server``."""

    @server.middleware("http")
    async def _lang(request: Any, call_next: Any) -> Any:
        chosen = request.query_params.get("lang") or request.cookies.get("sc_lang") or \
            request.headers.get("accept-language")
        token = context.LANG.set(lang_of(chosen))
        try:
            response = await call_next(request)
        finally:
            context.LANG.reset(token)
        if request.query_params.get("lang"):
            response.set_cookie("sc_lang", lang_of(chosen), max_age=365 * 86400, samesite="lax")
        return response
