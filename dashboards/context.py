"""Who is asking and in which language: request-scoped values set by the web middleware.

The middleware (``dashboards.auth``) sets them for every HTTP request and websocket connection;
page layouts and callbacks read them (Starlette copies the context into the threads that run sync
callbacks, so the values follow the request).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from dashboards.i18n import DEFAULT_LANG

#: The visitor's language (``kk``, ``ru`` or ``en``).
LANG: ContextVar[str] = ContextVar("sc_lang", default=DEFAULT_LANG)
#: The signed-in account (``dashboards.auth_accounts.Account``), or None.
ACCOUNT: ContextVar[Any] = ContextVar("sc_account", default=None)


def lang() -> str:
    """The current request's language."""
    return LANG.get()


def account() -> Any:
    """The current request's account, or None."""
    return ACCOUNT.get()


def role() -> str | None:
    """The current account's role, or None."""
    acc = ACCOUNT.get()
    return None if acc is None else acc.role
