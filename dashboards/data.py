"""Read-only data access for the pages. One process-wide context, set by the app factory."""

from __future__ import annotations

from typing import Any

from core.api import ApiContext, health_document

_CTX: ApiContext | None = None


def init(ctx: ApiContext) -> None:
    """Install the context the pages read from (called once by the app factory)."""
    global _CTX
    _CTX = ctx


def context() -> ApiContext:
    """The installed context.

    Raises:
        RuntimeError: :func:`init` was not called.
    """
    if _CTX is None:
        raise RuntimeError("dashboards.data.init() was not called")
    return _CTX


def health() -> dict[str, Any]:
    """The same document as ``GET /api/v1/health``."""
    return health_document(context())
