"""The wall in a real browser at 1920×1080: seeded data in kk/ru/en, live updates without reload, the
operator's zoom kept across updates, feed text shown as text, and an unattended screen that greys
with "since" when the server dies and recovers on its own after a restart.

Runs ``sitcen web`` as a process on the seeded city (``ops_url``) and opens ``/wall`` with the
kiosk token (no login); the outage test starts and kills its own server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from core import keys
from core.citypack import load_pack
from core.redis_server import connect
from dashboards.i18n import names, number, t
from tests.conftest import new_chrome
from tests.dashboards.conftest import KIOSK_TOKEN, ROOT, server_env, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]

WAIT_S = 30
XSS = "<img src=x onerror=alert(1)>"


def wall(driver, base: str, lang: str, query: str = "") -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
    driver.get(f"{base}/wall?kiosk={KIOSK_TOKEN}&lang={lang}{query}")
    WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#wall-map path")))


def wait_until(driver, condition, timeout: float = WAIT_S, poll: float = 0.1):
    return WebDriverWait(driver, timeout, poll_frequency=poll).until(lambda d: condition(d))


@pytest.fixture(scope="module")
def browser():
    driver = new_chrome(1920, 1080)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def redis_client(city):
    client = connect(city.url)
    yield client
    client.close()


def snapshot(redis_client, domain: str) -> dict:
    return orjson.loads(redis_client.get(keys.kpi_key(domain)))


def open_incidents(redis_client) -> list[dict]:
    ids = [i.decode() for i in redis_client.zrevrange(keys.INCIDENTS_OPEN, 0, -1)]
    return [orjson.loads(redis_client.get(keys.incident_key(i))) for i in ids]


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_the_wall_shows_the_seeded_city_in_each_language(browser, ops_url, redis_client, lang):
    wall(browser, ops_url, lang)
    assert browser.execute_script("return [innerWidth, innerHeight]") == [1920, 1080]
    assert browser.find_element(By.CSS_SELECTOR, ".wall").get_attribute("lang") == lang
    # the tiles carry the seeded KPI values, formatted in the language
    air = snapshot(redis_client, "air")["values"]["city"]
    appeals = snapshot(redis_client, "appeals")["values"]["city"]
    assert browser.find_element(By.ID, "wall-value-air").text == number(air["air.aqi"], lang)
    assert browser.find_element(By.ID, "wall-value-appeals").text == number(appeals["appeals.open"], lang)
    tiles = browser.find_element(By.ID, "wall-tiles").text
    assert t("nav.air", lang).upper() in tiles.upper() and t("nav.ambulance", lang).upper() in tiles.upper()
    # the map: every district drawn, the air stations with their AQI, the incidents
    pack = load_pack(None)
    paths = browser.find_elements(By.CSS_SELECTOR, "#wall-map path.leaflet-interactive")
    assert len(paths) >= len(pack.districts)
    stations = [el.text for el in browser.find_elements(By.CSS_SELECTOR, "#wall-map .sc-station")]
    assert str(air["air.aqi"]) in stations
    # the ticker: every seeded open incident, its type in the language, its district's name
    ticker = browser.find_element(By.CSS_SELECTOR, ".wall-ticker").text
    assert t("wall.incidents", lang) in ticker
    for inc in open_incidents(redis_client)[:7]:
        assert t(f"wall.type.{inc['type']}", lang) in ticker
        if inc.get("district"):
            assert names(pack.district(inc["district"]).names.as_dict(), lang) in ticker
    # kiosk: no top bar navigation, but the connection state and the clock stay visible
    assert not browser.find_element(By.CSS_SELECTOR, ".topbar .nav").is_displayed()
    assert browser.find_element(By.ID, "sc-conn").text == t("conn.live", lang)
    wait_until(browser, lambda d: len(d.find_element(By.ID, "sc-clock").text) == 8)


def _incident(redis_client, lat: float, lon: float, district: str, kind_category: str = "heating") -> str:
    """A new incident through the real incident store (as the correlator writes it)."""
    from workers.incidents import IncidentStore

    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.isoformat().replace("+00:00", "Z")
    event = {"id": f"appeal_hotspot:test@{lat},{lon}:{int(now.timestamp())}", "detector": "appeal_hotspot",
             "signal": "appeals.burst", "key": f"test@{lat},{lon}", "phase": "open", "onset": stamp,
             "detected_at": stamp, "at": stamp, "severity": 3, "district": district, "lat": lat, "lon": lon,
             "radius_m": 500.0, "evidence": {"category": kind_category, "count": 12}, "ended_at": None}
    doc = IncidentStore(redis_client, "Asia/Almaty").create({"type": "heating_outage"}, [event], now=now)
    return doc["id"]


def _resolve(redis_client, incident_id: str) -> None:
    from workers.incidents import IncidentStore

    IncidentStore(redis_client, "Asia/Almaty").act(incident_id, "resolve", "test", datetime.now(UTC),
                                                    text="test over")


def test_a_new_incident_appears_without_reload_and_the_operators_zoom_survives(browser, ops_url, redis_client):
    wall(browser, ops_url, "en")
    browser.execute_script("window.__sameDocument = true;")
    # the operator zooms into the centre
    browser.execute_script("scMaps.map('wall-map').setView([43.25, 76.93], 14, {animate: false});")
    wait_until(browser, lambda d: d.execute_script("return scMaps.map('wall-map').getZoom()") == 14)
    incident_id = _incident(redis_client, 43.251, 76.931, "almaly")
    try:
        written = time.time()
        row = f".ticker-row[data-id='{incident_id}']"
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), timeout=3.0, poll=0.05)
        took = time.time() - written
        assert took < 3.0
        assert t("wall.type.heating_outage", "en") in browser.find_element(By.CSS_SELECTOR, row).text
        # on the map too, as a critical incident marker
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#wall-map .sc-incident.sev-3"), timeout=3.0)
        assert browser.execute_script("return window.__sameDocument === true")  # no reload
        view = browser.execute_script("var m = scMaps.map('wall-map'); var c = m.getCenter(); "
                                      "return [m.getZoom(), c.lat, c.lng]")
        assert view[0] == 14 and abs(view[1] - 43.25) < 1e-6 and abs(view[2] - 76.93) < 1e-6
    finally:
        _resolve(redis_client, incident_id)
    wait_until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f".ticker-row[data-id='{incident_id}']"),
               timeout=5.0)
    assert browser.execute_script("return scMaps.map('wall-map').getZoom()") == 14


def test_feed_supplied_station_names_render_as_text(browser, ops_url, redis_client):
    original = redis_client.get(keys.kpi_key("air"))
    doc = orjson.loads(original)
    doc["values"]["city"]["air.stations"].append(
        {"station_id": "XSS-1", "name": XSS, "names": None, "lat": 43.2, "lon": 76.85, "district": "auezov",
         "aqi": 123, "category": "usg", "offline": False})
    try:
        wall(browser, ops_url, "ru")
        redis_client.set(keys.kpi_key("air"), orjson.dumps(doc))
        redis_client.hincrby(keys.VERSIONS, "kpi:air", 1)
        def hovered_tooltip(d):
            try:
                markers = [el for el in d.find_elements(By.CSS_SELECTOR, "#wall-map .sc-station") if el.text == "123"]
                if not markers:
                    return None
                ActionChains(d).move_to_element(markers[0]).perform()
                tips = d.find_elements(By.CSS_SELECTOR, ".leaflet-tooltip")
                return tips[0] if tips and XSS in tips[0].text else None
            except StaleElementReferenceException:  # a layer was redrawn meanwhile: try again
                return None

        tooltip = wait_until(browser, hovered_tooltip, timeout=15)
        assert XSS in tooltip.text  # shown as the characters it is made of
        assert not browser.find_elements(By.CSS_SELECTOR, ".leaflet-tooltip img")
        assert not browser.find_elements(By.CSS_SELECTOR, "img[src='x']")
    finally:
        redis_client.set(keys.kpi_key("air"), original)
        redis_client.hincrby(keys.VERSIONS, "kpi:air", 1)


def _start_on(port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "web"], env={**env, "SC_WEB_PORT": str(port)},
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("sitcen web did not come back")


def test_the_screen_greys_with_since_when_the_server_dies_and_recovers_after_restart(city, accounts_file):
    env = server_env(city, accounts_file)
    proc, url = start_server("web", env, "SC_WEB_PORT", ready_path="/api/v1/health")
    port = urlsplit(url).port
    driver = new_chrome(1920, 1080)
    try:
        wall(driver, url, "ru")
        assert driver.find_element(By.ID, "sc-conn").text == t("conn.live", "ru")
        value = driver.find_element(By.ID, "wall-value-air").text
        stop_server(proc)
        killed = time.time()
        wait_until(driver, lambda d: "sc-offline" in d.find_element(By.TAG_NAME, "body").get_attribute("class"),
                   timeout=20)
        greyed_after = time.time() - killed
        conn = driver.find_element(By.ID, "sc-conn").text
        assert conn.startswith("Нет связи с ") and len(conn.split(" с ")[-1]) == 5  # "since 08:14"
        assert driver.find_element(By.ID, "wall-value-air").text == value  # the last frame is kept
        assert "grayscale" in driver.execute_script(
            "return getComputedStyle(document.getElementById('_pages_content')).filter")
        time.sleep(3)
        proc = _start_on(port, env)
        wait_until(driver, lambda d: "sc-offline" not in d.find_element(By.TAG_NAME, "body").get_attribute("class")
                   and d.find_elements(By.CSS_SELECTOR, "#wall-map path"), timeout=90)
        assert driver.find_element(By.ID, "sc-conn").text == t("conn.live", "ru")
        assert driver.find_element(By.ID, "wall-value-air").text == value
        print(f"greyed {greyed_after:.1f} s after the kill")
    finally:
        driver.quit()
        stop_server(proc)
