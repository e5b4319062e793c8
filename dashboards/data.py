"""Read-only data access for the pages: one process-wide API context and live hub, set by the app factory.

Pages never query Redis themselves: live documents come from the hub (:mod:`dashboards.live`), which
follows Redis once per process; the few per-request reads (an incident's audit log) go through the
API context's stores.
"""

from __future__ import annotations

from typing import Any

from core.api import ApiContext, health_document
from dashboards.live import Hub, Topic

_CTX: ApiContext | None = None
_HUB: Hub | None = None


def init(ctx: ApiContext, hub: Hub | None = None) -> None:
    """Install the context (and hub) the pages read from (called once by the app factory)."""
    global _CTX, _HUB
    _CTX = ctx
    _HUB = hub


def context() -> ApiContext:
    """The installed context.

    Raises:
        RuntimeError: :func:`init` was not called.
    """
    if _CTX is None:
        raise RuntimeError("dashboards.data.init() was not called")
    return _CTX


def hub() -> Hub:
    """The installed live hub.

    Raises:
        RuntimeError: :func:`init` was not called with a hub.
    """
    if _HUB is None:
        raise RuntimeError("dashboards.data.init() was not given a hub")
    return _HUB


def topic(name: str) -> Topic:
    """The latest load of a hub topic (``kpi:air``, ``incidents``, ``events``, ``health`` ...)."""
    return hub().get(name)


def health() -> dict[str, Any]:
    """The data-health document: from the hub when it has one, else read now."""
    if _HUB is not None and _HUB.get("health").doc is not None:
        return _HUB.get("health").doc
    return health_document(context())
