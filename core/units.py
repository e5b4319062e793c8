"""Pollutants, their canonical units, and unit conversion.

Canonical units are the ones the EPA AQI table is written in (``DOMAIN.md`` 1.1): PM2.5 and
PM10 in µg/m³, O3 and CO in ppm, SO2 and NO2 in ppb. Gas conversions between mass
concentration and mixing ratio use 25 °C and 1 atm (molar volume 24.45 L), the EPA
convention; Kazakh limits in mg/m³ are converted back by the KPI code with the same factor.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import SchemaError

MOLAR_VOLUME_L = 24.45


class Pollutant(StrEnum):
    """Pollutants the AQI and the Kazakh limits cover."""

    PM25 = "pm25"
    PM10 = "pm10"
    O3 = "o3"
    CO = "co"
    SO2 = "so2"
    NO2 = "no2"


CANONICAL_UNIT: dict[Pollutant, str] = {
    Pollutant.PM25: "ug/m3",
    Pollutant.PM10: "ug/m3",
    Pollutant.O3: "ppm",
    Pollutant.CO: "ppm",
    Pollutant.SO2: "ppb",
    Pollutant.NO2: "ppb",
}

MOLECULAR_WEIGHT: dict[Pollutant, float] = {
    Pollutant.O3: 47.997,
    Pollutant.CO: 28.010,
    Pollutant.SO2: 64.066,
    Pollutant.NO2: 46.0055,
}

#: Upper limits beyond which a reading is physically implausible (about 10x the worst
#: recorded urban episodes), in canonical units. Above them a reading is rejected.
IMPLAUSIBLE_ABOVE: dict[Pollutant, float] = {
    Pollutant.PM25: 3_000.0,
    Pollutant.PM10: 6_000.0,
    Pollutant.O3: 2.0,
    Pollutant.CO: 500.0,
    Pollutant.SO2: 20_000.0,
    Pollutant.NO2: 20_000.0,
}

_ALIASES = {
    "pm2.5": Pollutant.PM25, "pm25": Pollutant.PM25, "pm2_5": Pollutant.PM25, "pm 2.5": Pollutant.PM25,
    "pm10": Pollutant.PM10, "pm 10": Pollutant.PM10,
    "o3": Pollutant.O3, "ozone": Pollutant.O3,
    "co": Pollutant.CO, "carbon monoxide": Pollutant.CO,
    "so2": Pollutant.SO2, "sulfur dioxide": Pollutant.SO2, "sulphur dioxide": Pollutant.SO2,
    "no2": Pollutant.NO2, "nitrogen dioxide": Pollutant.NO2,
}

_UNIT_ALIASES = {
    "µg/m³": "ug/m3", "μg/m³": "ug/m3", "ug/m3": "ug/m3", "µg/m3": "ug/m3", "μg/m3": "ug/m3", "ugm3": "ug/m3",
    "ug/m³": "ug/m3", "mg/m³": "mg/m3", "mg/m3": "mg/m3", "ppm": "ppm", "ppb": "ppb",
}

# factor to multiply a value in the key unit by to get the canonical mass unit (ug/m3)
_MASS_TO_UG = {"ug/m3": 1.0, "mg/m3": 1000.0}
_RATIO_TO_PPB = {"ppb": 1.0, "ppm": 1000.0}


def pollutant(name: object) -> Pollutant:
    """Map a parameter name as sources spell it (``pm2.5``, ``PM10``, ``no2``) to a :class:`Pollutant`.

    Raises:
        SchemaError: the name is not a pollutant we handle.
    """
    key = str(name).strip().lower()
    try:
        return _ALIASES[key]
    except KeyError:
        raise SchemaError(f"parameter {name!r} is not one of {sorted(p.value for p in Pollutant)}",
                          code="bad_value") from None


def unit(name: object) -> str:
    """Normalise a unit spelling (``µg/m³``, ``mg/m3``, ``ppm``) to its ASCII key."""
    key = str(name).strip().lower().replace(" ", "")
    try:
        return _UNIT_ALIASES[key]
    except KeyError:
        raise SchemaError(f"unit {name!r} is not one of µg/m³, mg/m³, ppm, ppb", code="bad_unit") from None


def to_canonical(p: Pollutant, value: float, unit_key: str) -> float:
    """Convert ``value`` in ``unit_key`` to the canonical unit of ``p``.

    Raises:
        SchemaError: the unit cannot express this pollutant (a mixing ratio for PM).
    """
    target = CANONICAL_UNIT[p]
    if unit_key == target:
        return value
    if target == "ug/m3":
        if unit_key not in _MASS_TO_UG:
            raise SchemaError(f"{p.value} cannot be given in {unit_key}; use µg/m³ or mg/m³", code="bad_unit")
        return value * _MASS_TO_UG[unit_key]
    # gases: work in ppb
    if unit_key in _RATIO_TO_PPB:
        ppb = value * _RATIO_TO_PPB[unit_key]
    elif unit_key in _MASS_TO_UG:
        ppb = value * _MASS_TO_UG[unit_key] * MOLAR_VOLUME_L / MOLECULAR_WEIGHT[p]
    else:  # pragma: no cover - unit() only returns the keys above
        raise SchemaError(f"unknown unit {unit_key}", code="bad_unit")
    return ppb / _RATIO_TO_PPB[target]
