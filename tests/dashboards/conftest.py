"""Fixtures for the web apps: a seeded city in its own Redis, the real servers as processes, logins.

``city``: a real Redis (its own server, session-wide) holding the last 6 hours of the simulated
city, analysed (KPIs, events, incidents) by the real analytics loop (``simulator.seed``).
``ops_url`` / ``public_url``: ``sitcen web`` / ``sitcen public`` started as processes against it.
Accounts: ``ACCOUNTS`` (user -> (role, password)) written to a file the servers read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.redis_server import EmbeddedRedis, connect, free_port

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = {"olga": ("operator", "operator-pass-1"), "lev": ("leadership", "leader-pass-1"),
            "vera": ("viewer", "viewer-pass-1")}
SECRET = "test-secret-key-for-sessions-0123456789"
KIOSK_TOKEN = "wall-kiosk-token-0123456789"


@pytest.fixture(scope="session")
def city(tmp_path_factory):
    """A Redis server with six analysed hours of the simulated city and their per-minute KPI
    history. Yields the server."""
    from core.citypack import load_pack
    from simulator.seed import seed

    server = EmbeddedRedis(tmp_path_factory.mktemp("city-redis"), persist=False)
    server.start()
    from datetime import datetime

    from bench.screenshot_topics import backfill_history

    client = connect(server.url)
    pack = load_pack(None)
    out = seed(client, pack, hours=6)
    # a running center has a per-minute KPI history; the seed computed only its last minute
    backfill_history(client, pack, datetime.fromisoformat(out["until"]), hours=6)
    client.close()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def accounts_file(tmp_path_factory) -> Path:
    from dashboards.auth_accounts import Account, hash_password, write_accounts

    path = tmp_path_factory.mktemp("accounts") / "accounts.json"
    write_accounts(path, {u: Account(u, role, hash_password(pw)) for u, (role, pw) in ACCOUNTS.items()})
    return path


def server_env(city: EmbeddedRedis, accounts_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env.update({"SC_REDIS_URL": city.url, "SC_ACCOUNTS_FILE": str(accounts_file), "SC_SECRET_KEY": SECRET,
                "SC_KIOSK_TOKENS": KIOSK_TOKEN, "SC_LOG_LEVEL": "WARNING", **extra})
    return env


def start_server(command: str, env: dict[str, str], port_var: str, *, ready_path: str = "/",
                 timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """Start ``sitcen <command>`` on a free port and wait until it answers ``ready_path``."""
    port = free_port()
    env = {**env, port_var: str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", command], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"sitcen {command} exited with {proc.returncode}:\n{out[-4000:]}", pytrace=False)
        try:
            if httpx.get(url + ready_path, timeout=2).status_code < 500:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"sitcen {command} did not answer {ready_path} within {timeout} s", pytrace=False)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def ops_url(city, accounts_file):
    """``sitcen web`` (the operations app) on the seeded city. Yields its base URL."""
    proc, url = start_server("web", server_env(city, accounts_file), "SC_WEB_PORT", ready_path="/api/v1/health")
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def public_url(city, accounts_file):
    """``sitcen public`` (the public app) on the seeded city. Yields its base URL."""
    proc, url = start_server("public", server_env(city, accounts_file), "SC_PUBLIC_PORT")
    yield url
    stop_server(proc)


def login(driver, base_url: str, user: str, next_path: str = "/wall") -> None:
    """Sign ``user`` (a key of ``ACCOUNTS``) in through the login form, then open ``next_path``."""
    from selenium.webdriver.common.by import By

    from urllib.parse import quote

    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/login?next={quote(next_path, safe='/')}")
    if "/login" in driver.current_url:
        driver.find_element(By.NAME, "username").send_keys(user)
        driver.find_element(By.NAME, "password").send_keys(ACCOUNTS[user][1])
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        # the form's redirect must land before the next navigation, or it would override it
        WebDriverWait(driver, 20).until(lambda d: "/login" not in d.current_url)
    driver.get(base_url + next_path)
