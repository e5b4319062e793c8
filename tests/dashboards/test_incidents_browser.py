"""The incidents console in a real browser at 1920×1080 on the seeded city (``sitcen web`` as a
process): each language shows the seeded incidents; the operator acknowledges, assigns (agency from
the list), notes and resolves end to end (Redis, the audit log and the page agree); a new incident
written through the store appears within 3 s without losing the selection; leadership sees no
actions and a forced action callback is refused. One browser for the module."""

from __future__ import annotations

import json
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
from dashboards.i18n import names, t
from tests.conftest import new_chrome
from tests.dashboards.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]

WAIT_S = 20


@pytest.fixture(scope="module")
def browser():
    driver = new_chrome(1920, 1080)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def redis_client(city):
    client = connect(city.url)
    yield client
    client.close()


def wait_until(driver, condition, timeout: float = WAIT_S, poll: float = 0.1):
    """Wait for ``condition`` (a list re-drawn meanwhile is asked again, not an error)."""
    return WebDriverWait(driver, timeout, poll_frequency=poll,
                         ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition(d))


def sign_in(driver, base: str, user: str, path: str) -> None:
    driver.delete_all_cookies()
    login(driver, base, user, path)
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#inc-page .inc-list"))


def store(redis_client):
    from workers.incidents import IncidentStore

    return IncidentStore(redis_client, "Asia/Almaty")


def new_incident(redis_client, district: str = "medeu", severity: int = 3) -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = now.isoformat().replace("+00:00", "Z")
    key = f"test-{time.time_ns()}"
    event = {"id": f"appeal_hotspot:{key}:{int(now.timestamp())}", "detector": "appeal_hotspot",
             "signal": "appeals.burst", "key": key, "phase": "open", "onset": stamp, "detected_at": stamp, "at": stamp,
             "severity": severity, "district": district, "lat": 43.2, "lon": 76.96, "radius_m": 400.0,
             "evidence": {"category": "heating", "count": 14, "expected": 1.2, "p_value": 2e-9, "p_threshold": 1e-6,
                          "unit": "appeals"}, "ended_at": None}
    return store(redis_client).create({"type": "heating_outage"}, [event], now=now)["id"]


def doc(redis_client, incident_id: str) -> dict:
    return orjson.loads(redis_client.get(keys.incident_key(incident_id)))


def open_ids(redis_client) -> list[str]:
    return [i.decode() for i in redis_client.zrevrange(keys.INCIDENTS_OPEN, 0, -1)]


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_the_console_shows_the_seeded_incidents_in_each_language(browser, ops_url, redis_client, lang):
    sign_in(browser, ops_url, "olga", f"/incidents?lang={lang}")
    assert browser.find_element(By.ID, "inc-page").get_attribute("lang") == lang
    ids = open_ids(redis_client)
    assert ids, "the seeded city has open incidents"
    pack = load_pack(None)
    listed = wait_until(browser, lambda d: d.find_element(By.ID, "inc-list").text)
    for incident_id in ids[:5]:
        inc = doc(redis_client, incident_id)
        row = browser.find_element(By.CSS_SELECTOR, f".inc-row[data-id='{incident_id}']")
        assert t(f"wall.type.{inc['type']}", lang) in row.text
        if inc.get("district"):
            assert names(pack.district(inc["district"]).names.as_dict(), lang) in row.text
    assert t("inc.filter.status", lang) in browser.find_element(By.CSS_SELECTOR, ".inc-filters").text
    assert listed
    # the first incident is selected: its events, evidence table, audit log
    head_id = browser.find_element(By.ID, "inc-head-id").text
    assert head_id in ids
    selected = doc(redis_client, head_id)
    body = browser.find_element(By.ID, "inc-body").text
    assert t("inc.events", lang, n=len(selected["events"])) in body
    assert browser.find_elements(By.CSS_SELECTOR, "#inc-body table.inc-evidence tbody tr")
    assert t("inc.audit.create", lang) in browser.find_element(By.ID, "inc-audit").text
    # the running SLA clock counts down in the browser
    clock = browser.find_element(By.CSS_SELECTOR, ".inc-head .inc-sla[data-due]")
    first = clock.text
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".inc-head .inc-sla[data-due]").text != first,
               timeout=3)


def _click(driver, element_id: str) -> None:
    wait_until(driver, lambda d: d.find_element(By.ID, element_id).is_enabled())
    driver.find_element(By.ID, element_id).click()


def _message(driver) -> str:
    return wait_until(driver, lambda d: d.find_element(By.ID, "inc-msg").text)


def test_the_operator_acknowledges_assigns_notes_and_resolves(browser, ops_url, redis_client):
    incident_id = new_incident(redis_client)
    sign_in(browser, ops_url, "olga", f"/incidents?lang=en&id={incident_id}")
    assert browser.find_element(By.ID, "inc-head-id").text == incident_id

    _click(browser, "inc-do-ack")
    wait_until(browser, lambda d: doc(redis_client, incident_id)["status"] == "acknowledged")
    assert doc(redis_client, incident_id)["acknowledged_by"] == "olga"
    assert _message(browser) == f"{incident_id} acknowledged by olga"
    wait_until(browser, lambda d: "olga" in d.find_element(By.ID, "inc-audit").text
               and "acknowledged" in d.find_element(By.ID, "inc-audit").text)
    assert "acknowledged" in browser.find_element(By.ID, "inc-head").text
    assert not browser.find_element(By.ID, "inc-do-ack").is_enabled()  # acknowledged: nothing more to acknowledge
    audit = store(redis_client).audit(incident_id)
    assert (audit[-1]["actor"], audit[-1]["action"]) == ("olga", "acknowledge")

    # assign: the agency from the catalog's list
    _click(browser, "inc-open-assign")
    wait_until(browser, lambda d: d.find_element(By.ID, "inc-form-box").is_displayed())
    browser.find_element(By.ID, "inc-agency").click()
    option = wait_until(browser, lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, "[role=option]")
                                            if o.text.strip() == "Road police"])
    option[0].click()
    browser.find_element(By.ID, "inc-text").send_keys("patrol 12 is 500 m away")
    _click(browser, "inc-confirm")
    wait_until(browser, lambda d: doc(redis_client, incident_id)["status"] == "assigned")
    assigned = doc(redis_client, incident_id)
    assert (assigned["assignee"], assigned["assigned_by"]) == ("Road police", "olga")
    assert _message(browser) == f"{incident_id} assigned to Road police"
    wait_until(browser, lambda d: "Road police" in d.find_element(By.ID, "inc-head").text)
    wait_until(browser, lambda d: not d.find_element(By.ID, "inc-form-box").is_displayed())

    # a note, then an empty resolution (refused in the operator's language), then the resolution
    _click(browser, "inc-open-note")
    wait_until(browser, lambda d: d.find_element(By.ID, "inc-text").is_displayed())
    browser.find_element(By.ID, "inc-text").send_keys("<b>crew</b> on site")
    _click(browser, "inc-confirm")
    wait_until(browser, lambda d: doc(redis_client, incident_id)["notes_count"] == 1)
    wait_until(browser, lambda d: "«<b>crew</b> on site»" in d.find_element(By.ID, "inc-audit").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "#inc-audit b")  # an operator's text is text

    _click(browser, "inc-open-resolve")
    wait_until(browser, lambda d: d.find_element(By.ID, "inc-text").is_displayed())
    _click(browser, "inc-confirm")
    wait_until(browser, lambda d: d.find_element(By.ID, "inc-msg").text == "Describe the resolution: what was done")
    assert doc(redis_client, incident_id)["status"] == "assigned"
    browser.find_element(By.ID, "inc-text").send_keys("heating restored")
    _click(browser, "inc-confirm")
    wait_until(browser, lambda d: doc(redis_client, incident_id)["status"] == "resolved")
    resolved = doc(redis_client, incident_id)
    assert (resolved["resolved_by"], resolved["resolution"]) == ("olga", "heating restored")
    wait_until(browser, lambda d: "heating restored" in d.find_element(By.ID, "inc-head").text)
    actions = [(e["actor"], e["action"]) for e in store(redis_client).audit(incident_id)]
    assert actions == [("system", "create"), ("olga", "acknowledge"), ("olga", "assign"), ("olga", "note"),
                       ("olga", "resolve")]
    # resolved leaves the open list (the panel stays on it)
    wait_until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, f".inc-row[data-id='{incident_id}']"))
    assert browser.find_element(By.ID, "inc-head-id").text == incident_id


def test_a_new_incident_appears_within_3_s_and_the_selection_stays(browser, ops_url, redis_client):
    sign_in(browser, ops_url, "olga", "/incidents?lang=ru")
    selected = browser.find_element(By.ID, "inc-head-id").text
    browser.execute_script("window.__sameDocument = true;")
    incident_id = new_incident(redis_client, "turksib")
    try:
        written = time.time()
        row = f".inc-row[data-id='{incident_id}']"
        wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), timeout=3.0, poll=0.05)
        assert time.time() - written < 3.0
        assert t("wall.type.heating_outage", "ru") in browser.find_element(By.CSS_SELECTOR, row).text
        assert browser.find_element(By.ID, "inc-head-id").text == selected
        assert browser.find_element(By.CSS_SELECTOR, ".inc-row.selected").get_attribute("data-id") == selected
        assert browser.execute_script("return window.__sameDocument === true")
        # selecting it shows its evidence
        wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, row).click() or True)
        wait_until(browser, lambda d: d.find_element(By.ID, "inc-head-id").text == incident_id)
        assert "14" in browser.find_element(By.ID, "inc-body").text
    finally:
        store(redis_client).act(incident_id, "resolve", "test", datetime.now(UTC), text="test over")


def _dash_post(driver, body: dict) -> dict:
    return driver.execute_async_script("""
        var done = arguments[arguments.length - 1];
        fetch('/_dash-update-component', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                          body: JSON.stringify(arguments[0])})
          .then(function (r) { return r.text().then(function (t) { done({status: r.status, text: t}); }); })
          .catch(function (e) { done({status: -1, text: String(e)}); });
    """, body)


def test_leadership_reads_but_cannot_act(browser, ops_url, redis_client):
    incident_id = new_incident(redis_client, "alatau", severity=2)
    try:
        sign_in(browser, ops_url, "lev", f"/incidents?lang=en&id={incident_id}")
        wait_until(browser, lambda d: d.find_element(By.ID, "inc-head-id").text == incident_id)
        assert browser.find_elements(By.ID, "inc-readonly")
        assert not browser.find_elements(By.CSS_SELECTOR, "#inc-do-ack, [id^='inc-open-'], #inc-confirm")
        assert browser.find_elements(By.CSS_SELECTOR, "#inc-body table.inc-evidence")
        # force the action callback as the page would send it: refused, nothing written
        deps = json.loads(browser.execute_async_script(
            "var done = arguments[0]; fetch('/_dash-dependencies').then(r => r.text()).then(done);"))
        spec = next(d for d in deps if any(i["id"] == "inc-do-ack" for i in d["inputs"]))
        outputs = []
        for part in spec["output"].strip(".").split("..."):
            element, _, prop = part.partition(".")
            outputs.append({"id": element, "property": prop})
        state = [{**s, "value": None} for s in spec["state"]]
        for s in state:
            if s["id"] == "inc-sel":
                s["value"] = incident_id
            if s["id"] == "inc-cfg":
                s["value"] = {"lang": "en"}
        body = {"output": spec["output"], "outputs": outputs,
                "inputs": [{"id": "inc-do-ack", "property": "n_clicks", "value": 1},
                           {"id": "inc-confirm", "property": "n_clicks", "value": 0}],
                "state": state, "changedPropIds": ["inc-do-ack.n_clicks"]}
        answer = _dash_post(browser, body)
        assert answer["status"] == 200, answer
        response = json.loads(answer["text"])["response"]
        assert response["inc-msg"]["children"] == "Only an operator can act on incidents"
        assert response["inc-msg"]["className"] == "inc-msg error"
        after = doc(redis_client, incident_id)
        assert (after["status"], after["acknowledged_by"]) == ("open", None)
        assert [e["action"] for e in store(redis_client).audit(incident_id)] == ["create"]
    finally:
        store(redis_client).act(incident_id, "resolve", "test", datetime.now(UTC), text="test over")
