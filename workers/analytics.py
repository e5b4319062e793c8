"""The analytics engine: every enabled detector, fed records by feed and the clock. Pure, no I/O.

The same engine runs live (``workers.jobs.run_analytics`` feeds it stream entries with ``now`` =
wall time), in the detection benchmark (``bench/detection.py`` feeds it a simulated city with
``now`` = simulated time) and in tests; so what the benchmark measures is what runs.

Configuration: ``SC_RULES_FILE`` names a JSON file ``{"<detector name>": {"<param>": value, ...,
"enabled": false}, ...}``; anything not named keeps its default (each detector's ``Params``).
``docs/analytics.md`` lists the detectors and their parameters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from workers.rules import detector_classes
from workers.rules.base import Detector, Event, RuleContext, build_params

log = logging.getLogger(__name__)

#: Bump when detector state changes shape, so a worker never resumes from an incompatible pickle.
STATE_VERSION = 1


def load_rules_config(path: Path | str | None) -> dict[str, dict[str, Any]]:
    """Read ``SC_RULES_FILE`` (empty: no overrides).

    Raises:
        ConfigError: unreadable file, not a JSON object of objects, or an unknown detector name.
    """
    if not path or str(path) in ("", "."):
        return {}
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"rules file {path}: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"rules file {path}: expected an object of detector name -> object of parameters")
    known = detector_classes()
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"rules file {path}: no detector named {unknown}; detectors are {sorted(known)}")
    return data


class Engine:
    """The enabled detectors and their state."""

    def __init__(self, pack: Any, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        overrides = overrides or {}
        ctx = RuleContext(pack=pack)
        self.version = STATE_VERSION
        self.detectors: list[Detector] = []
        for name, cls in detector_classes().items():
            section = overrides.get(name, {})
            if section.get("enabled", True) is False:
                continue
            try:
                params = build_params(cls, section)
            except (ValueError, TypeError) as err:
                raise ConfigError(f"rules: {err}") from err
            self.detectors.append(cls(params, ctx))
        self._by_feed: dict[str, list[Detector]] = {}
        for detector in self.detectors:
            for feed in detector.feeds:
                self._by_feed.setdefault(feed, []).append(detector)

    @property
    def names(self) -> list[str]:
        """Names of the enabled detectors."""
        return [d.name for d in self.detectors]

    def step(self, feed: str, records: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
        """New records of ``feed`` (stream dicts, arrival order) seen at ``now``: the events they raise."""
        out: list[Event] = []
        for detector in self._by_feed.get(feed, ()):
            out.extend(self._guard(detector, detector.observe, feed, records, now))
        return out

    def tick(self, now: datetime) -> list[Event]:
        """Time passes to ``now``: events of silence and of episodes ending."""
        out: list[Event] = []
        for detector in self.detectors:
            out.extend(self._guard(detector, detector.tick, now))
        return out

    @staticmethod
    def _guard(detector: Detector, fn: Any, *args: Any) -> list[Event]:
        # one detector's bug must not stop the others or the worker; it is logged with its name
        try:
            return list(fn(*args))
        except Exception:  # noqa: BLE001
            log.exception("detector %s failed; its output for this batch is lost", detector.name)
            return []
