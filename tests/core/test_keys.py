"""Key grammar: ``sc:`` prefix, no empty segment, one hash tag (one Cluster slot) per feed, and
``core/keys.py`` as the only module that spells ``sc:``."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from core import keys

ROOT = Path(__file__).resolve().parents[2]
FEEDS = ("air", "appeals", "traffic", "ambulance")

#: Sample arguments by parameter name. A new builder with a parameter not listed here fails
#: ``test_every_builder_is_covered`` until this table learns about it.
SAMPLES: dict[str, list[object]] = {
    "feed": list(FEEDS),
    "kind": ["readings", "calls", "units", "segments", "requests"],
    "bucket": [0, 1, 2_958_720, 10**9],
    "domain": ["air", "traffic", "ambulance", "appeals", "city"],
    "incident_id": ["INC-20261122-0001", "INC-1"],
    "name": ["air_quality", "engine"],
}


def _builders() -> dict[str, Callable[..., str]]:
    """Every public function defined in ``core.keys``."""
    return {name: fn for name, fn in vars(keys).items()
            if inspect.isfunction(fn) and fn.__module__ == keys.__name__ and not name.startswith("_")}


def _params(fn: Callable[..., str]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def _feed_builders() -> dict[str, Callable[..., str]]:
    return {name: fn for name, fn in _builders().items() if "feed" in _params(fn)}


def _calls(fn: Callable[..., str], feed: str | None = None) -> Iterator[tuple[dict[str, object], str]]:
    """``fn`` called with every sample of each parameter (the other parameters at their first sample)."""
    params = _params(fn)
    base = {p: SAMPLES[p][0] for p in params}
    if feed is not None:
        base["feed"] = feed
    yield base, fn(**base)
    for p in params:
        if p == "feed" and feed is not None:
            continue
        for value in SAMPLES[p][1:]:
            args = {**base, p: value}
            yield args, fn(**args)


def _tag(key: str) -> str:
    """The hash-tag text Redis Cluster hashes: between the first ``{`` and the next ``}``."""
    start = key.find("{")
    end = key.find("}", start + 1)
    assert start >= 0 and end > start + 1, f"{key!r} has no non-empty hash tag"
    return key[start + 1:end]


# ---------------------------------------------------------------------------------------
# the builders


def test_every_builder_is_covered():
    builders = _builders()
    assert {"feed_stream_key", "dead_letter_key", "latest_key", "latest_version_key", "seen_key",
            "health_key", "transport_state_key", "kpi_key", "rollup_key"} <= set(builders)
    for name, fn in builders.items():
        unknown = [p for p in _params(fn) if p not in SAMPLES]
        assert not unknown, f"keys.{name} has parameters {unknown} that SAMPLES in this test does not know"


@pytest.mark.parametrize("name", sorted(_builders()))
def test_builder_prefix_and_no_empty_segment(name):
    fn = _builders()[name]
    for args, key in _calls(fn):
        assert isinstance(key, str), (name, args)
        assert key.startswith("sc:"), f"keys.{name}({args}) = {key!r} does not start with 'sc:'"
        assert "::" not in key, f"keys.{name}({args}) = {key!r} has an empty segment"
        assert not key.endswith(":"), f"keys.{name}({args}) = {key!r} ends with an empty segment"
        assert all(key.split(":")), f"keys.{name}({args}) = {key!r} has an empty segment"


@pytest.mark.parametrize("name", sorted(_feed_builders()))
def test_feed_builder_carries_the_feed_as_hash_tag(name):
    fn = _feed_builders()[name]
    for feed in FEEDS:
        for args, key in _calls(fn, feed=feed):
            assert "{" + feed + "}" in key, f"keys.{name}({args}) = {key!r} lacks the hash tag {{{feed}}}"
            assert _tag(key) == feed, f"keys.{name}({args}) = {key!r} hashes on {_tag(key)!r}, not {feed!r}"
            assert key.count("{") == 1 and key.count("}") == 1, f"keys.{name}({args}) = {key!r}"


@pytest.mark.parametrize("feed", FEEDS)
def test_all_keys_of_one_feed_share_one_cluster_slot(feed):
    all_keys = [key for fn in _feed_builders().values() for _, key in _calls(fn, feed=feed)]
    assert len(all_keys) >= 8
    assert {_tag(k) for k in all_keys} == {feed}
    assert len({key_slot(k.encode()) for k in all_keys}) == 1, sorted(all_keys)


def test_different_feeds_get_different_tags():
    streams = {keys.feed_stream_key(f) for f in FEEDS}
    assert len(streams) == len(FEEDS)
    assert len({_tag(k) for k in streams}) == len(FEEDS)


def test_builders_of_one_feed_do_not_collide():
    built = [key for fn in _feed_builders().values() for _, key in _calls(fn, feed="air")]
    assert len(built) == len(set(built)), sorted(k for k in built if built.count(k) > 1)


def test_the_ingest_script_keys_share_one_slot(store):
    """The Lua ingest script touches several keys at once; on Cluster they must share one slot."""
    from datetime import UTC, datetime, timedelta

    from core.schemas import AirReading
    from core.units import Pollutant

    t0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    records = [AirReading(station_id=f"st{i}", parameter=Pollutant.PM25, value=1.0 + i, unit="ug/m3",
                          observed_at=t0 + timedelta(minutes=30 * i), lat=43.2, lon=76.9) for i in range(4)]
    prepared = store.prepare("air", records)
    assert len(prepared.keys) >= 4
    assert {_tag(k) for k in prepared.keys} == {"air"}
    assert len({key_slot(k.encode()) for k in prepared.keys}) == 1


@pytest.mark.parametrize("bad", ["", "a:b", "a{b", "a}b", ":", "{air}"])
@pytest.mark.parametrize("name", sorted(_feed_builders()))
def test_invalid_feed_names_are_refused(name, bad):
    fn = _feed_builders()[name]
    args = {p: SAMPLES[p][0] for p in _params(fn)}
    args["feed"] = bad
    with pytest.raises(ValueError, match="feed"):
        fn(**args)


@pytest.mark.parametrize("name", ["latest_key", "latest_version_key"])
def test_empty_entity_kind_is_refused(name):
    with pytest.raises(ValueError):
        getattr(keys, name)("air", "")


def test_kpi_key_with_empty_domain_has_no_empty_segment():
    """``kpi_key("")`` must not produce ``sc:kpi:`` (a key with an empty last segment)."""
    try:
        key = keys.kpi_key("")
    except ValueError:
        return
    assert not key.endswith(":") and "::" not in key, f"kpi_key('') = {key!r} has an empty segment"


def test_constants():
    assert keys.FEEDS_SEEN.startswith("sc:") and "::" not in keys.FEEDS_SEEN
    assert keys.WORKERS_GROUP and keys.JOBS_QUEUE and keys.WORKERS_GROUP != keys.JOBS_QUEUE


# ---------------------------------------------------------------------------------------
# nobody else spells "sc:"

#: ``sc:`` as the start of a key: not preceded by a letter, digit or underscore ("desc:" is fine).
SC_KEY = re.compile(r"(?<![A-Za-z0-9_])sc:")
SCANNED_DIRS = ("core", "feeds", "workers", "dashboards", "bench")
OWNER = ROOT / "core" / "keys.py"


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the constant nodes that are docstrings (documentation, not keys)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def sc_literals(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, text) of every string or bytes literal (f-string pieces included) that spells ``sc:``,
    of every literal that is exactly ``"sc"`` (a second copy of the prefix), and of every use of
    ``keys.PREFIX`` (a key assembled by hand).

    Comments are not literals; docstrings are documentation and are skipped.
    """
    tree = ast.parse(source, filename=filename)
    docstrings = _docstring_nodes(tree)
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            value = node.value
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(value, str) and (SC_KEY.search(value) or value == "sc"):
                hits.append((node.lineno, value))
        elif isinstance(node, ast.Attribute) and node.attr == "PREFIX" and isinstance(node.value, ast.Name) \
                and node.value.id == "keys":
            hits.append((node.lineno, "keys.PREFIX"))
    return sorted(hits)


def _scanned_files() -> list[Path]:
    files = [p for d in SCANNED_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    app = ROOT / "app.py"
    if app.exists():
        files.append(app)
    return files


def test_scanner_finds_literals_and_f_string_pieces_but_not_comments_or_docstrings():
    source = '''"""Module doc mentioning sc:stream:{air}."""
# a comment: sc:stream:{air}
A = "sc:stream:{air}"
B = f"sc:latest:{feed}:{kind}"
C = "s" "c:implicit"
D = b"sc:bytes"
E = "desc: not a key"
def f():
    """Function doc: sc:dead:{feed}."""
    return f"{x}" + 'sc:' + x
G = "scheme" + "SC_WEB_PORT" + "sc-jobs"
H = "sc" + ":stream"
I = f"{keys.PREFIX}:stream:{{air}}"
'''
    hits = sc_literals(source)
    lines = [line for line, _ in hits]
    assert lines == [3, 4, 5, 6, 10, 12, 13], hits


def test_scanner_sees_the_owner_module():
    """Sanity: the scanner does find the prefix in ``core/keys.py`` (else the next test proves little)."""
    assert (sc_literals(OWNER.read_text(encoding="utf-8"), str(OWNER))
            or pytest.fail("the scanner finds no 'sc' prefix in core/keys.py; has the prefix moved?"))


def test_sc_prefix_is_spelled_only_in_core_keys():
    files = _scanned_files()
    assert OWNER in files and len(files) > 10
    offenders = []
    for path in files:
        if path == OWNER:
            continue
        source = path.read_text(encoding="utf-8")
        for line, text in sc_literals(source, str(path)):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {text[:80]!r}")
    assert not offenders, "'sc:' spelled outside core/keys.py (use core.keys):\n" + "\n".join(offenders)
