"""The leadership brief in a real browser on the seeded city: kk/ru/en values at 1024×768, no
horizontal scroll (landscape and 768×1024 portrait), touch targets ≥ 44 px, the district
drill-down, a new incident within 3 s, and the page's transfer size measured from Chromium's
performance entries (printed; run with ``-s`` to see it). One browser for the module."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from core import keys
from core.citypack import load_pack
from core.redis_server import connect
from dashboards.i18n import names, number, t
from tests.conftest import new_chrome
from tests.dashboards.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]

WAIT_S = 20
#: The brief after load: everything the browser fetched with an empty cache, and the page's own part.
MAX_COLD_KB = 2_500
MAX_PAGE_KB = 300


def metrics(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


@pytest.fixture(scope="module")
def browser(ops_url):
    driver = new_chrome(1024, 768)
    metrics(driver, 1024, 768)
    login(driver, ops_url, "lev", "/brief")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def redis_client(city):
    client = connect(city.url)
    yield client
    client.close()


def wait_until(driver, condition, timeout: float = WAIT_S, poll: float = 0.1):
    return WebDriverWait(driver, timeout, poll_frequency=poll,
                         ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition(d))


def open_brief(driver, base: str, lang: str, query: str = "") -> None:
    driver.get(f"{base}/brief?lang={lang}{query}")
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#brief-page .brief-tile"))


def city(redis_client, domain: str) -> dict:
    return orjson.loads(redis_client.get(keys.kpi_key(domain)))["values"]["city"]


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_the_brief_shows_the_seeded_city_in_each_language(browser, ops_url, redis_client, lang):
    metrics(browser, 1024, 768)
    open_brief(browser, ops_url, lang)
    assert browser.find_element(By.ID, "brief-page").get_attribute("lang") == lang
    air, ambulance, appeals = (city(redis_client, d) for d in ("air", "ambulance", "appeals"))
    assert browser.find_element(By.ID, "brief-value-air").text == number(air["air.aqi"], lang)
    assert browser.find_element(By.ID, "brief-value-ambulance").text == number(
        ambulance["ambulance.within_norm_pct_c1"], lang)
    assert browser.find_element(By.ID, "brief-value-overdue").text == number(appeals["appeals.overdue"], lang)
    tiles = browser.find_element(By.ID, "brief-tiles").text
    assert t("brief.target_le", lang, v="100") in tiles
    assert len(browser.find_elements(By.CSS_SELECTOR, ".brief-tile")) == 6
    # the open serious incidents, translated, with their district
    ids = [i.decode() for i in redis_client.zrevrange(keys.INCIDENTS_OPEN, 0, -1)]
    serious = [orjson.loads(redis_client.get(keys.incident_key(i))) for i in ids]
    serious = [i for i in serious if i["severity"] >= 2]
    listed = browser.find_element(By.ID, "brief-incidents").text
    pack = load_pack(None)
    for inc in serious[:6]:
        assert t(f"wall.type.{inc['type']}", lang) in listed
        if inc.get("district"):
            assert names(pack.district(inc["district"]).names.as_dict(), lang) in listed
    assert t("brief.changes", lang, h=3) in browser.find_element(By.ID, "brief-page").text


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024)])
def test_it_fits_the_tablet_without_horizontal_scroll_and_controls_are_touch_sized(browser, ops_url, size):
    metrics(browser, *size)
    open_brief(browser, ops_url, "ru")
    width = browser.execute_script("return [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], width
    small = browser.execute_script("""
        var out = [];
        document.querySelectorAll('#brief-page button, #brief-page a, .topbar a').forEach(function (el) {
          var r = el.getBoundingClientRect();
          if (r.width && (r.height < 44 || r.width < 44)) { out.push(el.textContent + ' ' + r.width + 'x' + r.height); }
        });
        return out;""")
    assert small == []
    assert len(browser.find_elements(By.CSS_SELECTOR, ".brief-dbtn")) == len(load_pack(None).districts)


def test_touching_a_district_shows_its_numbers(browser, ops_url, redis_client):
    metrics(browser, 1024, 768)
    open_brief(browser, ops_url, "en")
    pack = load_pack(None)
    button = next(b for b in browser.find_elements(By.CSS_SELECTOR, ".brief-dbtn")
                  if "selected" not in b.get_attribute("class"))
    name = button.text.strip()
    target = next(d for d in pack.districts if names(d.names.as_dict(), "en") == name)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()
    wait_until(browser, lambda d: d.find_element(By.ID, "brief-dname").text == name)
    aqi = orjson.loads(redis_client.get(keys.kpi_key("air")))["values"].get(target.id, {}).get("air.aqi")
    panel = browser.find_element(By.ID, "brief-district").text
    assert (number(aqi, "en") if aqi is not None else "—") in panel
    selected = browser.find_element(By.CSS_SELECTOR, ".brief-dbtn.selected")
    assert selected.text.strip() == name


def test_a_new_incident_appears_within_3_s(browser, ops_url, redis_client):
    from workers.incidents import IncidentStore

    metrics(browser, 1024, 768)
    open_brief(browser, ops_url, "en")
    browser.execute_script("window.__sameDocument = true;")
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.isoformat().replace("+00:00", "Z")
    event = {"id": f"call_cluster:brief-test:{int(now.timestamp())}", "detector": "call_cluster",
             "signal": "ambulance.calls", "key": "brief-test", "phase": "open", "onset": stamp, "detected_at": stamp,
             "at": stamp, "severity": 3, "district": "bostandyk", "lat": 43.22, "lon": 76.9, "radius_m": 300.0,
             "evidence": {"group": "injury", "count": 6}, "ended_at": None}
    store = IncidentStore(redis_client, "Asia/Almaty")
    incident_id = store.create({"type": "mass_casualty"}, [event], now=now)["id"]
    try:
        written = time.time()
        row = f".brief-inc[data-id='{incident_id}']"
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), timeout=3.0, poll=0.05)
        assert time.time() - written < 3.0
        assert t("wall.type.mass_casualty", "en") in browser.find_element(By.CSS_SELECTOR, row).text
        assert browser.execute_script("return window.__sameDocument === true")
    finally:
        store.act(incident_id, "resolve", "test", datetime.now(UTC), text="test over")
    wait_until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f".brief-inc[data-id='{incident_id}']"))


def test_the_transfer_size_after_load(ops_url):
    """Cold (empty cache) and warm loads, from the performance entries; the page's own part is its
    document, layout, dependencies and callback answers (the scripts are Dash's, shared by every page)."""
    driver = new_chrome(1024, 768)
    try:
        metrics(driver, 1024, 768)
        login(driver, ops_url, "lev", "/wall")
        sizes = {}
        for run in ("cold", "warm"):
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": run == "cold"})
            driver.get(f"{ops_url}/brief?lang=ru")
            wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#brief-page .brief-tile"))
            time.sleep(3)  # the live channel's first pushes
            sizes[run] = driver.execute_script("""
                var all = performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'));
                var total = 0, page = 0, decoded = 0, n = 0;
                all.forEach(function (e) {
                  total += e.transferSize; decoded += e.decodedBodySize; n += 1;
                  if (!/_dash-component-suites|\\/assets\\/|favicon/.test(e.name)) { page += e.transferSize; }
                });
                return {total: total, page: page, decoded: decoded, requests: n};""")
        print(f"\nbrief transfer size: cold {sizes['cold']['total'] / 1024:.0f} KB "
              f"({sizes['cold']['decoded'] / 1024:.0f} KB decoded, {sizes['cold']['requests']} requests), "
              f"warm {sizes['warm']['total'] / 1024:.0f} KB; the page's own part "
              f"{sizes['cold']['page'] / 1024:.0f} KB")
        assert sizes["cold"]["total"] < MAX_COLD_KB * 1024
        assert sizes["cold"]["page"] < MAX_PAGE_KB * 1024
        assert sizes["warm"]["total"] < MAX_PAGE_KB * 1024
    finally:
        driver.quit()
