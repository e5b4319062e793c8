/* Unattended screens: connection state, data age, the city clock, recovery (dashboards/ops.py shell).
 *
 * - Every sc-live value reaches scLive.onData (a clientside callback). The server sends one at least
 *   every few seconds (the hub moves every 2 s; the WebSocket channel adds a 5 s heartbeat).
 * - Redis lost (sc-live says connected=false): the page keeps its last frame, greyed, with
 *   "Offline since 08:14" (the last good read), and recovers when sc-live says connected again.
 * - Server lost (no sc-live for WATCHDOG_MS): same grey frame "since" the last message; the server
 *   is probed with jittered exponential backoff (a static asset, never a page), and once it answers
 *   the page waits for the live channel to resume on its own, else reloads itself (only then, so a
 *   wall never lands on an error page).
 * - Ages: elements .sc-age[data-ts] (epoch ms) are rewritten every second ("3 min ago") and their
 *   .sc-tile gets .stale past data-stale-after (s). The clock #sc-clock ticks in the city's zone.
 * - Kiosk screens (?kiosk=...) reload once a night at 04:00 city time, to shed leaked memory.
 * Inert on pages without #sc-conn (the public app shares these assets). */
(function () {
  "use strict";
  var WATCHDOG_MS = 12000;
  var GRACE_MS = 6000;
  var PROBE_MIN_MS = 1000;
  var PROBE_MAX_MS = 30000;
  var state = { lastMsg: Date.now(), lastOk: null, redisUp: true, serverUp: true, skew: 0,
                probeDelay: PROBE_MIN_MS, probing: false, reachableAt: null, loadedAt: Date.now() };
  var LOCALES = { kk: "kk-KZ", ru: "ru-RU", en: "en-GB" };

  function conn() { return document.getElementById("sc-conn"); }
  function attr(name, fallback) { var c = conn(); return (c && c.getAttribute(name)) || fallback; }
  function zone() { return attr("data-zone", "Asia/Almaty"); }
  function locale() { return LOCALES[attr("data-lang", "ru")] || "ru-RU"; }

  function hhmm(ms, seconds) {
    var opts = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: zone() };
    if (seconds) { opts.second = "2-digit"; }
    try { return new Intl.DateTimeFormat(locale(), opts).format(new Date(ms)); }
    catch (e) { return new Date(ms).toISOString().slice(11, seconds ? 19 : 16); }
  }

  function render() {
    var c = conn();
    if (!c) { return; }
    var online = state.redisUp && state.serverUp;
    document.body.classList.toggle("sc-offline", !online);
    c.classList.toggle("conn-live", online);
    c.classList.toggle("conn-offline", !online);
    if (online) {
      c.textContent = attr("data-live", "Live");
    } else {
      var since = state.redisUp ? state.lastMsg : (state.lastOk || state.lastMsg);
      c.textContent = attr("data-offline", "Offline since {since}").replace("{since}", hhmm(since, false));
    }
    c.setAttribute("data-state", online ? "live" : (state.serverUp ? "redis-lost" : "server-lost"));
  }

  function onData(d) {
    var now = Date.now();
    state.lastMsg = now;
    if (!state.serverUp) { state.serverUp = true; state.probing = false; state.probeDelay = PROBE_MIN_MS; }
    if (d) {
      if (d.server_time) { state.skew = Date.parse(d.server_time) - now; }
      state.redisUp = d.connected !== false;
      if (d.last_ok) { state.lastOk = Date.parse(d.last_ok) - state.skew; }
    }
    render();
    return d ? d.seq : null;
  }

  function probe() {
    if (state.serverUp) { state.probing = false; return; }
    var url = "/assets/live.js?probe=" + Date.now();
    fetch(url, { cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      if (state.reachableAt === null) { state.reachableAt = Date.now(); }
      // reachable: give the live channel a moment to resume on its own, else reload
      setTimeout(function () {
        if (!state.serverUp && Date.now() - state.lastMsg > WATCHDOG_MS) { window.location.reload(); }
      }, GRACE_MS);
    }).catch(function () {
      state.reachableAt = null;
      var delay = Math.min(PROBE_MAX_MS, state.probeDelay) * (0.75 + Math.random() * 0.5);
      state.probeDelay = Math.min(PROBE_MAX_MS, state.probeDelay * 2);
      setTimeout(probe, delay);
    });
  }

  function ageText(seconds) {
    var s = Math.max(0, Math.round(seconds));
    if (s < 60) { return attr("data-age-s", "{n} s ago").replace("{n}", s); }
    if (s < 3600) { return attr("data-age-m", "{n} min ago").replace("{n}", Math.floor(s / 60)); }
    return attr("data-age-h", "{n} h ago").replace("{n}", Math.floor(s / 3600));
  }

  function tickAges() {
    var now = Date.now() + state.skew;
    var nodes = document.querySelectorAll(".sc-age[data-ts]");
    for (var i = 0; i < nodes.length; i += 1) {
      var el = nodes[i];
      var ts = Number(el.getAttribute("data-ts"));
      if (!ts) { continue; }
      var age = (now - ts) / 1000;
      var text = ageText(age);
      if (el.textContent !== text) { el.textContent = text; }
      var after = Number(el.getAttribute("data-stale-after"));
      if (after) {
        var stale = age > after || el.getAttribute("data-stale") === "1";
        var scope = el.closest(".sc-tile") || el;
        scope.classList.toggle("stale", stale);
      }
    }
  }

  function tick() {
    if (!conn()) { return; }
    var clock = document.getElementById("sc-clock");
    if (clock) { clock.textContent = hhmm(Date.now() + state.skew, true); }
    if (state.serverUp && Date.now() - state.lastMsg > WATCHDOG_MS) {
      state.serverUp = false;
      state.probeDelay = PROBE_MIN_MS;
      render();
    }
    if (!state.serverUp && !state.probing) { state.probing = true; probe(); }
    tickAges();
    nightly();
  }

  function nightly() {
    if (window.location.search.indexOf("kiosk=") < 0 || !state.serverUp || !state.redisUp) { return; }
    if (Date.now() - state.loadedAt < 3600 * 1000) { return; }
    if (hhmm(Date.now(), false).slice(0, 5) === "04:00") { window.location.reload(); }
  }

  window.scLive = { onData: onData, state: state, ageText: ageText };
  window.dash_clientside = Object.assign({}, window.dash_clientside, { scLive: { onData: onData } });
  setInterval(tick, 1000);
})();
