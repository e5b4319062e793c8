"""The public page in a real Chromium at 390×844 on the seeded city: no login, kk/ru/en, values from the
public document, the language switch remembered, no horizontal scroll."""

from __future__ import annotations

import importlib.util
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from tests.conftest import new_chrome

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("sc_bench_screenshot_public", ROOT / "bench" / "screenshot_public.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def public_doc(city):
    """The public document of the seeded city: its KPI history filled in hourly (as a running loop
    leaves it), then the real builder run on that Redis."""
    from core import keys
    from core.citypack import load_pack
    from core.redis_server import connect
    from workers.public import build_from_redis, write_document

    client = connect(city.url)
    try:
        pack = load_pack(None)
        end = datetime.fromisoformat(orjson.loads(client.get(keys.kpi_key("appeals")))["computed_at"]
                                     .replace("Z", "+00:00"))
        _bench().backfill_history(client, pack, end, 5)
        doc = build_from_redis(client, pack, datetime.now(end.tzinfo))
        write_document(client, doc)
        return doc
    finally:
        client.close()


@pytest.fixture
def phone():
    driver = new_chrome(390, 844)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    yield driver
    driver.quit()


def _open(driver, url: str, needle: str, timeout: float = 15.0) -> str:
    """Open ``url`` until its text holds ``needle`` (the app looks for a first document every 5 s)."""
    deadline = time.time() + timeout
    while True:
        driver.get(url)
        text = driver.find_element("tag name", "body").text
        if needle in text or time.time() > deadline:
            return text
        time.sleep(1)


EXPECTED = {"kk": ("Қала көрсеткіштері", "Ауа сапасы", "Жедел жәрдем", "сағ кідіріспен"),
            "ru": ("Показатели города", "Качество воздуха", "Скорая помощь", "с задержкой 1 ч"),
            "en": ("City indicators", "Air quality", "Ambulance", "delayed 1 h")}


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_page_in_each_language_shows_the_document(phone, public_doc, public_url, lang):
    from dashboards.i18n import number, t, when
    from dashboards.public import AQI_COLOURS
    from workers.public import CITY

    text = _open(phone, f"{public_url}/?lang={lang}", EXPECTED[lang][1])
    for needle in EXPECTED[lang]:
        assert needle in text, (lang, needle)
    assert "/login" not in phone.current_url
    latest = public_doc["hours"][-1]
    city = latest["values"][CITY]
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Almaty")
    end = datetime.fromisoformat(latest["end"].replace("Z", "+00:00"))
    assert when(end, lang, zone, "d MMMM, HH:mm") in text  # "data as of", in Almaty time, per locale
    aqi = city["aqi"]
    if aqi["value"] is not None:
        assert f"{number(aqi['value'], lang)} · {t('public.aqi.' + aqi['category'], lang)}" in text
        assert aqi["category"] in AQI_COLOURS
    amb = city["ambulance_within_norm"]
    if amb["flag"] == "ok":
        assert number(amb["n"], lang) in text
    for district in public_doc["areas"][1:]:
        assert district["names"][lang] in text
    width = phone.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"horizontal scroll in {lang}: {width}"
    assert not [e for e in phone.get_log("browser") if e["level"] == "SEVERE"]


def test_language_switch_is_remembered(phone, public_doc, public_url):
    from selenium.webdriver.common.by import By

    # first visit: the browser's language (new_chrome starts Chromium with --lang=en)
    text = _open(phone, f"{public_url}/", "Air quality")
    assert "City indicators" in text
    phone.find_element(By.CSS_SELECTOR, "nav.langs a[lang=kk]").click()
    assert "Қала көрсеткіштері" in phone.find_element(By.TAG_NAME, "body").text
    assert phone.find_element(By.TAG_NAME, "html").get_attribute("lang") == "kk"
    phone.get(f"{public_url}/")  # no ?lang: the cookie remembers
    assert "Қала көрсеткіштері" in phone.find_element(By.TAG_NAME, "body").text
    phone.find_element(By.CSS_SELECTOR, "nav.langs a[lang=ru]").click()
    phone.get(f"{public_url}/")
    assert "Показатели города" in phone.find_element(By.TAG_NAME, "body").text
    current = phone.find_element(By.CSS_SELECTOR, "nav.langs a[aria-current=true]")
    assert current.get_attribute("lang") == "ru"
