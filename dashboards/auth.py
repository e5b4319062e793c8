"""Access to the operations app: accounts, sessions, sign-in, role gates, CSRF and websocket checks.

``install(server, settings)`` wraps the FastAPI ``server`` in :class:`Gate`, a pure ASGI middleware
that runs before everything else (Dash's own middleware included) for every HTTP request and
websocket. For each one it

* sets :data:`dashboards.context.LANG` (``?lang=`` wins and is remembered in the ``sc_lang``
  cookie, then that cookie, then ``Accept-Language``) and :data:`dashboards.context.ACCOUNT`
  (a :class:`Principal`, or None);
* serves ``GET``/``POST /login`` and ``GET /logout`` itself (plain server-rendered pages);
* lets the open paths through (:data:`OPEN_PATHS`, :data:`OPEN_PREFIXES`) and asks a session of
  everything else: a page without one is redirected to ``/login?next=<path>``, anything else
  (Dash's ``/_dash-*`` requests, the API) gets 401 JSON, a websocket is closed with 4401;
* gates paths by role (:data:`GATES`: ``/brief`` and ``/incidents`` need leadership);
* checks ``Origin`` (or ``Referer``) of unsafe requests that carry the session cookie, and of
  websockets (403 / close 4403);
* adds security headers (``nosniff``, ``Referrer-Policy``, ``X-Frame-Options: DENY`` and a
  Content-Security-Policy on HTML).

Sessions are signed cookies (``itsdangerous``) carrying user, role, kiosk flag and issue time;
personal sessions end ``SC_SESSION_HOURS`` after sign-in (checked here from the signed time), the
role is re-read from the accounts file on every request, and a password change ends the sessions
opened with the old one. ``/wall?kiosk=<token>`` (``SC_KIOSK_TOKENS``) opens a viewer session
marked kiosk that never expires: a wall display runs unattended for months. ``docs/security.md``
describes it for operators.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import anyio
from itsdangerous import BadSignature, URLSafeSerializer

from core.errors import ConfigError
from dashboards import auth_accounts, context
from dashboards.auth_accounts import RANK, Account, hash_password, load_accounts, verify_password
from dashboards.i18n import LANG_NAMES, LANGS, lang_of, t

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SESSION_COOKIE = "sc_session"
LANG_COOKIE = "sc_lang"
#: Paths open without a session (everything else needs one).
OPEN_PATHS = frozenset({"/login", "/logout", "/_favicon.ico", "/api/v1/health"})
OPEN_PREFIXES: tuple[str, ...] = ("/assets/", "/_dash-component-suites/", "/api/v1/ingest/")
#: Path prefix -> lowest role that may open it (everything else: any signed-in account).
GATES: tuple[tuple[str, str], ...] = (("/brief", "leadership"), ("/incidents", "leadership"))
#: Paths answered with JSON (never redirected to the sign-in page).
MACHINE_PREFIXES: tuple[str, ...] = ("/_dash-", "/api/", "/_reload-hash")
KIOSK_PATHS: tuple[str, ...] = ("/wall",)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_NEXT = "/wall"

MAX_FAILURES = 10
FAILURE_WINDOW_S = 300.0
KIOSK_COOKIE_S = 400 * 86400  # browsers cap cookie lifetimes at 400 days; the cookie is renewed daily
KIOSK_RENEW_S = 86400.0
CLOCK_SKEW_S = 300.0
MAX_FORM_BYTES = 16 * 1024

#: Content-Security-Policy of HTML pages; ``{scripts}`` is filled with the hashes of Dash's inline
#: scripts (the renderer bootstrap and inline clientside callbacks). Map tiles come from the city
#: pack's tile server (any http(s) host), so images, fonts and fetches may come from elsewhere;
#: scripts may not.
CSP = ("default-src 'self'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob: https: http:; font-src 'self' data: https:; connect-src 'self' https:; "
       "worker-src 'self' blob:; frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'")
#: Used when Dash's inline scripts cannot be found: no script restriction, but no framing either.
CSP_FALLBACK = "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'"


# --- who is asking ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """The account a request runs as (``context.account()``).

    ``kiosk``: a wall display's session (role viewer, no account behind it). ``token``: an API client
    authenticated with ``SC_OPERATOR_TOKEN`` (acts as operator, named by its request's actor).
    """

    user: str
    role: str
    kiosk: bool = False
    token: bool = False

    def at_least(self, role: str) -> bool:
        """Whether this role includes ``role``."""
        return RANK[self.role] >= RANK[role]


class AccessDenied(PermissionError):
    """The current account may not do this (the message says which role it needs)."""

    def __init__(self, need: str, account: Principal | None) -> None:
        if account is None:
            message = f"sign in required (this needs the {need} role)"
        else:
            message = f"this needs the {need} role; {account.user} is signed in as {account.role}"
        super().__init__(message)
        self.need = need
        self.account = account


def require(role: str) -> Principal:
    """The current account if its role includes ``role``, for callbacks about to act.

    Raises:
        AccessDenied: nobody is signed in, or the account's role is below ``role``.
    """
    if role not in RANK:
        raise ValueError(f"unknown role {role!r}; one of {list(RANK)}")
    account = context.account()
    if account is None or not account.at_least(role):
        raise AccessDenied(role, account)
    return account


def needed_role(path: str) -> str | None:
    """The lowest role that may open ``path`` (None: any signed-in account)."""
    for prefix, role in GATES:
        if path == prefix or path.startswith(prefix + "/"):
            return role
    return None


def is_open(path: str) -> bool:
    """Whether ``path`` is served without a session."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _kiosk_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in KIOSK_PATHS)


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site (``/brief?x=1``), else ``/wall``.

    Refused: absolute and scheme-relative URLs (``//evil``), backslashes (browsers read ``/\\evil``
    as ``//evil``), control characters, and the sign-in pages themselves.
    """
    if not value or not isinstance(value, str) or len(value) > 2000:
        return DEFAULT_NEXT
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return DEFAULT_NEXT
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return DEFAULT_NEXT
    return value


# --- accounts and sessions -------------------------------------------------------------------


class AccountBook:
    """The accounts file, re-read whenever it changes (checked with one ``stat`` per request).

    A file that becomes unreadable or malformed while running keeps the last good accounts (and
    logs why); at start it is a :class:`ConfigError`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._accounts: dict[str, Account] = {}
        self._refresh(strict=True)

    def _refresh(self, *, strict: bool = False) -> None:
        try:
            st = self.path.stat()
        except OSError as err:
            if strict:
                raise ConfigError(f"accounts file {self.path}: {err}") from err
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        try:
            self._accounts = load_accounts(self.path)
        except ConfigError as err:
            if strict:
                raise
            log.error("%s; keeping the accounts read before", err)
        self._stamp = stamp

    def get(self, user: str) -> Account | None:
        """The account named ``user`` now, or None."""
        self._refresh()
        return self._accounts.get(user)


class Sessions:
    """Signs and reads session cookies.

    The cookie value is ``{"u": user, "r": role, "k": kiosk, "t": issued (Unix s), "f": fingerprint}``
    signed with the secret key; ``f`` binds a personal session to the account's password hash (a new
    password ends old sessions) and a kiosk session to its token (removing the token ends it).
    """

    def __init__(self, secret: str, *, hours: float, kiosk_tokens: str | list[str] = "") -> None:
        if not secret:
            raise ConfigError("the session secret key is empty")
        self._secret = secret.encode()
        self._signer = URLSafeSerializer(secret, salt="sc-session")
        self.lifetime_s = float(hours) * 3600.0
        tokens = kiosk_tokens.split(",") if isinstance(kiosk_tokens, str) else kiosk_tokens
        self.kiosk_tokens = [tok.strip() for tok in tokens if tok.strip()]

    def fingerprint(self, text: str) -> str:
        """A short keyed digest of ``text`` (a password hash or a kiosk token)."""
        digest = hmac.new(self._secret, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode()

    def issue(self, user: str, role: str, *, fingerprint: str, kiosk: bool = False, now: float | None = None) -> str:
        """A signed cookie value."""
        issued = int(time.time() if now is None else now)
        return self._signer.dumps({"u": user, "r": role, "k": bool(kiosk), "t": issued, "f": fingerprint})

    def read(self, value: str | None, now: float | None = None) -> dict[str, Any] | None:
        """The payload of a genuine, unexpired cookie, else None (tampered, foreign key, expired,
        issued in the future)."""
        if not value:
            return None
        try:
            data = self._signer.loads(value)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("t"), int):
            return None
        now = time.time() if now is None else now
        if data["t"] > now + CLOCK_SKEW_S:
            return None
        if not data.get("k") and now - data["t"] >= self.lifetime_s:
            return None
        return data

    def kiosk_token(self, candidate: str | None) -> str | None:
        """The configured kiosk token equal to ``candidate`` (constant-time), or None."""
        if not candidate:
            return None
        found = None
        for token in self.kiosk_tokens:
            if hmac.compare_digest(candidate.encode(), token.encode()):
                found = token
        return found

    def kiosk_fingerprints(self) -> set[str]:
        return {self.fingerprint(tok) for tok in self.kiosk_tokens}


class FailureLimiter:
    """At most ``limit`` failed sign-ins per client address per ``window_s`` (memory bounded)."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S, max_clients: int = 10_000):
        self.limit, self.window_s, self.max_clients = limit, window_s, max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float]:
        seen = self._failures.get(client)
        if seen is None:
            return deque()
        while seen and now - seen[0] >= self.window_s:
            seen.popleft()
        if not seen:
            del self._failures[client]
        return seen

    def blocked_for(self, client: str, now: float | None = None) -> float:
        """Seconds until ``client`` may try again (0: it may now)."""
        now = time.monotonic() if now is None else now
        seen = self._recent(client, now)
        if len(seen) < self.limit:
            return 0.0
        return max(1.0, self.window_s - (now - seen[-self.limit]))

    def fail(self, client: str, now: float | None = None) -> None:
        """Count one failure of ``client``."""
        now = time.monotonic() if now is None else now
        seen = self._recent(client, now)
        seen.append(now)
        self._failures[client] = seen
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


# --- origin checks -----------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _origin_of(url: str) -> tuple[str, str, str] | None:
    """(scheme, host, port) of an ``Origin`` or ``Referer`` value; None when it has none (``null``)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), str(port or _DEFAULT_PORTS[parts.scheme])


def same_origin(headers: dict[str, str], scheme: str, *, secure: bool = False) -> bool:
    """Whether a request's ``Origin`` (or, without it, ``Referer``) is the request's own site.

    The site is the ``Host`` header with the request's scheme; with ``secure`` (``SC_SECURE_COOKIES``,
    the app behind an HTTPS proxy) an ``https`` origin on the same host is accepted too. A request
    with neither header is refused.
    """
    claimed = headers.get("origin") or headers.get("referer")
    host = headers.get("host")
    if not claimed or not host:
        return False
    origin = _origin_of(claimed)
    if origin is None:
        return False
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    allowed_schemes = {scheme} | ({"https"} if secure else set())
    for candidate in allowed_schemes:
        own = _origin_of(f"{candidate}://{host}")
        if own is not None and own == origin:
            return True
    return False


# --- pages --------------------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/assets/00_base.css">
<style>
.auth {{ max-width: 24rem; margin: 12vh auto; padding: 2rem; background: var(--panel, #1a2029); border-radius: 8px; }}
.auth h1 {{ margin-top: 0; font-size: 1.5rem; }}
.auth label {{ display: block; margin: 1rem 0 .3rem; color: var(--muted, #9aa5b1); }}
.auth input {{ width: 100%; box-sizing: border-box; padding: .6rem; font: inherit; color: var(--fg, #e6e9ee);
  background: var(--bg, #0f1419); border: 1px solid #2b3440; border-radius: 4px; }}
.auth button {{ margin-top: 1.5rem; width: 100%; padding: .7rem; font: inherit; font-weight: 700; color: #0f1419;
  background: var(--ok, #2ecc71); border: 0; border-radius: 4px; cursor: pointer; }}
.auth .error {{ color: var(--bad, #e74c3c); font-weight: 700; }}
.auth .langs {{ margin-top: 1.5rem; }} .auth .langs a {{ color: var(--muted, #9aa5b1); margin-right: .8rem; }}
.auth .langs a.active {{ color: var(--fg, #e6e9ee); font-weight: 700; }}
.auth a {{ color: var(--fg, #e6e9ee); }}
</style></head>
<body><main class="auth">
<div class="brand">{brand}</div>
{body}
<nav class="langs">{langs}</nav>
</main></body></html>
"""


def _langs(lang: str, base: str, extra: dict[str, str]) -> str:
    links = []
    for code in LANGS:
        href = base + "?" + urlencode({**extra, "lang": code})
        cls = ' class="active"' if code == lang else ""
        links.append(f'<a href="{html.escape(href)}" title="{html.escape(LANG_NAMES[code])}"{cls}>{code.upper()}</a>')
    return "".join(links)


def login_page(lang: str, next_path: str, *, error: str = "", user: str = "") -> str:
    """The sign-in page (every value escaped)."""
    e = html.escape
    message = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    body = (f"<h1>{e(t('auth.title', lang))}</h1>{message}"
            f'<form method="post" action="/login" autocomplete="on">'
            f'<input type="hidden" name="next" value="{e(next_path)}">'
            f'<label for="username">{e(t("auth.user", lang))}</label>'
            f'<input id="username" name="username" autocomplete="username" required autofocus value="{e(user)}">'
            f'<label for="password">{e(t("auth.password", lang))}</label>'
            f'<input id="password" name="password" type="password" autocomplete="current-password" required>'
            f'<button type="submit">{e(t("auth.submit", lang))}</button></form>')
    return _PAGE.format(lang=lang, title=e(t("auth.title", lang)), brand=e(t("app.title", lang)), body=body,
                        langs=_langs(lang, "/login", {"next": next_path}))


def forbidden_page(lang: str, need: str, *, path: str = "") -> str:
    """The page shown to an account whose role is below ``need``."""
    e = html.escape
    body = (f"<h1>{e(t('auth.forbidden', lang))}</h1>"
            f"<p>{e(t('auth.forbidden_text', lang, role=t('role.' + need, lang)))}</p>"
            f'<p><a href="/wall">{e(t("auth.to_wall", lang))}</a> · '
            f'<a href="/login?{e(urlencode({"next": path or DEFAULT_NEXT}))}">{e(t("auth.other_user", lang))}</a></p>')
    return _PAGE.format(lang=lang, title=e(t("auth.forbidden", lang)), brand=e(t("app.title", lang)), body=body,
                        langs=_langs(lang, path or "/wall", {}))


def message_page(lang: str, text: str) -> str:
    e = html.escape
    body = f'<p class="error">{e(text)}</p><p><a href="/wall">{e(t("auth.to_wall", lang))}</a></p>'
    return _PAGE.format(lang=lang, title=e(t("app.title", lang)), brand=e(t("app.title", lang)), body=body,
                        langs="")


# --- the middleware ------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers") or ():
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        if name in out:
            text = out[name] + ("; " if name == "cookie" else ", ") + text
        out[name] = text
    return out


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is no cookie
        return {}
    return {k: v.value for k, v in jar.items()}


def _query(scope: Scope) -> dict[str, str]:
    raw = (scope.get("query_string") or b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def cookie_header(name: str, value: str, *, max_age: int, secure: bool, http_only: bool = True,
                  same_site: str = "Strict") -> str:
    """A ``Set-Cookie`` value with ``Path=/``."""
    parts = [f"{name}={value}", f"Max-Age={max_age}", "Path=/", f"SameSite={same_site}"]
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str
    headers: list[tuple[str, str]]


def _html(status: int, text: str, *headers: tuple[str, str]) -> _Answer:
    return _Answer(status, text.encode(), "text/html; charset=utf-8", list(headers))


def _json(status: int, doc: dict[str, Any], *headers: tuple[str, str]) -> _Answer:
    import json

    return _Answer(status, json.dumps(doc).encode(), "application/json", list(headers))


def _redirect(location: str, *headers: tuple[str, str], status: int = 302) -> _Answer:
    return _Answer(status, b"", "text/plain; charset=utf-8", [("location", location), *headers])


class Gate:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: Any, settings: Any, *, book: AccountBook, sessions: Sessions,
                 limiter: FailureLimiter | None = None, server: Any = None) -> None:
        self.app = app
        self.settings = settings
        self.book = book
        self.sessions = sessions
        self.limiter = limiter or FailureLimiter()
        self.secure = bool(settings.secure_cookies)
        self.operator_token = settings.operator_token or ""
        self.server = server
        self._dummy_hash: str | None = None
        self._pages_guarded = False

    # -- resolution --

    def principal(self, payload: dict[str, Any] | None) -> Principal | None:
        """The account a verified cookie payload stands for now (re-read from the accounts)."""
        if payload is None:
            return None
        if payload.get("k"):
            if payload.get("f") not in self.sessions.kiosk_fingerprints():
                return None
            return Principal(user=payload["u"], role="viewer", kiosk=True)
        account = self.book.get(payload["u"])
        if account is None or not hmac.compare_digest(str(payload.get("f", "")),
                                                      self.sessions.fingerprint(account.password_hash)):
            return None
        return Principal(user=account.user, role=account.role)

    def _bearer(self, headers: dict[str, str]) -> Principal | None:
        header = headers.get("authorization", "")
        if not self.operator_token or not header.lower().startswith("bearer "):
            return None
        if hmac.compare_digest(header[7:].strip().encode(), self.operator_token.encode()):
            return Principal(user="api-token", role="operator", token=True)
        return None

    # -- ASGI --

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        query = _query(scope)
        chosen = query.get("lang") or _cookies(headers).get(LANG_COOKIE) or headers.get("accept-language")
        lang = lang_of(chosen)
        lang_token = context.LANG.set(lang)
        try:
            if kind == "websocket":
                await self._websocket(scope, receive, send, headers)
            else:
                await self._http(scope, receive, send, headers, query, lang)
        finally:
            context.LANG.reset(lang_token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
                    query: dict[str, str], lang: str) -> None:
        path = scope.get("path") or "/"
        method = scope.get("method", "GET").upper()
        cookies = _cookies(headers)
        extra: list[tuple[str, str]] = []
        if query.get("lang"):
            extra.append(("set-cookie", cookie_header(LANG_COOKIE, lang, max_age=365 * 86400, secure=False,
                                                      http_only=False, same_site="lax")))
        if path == "/login":
            answer = await self._login(scope, receive, method, headers, query, lang)
            await self._respond(scope, receive, send, answer, extra)
            return
        if path == "/logout":
            gone = cookie_header(SESSION_COOKIE, '""', max_age=0, secure=self.secure)
            await self._respond(scope, receive, send, _redirect("/login", ("set-cookie", gone), status=303), extra)
            return

        account: Principal | None = None
        has_cookie = SESSION_COOKIE in cookies
        payload = self.sessions.read(cookies.get(SESSION_COOKIE))
        account = self.principal(payload)
        if account is not None and account.kiosk and time.time() - payload["t"] >= KIOSK_RENEW_S:  # type: ignore[index]
            extra.append(self._kiosk_cookie(payload["f"]))  # type: ignore[index]
        if method in ("GET", "HEAD") and query.get("kiosk") and _kiosk_path(path):
            kiosk = await self._kiosk(scope, headers, query["kiosk"], lang)
            if isinstance(kiosk, _Answer):
                await self._respond(scope, receive, send, kiosk, extra)
                return
            account = kiosk[0]
            extra.append(kiosk[1])
        if account is None and path.startswith("/api/"):
            account = self._bearer(headers)
            has_cookie = has_cookie and account is None

        if has_cookie and method in UNSAFE_METHODS and not path.startswith(OPEN_PREFIXES) and \
                not same_origin(headers, scope.get("scheme", "http"), secure=self.secure):
            answer = _json(403, {"error": "cross-site request refused: Origin (or Referer) does not match this "
                                          "site", "origin": headers.get("origin") or headers.get("referer")})
            await self._respond(scope, receive, send, answer, extra)
            return

        if not is_open(path):
            refusal = self._refusal(path, method, account, query, lang, has_cookie)
            if refusal is not None:
                await self._respond(scope, receive, send, refusal, extra)
                return

        if not self._pages_guarded:
            self._pages_guarded = True
            guard_page_layouts()
        acc_token = context.ACCOUNT.set(account)
        if account is not None and not account.token:
            scope["state"] = {**(scope.get("state") or {}), "account": account}
        try:
            await self.app(scope, receive, self._sender(send, extra))
        finally:
            context.ACCOUNT.reset(acc_token)

    def _refusal(self, path: str, method: str, account: Principal | None, query: dict[str, str], lang: str,
                 had_cookie: bool) -> _Answer | None:
        page = method in ("GET", "HEAD") and not path.startswith(MACHINE_PREFIXES)
        if account is None:
            if page:
                rest = urlencode({k: v for k, v in query.items() if k != "kiosk"})
                target = path + ("?" + rest if rest else "")
                headers = [("cache-control", "no-store")]
                if had_cookie:  # expired or revoked: drop it
                    headers.append(("set-cookie", cookie_header(SESSION_COOKIE, '""', max_age=0, secure=self.secure)))
                return _redirect("/login?" + urlencode({"next": target}, quote_via=quote), *headers)
            return _json(401, {"error": "sign in required", "login": "/login"}, ("www-authenticate", "Bearer"))
        need = needed_role(path)
        if need is not None and not account.at_least(need):
            if page:
                return _html(403, forbidden_page(lang, need, path=path), ("cache-control", "no-store"))
            return _json(403, {"error": f"this needs the {need} role", "role": account.role})
        return None

    async def _kiosk(self, scope: Scope, headers: dict[str, str], token: str,
                     lang: str) -> _Answer | tuple[Principal, tuple[str, str]]:
        client = (scope.get("client") or ("?",))[0]
        wait = self.limiter.blocked_for(client)
        if wait:
            return _html(429, message_page(lang, t("auth.limited", lang, minutes=max(1, round(wait / 60)))),
                         ("retry-after", str(int(wait))))
        found = self.sessions.kiosk_token(token)
        if found is None:
            self.limiter.fail(client)
            log.warning("wrong kiosk token from %s", client)
            return _html(403, message_page(lang, t("auth.forbidden", lang)), ("cache-control", "no-store"))
        return Principal(user="kiosk", role="viewer", kiosk=True), self._kiosk_cookie(self.sessions.fingerprint(found))

    def _kiosk_cookie(self, fingerprint: str) -> tuple[str, str]:
        value = self.sessions.issue("kiosk", "viewer", fingerprint=fingerprint, kiosk=True)
        return "set-cookie", cookie_header(SESSION_COOKIE, value, max_age=KIOSK_COOKIE_S, secure=self.secure)

    async def _login(self, scope: Scope, receive: Receive, method: str, headers: dict[str, str],
                     query: dict[str, str], lang: str) -> _Answer:
        no_store = ("cache-control", "no-store")
        if method in ("GET", "HEAD"):
            return _html(200, login_page(lang, safe_next(query.get("next"))), no_store)
        if method != "POST":
            return _json(405, {"error": "use GET or POST"}, ("allow", "GET, POST"))
        if (headers.get("origin") or headers.get("referer")) and \
                not same_origin(headers, scope.get("scheme", "http"), secure=self.secure):
            return _html(403, message_page(lang, t("auth.origin", lang)), no_store)
        form = await _read_form(receive, headers)
        if form is None:
            return _json(413, {"error": f"sign-in form larger than {MAX_FORM_BYTES} bytes"})
        next_path = safe_next(form.get("next") or query.get("next"))
        client = (scope.get("client") or ("?",))[0]
        wait = self.limiter.blocked_for(client)
        if wait:
            return _html(429, login_page(lang, next_path, error=t("auth.limited", lang,
                                                                  minutes=max(1, round(wait / 60)))),
                         ("retry-after", str(int(wait))), no_store)
        user, password = form.get("username", "").strip()[:64], form.get("password", "")[:1024]
        account = self.book.get(user) if user else None
        stored = account.password_hash if account is not None else self._dummy()
        ok = await anyio.to_thread.run_sync(verify_password, password, stored) if password else False
        if not ok or account is None:
            self.limiter.fail(client)
            log.info("failed sign-in for %r from %s", user, client)
            return _html(401, login_page(lang, next_path, error=t("auth.failed", lang), user=user), no_store)
        value = self.sessions.issue(account.user, account.role, fingerprint=self.sessions.fingerprint(stored))
        log.info("%s signed in (%s) from %s", account.user, account.role, client)
        cookie = cookie_header(SESSION_COOKIE, value, max_age=int(self.sessions.lifetime_s), secure=self.secure)
        return _redirect(next_path, ("set-cookie", cookie), no_store, status=303)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = hash_password("not-a-password-of-anyone")
        return self._dummy_hash

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        if not same_origin(headers, scope.get("scheme", "ws"), secure=self.secure):
            await send({"type": "websocket.close", "code": 4403, "reason": "origin not allowed"})
            return
        cookie = _cookies(headers).get(SESSION_COOKIE)
        account = self.principal(self.sessions.read(cookie))
        if account is None:
            await send({"type": "websocket.close", "code": 4401, "reason": "sign in required"})
            return
        need = needed_role(scope.get("path") or "/")
        if need is not None and not account.at_least(need):
            await send({"type": "websocket.close", "code": 4403, "reason": f"needs the {need} role"})
            return
        scope["state"] = {**(scope.get("state") or {}), "account": account}

        async def checked_receive() -> Message:
            message = await receive()
            if message.get("type") == "websocket.receive" and self.principal(self.sessions.read(cookie)) is None:
                await send({"type": "websocket.close", "code": 4401, "reason": "session ended"})
                return {"type": "websocket.disconnect", "code": 4401}
            return message

        token = context.ACCOUNT.set(account)
        try:
            await self.app(scope, checked_receive, send)
        finally:
            context.ACCOUNT.reset(token)

    # -- responses --

    def _sender(self, send: Send, extra: list[tuple[str, str]]) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers") or [])
                names = {k.decode("latin-1").lower() for k, _ in raw}
                content_type = next((v.decode("latin-1") for k, v in raw if k.lower() == b"content-type"), "")
                for name, value in self.security_headers(content_type):
                    if name not in names:
                        raw.append((name.encode("latin-1"), value.encode("latin-1")))
                raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
                message = {**message, "headers": raw}
            await send(message)

        return wrapped

    async def _respond(self, scope: Scope, receive: Receive, send: Send, answer: _Answer,
                       extra: list[tuple[str, str]]) -> None:
        raw = [(b"content-type", answer.content_type.encode()), (b"content-length", str(len(answer.body)).encode())]
        raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers)
        await self._sender(send, extra)({"type": "http.response.start", "status": answer.status, "headers": raw})
        body = b"" if scope.get("method") == "HEAD" else answer.body
        await send({"type": "http.response.body", "body": body})

    def security_headers(self, content_type: str) -> list[tuple[str, str]]:
        """Headers added to every response (the CSP and frame denial to HTML ones)."""
        out = [("x-content-type-options", "nosniff"), ("referrer-policy", "strict-origin-when-cross-origin")]
        if content_type.startswith("text/html"):
            out += [("x-frame-options", "DENY"), ("content-security-policy", self.csp())]
        return out

    def csp(self) -> str:
        """The Content-Security-Policy of HTML pages (see :data:`CSP`)."""
        hashes = dash_script_hashes(self.server)
        if hashes is None:
            return CSP_FALLBACK
        return CSP.format(scripts="".join(" " + h for h in hashes))


def guard_page_layouts(registry: Any = None) -> int:
    """Wrap the layouts of gated Dash pages so that they check the role too.

    The middleware gates a page's URL when the browser loads it; Dash's in-page navigation
    (``dcc.Link``, history changes) renders a page's layout through a callback instead, which the
    middleware cannot tell apart. The wrapped layout shows the "Not allowed" text below the page's
    role. Returns how many layouts were wrapped (each is wrapped once).
    """
    if registry is None:
        from dash import page_registry as registry
    count = 0
    for page in registry.values():
        need = needed_role(str(page.get("path") or ""))
        layout = page.get("layout")
        if need is None or layout is None or getattr(layout, "_sc_guarded", False):
            continue
        page["layout"] = _guarded(layout, need)
        count += 1
    return count


def _guarded(layout: Any, need: str) -> Callable[..., Any]:
    def guarded(**query: Any) -> Any:
        account = context.account()
        if account is None or not account.at_least(need):
            return forbidden_layout(context.lang(), need)
        return layout(**query) if callable(layout) else layout

    guarded._sc_guarded = True  # type: ignore[attr-defined]
    return guarded


def forbidden_layout(lang: str, need: str) -> Any:
    """The "Not allowed" text as Dash components (for pages and callbacks)."""
    from dash import dcc
    from dash import html as dhtml

    return dhtml.Div([
        dhtml.H1(t("auth.forbidden", lang)),
        dhtml.P(t("auth.forbidden_text", lang, role=t("role." + need, lang))),
        dcc.Link(t("auth.to_wall", lang), href="/wall"),
    ], className="page forbidden")


def dash_script_hashes(server: Any) -> list[str] | None:
    """CSP hashes of the inline scripts the Dash app on ``server`` writes into its pages, or None
    when no Dash app is found (then :data:`CSP_FALLBACK` applies)."""
    app = _dash_app(server)
    if app is None:
        return None
    from dash import _callback

    scripts = [*getattr(app, "_inline_scripts", []), *_callback.GLOBAL_INLINE_SCRIPTS, app.renderer]
    return [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
            for s in dict.fromkeys(scripts)]


def _dash_app(server: Any) -> Any:
    for middleware in getattr(server, "user_middleware", ()) or ():
        app = (getattr(middleware, "kwargs", None) or {}).get("dash_app")
        if app is not None:
            return app
    return None


async def _read_form(receive: Receive, headers: dict[str, str]) -> dict[str, str] | None:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return None
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return None
        if not message.get("more_body"):
            break
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


# --- installation -------------------------------------------------------------------------------


def accounts_path(settings: Any) -> Path:
    """The accounts file in use: ``SC_ACCOUNTS_FILE``, or the demo accounts (made on first start)."""
    configured = Path(settings.accounts_file)
    if str(configured) not in ("", "."):
        return configured
    demo = auth_accounts.ensure_demo_accounts(settings.data_dir)
    if demo.created:
        log.warning("demo accounts operator, leadership and viewer created in %s; their passwords are in %s "
                    "(set SC_ACCOUNTS_FILE for real accounts)", demo.accounts, demo.passwords)
    else:
        log.info("using the demo accounts in %s (passwords in %s)", demo.accounts, demo.passwords)
    return demo.accounts


def secret_key(settings: Any) -> str:
    """``SC_SECRET_KEY``, or the key kept in ``<data_dir>/secret-key`` (made once)."""
    return settings.secret_key or auth_accounts.ensure_secret_key(settings.data_dir)


def install(server: Any, settings: Any) -> Gate:
    """Put :class:`Gate` in front of the FastAPI ``server`` (outermost, so it runs before Dash's own
    middleware and every route). Returns the gate (its ``limiter``, ``book`` and ``sessions`` are
    there for tests).

    Raises:
        ConfigError: the accounts file is missing or malformed, or the secret key file is bad.
    """
    book = AccountBook(accounts_path(settings))
    sessions = Sessions(secret_key(settings), hours=settings.session_hours, kiosk_tokens=settings.kiosk_tokens)
    gate = Gate(None, settings, book=book, sessions=sessions, server=server)
    build = server.build_middleware_stack

    def build_with_gate() -> Any:
        gate.app = build()
        return gate

    server.build_middleware_stack = build_with_gate
    server.state.sc_gate = gate
    return gate
