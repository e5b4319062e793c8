"""The data-health page in a real browser: every feed in each language, and a hostile rejected
record shown as text."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from core.redis_server import connect
from core.settings import Settings
from core.store import DeadLetter, Store
from tests.conftest import new_chrome
from tests.dashboards.conftest import login

pytestmark = pytest.mark.browser

TITLES = {"kk": "Деректер күйі", "ru": "Состояние данных", "en": "Data health"}
FEEDS = {"kk": "Ауа сапасы", "ru": "Качество воздуха", "en": "Air quality"}
EVIL = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def browser(ops_url, city):
    client = connect(city.url)
    Store.from_settings(client, Settings.from_env({}, redis_url=city.url)).dead_letter(
        "air", [DeadLetter(index=0, code="bad_json", error=f"item 0: {EVIL}", raw=EVIL.encode())], transport="test")
    client.close()
    driver = new_chrome(1920, 1080)
    login(driver, ops_url, "vera", "/health")
    yield driver
    driver.quit()


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_health_page_lists_every_feed_and_the_rejected_record_as_text(browser, ops_url, lang):
    browser.get(f"{ops_url}/health?lang={lang}")
    wait = WebDriverWait(browser, 20, poll_frequency=0.2)
    wait.until(lambda d: TITLES[lang] in d.find_element(By.TAG_NAME, "h1").text)
    wait.until(lambda d: EVIL in d.find_element(By.ID, "health-body").text)  # the dead letter, as text
    text = browser.find_element(By.ID, "health-body").text
    assert FEEDS[lang] in text and "bad_json" in text
    assert browser.execute_script("return window.__pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#health-body img")
