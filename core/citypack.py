"""City packs: the city's configuration as data (a directory with ``pack.json``).

This module reads the parts the ingest path needs (bounds, time zone); the demo-city issue
extends the format with districts, stations, hospitals, road segments and KPI norms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError
from core.validate import Bounds

DEMO_PACK = Path(__file__).parent / "packs" / "almaty_demo"


@dataclass(frozen=True, slots=True)
class CityPack:
    """What a city pack says about the city."""

    id: str
    name: dict[str, str]
    timezone: str
    bounds: Bounds
    center: tuple[float, float]
    path: Path


def load_pack(path: Path | str | None = None) -> CityPack:
    """Load the pack in directory ``path`` (empty or None: the bundled demo pack).

    Raises:
        ConfigError: the pack is missing or invalid; the message names the file and field.
    """
    root = Path(path) if path and str(path) not in ("", ".") else DEMO_PACK
    manifest = root / "pack.json"
    try:
        data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"city pack {root} has no pack.json") from None
    except (ValueError, OSError) as err:
        raise ConfigError(f"{manifest} cannot be read: {err}") from err
    try:
        b = data["bounds"]
        bounds = Bounds(float(b["west"]), float(b["south"]), float(b["east"]), float(b["north"]))
        tz = str(data["timezone"])
        ZoneInfo(tz)
        center = (float(data["center"]["lat"]), float(data["center"]["lon"]))
        pack = CityPack(id=str(data["id"]), name=dict(data.get("name", {})), timezone=tz, bounds=bounds,
                        center=center, path=root)
    except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError) as err:
        raise ConfigError(f"{manifest}: invalid or missing field ({type(err).__name__}: {err})") from err
    if not (bounds.west < bounds.east and bounds.south < bounds.north):
        raise ConfigError(f"{manifest}: bounds are empty or inverted ({bounds})")
    return pack
