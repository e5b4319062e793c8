"""Access to the operations app: sessions, accounts, sign-in, role gates, CSRF and websocket checks.

Unit tests of the pieces (:mod:`dashboards.auth`, :mod:`dashboards.auth_accounts`), then HTTP
through the real app factory (``dashboards.ops.create_app``) with Starlette's TestClient on a real
Redis.
"""

from __future__ import annotations

import re
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from core.errors import ConfigError
from core.settings import Settings
from dashboards import auth, context
from dashboards.auth import (
    AccessDenied,
    AccountBook,
    FailureLimiter,
    Gate,
    Principal,
    Sessions,
    needed_role,
    safe_next,
    same_origin,
)
from dashboards.auth_accounts import (
    Account,
    ensure_demo_accounts,
    ensure_secret_key,
    hash_password,
    load_accounts,
    verify_password,
    write_accounts,
)

SECRET = "unit-test-secret-key-0123456789abcdef"
KIOSK = "kiosk-token-abcdefghijklmnop"
TOKEN = "operator-api-token-0123456789"
PASSWORDS = {"olga": ("operator", "olga-pass-123"), "lev": ("leadership", "lev-pass-1234"),
             "vera": ("viewer", "vera-pass-1234")}


# --- unit: sessions ---------------------------------------------------------------------------


def test_session_cookie_round_trip_and_tampering():
    s = Sessions(SECRET, hours=12)
    value = s.issue("olga", "operator", fingerprint="f1")
    data = s.read(value)
    assert data is not None and data["u"] == "olga" and data["r"] == "operator" and data["k"] is False
    assert abs(data["t"] - time.time()) < 5
    payload, sig = value.rsplit(".", 1)
    assert s.read(payload + "." + sig[::-1]) is None  # signature changed
    forged = value.replace(payload, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1])
    assert s.read(forged) is None  # payload changed
    assert Sessions("another-secret-key-0123456789", hours=12).read(value) is None  # foreign key
    assert s.read("") is None and s.read(None) is None and s.read("garbage") is None


def test_personal_session_expires_after_session_hours():
    s = Sessions(SECRET, hours=12)
    start = 1_800_000_000.0
    value = s.issue("olga", "operator", fingerprint="f", now=start)
    assert s.read(value, now=start + 12 * 3600 - 1) is not None
    assert s.read(value, now=start + 12 * 3600) is None
    assert Sessions(SECRET, hours=0.5).read(value, now=start + 1801) is None
    # issued "in the future" (a forged or broken clock): refused beyond the skew allowance
    assert s.read(value, now=start - 3600) is None
    assert s.read(value, now=start - 60) is not None


def test_kiosk_session_never_expires():
    s = Sessions(SECRET, hours=12, kiosk_tokens=KIOSK)
    start = 1_800_000_000.0
    value = s.issue("kiosk", "viewer", fingerprint=s.fingerprint(KIOSK), kiosk=True, now=start)
    for years in (0, 1, 5, 30):
        assert s.read(value, now=start + years * 365 * 86400 + 1) is not None


def test_kiosk_tokens_parse_and_compare():
    s = Sessions(SECRET, hours=1, kiosk_tokens=" a-token , ,b-token ")
    assert s.kiosk_tokens == ["a-token", "b-token"]
    assert s.kiosk_token("b-token") == "b-token"
    assert s.kiosk_token("b-toke") is None and s.kiosk_token("") is None and s.kiosk_token(None) is None
    assert Sessions(SECRET, hours=1).kiosk_token("anything") is None
    with pytest.raises(ConfigError):
        Sessions("", hours=1)


def _gate(tmp_path: Path, **settings) -> tuple[Gate, Path]:
    path = tmp_path / "accounts.json"
    write_accounts(path, {u: Account(u, r, hash_password(p)) for u, (r, p) in PASSWORDS.items()})
    s = Settings.from_env({}, data_dir=tmp_path / "var", accounts_file=path, secret_key=SECRET,
                          kiosk_tokens=KIOSK, **settings)
    gate = Gate(None, s, book=AccountBook(path), sessions=Sessions(SECRET, hours=12, kiosk_tokens=s.kiosk_tokens))
    return gate, path


def _cookie_for(gate: Gate, user: str, *, now: float | None = None) -> str:
    account = gate.book.get(user)
    return gate.sessions.issue(user, account.role, fingerprint=gate.sessions.fingerprint(account.password_hash),
                               now=now)


def test_role_is_reread_from_the_accounts_on_each_request(tmp_path):
    gate, path = _gate(tmp_path)
    cookie = _cookie_for(gate, "vera")
    assert gate.principal(gate.sessions.read(cookie)) == Principal("vera", "viewer")
    accounts = load_accounts(path)
    write_accounts(path, {**accounts, "vera": Account("vera", "leadership", accounts["vera"].password_hash)})
    assert gate.principal(gate.sessions.read(cookie)).role == "leadership"  # promoted at once
    del accounts["vera"]
    write_accounts(path, accounts)
    assert gate.principal(gate.sessions.read(cookie)) is None  # removed: no access at once


def test_a_new_password_ends_the_old_sessions(tmp_path):
    gate, path = _gate(tmp_path)
    cookie = _cookie_for(gate, "olga")
    assert gate.principal(gate.sessions.read(cookie)).user == "olga"
    accounts = load_accounts(path)
    write_accounts(path, {**accounts, "olga": Account("olga", "operator", hash_password("a-new-password"))})
    assert gate.principal(gate.sessions.read(cookie)) is None


def test_a_broken_accounts_file_keeps_the_last_good_accounts(tmp_path, caplog):
    gate, path = _gate(tmp_path)
    cookie = _cookie_for(gate, "lev")
    path.write_text("{not json", encoding="utf-8")
    assert gate.principal(gate.sessions.read(cookie)).role == "leadership"
    assert "keeping the accounts read before" in caplog.text
    with pytest.raises(ConfigError):
        AccountBook(path)  # at start it is an error
    with pytest.raises(ConfigError):
        AccountBook(tmp_path / "missing.json")


def test_kiosk_session_is_not_tied_to_an_account_but_to_its_token(tmp_path):
    gate, _ = _gate(tmp_path)
    value = gate.sessions.issue("kiosk", "viewer", fingerprint=gate.sessions.fingerprint(KIOSK), kiosk=True,
                                now=time.time() - 3 * 365 * 86400)
    p = gate.principal(gate.sessions.read(value))
    assert p == Principal("kiosk", "viewer", kiosk=True) and not p.at_least("leadership")
    other = Sessions(SECRET, hours=12, kiosk_tokens="a-new-token")  # the old token was removed
    gate.sessions = other
    assert gate.principal(other.read(value)) is None


def test_principal_roles():
    op, lead, view = Principal("o", "operator"), Principal("l", "leadership"), Principal("v", "viewer")
    assert op.at_least("operator") and op.at_least("leadership") and op.at_least("viewer")
    assert not lead.at_least("operator") and lead.at_least("leadership") and lead.at_least("viewer")
    assert not view.at_least("leadership") and view.at_least("viewer")
    assert needed_role("/brief") == needed_role("/incidents") == needed_role("/incidents/INC-1") == "leadership"
    assert needed_role("/wall") is None and needed_role("/briefing") is None and needed_role("/") is None


def test_require_raises_below_the_role():
    token = context.ACCOUNT.set(Principal("lev", "leadership"))
    try:
        assert auth.require("leadership").user == "lev"
        with pytest.raises(AccessDenied, match="needs the operator role; lev is signed in as leadership"):
            auth.require("operator")
        with pytest.raises(PermissionError):
            auth.require("operator")
        with pytest.raises(ValueError):
            auth.require("admin")
    finally:
        context.ACCOUNT.reset(token)
    with pytest.raises(AccessDenied, match="sign in required"):
        auth.require("viewer")


@pytest.mark.parametrize(("value", "expected"), [
    ("/brief", "/brief"), ("/incidents?id=INC-1&lang=en", "/incidents?id=INC-1&lang=en"), ("/", "/"),
    (None, "/wall"), ("", "/wall"), ("brief", "/wall"), ("//evil.example/x", "/wall"),
    ("https://evil.example/", "/wall"), ("/\\evil.example", "/wall"), ("\\\\evil.example", "/wall"),
    ("javascript:alert(1)", "/wall"), ("/wall\r\nSet-Cookie: x=1", "/wall"), ("/login?next=/x", "/wall"),
    ("/logout", "/wall"), ("/" + "a" * 3000, "/wall"),
])
def test_next_must_be_a_local_path(value, expected):
    assert safe_next(value) == expected


def test_failure_limiter_allows_ten_failures_per_five_minutes():
    limiter = FailureLimiter()
    for i in range(10):
        assert limiter.blocked_for("10.0.0.1", now=100.0 + i) == 0
        limiter.fail("10.0.0.1", now=100.0 + i)
    wait = limiter.blocked_for("10.0.0.1", now=110.0)
    assert 285 <= wait <= 300
    assert limiter.blocked_for("10.0.0.2", now=110.0) == 0  # per address
    assert limiter.blocked_for("10.0.0.1", now=100.0 + 300.5) == 0  # the first failure left the window
    small = FailureLimiter(max_clients=3)
    for n in range(5):
        small.fail(f"c{n}", now=1.0)
    assert len(small._failures) == 3  # memory stays bounded


@pytest.mark.parametrize(("headers", "scheme", "secure", "ok"), [
    ({"host": "ops.city:8050", "origin": "http://ops.city:8050"}, "http", False, True),
    ({"host": "ops.city", "origin": "http://ops.city"}, "http", False, True),
    ({"host": "ops.city", "origin": "http://ops.city:80"}, "http", False, True),
    ({"host": "OPS.city", "origin": "http://ops.CITY"}, "http", False, True),
    ({"host": "ops.city:8050", "origin": "http://ops.city:8051"}, "http", False, False),
    ({"host": "ops.city", "origin": "https://ops.city"}, "http", False, False),
    ({"host": "ops.city", "origin": "https://ops.city"}, "http", True, True),   # behind an HTTPS proxy
    ({"host": "ops.city", "origin": "http://evil.example"}, "http", False, False),
    ({"host": "ops.city", "origin": "http://ops.city.evil.example"}, "http", False, False),
    ({"host": "ops.city", "origin": "null"}, "http", False, False),
    ({"host": "ops.city"}, "http", False, False),                                 # neither header
    ({"host": "ops.city", "referer": "http://ops.city/incidents?x=1"}, "http", False, True),
    ({"host": "ops.city", "referer": "http://evil.example/ops.city"}, "http", False, False),
    ({"host": "ops.city", "origin": "http://evil.example", "referer": "http://ops.city/"}, "http", False, False),
    ({"host": "ops.city:8050", "origin": "http://ops.city:8050"}, "ws", False, True),
    ({"origin": "http://ops.city"}, "http", False, False),                        # no Host
])
def test_origin_rules(headers, scheme, secure, ok):
    assert same_origin(headers, scheme, secure=secure) is ok


def test_cookie_attributes():
    assert auth.cookie_header("sc_session", "v", max_age=60, secure=False) == \
        "sc_session=v; Max-Age=60; Path=/; SameSite=Strict; HttpOnly"
    assert auth.cookie_header("sc_session", "v", max_age=60, secure=True).endswith("; HttpOnly; Secure")


# --- unit: files made on first start -------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_demo_accounts_are_made_once_with_private_files(tmp_path):
    data = tmp_path / "var"
    demo = ensure_demo_accounts(data)
    assert demo.created and demo.accounts == data / "demo-accounts.json"
    assert demo.passwords == data / "demo-passwords.txt"
    assert _mode(demo.accounts) == 0o600 and _mode(demo.passwords) == 0o600
    accounts = load_accounts(demo.accounts)
    assert {u: a.role for u, a in accounts.items()} == {"operator": "operator", "leadership": "leadership",
                                                        "viewer": "viewer"}
    lines = [ln.split() for ln in demo.passwords.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 3
    for user, role, password in lines:
        assert accounts[user].role == role and len(password) >= 12
        assert verify_password(password, accounts[user].password_hash)
        assert password not in demo.accounts.read_text()  # hashes only
    again = ensure_demo_accounts(data)
    assert not again.created and load_accounts(again.accounts) == accounts
    assert sorted(p.name for p in data.iterdir()) == ["demo-accounts.json", "demo-passwords.txt"]  # no leftovers


def test_secret_key_is_made_once_private(tmp_path):
    key = ensure_secret_key(tmp_path / "var")
    path = tmp_path / "var" / "secret-key"
    assert len(key) >= 32 and _mode(path) == 0o600
    assert ensure_secret_key(tmp_path / "var") == key  # sessions survive restarts
    path.write_text("short")
    with pytest.raises(ConfigError, match="fewer than 16"):
        ensure_secret_key(tmp_path / "var")


def test_install_uses_demo_accounts_and_a_kept_key_when_not_configured(tmp_path, caplog):
    from fastapi import FastAPI

    settings = Settings.from_env({}, data_dir=tmp_path / "var")
    caplog.set_level("INFO", logger="dashboards.auth")
    gate = auth.install(FastAPI(), settings)
    assert gate.book.path == tmp_path / "var" / "demo-accounts.json"
    assert "demo-passwords.txt" in caplog.text and len(caplog.records) == 1
    assert (tmp_path / "var" / "secret-key").exists()
    again = auth.install(FastAPI(), settings)
    value = gate.sessions.issue("viewer", "viewer", fingerprint="x")
    assert again.sessions.read(value) is not None  # the same key after a restart


def test_install_refuses_a_missing_accounts_file(tmp_path):
    from fastapi import FastAPI

    settings = Settings.from_env({}, data_dir=tmp_path / "var", accounts_file=tmp_path / "nope.json",
                                 secret_key=SECRET)
    with pytest.raises(ConfigError, match="nope.json"):
        auth.install(FastAPI(), settings)


def test_pages_escape_what_they_echo():
    page = auth.login_page("en", '/x"><script>alert(1)</script>', error="<b>x</b>", user="<img src=x onerror=1>")
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=1&gt;" in page
    forbidden = auth.forbidden_page("ru", "leadership", path='/brief"><script>')
    assert "<script>" not in forbidden and "руководство" in forbidden


# --- HTTP through the real app ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ops(redis_server, tmp_path_factory):
    """The operations app (module-wide), its accounts file and settings."""
    from dashboards import data
    from dashboards.ops import create_app

    tmp = tmp_path_factory.mktemp("ops-auth")
    path = tmp / "accounts.json"
    write_accounts(path, {u: Account(u, r, hash_password(p)) for u, (r, p) in PASSWORDS.items()})
    settings = Settings.from_env({}, redis_url=redis_server.url, data_dir=tmp / "var", accounts_file=path,
                                 secret_key=SECRET, kiosk_tokens=f"{KIOSK},second-kiosk-token",
                                 operator_token=TOKEN)
    app = create_app(settings)
    with TestClient(app.server):  # runs the lifespan once (Dash adds its catch-all route there)
        pass
    yield app.server, path, settings
    data.hub().stop()


_ip = iter(range(1, 10_000))


def client_for(server) -> TestClient:
    """A client with its own address (the sign-in limiter counts per address)."""
    return TestClient(server, client=(f"10.1.{next(_ip) // 250}.{next(_ip) % 250}", 40000),
                      follow_redirects=False)


def signed_in(server, user: str) -> TestClient:
    c = client_for(server)
    r = c.post("/login", data={"username": user, "password": PASSWORDS[user][1], "next": "/health"})
    assert r.status_code == 303, r.text
    return c


SAME = {"origin": "http://testserver"}


@pytest.mark.redis
def test_without_a_session_pages_redirect_and_the_rest_is_401(ops):
    server, _, _ = ops
    c = client_for(server)
    for path, target in (("/", "/"), ("/health", "/health"), ("/wall?lang=en", "/wall?lang=en"),
                         ("/incidents/INC-1", "/incidents/INC-1")):
        r = c.get(path)
        assert r.status_code == 302, path
        where = urlsplit(r.headers["location"])
        assert where.path == "/login" and parse_qs(where.query)["next"] == [target]
    for path in ("/_dash-layout", "/_dash-dependencies", "/api/v1/kpis", "/api/v1/incidents", "/api/docs"):
        r = c.get(path)
        assert r.status_code == 401 and r.json()["error"] == "sign in required", path
    assert c.post("/_dash-update-component", json={}).status_code == 401


@pytest.mark.redis
def test_open_paths_need_no_session(ops):
    server, _, _ = ops
    c = client_for(server)
    assert c.get("/api/v1/health").status_code == 200
    assert c.get("/assets/00_base.css").status_code == 200
    assert c.get("/_favicon.ico").status_code == 200
    r = c.get("/login")
    assert r.status_code == 200 and 'name="username"' in r.text and 'name="password"' in r.text
    assert c.post("/api/v1/ingest/nope", content=b"{}").status_code == 404  # reaches the API (its own token)
    assert c.get("/_dash-component-suites/dash/deps/polyfill@7.v4_4_1m1.12.1.min.js").status_code != 401


@pytest.mark.redis
def test_login_page_follows_the_language(ops):
    server, _, _ = ops
    c = client_for(server)
    r = c.get("/login?lang=kk&next=/brief")
    assert "Құпиясөз" in r.text and 'lang="kk"' in r.text and 'value="/brief"' in r.text
    assert "sc_lang=kk" in r.headers["set-cookie"]
    assert "Құпиясөз" in c.get("/login", headers={"accept-language": "en"}).text  # the cookie beats the header
    assert "Пароль" in client_for(server).get("/login", headers={"accept-language": "ru-RU,ru;q=0.9"}).text
    assert "Password" in client_for(server).get("/login", headers={"accept-language": "en-GB"}).text


@pytest.mark.redis
@pytest.mark.parametrize("user", sorted(PASSWORDS))
def test_login_each_role_sets_a_strict_session_cookie(ops, user):
    server, _, _ = ops
    c = client_for(server)
    r = c.post("/login", data={"username": user, "password": PASSWORDS[user][1], "next": "/brief?x=1"})
    assert r.status_code == 303 and r.headers["location"] == "/brief?x=1"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("sc_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie and "Max-Age=43200" in cookie and "Secure" not in cookie
    layout = c.get("/_dash-layout")
    assert layout.status_code == 200 and user in layout.text
    assert ('"/brief"' in layout.text.replace("\\u002f", "/")) is (PASSWORDS[user][0] != "viewer")


@pytest.mark.redis
def test_wrong_password_and_unknown_user_get_the_same_answer(ops):
    server, _, _ = ops
    c = client_for(server)
    wrong = c.post("/login", data={"username": "olga", "password": "nope-nope", "next": "/wall"})
    unknown = c.post("/login", data={"username": "nobody", "password": "nope-nope", "next": "/wall"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.text.replace("olga", "U") == unknown.text.replace("nobody", "U")
    assert "sc_session" not in wrong.headers.get("set-cookie", "")


@pytest.mark.redis
@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "/logout"])
def test_login_never_redirects_off_site(ops, target):
    server, _, _ = ops
    c = client_for(server)
    r = c.post("/login", data={"username": "vera", "password": PASSWORDS["vera"][1], "next": target})
    assert r.status_code == 303 and r.headers["location"] == "/wall"


@pytest.mark.redis
def test_eleventh_failure_in_five_minutes_is_429(ops):
    server, _, _ = ops
    c = client_for(server)
    for _ in range(10):
        assert c.post("/login", data={"username": "olga", "password": "guess-guess"}).status_code == 401
    r = c.post("/login", data={"username": "olga", "password": PASSWORDS["olga"][1]})  # even the right one
    assert r.status_code == 429 and "Too many failed sign-in attempts" in c.post(
        "/login", data={"username": "x", "password": "y"}, headers={"accept-language": "en"}).text
    assert 0 < int(r.headers["retry-after"]) <= 300
    assert client_for(server).post("/login", data={"username": "olga", "password": PASSWORDS["olga"][1]}
                                   ).status_code == 303  # another address is not blocked


@pytest.mark.redis
def test_login_from_another_site_is_refused(ops):
    server, _, _ = ops
    c = client_for(server)
    r = c.post("/login", data={"username": "olga", "password": PASSWORDS["olga"][1]},
               headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "sc_session" not in r.headers.get("set-cookie", "")


@pytest.mark.redis
def test_role_gates(ops):
    server, _, _ = ops
    viewer, leader, operator = signed_in(server, "vera"), signed_in(server, "lev"), signed_in(server, "olga")
    for path in ("/brief", "/incidents", "/incidents/INC-1"):
        r = viewer.get(path, headers={"accept-language": "en"})
        assert r.status_code == 403 and "needs the leadership role" in r.text and 'href="/wall"' in r.text
        assert leader.get(path).status_code == 200 and operator.get(path).status_code == 200
    for path in ("/wall", "/traffic", "/health"):
        assert viewer.get(path).status_code == 200, path
    home = viewer.get("/", follow_redirects=False)
    assert home.status_code == 302 and home.headers["location"] == "/wall"  # the app opens on the wall
    assert viewer.get("/api/v1/incidents").status_code == 200  # the API reads are open to every role


@pytest.mark.redis
def test_security_headers_and_csp_on_html(ops):
    server, _, _ = ops
    c = signed_in(server, "vera")
    r = c.get("/health")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert r.headers["x-frame-options"] == "DENY"
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "base-uri 'self'" in csp
    script_src = re.search(r"script-src ([^;]+)", csp).group(1)
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", r.text, re.S)
    import base64
    import hashlib

    for code in inline:
        if "alert(\"Dash v2.7+" in code:
            continue  # inside an IE conditional comment: never run
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src, code[:80]
    login = c.get("/login")
    assert login.headers["x-frame-options"] == "DENY" and "content-security-policy" in login.headers
    api = c.get("/api/v1/health")
    assert api.headers["x-content-type-options"] == "nosniff" and "x-frame-options" not in api.headers


@pytest.mark.redis
def test_csrf_origin_is_checked_for_cookie_requests(ops):
    server, _, _ = ops
    c = signed_in(server, "olga")
    body = {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [], "state": [],
            "changedPropIds": []}

    def refused(**headers: str) -> bool:
        r = c.post("/_dash-update-component", json=body, headers=headers)
        return r.status_code == 403 and "cross-site" in r.text

    assert refused()  # neither Origin nor Referer
    assert refused(origin="http://evil.example")
    assert refused(referer="http://evil.example/")
    assert refused(origin="http://testserver:8080")
    assert refused(origin="https://testserver")  # SC_SECURE_COOKIES is off
    assert not refused(**SAME)  # reaches Dash (which answers this made-up callback as it likes)
    assert not refused(referer="http://testserver/health")
    # the same request without a session cookie is not a CSRF matter: 401
    assert client_for(server).post("/_dash-update-component", json=body).status_code == 401


def _incident(redis) -> str:
    from workers.incidents import IncidentStore
    from workers.rules.base import WARNING, Event

    now = datetime.now(UTC).replace(microsecond=0)
    onset = now - timedelta(minutes=15)
    event = Event(id=f"det:k:{int(onset.timestamp())}", detector="det", signal="traffic.drop", key="k", phase="open",
                  onset=onset, detected_at=now - timedelta(minutes=10), at=now - timedelta(minutes=10),
                  severity=WARNING, district="almaly", lat=43.25, lon=76.92, evidence={"value": 1})
    doc = IncidentStore(redis, "Asia/Almaty").create({"type": "smog", "rule": "single", "score": 1.0}, [event], [],
                                                     now - timedelta(minutes=10))
    return doc["id"]


@pytest.mark.redis
def test_incident_actions_from_sessions_record_the_user(ops, redis):
    server, _, _ = ops
    incident = _incident(redis)
    url = f"/api/v1/incidents/{incident}/actions"
    note = {"action": "note", "actor": "someone-else", "text": "<script>alert(1)</script> crew on site"}
    for user in ("vera", "lev"):
        r = signed_in(server, user).post(url, json=note, headers=SAME)
        assert r.status_code == 403 and "operator role" in r.json()["error"], user
    operator = signed_in(server, "olga")
    assert operator.post(url, json=note).status_code == 403  # CSRF: no Origin
    r = operator.post(url, json=note, headers=SAME)
    assert r.status_code == 200, r.text
    audit = operator.get(f"/api/v1/incidents/{incident}").json()["audit"]
    assert audit[-1]["actor"] == "olga"  # the session's user, not what the body claims
    kiosk = client_for(server)
    assert kiosk.get(f"/wall?kiosk={KIOSK}").status_code == 200
    assert kiosk.post(url, json=note, headers=SAME).status_code == 403


@pytest.mark.redis
def test_operator_token_clients_need_no_session_and_no_origin(ops, redis):
    server, _, _ = ops
    incident = _incident(redis)
    c = client_for(server)
    auth_header = {"authorization": f"Bearer {TOKEN}"}
    assert c.get("/api/v1/incidents", headers=auth_header).status_code == 200
    assert c.get("/api/v1/incidents", headers={"authorization": "Bearer wrong"}).status_code == 401
    r = c.post(f"/api/v1/incidents/{incident}/actions", json={"action": "acknowledge", "actor": "script-7"},
               headers=auth_header)
    assert r.status_code == 200, r.text
    assert c.get(f"/api/v1/incidents/{incident}", headers=auth_header).json()["audit"][-1]["actor"] == "script-7"
    assert c.get("/health", headers=auth_header).status_code == 302  # the token opens the API only


@pytest.mark.redis
def test_expired_and_tampered_cookies_lead_to_the_login(ops):
    server, path, settings = ops
    gate = server.state.sc_gate
    c = client_for(server)
    c.cookies.set("sc_session", _cookie_for(gate, "olga", now=time.time() - 12 * 3600 - 5))
    r = c.get("/incidents")
    assert r.status_code == 302 and r.headers["location"].startswith("/login?next=")
    assert "sc_session=\"\"; Max-Age=0" in r.headers["set-cookie"]
    assert c.get("/_dash-layout").status_code == 401
    c.cookies.set("sc_session", _cookie_for(gate, "olga", now=time.time() - 11 * 3600))
    assert c.get("/incidents").status_code == 200
    value = _cookie_for(gate, "vera")
    c.cookies.set("sc_session", value.replace(".", ".x", 1))
    assert c.get("/_dash-layout").status_code == 401
    forged = Sessions("not-the-server-key-0123456789", hours=12).issue(
        "olga", "operator", fingerprint=gate.sessions.fingerprint(gate.book.get("olga").password_hash))
    c.cookies.set("sc_session", forged)
    assert c.get("/_dash-layout").status_code == 401


@pytest.mark.redis
def test_kiosk_url_opens_the_wall_and_never_expires(ops):
    server, _, _ = ops
    gate = server.state.sc_gate
    c = client_for(server)
    r = c.get(f"/wall?kiosk={KIOSK}")
    assert r.status_code == 200 and r.headers["x-frame-options"] == "DENY"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"Max-Age={400 * 86400}" in cookie
    layout = c.get("/_dash-layout")
    assert layout.status_code == 200 and "kiosk" in layout.text
    assert c.get("/incidents").status_code == 403  # a viewer
    old = gate.sessions.issue("kiosk", "viewer", fingerprint=gate.sessions.fingerprint(KIOSK), kiosk=True,
                              now=time.time() - 2 * 365 * 86400)
    wall = client_for(server)
    wall.cookies.set("sc_session", old)
    r = wall.get("/_dash-layout")
    assert r.status_code == 200  # two years on
    assert "Max-Age=34560000" in r.headers.get("set-cookie", "")  # renewed in the browser
    assert wall.get("/wall").status_code == 200
    assert client_for(server).get("/wall?kiosk=wrong-token").status_code == 403
    assert client_for(server).get(f"/health?kiosk={KIOSK}").status_code == 302  # only the wall takes it


@pytest.mark.redis
def test_removed_account_loses_access_at_once(ops):
    server, path, _ = ops
    accounts = load_accounts(path)
    write_accounts(path, {**accounts, "temp": Account("temp", "viewer", hash_password("temp-pass-123"))})
    try:
        c = client_for(server)
        assert c.post("/login", data={"username": "temp", "password": "temp-pass-123"}).status_code == 303
        assert c.get("/incidents").status_code == 403
        write_accounts(path, {**accounts, "temp": Account("temp", "leadership",
                                                          load_accounts(path)["temp"].password_hash)})
        assert c.get("/incidents").status_code == 200  # promoted
        write_accounts(path, accounts)
        assert c.get("/_dash-layout").status_code == 401
        assert c.get("/incidents").status_code == 302
    finally:
        write_accounts(path, accounts)


@pytest.mark.redis
def test_logout_clears_the_cookie(ops):
    server, _, _ = ops
    c = signed_in(server, "lev")
    assert c.get("/_dash-layout").status_code == 200
    r = c.get("/logout")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert r.headers["set-cookie"].startswith('sc_session=""; Max-Age=0; Path=/')
    assert c.get("/_dash-layout").status_code == 401


@pytest.mark.redis
def test_language_still_switches_when_signed_in(ops):
    server, _, _ = ops
    c = signed_in(server, "vera")
    assert "Жағдайлық орталық" in c.get("/_dash-layout?lang=kk").text
    c.get("/health?lang=en")
    assert "Situation Center" in c.get("/_dash-layout").text  # remembered in sc_lang


@pytest.mark.redis
def test_websocket_needs_a_session_and_the_same_origin(ops):
    server, _, _ = ops
    anonymous = client_for(server)
    with pytest.raises(WebSocketDisconnect) as info:
        with anonymous.websocket_connect("/_dash-ws-callback", headers=SAME):
            pass
    assert info.value.code == 4401
    c = signed_in(server, "vera")
    with pytest.raises(WebSocketDisconnect) as info:
        with c.websocket_connect("/_dash-ws-callback", headers={"origin": "http://evil.example"}):
            pass
    assert info.value.code == 4403
    with c.websocket_connect("/_dash-ws-callback", headers=SAME) as ws:
        ws.send_json({"type": "heartbeat"})
        assert "heartbeat_ack" in ws.receive_text()  # accepted and served by Dash


@pytest.mark.redis
def test_websocket_closes_when_the_account_goes(ops):
    server, path, _ = ops
    accounts = load_accounts(path)
    write_accounts(path, {**accounts, "temp2": Account("temp2", "viewer", hash_password("temp-pass-123"))})
    try:
        c = client_for(server)
        assert c.post("/login", data={"username": "temp2", "password": "temp-pass-123"}).status_code == 303
        with c.websocket_connect("/_dash-ws-callback", headers=SAME) as ws:
            ws.send_json({"type": "heartbeat"})
            assert "heartbeat_ack" in ws.receive_text()
            write_accounts(path, accounts)
            ws.send_json({"type": "heartbeat"})
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 4401
    finally:
        write_accounts(path, accounts)


# --- sitcen passwd, sitcen run ---------------------------------------------------------------------


def _passwd(monkeypatch, capsys, argv: list[str], stdin: str = "") -> tuple[int, str]:
    import io

    from core import cli

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = cli.main(["passwd", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_passwd_creates_updates_and_removes(tmp_path, monkeypatch, capsys):
    for var in ("SC_ACCOUNTS_FILE", "SC_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "acc" / "accounts.json"
    code, out = _passwd(monkeypatch, capsys, ["olga", "--role", "operator", "--file", str(path), "--password-stdin"],
                        "first-secret-1\n")
    assert code == 0 and "created olga (operator)" in out and "first-secret-1" not in out
    assert _mode(path) == 0o600 and "first-secret-1" not in path.read_text()
    assert verify_password("first-secret-1", load_accounts(path)["olga"].password_hash)
    # update: role kept when not given; the password is asked twice without echo
    answers = iter(["second-secret-2", "second-secret-2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setenv("SC_ACCOUNTS_FILE", str(path))
    code, out = _passwd(monkeypatch, capsys, ["olga"])
    assert code == 0 and "updated olga (operator)" in out and "second-secret-2" not in out
    assert verify_password("second-secret-2", load_accounts(path)["olga"].password_hash)
    answers = iter(["one-password-1", "another-pass-2"])
    code, out = _passwd(monkeypatch, capsys, ["olga"])
    assert code == 1 and "differ" in out
    assert verify_password("second-secret-2", load_accounts(path)["olga"].password_hash)  # unchanged
    code, out = _passwd(monkeypatch, capsys, ["lev", "--password-stdin"], "leader-pass-1\n")
    assert code == 2 and "--role" in out  # a new account needs its role
    code, out = _passwd(monkeypatch, capsys, ["lev", "--role", "leadership", "--password-stdin"], "short\n")
    assert code == 1 and "at least 8" in out and "lev" not in load_accounts(path)
    code, out = _passwd(monkeypatch, capsys, ["lev", "--role", "leadership", "--password-stdin"], "leader-pass-1\n")
    assert code == 0 and load_accounts(path)["lev"].role == "leadership"
    code, out = _passwd(monkeypatch, capsys, ["olga", "--remove"])
    assert code == 0 and set(load_accounts(path)) == {"lev"}
    monkeypatch.delenv("SC_ACCOUNTS_FILE")
    code, out = _passwd(monkeypatch, capsys, ["x", "--role", "viewer", "--password-stdin"], "whatever-1\n")
    assert code == 2 and "SC_ACCOUNTS_FILE" in out


def test_run_prints_where_the_demo_passwords_are(tmp_path, monkeypatch, capsys):
    import argparse

    from core import cli, supervisor

    class Idle:
        def __init__(self, *_a, **_k) -> None:
            pass

        def run(self) -> int:
            return 0

    monkeypatch.setattr(supervisor, "Supervisor", Idle)
    monkeypatch.setattr(supervisor, "default_children", lambda *_a, **_k: [])
    settings = Settings.from_env({}, data_dir=tmp_path / "var")
    assert cli.cmd_run(settings, argparse.Namespace(source=None)) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and str(tmp_path / "var" / "demo-passwords.txt") in out
    assert cli.cmd_run(settings.with_(accounts_file=tmp_path / "a.json"), argparse.Namespace(source=None)) == 0
    assert capsys.readouterr().out == ""


def test_gated_page_layouts_check_the_role_for_in_page_navigation():
    registry = {"pages.incidents": {"path": "/incidents", "layout": lambda **q: f"console {q}"},
                "pages.brief": {"path": "/brief", "layout": "static brief"},
                "pages.wall": {"path": "/wall", "layout": lambda **q: "wall"}}
    wall = registry["pages.wall"]["layout"]
    assert auth.guard_page_layouts(registry) == 2
    assert auth.guard_page_layouts(registry) == 0  # once
    assert registry["pages.wall"]["layout"] is wall
    for account, allowed in ((Principal("vera", "viewer"), False), (Principal("k", "viewer", kiosk=True), False),
                             (None, False), (Principal("lev", "leadership"), True), (Principal("o", "operator"), True)):
        token = context.ACCOUNT.set(account)
        try:
            console = registry["pages.incidents"]["layout"](id="INC-1")
            brief = registry["pages.brief"]["layout"]()
        finally:
            context.ACCOUNT.reset(token)
        if allowed:
            assert console == "console {'id': 'INC-1'}" and brief == "static brief"
        else:
            assert "forbidden" in console.className and "forbidden" in brief.className
