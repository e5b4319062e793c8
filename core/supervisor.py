"""``sitcen run``: start every part of the situation center on one machine, keep it up, stop it cleanly.

Children run in their own sessions, so a Ctrl-C reaches only the supervisor, which then
stops them in order (feeds, workers, web apps, and Redis last) and waits for each. Every
child also gets ``PR_SET_PDEATHSIG``, so even a ``kill -9`` of the supervisor leaves no
process behind. A child that dies is restarted with backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from core.redis_server import EmbeddedRedis, _die_with_parent, wait_or_kill
from core.settings import Settings

log = logging.getLogger(__name__)

RESTART_MAX_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class Child:
    """One supervised process: a ``sitcen`` sub-command."""

    name: str
    args: list[str]
    order: int
    """Stop order: lower stops first."""
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)


class Supervisor:
    """Runs the children of ``sitcen run`` until a signal arrives."""

    def __init__(self, settings: Settings, children: list[Child]) -> None:
        self.settings = settings
        self.children = children
        self.redis: EmbeddedRedis | None = None
        self._stopping = False

    def run(self) -> int:
        """Start everything, watch it, and stop it all on SIGINT/SIGTERM. Returns the exit code."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        settings = self.settings
        if not settings.redis_url:
            self.redis = EmbeddedRedis(settings.data_dir / "redis", port=settings.embedded_redis_port)
            settings = settings.with_(redis_url=self.redis.start())
            self.settings = settings
        env = {**os.environ, **settings.to_env()}
        try:
            for child in self.children:
                self._start(child, env)
            log.info("situation center running: operations http://%s:%s  public http://%s:%s  (Ctrl-C stops)",
                     settings.host, settings.web_port, settings.host, settings.public_port)
            while not self._stopping:
                self._watch(env)
                time.sleep(0.5)
        finally:
            self.stop()
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        self._stopping = True

    def _start(self, child: Child, env: dict[str, str]) -> None:
        cmd = [sys.executable, "-m", "core.cli", *child.args]
        child.process = subprocess.Popen(cmd, env=env, start_new_session=True,  # noqa: S603
                                         preexec_fn=_die_with_parent)
        child.started_at = time.monotonic()
        log.info("started %s (pid %s): %s", child.name, child.process.pid, " ".join(child.args))

    def _watch(self, env: dict[str, str]) -> None:
        now = time.monotonic()
        for child in self.children:
            proc = child.process
            if proc is not None and proc.poll() is not None:
                if now - child.started_at > 60:
                    child.restarts = 0  # it ran fine for a while: restart quickly
                delay = min(RESTART_MAX_S, 2.0 ** child.restarts)
                log.warning("%s exited with %s; restarting in %.0f s", child.name, proc.returncode, delay)
                child.process = None
                child.restarts += 1
                child.next_start = now + delay
            elif proc is None and now >= child.next_start and not self._stopping:
                self._start(child, env)

    def stop(self) -> None:
        """Stop the children in order, then Redis. Safe to call twice."""
        for order in sorted({c.order for c in self.children}):
            group = [c for c in self.children if c.order == order and c.process is not None]
            for child in group:
                if child.process and child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
            for child in group:
                self._wait(child)
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
            log.info("embedded redis stopped")

    @staticmethod
    def _wait(child: Child) -> None:
        proc, child.process = child.process, None
        if proc is not None:
            wait_or_kill(proc, STOP_TIMEOUT_S, child.name)


def default_children(settings: Settings, *, source: str) -> list[Child]:
    """The processes of ``sitcen run`` for ``settings``."""
    children: list[Child] = []
    if source == "replay":
        children.append(Child("demo-feeds", ["demo"], order=0))
    elif source == "simulate":
        children.append(Child("simulator", ["simulate"], order=0))
    for feed in settings.feed_urls:
        children.append(Child(f"feed-{feed}", ["feed", feed], order=0))
    children.append(Child("scheduler", ["scheduler"], order=1))
    children += [Child(f"worker-{i + 1}", ["worker"], order=1) for i in range(max(1, settings.workers))]
    children.append(Child("web", ["web"], order=2))
    children.append(Child("public", ["public"], order=2))
    return children
