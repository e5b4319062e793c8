"""KPI definitions as a table: what each KPI is, its unit, formula, target and good direction.

Each domain module (``workers/kpi/<domain>.py``) declares its rows in a ``KPIS`` tuple and
computes their values with pure functions; dashboards render any row with one generic tile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal


@dataclass(frozen=True, slots=True)
class KpiDefinition:
    """One KPI.

    Attributes:
        key: ``<domain>.<name>``, stable (dashboards, history keys and the API use it).
        domain: ``air``, ``ambulance``, ``appeals`` or ``traffic``.
        unit: ``%``, ``min``, ``h``, ``count``, ``per_h``, ``AQI``, ``score`` ...
        formula: how it is computed, for people (shown in the KPI table and tooltips).
        target: the value to reach (a norm), or None.
        good: whether higher (``up``) or lower (``down``) is better.
        names: the label in ``en``, ``ru`` and ``kk``.
    """

    key: str
    domain: str
    unit: str
    formula: str
    target: float | None
    good: Literal["up", "down"]
    names: Mapping[str, str]

    def meets(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the target (None without a target or a value)."""
        if self.target is None or value is None:
            return None
        return value >= self.target if self.good == "up" else value <= self.target


def define(domain: str, name: str, unit: str, formula: str, target: float | None, good: Literal["up", "down"],
           en: str, ru: str, kk: str) -> KpiDefinition:
    """A :class:`KpiDefinition` keyed ``<domain>.<name>`` (the short form the KPI tables use)."""
    return KpiDefinition(key=f"{domain}.{name}", domain=domain, unit=unit, formula=formula, target=target,
                         good=good, names=MappingProxyType({"en": en, "ru": ru, "kk": kk}))
