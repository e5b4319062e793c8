"""Kazakh, Russian and English: translation catalogs, and numbers, dates and times per locale.

Catalogs are JSON files in ``dashboards/locales/`` (one per part of the app: ``common.json``,
``wall.json``, ``kpi.json`` ...), each ``{"key": {"kk": "...", "ru": "...", "en": "..."}}``. A key
lives in exactly one file; ``tests/dashboards/test_i18n.py`` fails if a key lacks a language or
is defined twice. Texts may hold ``{name}`` placeholders filled by :func:`t`.

Times are always shown in the city's zone (Asia/Almaty for the demo pack), formatted with the
visitor's locale (Babel's CLDR data: ``22 қар. 08:14``, ``22 нояб. 08:14``, ``22 Nov 08:14``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_decimal, format_percent

log = logging.getLogger(__name__)

LANGS: tuple[str, ...] = ("kk", "ru", "en")
DEFAULT_LANG = "ru"
LANG_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}
LOCALES = Path(__file__).resolve().parent / "locales"


class CatalogError(ValueError):
    """A catalog file is malformed (the message names the file and key)."""


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, str]]:
    """Every key of every catalog file."""
    out: dict[str, dict[str, str]] = {}
    where: dict[str, str] = {}
    for path in sorted(LOCALES.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise CatalogError(f"{path.name}: {err}") from err
        if not isinstance(data, dict):
            raise CatalogError(f"{path.name}: expected an object of key -> {{kk, ru, en}}")
        for key, texts in data.items():
            if key in out:
                raise CatalogError(f"{path.name}: key {key!r} is already defined in {where[key]}")
            if not isinstance(texts, dict) or any(not isinstance(texts.get(lang), str) or not texts[lang]
                                                  for lang in LANGS):
                raise CatalogError(f"{path.name}: key {key!r} needs non-empty kk, ru and en texts")
            out[key] = texts
            where[key] = path.name
    return out


def lang_of(value: Any) -> str:
    """A supported language from a query value, cookie or ``Accept-Language`` header; default Russian."""
    if isinstance(value, str):
        for part in value.replace(";", ",").split(","):
            code = part.strip().lower()[:2]
            if code in LANGS:
                return code
    return DEFAULT_LANG


def t(key: str, lang: str, **values: Any) -> str:
    """The text of ``key`` in ``lang``, placeholders filled. A missing key shows as the key itself
    (and is logged), never as an error on a wall screen."""
    texts = catalog().get(key)
    if texts is None:
        log.warning("no translation for %r", key)
        return key
    text = texts.get(lang) or texts[DEFAULT_LANG]
    return text.format(**values) if values else text


def has(key: str) -> bool:
    """Whether ``key`` is in the catalogs."""
    return key in catalog()


def number(value: float | int | None, lang: str, digits: int = 0) -> str:
    """``12 345,7`` / ``12,345.7`` per locale; ``—`` for no value."""
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return format_decimal(value, format=pattern, locale=lang)


def percent(share: float | None, lang: str, digits: int = 0) -> str:
    """A share 0..1 as a percentage per locale."""
    if share is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "") + "%"
    return format_percent(share, format=pattern, locale=lang)


def when(value: datetime | str | None, lang: str, zone: tzinfo, pattern: str = "d MMM HH:mm") -> str:
    """A time in the city's zone, formatted per locale (CLDR pattern)."""
    if value is None or value == "":
        return "—"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return format_datetime(moment.astimezone(zone), pattern, locale=lang)


def clock(value: datetime | str | None, lang: str, zone: tzinfo) -> str:
    """``08:14`` in the city's zone."""
    return when(value, lang, zone, "HH:mm")


def names(mapping: Mapping[str, str] | None, lang: str) -> str:
    """Pick ``lang`` from a ``{kk, ru, en}`` mapping (city pack names), falling back sensibly."""
    if not mapping:
        return ""
    return mapping.get(lang) or mapping.get(DEFAULT_LANG) or mapping.get("en") or next(iter(mapping.values()))
