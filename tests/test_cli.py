"""The ``sitcen`` command end to end, as a user runs it: real processes, real ports, real Redis."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from core import keys
from core.redis_server import free_port
from tests.conftest import shared_path

pytestmark = pytest.mark.slow

FEEDS = ("air", "appeals", "traffic", "ambulance")
HEALTHY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
ORPHAN_TIMEOUT_S = 10.0


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any ``SC_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_sitcen(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["sitcen", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


# ---------------------------------------------------------------------------------------
# a. sitcen feeds


def test_feeds_lists_the_four_feeds_and_their_formats(tmp_path):
    from feeds import REGISTRY

    done = run_sitcen("feeds", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sections: dict[str, list[str]] = {}
    current = None
    for line in done.stdout.splitlines():
        if line and not line.startswith(" "):
            current = line.split(":", 1)[0]
            sections[current] = []
        elif line.strip():
            assert current is not None, line
            sections[current].append(line.strip())
    assert set(FEEDS) <= set(sections), done.stdout
    assert set(sections) == set(REGISTRY)
    for name, adapter in REGISTRY.items():
        listed = [row.split()[1] for row in sections[name] if row.startswith("--format ")]
        assert listed == [f.name for f in adapter.formats], (name, sections[name])
    assert "flat" in [row.split()[1] for row in sections["air"]]
    assert any("text/csv" in row for row in sections["traffic"])


# ---------------------------------------------------------------------------------------
# b. sitcen replay


def test_replay_file_prints_a_json_summary(tmp_path, redis, redis_server):
    when = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    rows = [{"station_id": f"ALM-{i}", "lat": 43.25, "lon": 76.92, "parameter": "pm2.5", "value": 12.0 + i,
             "unit": "ug/m3", "observed_at": (when + timedelta(minutes=i)).isoformat()} for i in range(3)]
    rows.insert(2, {"station_id": "BAD", "lat": 43.25, "lon": 76.92, "parameter": "pm2.5", "value": -4.0,
                    "unit": "ug/m3", "observed_at": when.isoformat()})
    path = tmp_path / "air.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done = run_sitcen("replay", str(path), "--feed", "air", "--format", "flat",
                      env=clean_env(SC_REDIS_URL=redis_server.url), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["accepted"] == 3, summary
    assert summary["rejected"] == 1, summary
    assert [e["index"] for e in summary["errors"]] == [2]
    assert "BAD" in summary["errors"][0]["error"]
    assert redis.xlen(keys.feed_stream_key("air")) == 3
    assert redis.xlen(keys.dead_letter_key("air")) == 1


def test_replay_without_redis_url_is_a_configuration_error(tmp_path):
    path = tmp_path / "air.ndjson"
    path.write_text("{}\n", encoding="utf-8")
    done = run_sitcen("replay", str(path), "--feed", "air", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 2
    assert "SC_REDIS_URL" in done.stderr


# ---------------------------------------------------------------------------------------
# c, d. sitcen run


@dataclass
class Center:
    """A running ``sitcen run`` and everything it started."""

    proc: subprocess.Popen
    web_port: int
    public_port: int
    data_dir: Path
    log: Path
    started: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)
    last_health: object = None

    def collect(self) -> None:
        """Remember every current descendant (children restart and RQ forks work horses)."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    self.started.setdefault((child.pid, child.create_time()), child)

    def alive(self) -> list[str]:
        """The remembered descendants that still run (same pid and start time, not a zombie)."""
        out = []
        for (pid, _), proc in self.started.items():
            if not psutil.pid_exists(pid):
                continue
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {' '.join(proc.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                continue
        return out

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"

    def get(self, url: str) -> httpx.Response:
        return httpx.get(url, timeout=5.0)

    def wait_healthy(self) -> dict:
        """Poll the health API until every feed is ok; fail with the last document and the output."""
        url = f"http://127.0.0.1:{self.web_port}/api/v1/health"
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.collect()
            if self.proc.poll() is not None:
                pytest.fail(f"sitcen run exited with {self.proc.returncode} before it was healthy:\n{self.tail()}")
            try:
                r = self.get(url)
                self.last_health = r.json() if r.headers.get("content-type", "").startswith("application/json") \
                    else r.text
                if r.status_code == 200 and all(self.last_health["feeds"].get(f, {}).get("status") == "ok"
                                                for f in FEEDS):
                    return self.last_health
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1.0)
        pytest.fail(f"not every feed became ok within {HEALTHY_TIMEOUT_S:.0f} s.\nlast health document:\n"
                    f"{json.dumps(self.last_health, indent=1, default=str)}\noutput:\n{self.tail()}")


@contextlib.contextmanager
def sitcen_run(tmp_path: Path, source: str = "replay") -> Iterator[Center]:
    """Start ``sitcen run`` on a fresh data dir and free ports; always leave nothing behind."""
    from feeds.demo import DEMO_SOURCES

    for demo in DEMO_SOURCES:
        shared_path(demo.path)  # fails loudly if the shared real data is missing
    shared_dir = shared_path(".").resolve()
    data_dir = tmp_path / "var"
    web_port, public_port = free_port(), free_port()
    while public_port == web_port:
        public_port = free_port()
    env = clean_env(SC_DATA_DIR=str(data_dir), SC_WEB_PORT=str(web_port), SC_PUBLIC_PORT=str(public_port),
                    SC_REPLAY_SPEED="600", SC_SHARED_DATA_DIR=str(shared_dir), SC_SOURCE=source)
    assert "SC_REDIS_URL" not in env
    log = tmp_path / "sitcen-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["sitcen", "run"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    center = Center(proc, web_port, public_port, data_dir, log)
    try:
        yield center
    finally:
        center.collect()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        # the children run in their own sessions: end each one this test started, by its id
        for proc_info in center.started.values():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if proc_info.is_running():
                    proc_info.kill()
        psutil.wait_procs(list(center.started.values()), timeout=5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_serves_everything_and_stops_cleanly_on_sigint(tmp_path, signum):
    started = time.monotonic()
    with sitcen_run(tmp_path) as center:
        health = center.wait_healthy()
        healthy_after = time.monotonic() - started
        for feed in FEEDS:
            assert health["feeds"][feed]["events_total"] > 0, (feed, health["feeds"][feed])
        assert health["workers"]["count"] >= 1, health["workers"]
        assert health["redis"]["aof_enabled"] is True, health["redis"]

        public = center.get(f"http://127.0.0.1:{center.public_port}/")
        assert public.status_code == 200, public.text[:500]
        ops = center.get(f"http://127.0.0.1:{center.web_port}/")
        assert ops.status_code == 302 and "/login" in ops.headers["location"], (ops.status_code, ops.headers)
        login = center.get(f"http://127.0.0.1:{center.web_port}/login")
        assert login.status_code == 200 and 'name="password"' in login.text, login.text[:500]
        # the demo accounts were made for the person who ran it, passwords beside them
        passwords = center.data_dir / "demo-passwords.txt"
        assert passwords.exists() and oct(passwords.stat().st_mode & 0o777) == "0o600"

        center.collect()
        assert len(center.alive()) >= 6, center.alive()  # redis, demo, scheduler, worker, web, public
        names = [" ".join(p.cmdline()) for p in center.started.values() if p.is_running()]
        assert any("redis-server" in n for n in names), names
        assert sum("core.cli" in n for n in names) >= 5, names

        os.kill(center.proc.pid, signum)
        stop_started = time.monotonic()
        try:
            code = center.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"sitcen run did not stop within {STOP_TIMEOUT_S:.0f} s of {signum.name}:\n{center.tail()}")
        stopped_in = time.monotonic() - stop_started
        assert code == 0, f"exit code {code}:\n{center.tail()}"
        left = center.alive()
        assert not left, "processes left after sitcen run exited:\n" + "\n".join(left) + f"\n{center.tail()}"

        redis_dir = center.data_dir / "redis"
        aof_dir, aof_file = redis_dir / "appendonlydir", redis_dir / "sitcen.aof"
        assert aof_dir.is_dir() or aof_file.is_file(), sorted(p.name for p in redis_dir.iterdir())
        if aof_file.is_file():
            assert aof_file.stat().st_size > 0
        else:
            assert any(p.stat().st_size > 0 for p in aof_dir.iterdir())
        print(f"healthy after {healthy_after:.1f} s, stopped in {stopped_in:.1f} s")


def test_run_killed_with_sigkill_leaves_no_process_behind(tmp_path):
    with sitcen_run(tmp_path) as center:
        center.wait_healthy()
        center.collect()
        assert len(center.started) >= 6, center.started
        assert len(center.alive()) >= 6, center.alive()  # the check below can see a living process
        os.kill(center.proc.pid, signal.SIGKILL)
        center.proc.wait(5)
        deadline = time.monotonic() + ORPHAN_TIMEOUT_S
        left = center.alive()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = center.alive()
        assert not left, (f"processes left {ORPHAN_TIMEOUT_S:.0f} s after the supervisor was killed:\n"
                          + "\n".join(left))


def _children(center: Center, args: str) -> list[psutil.Process]:
    out = []
    for child in psutil.Process(center.proc.pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if " ".join(child.cmdline()).endswith(args):
                out.append(child)
    return out


def test_run_restarts_a_child_that_dies_and_refuses_a_second_run_on_the_same_data_dir(tmp_path):
    with sitcen_run(tmp_path) as center:
        center.wait_healthy()
        center.collect()
        (web,) = _children(center, "core.cli web")
        web.kill()
        web.wait(5)
        deadline = time.monotonic() + 20
        url = f"http://127.0.0.1:{center.web_port}/api/v1/health"
        while True:
            center.collect()
            with contextlib.suppress(httpx.HTTPError):
                if center.get(url).status_code == 200 and any(p.pid != web.pid
                                                              for p in _children(center, "core.cli web")):
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"the web app was not restarted within 20 s:\n{center.tail()}")
            time.sleep(0.5)
        assert "web exited" in center.log.read_text(errors="replace")

        # a second situation center on the same data directory must refuse to start
        env = clean_env(SC_DATA_DIR=str(center.data_dir), SC_WEB_PORT=str(free_port()),
                        SC_PUBLIC_PORT=str(free_port()), SC_SOURCE="none")
        second = subprocess.run(["sitcen", "run"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=30, check=False)
        assert second.returncode == 2, (second.returncode, second.stderr[-2000:])
        assert "used by another running situation center" in second.stderr
        assert center.proc.poll() is None


def _events(health: dict) -> dict[str, int]:
    return {f: health["feeds"][f]["events_total"] for f in FEEDS}


def test_run_keeps_its_data_across_a_restart(tmp_path):
    with sitcen_run(tmp_path) as center:
        center.wait_healthy()
        os.kill(center.proc.pid, signal.SIGINT)
        assert center.proc.wait(STOP_TIMEOUT_S) == 0, center.tail()
        before = _events(center.last_health)
    assert all(n > 0 for n in before.values()), before
    # start again on the same data dir with no source: nothing new is written, so the counters
    # can only come from the append-only file
    data_dir = tmp_path / "var"
    web_port = free_port()
    env = clean_env(SC_DATA_DIR=str(data_dir), SC_WEB_PORT=str(web_port), SC_PUBLIC_PORT=str(free_port()),
                    SC_SOURCE="none")
    log = tmp_path / "second.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["sitcen", "run"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    again = Center(proc, web_port, 0, data_dir, log)
    try:
        deadline = time.monotonic() + 60
        doc = None
        while doc is None:
            again.collect()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = again.get(f"http://127.0.0.1:{web_port}/api/v1/health")
                if r.status_code == 200:
                    doc = r.json()
            if doc is None:
                assert proc.poll() is None and time.monotonic() < deadline, again.tail()
                time.sleep(0.5)
        after = _events(doc)
        assert all(after[f] >= before[f] for f in FEEDS), (before, after)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(STOP_TIMEOUT_S) == 0, again.tail()
        assert not again.alive(), again.alive()
    finally:
        again.collect()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for child in again.started.values():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if child.is_running():
                    child.kill()


@pytest.mark.slow
def test_run_with_the_simulator_shows_the_whole_demo_city_within_a_minute(tmp_path):
    started = time.monotonic()
    with sitcen_run(tmp_path, source="simulate") as center:
        health = center.wait_healthy()
        assert time.monotonic() - started < 60, f"not healthy within a minute:\n{center.tail()}"
        for feed in FEEDS:
            assert health["feeds"][feed]["events_total"] > 0, (feed, health["feeds"][feed])
            assert health["feeds"][feed]["rejected_total"] == 0, (feed, health["feeds"][feed])
        truth = list((center.data_dir / "truth").glob("sim-seed1-*.jsonl"))
        assert truth, f"no ground-truth file in {center.data_dir}"
        os.kill(center.proc.pid, signal.SIGINT)
        assert center.proc.wait(STOP_TIMEOUT_S) == 0, center.tail()
        assert not center.alive(), center.alive()


@pytest.mark.slow
def test_simulate_fast_one_hour_prints_a_summary_without_rejections(tmp_path, redis, redis_server):
    truth = tmp_path / "truth.jsonl"
    done = run_sitcen("simulate", "--fast", "--start", "2026-11-02T08:00:00+05:00", "--duration", "1",
                      "--seed", "3", "--truth", str(truth),
                      env=clean_env(SC_REDIS_URL=redis_server.url, SC_DATA_DIR=str(tmp_path / "var")),
                      cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["seed"] == 3 and summary["truth"] == str(truth)
    for feed in FEEDS:
        assert summary["feeds"][feed]["accepted"] > 0, summary["feeds"][feed]
        assert summary["feeds"][feed]["rejected"] == 0, summary["feeds"][feed]
    assert truth.exists()


@pytest.mark.slow
def test_a_restarted_simulator_resumes_its_city_instead_of_inventing_another(tmp_path, redis, redis_server, store):
    env = clean_env(SC_REDIS_URL=redis_server.url, SC_DATA_DIR=str(tmp_path / "var"), SC_SIM_BACKFILL_H="0.25",
                    SC_SIM_SEED="4")

    def run_for(seconds: float) -> str:
        log = tmp_path / f"sim-{time.monotonic()}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["sitcen", "simulate"], env=env, cwd=tmp_path, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            time.sleep(seconds)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
        return log.read_text()

    first = run_for(12)
    calls_before = set(store.latest("ambulance", "calls"))
    assert calls_before, first[-2000:]
    second = run_for(8)
    assert "resuming the simulated city of seed 4" in second, second[-2000:]
    for feed in FEEDS:
        health = store.health_raw(feed)
        assert int(health.get("rejected_total", 0)) == 0, (feed, health, second[-2000:])
    assert calls_before <= set(store.latest("ambulance", "calls"))
