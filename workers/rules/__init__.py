"""The detectors, registered one line each. A detector's ``name`` is also its section in ``SC_RULES_FILE``.

Each entry is ``"module:Class"`` so a detector is imported only when the engine builds it; the
order is the order detectors see each batch. To add one: write ``workers/rules/<file>.py`` (a
:class:`workers.rules.base.Detector` subclass with its ``Params``), add its line here, add tests.
"""

from __future__ import annotations

import importlib

from workers.rules.base import Detector

REGISTRY: tuple[str, ...] = (
    "workers.rules.sources:FeedOutage",
    "workers.rules.sources:SilentSource",
    "workers.rules.sources:StuckSource",
    "workers.rules.air:AirQuality",
    "workers.rules.air:AirEpisode",
    "workers.rules.ambulance_sla:ResponseSla",
    "workers.rules.hotspots:AppealHotspot",
    "workers.rules.hotspots:CallCluster",
    "workers.rules.hotspots:ComplaintSurge",
    "workers.rules.traffic:SegmentDrop",
    "workers.rules.series:SeriesAnomaly",
)


def detector_classes() -> dict[str, type[Detector]]:
    """Every registered detector class by its name.

    Raises:
        ImportError: a registered module or class does not exist (the message names the entry).
    """
    out: dict[str, type[Detector]] = {}
    for entry in REGISTRY:
        module, _, name = entry.partition(":")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as err:
            raise ImportError(f"registered detector {entry!r} cannot be loaded: {err}") from err
        if cls.name in out:
            raise ImportError(f"detector name {cls.name!r} is registered twice ({entry})")
        out[cls.name] = cls
    return out
