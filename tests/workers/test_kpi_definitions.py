"""The KPI definition row."""

from __future__ import annotations

from workers.kpi.definitions import KpiDefinition


def test_meets_follows_the_good_direction():
    up = KpiDefinition(key="a.share", domain="a", unit="%", formula="x", target=90.0, good="up",
                       names={"en": "Share", "ru": "Доля", "kk": "Үлес"})
    down = KpiDefinition(key="a.p90", domain="a", unit="min", formula="x", target=10.0, good="down",
                         names={"en": "P90", "ru": "P90", "kk": "P90"})
    assert up.meets(95) is True and up.meets(80) is False and up.meets(None) is None
    assert down.meets(9) is True and down.meets(12) is False
