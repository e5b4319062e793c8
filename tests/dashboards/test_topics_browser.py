"""The four topic pages in a real browser at 1920×1080, on the seeded city: each page in kk/ru/en
with its map, tiles, charts and table showing values read from Redis; the district filter, the
time range, replay, and a live update that keeps the operator's district.

One browser for the module, signed in once as a viewer; ``sitcen web`` runs as a process on the
seeded city (``ops_url``). The seeded city keeps only its last KPI minute, so the module first
fills the six hours of per-minute history the analytics loop would have written
(``bench.screenshot_topics.backfill_history``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

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

WAIT_S = 30
PACK = load_pack(None)


def wait_until(driver, condition, timeout: float = WAIT_S, poll: float = 0.1):
    return WebDriverWait(driver, timeout, poll_frequency=poll,
                         ignored_exceptions=[StaleElementReferenceException]).until(lambda d: condition(d))


@pytest.fixture(scope="module")
def redis_client(city):
    from bench.screenshot_topics import backfill_history

    client = connect(city.url)
    doc = orjson.loads(client.get(keys.kpi_key("air")))
    end = datetime.fromisoformat(doc["computed_at"].replace("Z", "+00:00"))
    backfill_history(client, PACK, end, hours=6)
    yield client
    client.close()


@pytest.fixture(scope="module")
def browser(ops_url, redis_client):
    driver = new_chrome(1920, 1080)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
    login(driver, ops_url, "vera", "/wall")
    yield driver
    driver.quit()


def snapshot(redis_client, domain: str) -> dict:
    return orjson.loads(redis_client.get(keys.kpi_key(domain)))


def open_page(driver, base: str, page: str, lang: str = "en") -> None:
    driver.get(f"{base}/{page}?lang={lang}")
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{page}-map path.leaflet-interactive"))
    wait_until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#{page}-charts .main-svg")) >= 3)


def text(driver, id_: str) -> str:
    for _ in range(20):  # Dash may swap the element between finding and reading it
        try:
            return driver.find_element(By.ID, id_).text
        except StaleElementReferenceException:
            time.sleep(0.05)
    return driver.find_element(By.ID, id_).text


def x_range(driver, page: str) -> list[str]:
    return driver.execute_script(f"return document.querySelector('#{page}-chart-0 .js-plotly-plot').layout.xaxis.range")


def settled_zoom(driver, map_id: str) -> float:
    """The map's zoom once a fly-to has ended (two equal reads 0.4 s apart)."""
    last = None
    for _ in range(50):
        zoom = driver.execute_script(f"return scMaps.map('{map_id}').getZoom()")
        if zoom == last:
            return zoom
        last = zoom
        time.sleep(0.4)
    return last


def choose_district(driver, page: str, district: str, lang: str = "en") -> str:
    label = names(PACK.district(district).names.as_dict(), lang)
    driver.find_element(By.ID, f"{page}-district").click()
    option = wait_until(driver, lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option")
                                           if o.text == label])
    option[0].click()
    wait_until(driver, lambda d: text(d, f"{page}-district") == label)
    return label


def headline(page: str, redis_client, lang: str) -> tuple[str, str]:
    """(tile value id, the text it must show) from the seeded snapshot."""
    city = snapshot(redis_client, page)["values"]["city"]
    if page == "traffic":
        return "traffic-v-speed_ratio_median", number(city["traffic.speed_ratio_median"] * 100, lang)
    if page == "ambulance":
        return "ambulance-v-calls_waiting", number(city["ambulance.calls_waiting"], lang)
    if page == "air":
        return "air-v-aqi", number(city["air.aqi"], lang)
    return "appeals-v-open", number(city["appeals.open"], lang)


def table_value(page: str, redis_client, lang: str) -> str:
    """A text the page's table must hold, from the seeded data."""
    city = snapshot(redis_client, page)["values"]["city"]
    if page == "traffic":
        worst = min((s for s in city["traffic.segments"] if s["ratio"] is not None and not s["stale"]),
                    key=lambda s: s["ratio"])
        return worst["name"]
    if page == "air":
        worst = next(s for s in city["air.stations"] if s["station_id"] == city["air.aqi_station"])
        return names(worst["names"], lang)
    if page == "appeals":
        return t("topics.table.categories", lang)
    return t("topics.table.slowest", lang)


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
@pytest.mark.parametrize("page", ["traffic", "ambulance", "air", "appeals"])
def test_each_page_shows_the_seeded_city_in_each_language(browser, ops_url, redis_client, page, lang):
    open_page(browser, ops_url, page, lang)
    assert browser.find_element(By.ID, f"{page}-page").get_attribute("lang") == lang
    assert text(browser, f"{page}-page").startswith(t(f"nav.{page}", lang))
    value_id, expected = headline(page, redis_client, lang)
    assert text(browser, value_id) == expected
    # every district drawn, the charts carry history points, the table the seeded rows
    paths = browser.find_elements(By.CSS_SELECTOR, f"#{page}-map path.leaflet-interactive")
    assert len(paths) >= len(PACK.districts)
    points = browser.execute_script(
        f"return document.querySelector('#{page}-chart-0 .js-plotly-plot').data[0].y.filter(v => v !== null).length")
    assert points > 60
    assert table_value(page, redis_client, lang) in text(browser, f"{page}-table")
    labels = text(browser, f"{page}-page")
    assert t("topics.district", lang) in labels and t("topics.replay", lang) in labels
    assert t("district.all", lang) in text(browser, f"{page}-district")


def test_the_district_filter_changes_tiles_table_and_zooms_the_map(browser, ops_url, redis_client):
    open_page(browser, ops_url, "appeals")
    values = snapshot(redis_client, "appeals")["values"]
    district = max((d for d in values if d != "city"), key=lambda d: values[d]["appeals.open"])
    zoom = browser.execute_script("return scMaps.map('appeals-map').getZoom()")
    choose_district(browser, "appeals", district)
    wait_until(browser, lambda d: text(d, "appeals-v-open") == number(values[district]["appeals.open"], "en"))
    wait_until(browser, lambda d: d.execute_script("return scMaps.map('appeals-map').getZoom()") > zoom)
    # the charts are the district's history
    series = browser.execute_script("return document.querySelector('#appeals-chart-0 .js-plotly-plot').data[0].y")
    assert series[-1] == values[district]["appeals.open"] or series[-1] <= values[district]["appeals.open"] + 5


def test_the_range_control_changes_the_charts_x_range(browser, ops_url):
    open_page(browser, ops_url, "ambulance")

    def span_h(d):
        lo, hi = (datetime.fromisoformat(x) for x in x_range(d, "ambulance"))
        return (hi - lo).total_seconds() / 3600

    assert round(span_h(browser)) == 6
    browser.find_element(By.XPATH, "//*[@id='ambulance-range']//label[contains(., '1 h')]").click()
    wait_until(browser, lambda d: round(span_h(d)) == 1, timeout=5)
    browser.find_element(By.XPATH, "//*[@id='ambulance-range']//label[contains(., '24 h')]").click()
    wait_until(browser, lambda d: round(span_h(d)) == 24, timeout=5)


def test_replay_moves_the_slider_and_shows_the_tiles_of_that_minute(browser, ops_url, redis_client):
    from workers.snapshots import read_history

    open_page(browser, ops_url, "air")
    live = text(browser, "air-v-aqi")
    browser.find_element(By.ID, "air-replay").click()
    wait_until(browser, lambda d: d.find_element(By.ID, "air-when").text != "")
    thumb = "#air-slider [role=slider]"
    start = browser.find_element(By.CSS_SELECTOR, thumb).get_attribute("aria-valuenow")
    browser.find_element(By.ID, "air-play").click()  # at the newest minute: plays from the start
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, thumb).get_attribute("aria-valuenow") != start
               and text(d, "air-v-aqi") != live, timeout=10)
    browser.find_element(By.ID, "air-play").click()  # pause
    time.sleep(1.0)
    shown, minute = text(browser, "air-v-aqi"), text(browser, "air-when")
    assert minute in text(browser, "air-tiles")
    # the tile shows the history's value at the minute on screen (in the city's time)
    zone = PACK.zone
    entries = read_history(redis_client, "air", datetime.now(UTC) - timedelta(hours=7), datetime.now(UTC))
    at = {datetime.fromtimestamp(e["version"] / 1000, UTC).astimezone(zone).strftime("%H:%M"): e for e in entries}
    assert shown == number(at[minute]["values"]["city"].get("air.aqi"), "en")
    browser.find_element(By.ID, "air-replay").click()  # back to live
    wait_until(browser, lambda d: text(d, "air-v-aqi") == live, timeout=5)


def test_a_live_update_appears_within_3_s_and_keeps_the_district(browser, ops_url, redis_client):
    open_page(browser, ops_url, "appeals")
    label = choose_district(browser, "appeals", "almaly")
    browser.execute_script("window.__sameDocument = true;")
    zoom = settled_zoom(browser, "appeals-map")
    doc = snapshot(redis_client, "appeals")
    new_open = doc["values"]["almaly"]["appeals.open"] + 17
    doc["values"]["almaly"]["appeals.open"] = new_open
    doc["values"]["city"]["appeals.open"] += 17
    now = datetime.now(UTC)
    # charts hold one point a minute: a snapshot in the minute the chart already ends with updates
    # the tiles only, so the written one is stamped in the next minute (as the next refresh would be)
    doc["version"] = int(now.timestamp() * 1000) + 60_000
    doc["computed_at"] = now.isoformat().replace("+00:00", "Z")
    written = time.time()
    pipe = redis_client.pipeline()
    pipe.set(keys.kpi_key("appeals"), orjson.dumps(doc))
    pipe.hset(keys.VERSIONS, "kpi:appeals", doc["version"])
    pipe.execute()
    wait_until(browser, lambda d: text(d, "appeals-v-open") == number(new_open, "en"), timeout=3.0, poll=0.05)
    assert time.time() - written < 3.0
    assert text(browser, "appeals-district") == label
    assert browser.execute_script("return window.__sameDocument === true")
    assert browser.execute_script("return scMaps.map('appeals-map').getZoom()") == zoom
    # the new minute is appended to the district's chart (a Patch, not a new figure)
    wait_until(browser, lambda d: d.execute_script(
        "var y = document.querySelector('#appeals-chart-0 .js-plotly-plot').data[0].y; return y[y.length - 1]")
        == new_open, timeout=3.0)
