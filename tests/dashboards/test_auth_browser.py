"""Access in a real browser: signing in through the form as each role, what each role sees, the wall's
kiosk URL (no login, no expiry), signing out, the language switch, and Dash working under the CSP.

Runs ``sitcen web`` as a process (``ops_url``) with the accounts of ``conftest.ACCOUNTS``, the
session key ``conftest.SECRET`` and the kiosk token ``conftest.KIOSK_TOKEN``.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from dashboards.auth import Sessions
from dashboards.auth_accounts import load_accounts
from tests.dashboards.conftest import ACCOUNTS, KIOSK_TOKEN, SECRET, login

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]

WAIT_S = 30


def wait_for(driver, css: str):
    return WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def path_of(driver) -> str:
    return urlsplit(driver.current_url).path


def nav_targets(driver) -> set[str]:
    wait_for(driver, ".topbar")
    return {urlsplit(a.get_attribute("href")).path for a in driver.find_elements(By.CSS_SELECTOR, ".topbar .nav a")}


def csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]


@pytest.mark.parametrize("user", ["olga", "lev", "vera"])
def test_sign_in_through_the_form_shows_the_roles_navigation(ops_url, chrome, user):
    login(chrome, ops_url, user, "/health")
    assert path_of(chrome) == "/health"
    targets = nav_targets(chrome)
    assert {"/wall", "/health"} <= targets
    sees_leadership_pages = ACCOUNTS[user][0] in ("operator", "leadership")
    assert ("/brief" in targets) is sees_leadership_pages
    assert ("/incidents" in targets) is sees_leadership_pages
    assert chrome.find_element(By.CSS_SELECTOR, ".topbar .user").text == user
    assert csp_violations(chrome) == []  # Dash renders under the Content-Security-Policy


def test_a_page_without_a_session_goes_to_the_login_and_back(ops_url, chrome):
    chrome.get(ops_url + "/health?lang=en")
    wait_for(chrome, "form button[type=submit]")
    assert path_of(chrome) == "/login"
    chrome.find_element(By.NAME, "username").send_keys("lev")
    chrome.find_element(By.NAME, "password").send_keys("a wrong password")
    chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    assert "Wrong user name or password" in wait_for(chrome, ".error").text
    chrome.find_element(By.NAME, "password").send_keys(ACCOUNTS["lev"][1])
    chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(chrome, WAIT_S).until(lambda d: path_of(d) == "/health")
    assert "/incidents" in nav_targets(chrome)


def test_viewer_cannot_open_leadership_pages(ops_url, chrome):
    login(chrome, ops_url, "vera", "/health")
    for page in ("/incidents", "/brief"):
        chrome.get(ops_url + page)
        body = wait_for(chrome, "body").text
        assert path_of(chrome) != page or "Not allowed" in body, page
        assert "leadership" in body


def test_kiosk_url_opens_the_wall_without_login_and_outlives_any_session(ops_url, chrome, accounts_file):
    chrome.get(f"{ops_url}/wall?kiosk={KIOSK_TOKEN}")
    wait_for(chrome, "#react-entry-point")
    assert path_of(chrome) == "/wall"
    cookie = chrome.get_cookie("sc_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    time.sleep(3)  # the wall's maps and callbacks load under the Content-Security-Policy
    assert csp_violations(chrome) == []
    # years later: the server sees a kiosk cookie issued two years ago
    sessions = Sessions(SECRET, hours=12, kiosk_tokens=KIOSK_TOKEN)
    old = sessions.issue("kiosk", "viewer", fingerprint=sessions.fingerprint(KIOSK_TOKEN), kiosk=True,
                         now=time.time() - 2 * 365 * 86400)
    chrome.delete_cookie("sc_session")
    chrome.add_cookie({"name": "sc_session", "value": old, "path": "/", "httpOnly": True, "sameSite": "Strict"})
    chrome.get(ops_url + "/wall")
    wait_for(chrome, "#react-entry-point")
    time.sleep(1)
    assert path_of(chrome) == "/wall"
    # a personal session only lasts one shift
    chrome.delete_cookie("sc_session")
    chrome.add_cookie({"name": "sc_session", "value": personal_cookie(accounts_file, "vera", hours_ago=13),
                       "path": "/", "httpOnly": True, "sameSite": "Strict"})
    chrome.get(ops_url + "/wall")
    WebDriverWait(chrome, WAIT_S).until(lambda d: path_of(d) == "/login")
    chrome.delete_cookie("sc_session")
    chrome.add_cookie({"name": "sc_session", "value": personal_cookie(accounts_file, "vera", hours_ago=11),
                       "path": "/", "httpOnly": True, "sameSite": "Strict"})
    chrome.get(ops_url + "/health")
    assert nav_targets(chrome) and path_of(chrome) == "/health"


def personal_cookie(accounts_file, user: str, *, hours_ago: float) -> str:
    """A session cookie of ``user`` signed with the servers' key ``hours_ago`` hours ago."""
    sessions = Sessions(SECRET, hours=12)
    account = load_accounts(accounts_file)[user]
    return sessions.issue(user, account.role, fingerprint=sessions.fingerprint(account.password_hash),
                          now=time.time() - hours_ago * 3600)


def test_sign_out(ops_url, chrome):
    login(chrome, ops_url, "olga", "/health")
    wait_for(chrome, ".topbar a[href='/logout']").click()
    WebDriverWait(chrome, WAIT_S).until(lambda d: path_of(d) == "/login")
    chrome.get(ops_url + "/health")
    WebDriverWait(chrome, WAIT_S).until(lambda d: path_of(d) == "/login")


def test_language_switch_keeps_working_after_sign_in(ops_url, chrome):
    login(chrome, ops_url, "lev", "/health")
    wait_for(chrome, ".topbar .brand")
    chrome.find_element(By.CSS_SELECTOR, ".topbar a.lang-link[href='?lang=kk']").click()
    WebDriverWait(chrome, WAIT_S).until(
        lambda d: "Жағдайлық орталық" in d.find_element(By.CSS_SELECTOR, ".topbar .brand").text)
    assert path_of(chrome) == "/health"
    chrome.get(ops_url + "/health")  # remembered
    WebDriverWait(chrome, WAIT_S).until(
        lambda d: "Жағдайлық орталық" in d.find_element(By.CSS_SELECTOR, ".topbar .brand").text)
    chrome.get(ops_url + "/logout")
    assert "Құпиясөз" in wait_for(chrome, "form").text  # the login page follows it too
