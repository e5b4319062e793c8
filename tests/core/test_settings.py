"""Settings from ``SC_*`` variables: defaults, parsing, errors, precedence, round trip, and the docs table."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DOC = ROOT / "docs" / "configuration.md"

FIELDS = dataclasses.fields(Settings)


def _var(name: str) -> str:
    return "SC_" + name.upper()


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _sample(f: dataclasses.Field) -> tuple[str, Any]:
    """A non-default value for field ``f``: (text of its variable, the value expected)."""
    default = _default(f)
    if isinstance(default, bool):
        return ("false", False) if default else ("true", True)
    if isinstance(default, int):
        return str(default + 4321), default + 4321
    if isinstance(default, float):
        return str(default + 2.5), default + 2.5
    if isinstance(default, Path):
        path = Path(f"/tmp/sc-test/{f.name}")
        return str(path), path
    if isinstance(default, Mapping):
        if str(f.type).endswith("float]"):
            return "a=1,b=2.5", {"a": 1.0, "b": 2.5}
        return "a=1,b=ws://x:1/p", {"a": "1", "b": "ws://x:1/p"}
    if isinstance(default, str):
        return f"value-of-{f.name}", f"value-of-{f.name}"
    pytest.fail(f"test_settings does not know how to set field {f.name} of type {type(default).__name__}")


# ---------------------------------------------------------------------------------------


def test_from_empty_environ_gives_the_defaults():
    s = Settings.from_env({})
    assert s == Settings()
    for f in FIELDS:
        assert getattr(s, f.name) == _default(f), f.name
    # a few defaults the rest of the system relies on
    assert s.redis_url == "" and s.web_port == 8050 and s.public_port == 8051
    assert s.data_dir == Path("var") and s.workers == 1 and s.source == "simulate"
    assert s.feed_urls == {} and s.cadence_s == {}


def test_from_env_ignores_unrelated_and_unprefixed_variables():
    s = Settings.from_env({"WEB_PORT": "1", "sc_web_port": "2", "SC_NOT_A_FIELD": "3", "PATH": "/bin"})
    assert s == Settings()


def test_from_env_none_reads_os_environ(monkeypatch):
    monkeypatch.setenv("SC_WEB_PORT", "9123")
    assert Settings.from_env().web_port == 9123


@pytest.mark.parametrize("f", FIELDS, ids=[f.name for f in FIELDS])
def test_every_field_is_read_from_its_variable(f):
    text, expected = _sample(f)
    s = Settings.from_env({_var(f.name): text})
    value = getattr(s, f.name)
    assert value == expected, f"{_var(f.name)}={text!r} gave {value!r}"
    assert type(value) is type(expected) or isinstance(value, Mapping), (f.name, type(value))
    # and only that field changed
    others = {g.name: getattr(s, g.name) for g in FIELDS if g.name != f.name}
    assert others == {g.name: _default(g) for g in FIELDS if g.name != f.name}


def test_all_fields_at_once():
    env = {_var(f.name): _sample(f)[0] for f in FIELDS}
    s = Settings.from_env(env)
    for f in FIELDS:
        assert getattr(s, f.name) == _sample(f)[1], f.name


@pytest.mark.parametrize(("var", "text", "field", "expected"), [
    ("SC_WEB_PORT", " 8080 ", "web_port", 8080),
    ("SC_REPLAY_SPEED", "1e3", "replay_speed", 1000.0),
    ("SC_REPLAY_SPEED", "7", "replay_speed", 7.0),
    ("SC_DATA_DIR", "/srv/sitcen", "data_dir", Path("/srv/sitcen")),
    ("SC_CADENCE_S", "air=60, traffic=120.5", "cadence_s", {"air": 60.0, "traffic": 120.5}),
    ("SC_CADENCE_S", "", "cadence_s", {}),
    ("SC_FEED_URLS", "air=https://example.org/a?x=1&y=2,traffic=wss://example.org/t",
     "feed_urls", {"air": "https://example.org/a?x=1&y=2", "traffic": "wss://example.org/t"}),
    ("SC_FEED_FORMATS", "air=flat,ambulance=sf-csv,", "feed_formats", {"air": "flat", "ambulance": "sf-csv"}),
])
def test_parsing(var, text, field, expected):
    value = getattr(Settings.from_env({var: text}), field)
    assert value == expected
    assert type(value) is type(expected) or isinstance(value, Mapping)


def test_float_field_is_a_float_even_from_an_integer_text():
    assert isinstance(Settings.from_env({"SC_TICK_S": "3"}).tick_s, float)


@pytest.mark.parametrize(("var", "text"), [
    ("SC_WEB_PORT", "abc"),
    ("SC_WEB_PORT", "80.5"),
    ("SC_WORKERS", ""),
    ("SC_REPLAY_SPEED", "fast"),
    ("SC_CADENCE_S", "air"),
    ("SC_CADENCE_S", "=5"),
    ("SC_FEED_URLS", "air=https://x,broken"),
])
def test_bad_value_raises_config_error_naming_the_variable(var, text):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({var: text})
    message = str(info.value)
    assert var in message, message
    assert repr(text) in message or text in message, message


def test_config_error_for_web_port_abc():
    with pytest.raises(ConfigError, match=r"SC_WEB_PORT.*abc"):
        Settings.from_env({"SC_WEB_PORT": "abc"})


def test_explicit_overrides_beat_the_environment():
    env = {"SC_WEB_PORT": "9000", "SC_REDIS_URL": "redis://env:6379/0", "SC_CADENCE_S": "air=5"}
    s = Settings.from_env(env, web_port=9100, cadence_s={"air": 7.0})
    assert s.web_port == 9100
    assert s.cadence_s == {"air": 7.0}
    assert s.redis_url == "redis://env:6379/0"  # not overridden: the environment wins over the default


def test_settings_are_frozen_and_with_returns_a_copy():
    s = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.web_port = 1  # type: ignore[misc]
    t = s.with_(web_port=1)
    assert t.web_port == 1 and s.web_port == 8050


def test_to_env_names_every_field():
    env = Settings.from_env({}).to_env()
    assert set(env) == {_var(f.name) for f in FIELDS}
    assert all(isinstance(v, str) for v in env.values())


def test_to_env_round_trips_defaults():
    s = Settings.from_env({})
    assert Settings.from_env(s.to_env()) == s


def test_to_env_round_trips_every_field_changed():
    s = Settings.from_env({_var(f.name): _sample(f)[0] for f in FIELDS})
    assert s != Settings()
    again = Settings.from_env(s.to_env())
    assert again == s
    for f in FIELDS:
        assert getattr(again, f.name) == getattr(s, f.name), f.name


def test_to_env_round_trips_realistic_values(tmp_path):
    s = Settings.from_env({}, redis_url="redis://127.0.0.1:7000/2", data_dir=tmp_path / "var",
                          replay_speed=600.0, cadence_s={"air": 60.0, "traffic": 240.0},
                          feed_urls={"air": "https://example.org/air.json", "ambulance": "wss://example.org/ws"},
                          feed_formats={"air": "openaq-latest"}, ingest_token="s3cret", log_level="DEBUG")
    assert Settings.from_env(s.to_env()) == s


# ---------------------------------------------------------------------------------------
# docs/configuration.md: one table row per field


_VAR_IN_CELL = re.compile(r"`(SC_[A-Z0-9_]+)`")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def doc_table_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every body row of every Markdown table (headers and separators left out)."""
    lines = text.splitlines()
    rows: list[tuple[int, list[str]]] = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("|") or _SEPARATOR.match(line.strip()):
            continue
        is_header = i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1].strip())
        if not is_header:
            rows.append((i + 1, _cells(line)))
    return rows


def test_doc_table_parser():
    text = ("# Config\n\n| Variable | Default | Meaning |\n|---|:---:|---|\n"
            "| `SC_A` | `1` | a \\| b |\n| `SC_B` | | c |\n\ntext | not a row\n")
    assert doc_table_rows(text) == [(5, ["`SC_A`", "`1`", "a \\| b"]), (6, ["`SC_B`", "", "c"])]


def doc_problems(text: str) -> list[str]:
    """Where a configuration document and the Settings fields disagree (empty: they agree)."""
    rows = doc_table_rows(text)
    expected = {_var(f.name) for f in FIELDS}
    seen: dict[str, list[int]] = {}
    problems: list[str] = []
    for line, cells in rows:
        found = _VAR_IN_CELL.findall(cells[0]) if cells else []
        if len(found) != 1:
            problems.append(f"line {line}: first column {cells[0] if cells else ''!r} should name exactly one "
                            f"`SC_<FIELD>`")
            continue
        seen.setdefault(found[0], []).append(line)
    for var, lines in sorted(seen.items()):
        if var not in expected:
            problems.append(f"lines {lines}: {var} is not a Settings field")
        elif len(lines) > 1:
            problems.append(f"lines {lines}: {var} has {len(lines)} rows")
    for var in sorted(expected - set(seen)):
        problems.append(f"{var} has no row")
    return problems


def _synthetic_doc(variables: list[str]) -> str:
    rows = "".join(f"| `{v}` | `x` | text |\n" for v in variables)
    return f"# Configuration\n\n| Variable | Default | What |\n|---|---|---|\n{rows}"


def test_doc_checker_accepts_a_complete_table_and_catches_each_mistake():
    every = [_var(f.name) for f in FIELDS]
    assert doc_problems(_synthetic_doc(every)) == []
    missing = doc_problems(_synthetic_doc(every[1:]))
    assert missing == [f"{every[0]} has no row"]
    extra = doc_problems(_synthetic_doc([*every, "SC_NOT_A_FIELD"]))
    assert len(extra) == 1 and "SC_NOT_A_FIELD is not a Settings field" in extra[0]
    twice = doc_problems(_synthetic_doc([*every, every[2]]))
    assert len(twice) == 1 and f"{every[2]} has 2 rows" in twice[0]
    unnamed = doc_problems(_synthetic_doc(every) + "| web port | 8050 | x |\n")
    assert len(unnamed) == 1 and "exactly one" in unnamed[0]


def test_configuration_doc_has_exactly_one_row_per_field():
    if not CONFIG_DOC.exists():
        pytest.fail(f"{CONFIG_DOC.relative_to(ROOT)} does not exist; it must document every Settings field "
                    f"in a table with `SC_<FIELD>` in the first column")
    problems = doc_problems(CONFIG_DOC.read_text(encoding="utf-8"))
    assert not problems, f"{CONFIG_DOC.relative_to(ROOT)} and Settings disagree:\n" + "\n".join(problems)
